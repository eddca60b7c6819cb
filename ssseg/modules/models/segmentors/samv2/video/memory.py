"""The memory policy of the video predictor: releasing memories tracking has left behind, and hole filling.

Memory policy (``release_memory=True``): a non-conditioning frame's memory is read only by frames at
most ``num_maskmem * memory_temporal_stride_for_eval`` (= ``window``) frames after it in the tracking
direction. When a propagation starts at frame s, every non-conditioning memory outside [s - window, s]
(mirrored when tracking in reverse) is released; after each frame f, the memory of frame
f - (window + 1) (mirrored) is released. Conditioning frames keep theirs, and object pointers, scores
and low-res logits are never released. When a later call reads a released memory (a refinement click
on an old frame, a propagation started mid-video), it is encoded again from the frame's image and its
stored logits: the same values, at the cost of one image encoding per frame rebuilt.
"""
from typing import Optional

import torch

from ssseg.modules.models.segmentors.samv2.predictors.transforms import smallregions

from .state import NON_COND

# logit Meta's video predictor writes into a filled hole: just above the 0 threshold
HOLE_FILL_LOGIT = 0.1
# frames between two returns of free heap pages to the system while tracking (see heap.trimheap)
HEAP_TRIM_FRAMES = 50


def fillsmallholes(pred_masks: torch.Tensor, max_area: float) -> tuple[torch.Tensor, Optional[tuple]]:
    """Fill background regions of at most ``max_area`` low-res pixels (8-connected) with logit 0.1.

    On the CPU only the filled pixels are kept to undo the filling; elsewhere nothing is read back to the host
    (no sync), at the cost of keeping a copy of the logits.

    Args:
        pred_masks: (B, 1, h, w) float logits, background is <= 0.
        max_area: the largest hole filled, in pixels (<= 0: none).
    Returns:
        ``(filled, holes)``: ``filled`` the (B, 1, h, w) logits (the input when nothing was filled on the CPU);
        ``holes`` undoes the filling (see :func:`unfilledmasks`): None when ``max_area`` <= 0 or, on the CPU,
        when nothing changed; on the CPU ``(flat indices (K,) int64, original values (K,))``; on other devices
        ``(is_hole (B, 1, h, w) bool, pred_masks (B, 1, h, w) the original logits)``, always.
    """
    if max_area <= 0:
        return pred_masks, None
    is_hole = smallregions(pred_masks <= 0, max_area)
    if pred_masks.device.type == 'cpu':
        return _fillsparse(pred_masks, is_hole)
    return _filldense(pred_masks, is_hole)


def _fillsparse(pred_masks, is_hole):
    """``(filled, (flat indices, original values))``, or ``(pred_masks, None)`` without holes (reads the host)."""
    if not bool(is_hole.any()):
        return pred_masks, None
    index = is_hole.flatten().nonzero().squeeze(1)
    return torch.where(is_hole, HOLE_FILL_LOGIT, pred_masks), (index, pred_masks.flatten()[index])


def _filldense(pred_masks, is_hole):
    """``(filled, (is_hole, copy of pred_masks))`` with no host sync: the holes are not looked at."""
    # a copy of its own: pred_masks is often a row of a batch, which a view would keep alive
    return torch.where(is_hole, HOLE_FILL_LOGIT, pred_masks), (is_hole, pred_masks.clone())


def unfilledmasks(record: dict) -> torch.Tensor:
    """The low-res logits the record's memory was encoded from (hole filling undone where it applied).

    Args:
        record: a frame record (``pred_masks`` (1, 1, S/4, S/4) float32 and ``_holes``; see :mod:`.state`):
            ``_holes`` is None, ``(flat indices, original values)`` or ``(is_hole bool map, original logits)``
            (see :func:`fillsmallholes`).
    Returns:
        (1, 1, S/4, S/4) float32 logits on the device of ``pred_masks``.
    """
    masks = record['pred_masks']
    holes = record.get('_holes')
    if holes is None:
        return masks
    first, values = holes
    if first.dtype == torch.bool:
        return torch.where(first.to(masks.device), values.to(masks.device), masks)
    return masks.flatten().index_put((first.to(masks.device),), values.to(masks.device)).view_as(masks)


def releaseoutside(state: dict, frame_idx: int, reverse: bool, window: int) -> None:
    """Release every non-conditioning memory outside the ``window`` frames behind ``frame_idx`` (and itself).

    Args:
        state: an inference state (its records are modified).
        frame_idx: the frame tracking starts at.
        reverse: tracking goes towards the start ("behind" is then after ``frame_idx``).
        window: frames behind ``frame_idx`` whose memories stay.
    Returns:
        None.
    """
    sign = -1 if reverse else 1
    for outputs in state['output_dict_per_obj'].values():
        for t, record in outputs[NON_COND].items():
            if record.get('maskmem_features') is not None and not 0 <= sign * (frame_idx - t) <= window:
                record['maskmem_features'] = None


def releaseframe(state: dict, frame_idx: int) -> None:
    """Release the non-conditioning memory of every object on one frame.

    Args:
        state: an inference state (its records are modified).
        frame_idx: the frame (any int; a frame without records is left alone).
    Returns:
        None.
    """
    for outputs in state['output_dict_per_obj'].values():
        record = outputs[NON_COND].get(frame_idx)
        if record is not None:
            record['maskmem_features'] = None
