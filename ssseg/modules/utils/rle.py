"""Run-length encoding (RLE) of masks: the one codec of the generator, its outputs and the drawing helpers.

A segmentation comes in one of three forms: a binary (H, W) mask, an uncompressed RLE
``{'size': [H, W], 'counts': [int, ...]}`` (column-major runs, the first one of zeros, possibly 0, as
pycocotools and Meta's generator write them) or a COCO RLE ``{'size': [H, W], 'counts': str or bytes}``
(pycocotools' compressed form). :func:`encode` makes uncompressed RLEs from a batch of torch masks
without a transposed copy; compressing, decoding and measuring RLEs is left to pycocotools.
"""
from typing import Optional, Sequence

import numpy as np
import torch
from pycocotools import mask as mask_utils

from .maskchunks import checkboolmasks, chunks, flatnonzero


def encode(masks: torch.Tensor) -> list:
    """Uncompressed column-major RLE of a batch of masks.

    Run starts are found on the C-order masks (vertical changes inside a column, plus the jump from the
    bottom of one column to the top of the next), keyed by their column-major position and sorted, so no
    transposed copy of the masks is made.

    Args:
        masks: (N, H, W) bool torch tensor (any device).
    Returns:
        A list of N dicts {'size': [H, W], 'counts': [int, ...]}.
    Raises:
        ValueError: not a 3-D bool torch tensor.
    """
    checkboolmasks(masks, 'masks')
    n, h, w = masks.shape
    hw = h * w
    if n == 0:
        return []
    if hw == 0:
        return [{'size': [h, w], 'counts': [0]} for _ in range(n)]
    # mask i spans keys i*hw .. (i+1)*hw; these boundaries make the diff below yield each mask's last run
    keys = [torch.arange(n + 1, device=masks.device) * hw]
    for chunk in chunks(masks):
        part = masks[chunk]
        # a change between rows r and r + 1 of column c starts a run at column-major position c * h + r + 1
        inside = flatnonzero(part[:, 1:, :] != part[:, :-1, :])
        per_part = max(1, (h - 1) * w)
        index, rest = inside // per_part, inside % per_part
        keys.append((index + chunk.start) * hw + (rest % w) * h + rest // w + 1)
        # bottom of column c differs from top of column c + 1: a run starts at (c + 1) * h
        across = flatnonzero(part[:, 0, 1:] != part[:, -1, :-1])
        index, column = across // max(1, w - 1), across % max(1, w - 1)
        keys.append((index + chunk.start) * hw + (column + 1) * h)
    keys = torch.cat(keys).sort().values
    runs = torch.diff(keys).tolist()
    per_mask = torch.bincount(keys[:-1] // hw, minlength=n).tolist()
    starts_on = masks[:, 0, 0].tolist()
    out, start = [], 0
    for count, on in zip(per_mask, starts_on):
        counts = runs[start:start + count]
        start += count
        if on:
            counts.insert(0, 0)
        out.append({'size': [h, w], 'counts': counts})
    return out


def _size(segmentation, argname, size):
    """(h, w) of an RLE dict, checked against ``size`` when given."""
    if 'size' not in segmentation or 'counts' not in segmentation:
        raise ValueError(f"{argname} as an RLE dict needs keys 'size' and 'counts', got keys "
                         f'{sorted(map(str, segmentation))}')
    h, w = (int(v) for v in segmentation['size'])
    if size is not None and (h, w) != tuple(size):
        raise ValueError(f'{argname} must be an RLE with size [{size[0]}, {size[1]}], got size '
                         f'{list(segmentation["size"])}')
    return h, w


def tococo(segmentation: dict, argname: str = 'rle', size: Optional[Sequence[int]] = None) -> dict:
    """The COCO RLE ``{'size': [H, W], 'counts': str}`` (JSON-ready) of an uncompressed or COCO RLE dict.

    Args:
        segmentation: {'size': [H, W], 'counts': [int, ...] or str or bytes}.
        argname: the argument's name in error messages.
        size: the (H, W) it must have, or None.
    Returns:
        The COCO RLE dict with str counts.
    Raises:
        ValueError: naming ``argname``, for missing keys, another size, counts of another type, or uncompressed
            counts that are negative or do not sum to H * W.
    """
    h, w = _size(segmentation, argname, size)
    counts = segmentation['counts']
    if isinstance(counts, (str, bytes)):
        return {'size': [h, w], 'counts': counts.decode('utf-8') if isinstance(counts, bytes) else counts}
    if not isinstance(counts, (list, tuple, np.ndarray)):
        raise ValueError(f'{argname}["counts"] must be a list of ints, str or bytes, got {type(counts).__name__}')
    runs = np.asarray(counts, dtype=np.int64)
    if runs.ndim != 1 or (runs < 0).any() or int(runs.sum()) != h * w:
        raise ValueError(f'{argname}: uncompressed RLE counts must be non-negative run lengths summing to '
                         f'h * w = {h * w}, got {runs.size} runs that sum to {int(runs.sum()) if runs.size else 0}')
    rle = mask_utils.frPyObjects({'size': [h, w], 'counts': runs.tolist()}, h, w)
    return {'size': [h, w], 'counts': rle['counts'].decode('utf-8')}


def decode(segmentation: dict, argname: str = 'rle', size: Optional[Sequence[int]] = None) -> np.ndarray:
    """The mask of an uncompressed or COCO RLE dict (checked as by ``tococo``).

    Args:
        segmentation, argname, size: as for :func:`tococo`.
    Returns:
        (H, W) bool numpy mask (Fortran-ordered).
    Raises:
        ValueError: as :func:`tococo`.
    """
    rle = tococo(segmentation, argname, size)
    return mask_utils.decode({'size': rle['size'], 'counts': rle['counts'].encode('utf-8')}).astype(bool)


def frommask(mask: np.ndarray) -> dict:
    """The COCO RLE of a binary mask.

    Args:
        mask: (H, W) binary numpy mask (non-zero is in).
    Returns:
        ``{'size': [H, W], 'counts': str}``.
    """
    rle = mask_utils.encode(np.asfortranarray(mask != 0, dtype=np.uint8))
    return {'size': [int(v) for v in rle['size']], 'counts': rle['counts'].decode('utf-8')}


def area(rle: dict) -> int:
    """Foreground pixel count of an uncompressed RLE (the sum of its odd runs).

    Args:
        rle: {'size': [H, W], 'counts': [int, ...]} (uncompressed).
    Returns:
        The number of foreground pixels.
    """
    return sum(rle['counts'][1::2])
