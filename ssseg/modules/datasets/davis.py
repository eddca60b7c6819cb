"""Video fine-tuning data in the DAVIS layout Meta's training reads.

``videos_dir/JPEGImages/<video>/<frame>.jpg`` and ``videos_dir/Annotations/<video>/<frame>.png``: each PNG is an
indexed (palette) or grayscale image whose pixel value is the object id (0 background), named as its frame. The
videos are those of ``Annotations``; a training clip is ``num_frames`` consecutive annotated frames starting on one
where an object is visible, with up to ``max_num_objects`` of the objects visible there.
"""
import os
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from PIL import Image

from .base import ClipDataset
from .registries import DATASETS
from .validation import DatasetError, checkpositiveint

FRAME_EXTENSIONS = ('.jpg', '.jpeg', '.JPG', '.JPEG')


def _listdir(folder, extensions):
    return sorted(name for name in os.listdir(folder) if name.endswith(extensions)) if os.path.isdir(folder) else []


def readlabelmap(path: str) -> np.ndarray:
    """(H, W) uint8 object ids of a DAVIS annotation PNG.

    Raises:
        ValueError: a PNG that is neither indexed (mode P) nor grayscale (mode L), or that does not read.
    """
    try:
        with Image.open(path) as image:
            if image.mode not in ('P', 'L'):
                raise ValueError(f'mode {image.mode}: DAVIS annotations are indexed (palette) or grayscale PNGs '
                                 'whose pixel value is the object id')
            return np.asarray(image)
    except OSError as err:
        raise ValueError(f'not a readable PNG ({type(err).__name__}: {err})') from err


