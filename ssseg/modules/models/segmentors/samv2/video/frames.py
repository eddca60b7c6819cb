"""Lazy, bounded-memory access to the frames of a video as SAMV2 inputs.

A video is one of: a folder of JPEG frames named by frame number (``00000.jpg``, ``7.jpeg``; frame
``i`` is the ``i``-th file in numeric order, gaps allowed), a video file that OpenCV's
``cv2.VideoCapture`` decodes (.mp4, .avi, ...), or a list/tuple of (H, W, 3) uint8 RGB frames of
one size (a (T, H, W, 3) uint8 array counts as a list of T frames). ``VideoFrames(...)[i]`` is the
model input of frame ``i``: a float32 (3, S, S) tensor made the way Meta's ``load_video_frames``
makes it (PIL resize of the RGB frame to S x S with PIL's default filter, /255 in float64, rounded
to float32, minus mean, divided by std), so for a JPEG folder the values are bit-identical to
Meta's loader. JPEG files are decoded with PIL for that reason (PIL ignores EXIF orientation,
``cv2.imread`` applies it); video files with OpenCV.

Frames are decoded on demand and kept in a small LRU cache of ``cachesize`` frames (the normalized
tensor and the original RGB frame), so memory does not grow with the video's length.
How each kind of source is read is in :mod:`.sources`.
"""
import os
import threading
import weakref
from collections import OrderedDict
from typing import Optional, Sequence, Union

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from ssseg.modules.models.segmentors.samv2.predictors.transforms import IMAGENET_MEAN, IMAGENET_STD

from .sources import VideoFile, opensource


class FrameIndexError(IndexError, ValueError):
    """A frame index outside [0, num_frames - 1]: a ValueError, and an IndexError for code written before."""


def checkframeindex(frame_idx: int, num_frames: int, argname: str = 'frame_idx') -> int:
    """``frame_idx`` as an int in [0, num_frames - 1].

    Args:
        frame_idx: a frame index, a Python or numpy int (bool refused).
        num_frames: the video's frame count.
        argname: the argument's name in error messages.
    Returns:
        ``frame_idx`` as a Python int.
    Raises:
        TypeError: a non-int (bool included).
        FrameIndexError: (an IndexError and a ValueError) an index outside the range, naming ``argname``, the valid
            range and the value.
    """
    if isinstance(frame_idx, (bool, np.bool_)) or not isinstance(frame_idx, (int, np.integer)):
        raise TypeError(f'{argname} must be an int in [0, {num_frames - 1}], got {type(frame_idx).__name__} '
                        f'{frame_idx!r}')
    if not 0 <= frame_idx < num_frames:
        raise FrameIndexError(f'{argname} must be in [0, {num_frames - 1}] (the video has {num_frames} frames), '
                              f'got {int(frame_idx)}')
    return int(frame_idx)


def normalizationtable(imgmean: Sequence[float] = IMAGENET_MEAN, imgstd: Sequence[float] = IMAGENET_STD) -> np.ndarray:
    """Meta's per-pixel input ops (float64 /255, float32 rounding, - mean, / std) for the 256 levels of each channel.

    Args:
        imgmean, imgstd: the three RGB channel means and stds (of [0, 1] values).
    Returns:
        (3, 256) float32: entry [c, v] is the model input for value v of channel c.
    """
    mean = torch.tensor(imgmean, dtype=torch.float32).view(3, 1)
    std = torch.tensor(imgstd, dtype=torch.float32).view(3, 1)
    levels = torch.from_numpy(np.arange(256) / 255.0).to(torch.float32).view(1, 256)
    return ((levels - mean) / std).numpy()


def normalizeframe(rgb: np.ndarray, imagesize: int, table: np.ndarray) -> torch.Tensor:
    """A frame as the model's input, equal bit for bit to Meta's JPEG loader (PIL resize, then the table).

    Args:
        rgb: (H, W, 3) uint8 RGB frame.
        imagesize: the model's input side S.
        table: from :func:`normalizationtable`.
    Returns:
        (3, S, S) float32 CPU tensor.
    """
    resized = np.asarray(Image.fromarray(np.ascontiguousarray(rgb)).resize((imagesize, imagesize)))
    out = np.empty((3, imagesize, imagesize), np.float32)
    for channel in range(3):
        np.take(table[channel], resized[..., channel], out=out[channel])
    return torch.from_numpy(out)


