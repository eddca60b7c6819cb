"""What the training datasets share: seeded sampling of a clip, object selection and the transform pipeline.

A dataset index is ``pass * len(dataset) + item`` (see :class:`SAMV2InfiniteSampler`): the item picks the image or
video, and the whole index seeds the clip's random choices (frames, objects, flips, colours). A clip is thus a
function of its index alone: a resumed run or another number of processes or loader workers draws the same clips,
while an item seen again in a later pass gets new choices.
"""
from typing import List, Optional, Sequence, Tuple

import numpy as np
from mmengine.dataset import InfiniteSampler
from mmengine.registry import DATA_SAMPLERS
from torch.utils.data import Dataset

from .transforms import buildtransforms
from .validation import DatasetError, checkpositiveint


class ClipDataset(Dataset):
    """Base of the training datasets: ``dataset[index]`` is one transformed clip.

    Args:
        image_size: S, the side of the model's input.
        max_num_objects: at most this many objects per clip, drawn at random among those present.
        transforms: transform configs (None: the default augmentation, see :mod:`.transforms`).
        seed: the seed of every random choice, with the index.
    Subclasses implement ``__len__``, ``_rawclip(item, rng)`` and ``problems()``.
    """

    def __init__(self, image_size: int = 1024, max_num_objects: int = 3, transforms: Optional[Sequence] = None,
                 seed: int = 0):
        self.image_size = checkpositiveint('image_size', image_size)
        self.max_num_objects = checkpositiveint('max_num_objects', max_num_objects)
        if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
            raise ValueError(f'seed must be an int >= 0, got {seed!r}')
        self.seed = seed
        self.transforms = buildtransforms(transforms, self.image_size)

    def __getitem__(self, index: int) -> dict:
        """One clip: ``images`` (T, 3, S, S) float32, ``masks`` (T, O, S, S) bool (O <= max_num_objects),
        ``object_ids``, ``orig_size`` (H, W) and ``name``."""
        if not isinstance(index, (int, np.integer)) or index < 0:
            raise IndexError(f'dataset index must be an int >= 0, got {index!r}')
        rng = np.random.default_rng([self.seed, int(index)])
        clip = self._rawclip(int(index) % len(self), rng)
        for transform in self.transforms:
            clip = transform(clip, rng)
        return clip

    def selectobjects(self, object_ids: Sequence[int], rng: np.random.Generator) -> List[int]:
        """At most ``max_num_objects`` of ``object_ids``, at random, in their original order."""
        if len(object_ids) <= self.max_num_objects:
            return list(object_ids)
        chosen = sorted(rng.choice(len(object_ids), self.max_num_objects, replace=False).tolist())
        return [object_ids[i] for i in chosen]

    def _rawclip(self, item: int, rng: np.random.Generator) -> dict:
        raise NotImplementedError

    def problems(self) -> List[Tuple[str, str]]:
        """Every problem of the data as (file, what is wrong), after reading every file once."""
        raise NotImplementedError

    def _nonempty(self, what: str) -> None:
        if len(self) == 0:
            raise DatasetError(f'{what}: no training samples found')


@DATA_SAMPLERS.register_module()
class SAMV2InfiniteSampler(InfiniteSampler):
    """mmengine's InfiniteSampler yielding ``pass * len(dataset) + item``: each pass over the data is a new
    shuffle, and the pass number reaches the dataset, which seeds the clip with the whole index."""

    def _infinite_indices(self):
        passes, items = 0, super()._infinite_indices()
        while True:
            for _ in range(self.size):
                yield passes * self.size + next(items)
            passes += 1