@DATASETS.register_module()
class DAVISVideoDataset(ClipDataset):
    """The videos of a DAVIS-style folder as training clips.

    Args:
        videos_dir: the folder holding ``JPEGImages`` and ``Annotations``.
        num_frames: T, the frames of a clip (Meta's recipe: 8).
        reverse_prob: the probability of playing a clip backwards.
        image_size, max_num_objects, transforms, seed: see :class:`ClipDataset`.
    Raises:
        DatasetError: no ``JPEGImages`` or ``Annotations`` folder, or no annotated video.
    """

    def __init__(self, videos_dir: str, num_frames: int = 8, image_size: int = 1024, max_num_objects: int = 3,
                 reverse_prob: float = 0.0, transforms: Optional[Sequence] = None, seed: int = 0):
        super().__init__(image_size, max_num_objects, transforms, seed)
        self.videos_dir, self.num_frames = os.fspath(videos_dir), checkpositiveint('num_frames', num_frames)
        if not isinstance(reverse_prob, (int, float)) or not 0 <= reverse_prob <= 1:
            raise ValueError(f'reverse_prob must be a probability in [0, 1], got {reverse_prob!r}')
        self.reverse_prob = float(reverse_prob)
        self.frames_root = os.path.join(self.videos_dir, 'JPEGImages')
        self.masks_root = os.path.join(self.videos_dir, 'Annotations')
        for folder in (self.frames_root, self.masks_root):
            if not os.path.isdir(folder):
                raise DatasetError(f'{folder}: missing; a DAVIS-style folder holds JPEGImages/<video>/*.jpg and '
                                   'Annotations/<video>/*.png')
        self.videos = sorted(v for v in os.listdir(self.masks_root) if os.path.isdir(os.path.join(self.masks_root, v)))
        self._objects: Dict[int, List[set]] = {}  # item -> object ids visible on each annotated frame
        self._nonempty(self.masks_root)

    def __len__(self) -> int:
        return len(self.videos)

    def describe(self) -> str:
        return self.videos_dir

    def framenames(self, item: int) -> List[str]:
        """The frame stems of video ``item`` (every JPEG, in order)."""
        return [os.path.splitext(n)[0] for n in _listdir(os.path.join(self.frames_root, self.videos[item]),
                                                         FRAME_EXTENSIONS)]

    def annotatednames(self, item: int) -> List[str]:
        """The stems of the annotation PNGs of video ``item``, in order."""
        return [os.path.splitext(n)[0] for n in _listdir(os.path.join(self.masks_root, self.videos[item]), '.png')]

    def _framepath(self, item, stem):
        folder = os.path.join(self.frames_root, self.videos[item])
        return next((os.path.join(folder, stem + ext) for ext in FRAME_EXTENSIONS
                     if os.path.isfile(os.path.join(folder, stem + ext))), os.path.join(folder, stem + '.jpg'))

    def _maskpath(self, item, stem):
        return os.path.join(self.masks_root, self.videos[item], stem + '.png')

    def _readframes(self, item, stems):
        return [np.asarray(Image.open(self._framepath(item, s)).convert('RGB')) for s in stems]

    def rawsample(self, item: int) -> dict:
        """Video ``item`` as read: ``name``, ``images`` [(H, W, 3) uint8] for every frame, ``frame_names``,
        ``masks`` (T, O, H, W) bool of every object on every frame (False where a frame has no PNG),
        ``annotated`` [bool per frame], ``object_ids`` (sorted) and ``orig_size``."""
        stems, annotated = self.framenames(item), set(self.annotatednames(item))
        images = self._readframes(item, stems)
        labels = {s: readlabelmap(self._maskpath(item, s)) for s in stems if s in annotated}
        ids = sorted({int(v) for label in labels.values() for v in np.unique(label) if v != 0})
        size = images[0].shape[:2]
        masks = np.zeros((len(stems), len(ids), *size), bool)
        for t, stem in enumerate(stems):
            if stem in labels:
                masks[t] = labels[stem][None] == np.asarray(ids, np.uint8).reshape(-1, 1, 1)
        return dict(name=self.videos[item], images=images, frame_names=stems, masks=masks,
                    annotated=[s in annotated for s in stems], object_ids=ids, orig_size=size)

    def _visible(self, item) -> List[set]:
        if item not in self._objects:
            self._objects[item] = [set(np.unique(readlabelmap(self._maskpath(item, s))).tolist()) - {0}
                                   for s in self.annotatednames(item)]
        return self._objects[item]

    def _rawclip(self, item: int, rng: np.random.Generator) -> dict:
        stems, visible = self.annotatednames(item), self._visible(item)
        windows = [list(range(t, t + self.num_frames)) for t in range(len(stems) - self.num_frames + 1)]
        if rng.random() < self.reverse_prob:
            windows = [w[::-1] for w in windows]  # played backwards: the clip starts on the window's last frame
        windows = [w for w in windows if visible[w[0]]]
        if not windows:  # only reversed windows can lack a visible first frame; checkdataset ensures a forward one
            windows = [list(range(t, t + self.num_frames)) for t in range(len(stems) - self.num_frames + 1)
                       if visible[t]]
        picked = windows[int(rng.integers(len(windows)))]
        ids = self.selectobjects(sorted(visible[picked[0]]), rng)  # objects seen on the clip's first frame
        labels = np.stack([readlabelmap(self._maskpath(item, stems[t])) for t in picked])
        masks = labels[:, None] == np.asarray(ids, np.uint8).reshape(1, -1, 1, 1)
        images = self._readframes(item, [stems[t] for t in picked])
        return dict(name=f'{self.videos[item]}/{stems[picked[0]]}', images=images, masks=masks, object_ids=ids,
                    orig_size=images[0].shape[:2])

    def problems(self) -> List[Tuple[str, str]]:
        """Per video: a missing frame folder or frame, unreadable or non-indexed PNGs, masks of another size than
        their frame, no object in any annotation, and fewer usable annotated frames than ``num_frames``."""
        found = []
        for item in range(len(self)):
            found += self._videoproblems(item)
        return found

    def _videoproblems(self, item):
        folder, masks_folder = os.path.join(self.frames_root, self.videos[item]), os.path.join(self.masks_root,
                                                                                              self.videos[item])
        if not os.path.isdir(folder):
            return [(folder, f'missing: the frames of {masks_folder}')]
        found, visible = [], []
        for stem in self.annotatednames(item):
            path, frame = self._maskpath(item, stem), self._framepath(item, stem)
            if not os.path.isfile(frame):
                found.append((path, f'no frame {stem}.jpg in {folder}'))
                continue
            try:
                label = readlabelmap(path)
                with Image.open(frame) as image:
                    width, height = image.size
            except (OSError, ValueError) as err:
                found.append((path, str(err)))
                continue
            if label.shape != (height, width):
                found.append((path, f'mask is {label.shape[1]}x{label.shape[0]} but its frame '
                                    f'{os.path.basename(frame)} is {width}x{height} (width x height)'))
            visible.append(set(np.unique(label).tolist()) - {0})
        if not found:
            found += self._clipproblems(item, masks_folder, visible)
        return found

    def _clipproblems(self, item, masks_folder, visible):
        if not visible:
            return [(masks_folder, 'no annotation PNG')]
        if not any(visible):
            return [(masks_folder, 'no object in any annotation (every PNG is background only)')]
        self._objects[item] = visible
        if not any(visible[t] for t in range(len(visible) - self.num_frames + 1)):
            return [(masks_folder, f'{len(visible)} annotated frames: no run of num_frames={self.num_frames} '
                                   'consecutive ones starting with a visible object (lower TRAIN_CFG.dataset.'
                                   'num_frames)')]
        return []