class _PrefetchState:
    """What the background loader shares with its owner; holds no reference to the owner itself."""

    def __init__(self):
        self.cond = threading.Condition()
        self.last = 0
        self.step = 1
        self.pending = False
        self.closed = False


def _prefetchloop(ref, state):
    # a weak reference, so an abandoned VideoFrames is collected and its thread ends
    while True:
        with state.cond:
            while not (state.pending or state.closed):
                state.cond.wait()
            if state.closed:
                return
            state.pending = False
        frames = ref()
        if frames is None:
            return
        frames._prefetch()
        del frames


class VideoFrames:
    """The frames of one video as SAMV2 inputs, decoded lazily with a bounded cache.

    ``frames[i]`` -> float32 (3, S, S) tensor on ``device`` (a copy, free to modify); ``rgbframe(i)`` -> the
    original (H, W, 3) uint8 RGB frame (a copy). ``len(frames)`` is the frame count, ``video_height`` /
    ``video_width`` the original frame size. Frame 0 is decoded on construction (most prompts start there, and it
    proves the source decodes).

    Args:
        video_path: a JPEG folder, a video file or a list/tuple of (H, W, 3) uint8 RGB frames (see the module
            docstring).
        imagesize: the model's input side S, a positive int.
        offload_video_to_cpu: cached tensors stay on the CPU and are moved to ``device`` on access; otherwise
            they are cached on ``device`` (at most ``cachesize`` of them).
        async_loading_frames: a background thread decodes up to ``cachesize - 1`` frames ahead of the last
            access, in its direction (forward or backward); the tensors are the same as without it.
        device: where the tensors are returned; defaults to the CPU.
        cachesize: (>= 1) bounds the frames held; ``preload()`` lifts it to the whole video.
        imgmean, imgstd: the three RGB channel means and stds of the normalization (of [0, 1] values).
    Raises:
        FileNotFoundError: a missing path. Errors about the source name ``video_path``.
        TypeError: a wrong type or dtype of ``video_path``; an ``imagesize`` or ``cachesize`` that is not an int.
        ValueError: an empty, unlistable or unreadable source, bad frame names or frame shapes; ``imagesize`` or
            ``cachesize`` < 1; a ``device`` torch cannot parse.
    """

    def __init__(self, video_path: Union[str, os.PathLike, Sequence, np.ndarray], imagesize: int,
                 offload_video_to_cpu: bool = False, async_loading_frames: bool = False,
                 device: Optional[Union[str, int, torch.device]] = None, cachesize: int = 4,
                 imgmean: Sequence[float] = IMAGENET_MEAN, imgstd: Sequence[float] = IMAGENET_STD) -> None:
        for name, value in (('imagesize', imagesize), ('cachesize', cachesize)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f'{name} must be a positive int, got {type(value).__name__} {value!r}')
            if value < 1:
                raise ValueError(f'{name} must be a positive int, got {value}')
        try:
            self.device = torch.device('cpu' if device is None else device)
        except (RuntimeError, TypeError) as err:
            raise ValueError(f'device must be like "cpu", "cuda" or "cuda:0", got {device!r}') from err
        self.imagesize = imagesize
        self.cachesize = cachesize
        self.offload_video_to_cpu = bool(offload_video_to_cpu)
        self.storagedevice = torch.device('cpu') if self.offload_video_to_cpu else self.device
        self._lut = normalizationtable(imgmean, imgstd)
        self._cache = OrderedDict()  # frame index -> (normalized tensor, RGB frame), least recent first
        self._cachelock = threading.Lock()
        self._decodelock = threading.Lock()  # one decoder user at a time; held for a whole block
        self._state = _PrefetchState()
        self._failed = set()  # frames the background loader could not decode: left to the caller to raise
        self._thread = None
        self._source = opensource(video_path)
        try:
            first = self._load(0)[1]
        except Exception:
            self._source.close()
            raise
        self.video_height, self.video_width = first.shape[:2]
        if async_loading_frames:
            self._thread = threading.Thread(target=_prefetchloop, args=(weakref.ref(self), self._state),
                                            name='samv2-frame-prefetch', daemon=True)
            self._thread.start()
            self._notify(0)

    def __len__(self):
        return len(self._source)

    def __getitem__(self, frame_idx: int) -> torch.Tensor:
        """float32 (3, imagesize, imagesize) normalized input of frame ``frame_idx``, on ``device``.

        FrameIndexError (an IndexError and a ValueError) outside [0, len - 1]; TypeError for a non-int."""
        idx = self._checkindex(frame_idx)
        tensor = self._entry(idx)[0]
        self._notify(idx)
        return tensor.to(self.device, copy=True)

    def rgbframe(self, frame_idx: int) -> np.ndarray:
        """The original frame ``frame_idx``.

        Args:
            frame_idx: an int in [0, len - 1].
        Returns:
            (video_height, video_width, 3) uint8 RGB frame at its original resolution (a copy).
        Raises:
            TypeError: a non-int; FrameIndexError (an IndexError and a ValueError): an index outside [0, len - 1].
        """
        return self._entry(self._checkindex(frame_idx))[1].copy()

    @property
    def cachedindices(self) -> tuple:
        """Frame indices held decoded now.

        Returns:
            A tuple of ints, least recently used first.
        """
        with self._cachelock:
            return tuple(self._cache)

    def preload(self, progress: bool = True) -> 'VideoFrames':
        """Decode every frame once, in order, and keep them all (memory: len x 3 x S x S x 4 bytes + RGB).

        Args:
            progress: show a progress bar.
        Returns:
            This VideoFrames.
        """
        self.cachesize = max(self.cachesize, len(self))
        for idx in tqdm(range(len(self)), desc='frame loading', disable=not progress):
            self._entry(idx)
        return self

    def close(self) -> None:
        """Stop the background loader and release the video file; cached frames stay readable.

        Returns:
            None.
        """
        with self._state.cond:
            self._state.closed = True
            self._state.cond.notify_all()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()
        with self._decodelock:
            self._source.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        if '_source' in self.__dict__:
            try:
                self.close()
            except Exception:  # interpreter shutdown may have torn down threading already
                pass

    # ------------------------------------------------------------------ internals
    def _checkindex(self, frame_idx):
        return checkframeindex(frame_idx, len(self))

    def _entry(self, idx):
        with self._cachelock:
            entry = self._cache.get(idx)
            if entry is not None:
                self._cache.move_to_end(idx)
                return entry
        return self._load(idx)

    def _load(self, idx):
        """Decode frame ``idx`` (for a video going backwards: the block ending at it) into the cache."""
        with self._decodelock:
            with self._cachelock:
                if idx in self._cache:  # the other thread decoded it while this one waited
                    self._cache.move_to_end(idx)
                    return self._cache[idx]
            if self._state.closed and isinstance(self._source, VideoFile):
                raise RuntimeError(f'frame_idx {idx} is not cached and this VideoFrames is closed')
            start = idx
            if isinstance(self._source, VideoFile) and idx < self._source.pos:
                start = max(0, idx - self.cachesize + 1)  # one seek serves the next cachesize - 1 backward steps
            for k in range(start, idx + 1):
                entry = self._decode(k)
                self._put(k, entry)
            return entry

    def _decode(self, idx):
        rgb = self._source.read(idx)
        if 'video_height' in self.__dict__ and rgb.shape[:2] != (self.video_height, self.video_width):
            raise ValueError(f'video_path: {self._source.describe(idx)} is {rgb.shape[1]}x{rgb.shape[0]} (WxH) but '
                             f'frame 0 is {self.video_width}x{self.video_height}: all frames must have one size')
        return self._normalize(rgb), rgb

    def _normalize(self, rgb):
        return normalizeframe(rgb, self.imagesize, self._lut).to(self.storagedevice)

    def _put(self, idx, entry):
        with self._cachelock:
            self._cache[idx] = entry
            self._cache.move_to_end(idx)
            while len(self._cache) > self.cachesize:
                self._cache.popitem(last=False)

    def _notify(self, idx):
        if self._thread is None:
            return
        with self._state.cond:
            if idx != self._state.last:
                self._state.step = 1 if idx > self._state.last else -1
            self._state.last = idx
            self._state.pending = True
            self._state.cond.notify_all()

    def _prefetch(self):
        """Background: decode the uncached frames among the next ``cachesize - 1`` in the current direction."""
        while True:
            with self._state.cond:
                if self._state.closed:
                    return
                last, step = self._state.last, self._state.step
            target = None
            for k in range(1, self.cachesize):
                candidate = last + step * k
                if not 0 <= candidate < len(self):
                    break
                with self._cachelock:
                    cached = candidate in self._cache
                if not cached and candidate not in self._failed:
                    target = candidate
                    break
            if target is None:
                return
            try:
                self._load(target)
            except Exception:  # the caller gets the error when it asks for this frame itself
                self._failed.add(target)
