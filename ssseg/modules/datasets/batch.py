"""A batch of training clips as SAMV2's training step takes it, and the collate function that builds it."""
from dataclasses import dataclass
from typing import List, Sequence, Tuple

import torch


@dataclass
class ClipBatch:
    """B clips of T frames, their objects flattened over the batch.

    Attributes:
        images: (T, B, 3, S, S) float32 frames, resized and ImageNet-normalized.
        masks: (T, O, S, S) bool ground truth of the O objects of all clips (clip by clip).
        obj_to_frame_idx: (T, O, 2) int64 ``[t, b]``: the frame and the clip each object's mask belongs to.
        object_ids: for each clip, its objects' ids in the source data (COCO annotation ids, DAVIS palette ids).
        orig_sizes: for each clip, the (H, W) of its source frames.
        names: for each clip, its source (image file name, or video name with its first frame).
    """

    images: torch.Tensor
    masks: torch.Tensor
    obj_to_frame_idx: torch.Tensor
    object_ids: List[List[int]]
    orig_sizes: List[Tuple[int, int]]
    names: List[str]

    def to(self, device) -> 'ClipBatch':
        """The same batch with its tensors on ``device``."""
        return ClipBatch(self.images.to(device, non_blocking=True), self.masks.to(device, non_blocking=True),
                         self.obj_to_frame_idx.to(device, non_blocking=True), self.object_ids, self.orig_sizes,
                         self.names)

    def __len__(self) -> int:
        return self.images.shape[1]


def collateclips(samples: Sequence[dict]) -> ClipBatch:
    """Stack the samples of a dataset (see :class:`ssseg.modules.datasets.base.ClipDataset`) into a ClipBatch.

    Args:
        samples: dicts with ``images`` (T, 3, S, S) float32, ``masks`` (T, O_b, S, S) bool, ``object_ids``,
            ``orig_size`` and ``name``; every sample has the same T and S.
    Returns:
        The :class:`ClipBatch` (O = the sum of the O_b).
    Raises:
        ValueError: no samples, or samples of different frame counts or sizes.
    """
    if not samples:
        raise ValueError('collateclips needs at least one sample, got none')
    shapes = {tuple(s['images'].shape) for s in samples}
    if len(shapes) != 1:
        raise ValueError(f'collateclips: the clips of a batch must have one frame count and size, got shapes '
                         f'{sorted(shapes)} (set num_frames and image_size in the dataset config)')
    num_frames = samples[0]['images'].shape[0]
    images = torch.stack([s['images'] for s in samples], dim=1)
    masks = torch.cat([s['masks'] for s in samples], dim=1)
    clip_of_object = torch.cat([torch.full((s['masks'].shape[1],), b, dtype=torch.int64)
                                for b, s in enumerate(samples)])
    frame = torch.arange(num_frames, dtype=torch.int64)[:, None].expand(-1, clip_of_object.numel())
    obj_to_frame_idx = torch.stack([frame, clip_of_object[None].expand(num_frames, -1)], dim=-1)
    return ClipBatch(images, masks, obj_to_frame_idx, [list(s['object_ids']) for s in samples],
                     [tuple(s['orig_size']) for s in samples], [s['name'] for s in samples])
