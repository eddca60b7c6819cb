"""Mask metrics and the prompts derived from a ground-truth mask (numpy and OpenCV, no torch).

* :func:`maskiou` / :func:`jaccard`: intersection over union of two masks (DAVIS's region similarity J).
* :func:`fmeasure`: DAVIS's boundary F-measure, as the DAVIS 2017 toolkit computes it (``f_measure`` of
  davisvideochallenge/davis2017-evaluation): one-pixel boundaries by the ``seg2bmap`` rule, each matched within a
  disk of radius ``ceil(bound_th * image diagonal)`` pixels of the other's.
* :func:`centerclick`: the pixel farthest from the mask boundary, the single click of the SAM paper's evaluation.
* :func:`maskbox`: the tight box of a mask, as Meta's training derives box prompts (``mask_to_box``).

Every mask is an (H, W) array of bools (or 0/1 numbers; non-zero is in); pixel coordinates are (x, y) = (column,
row) of the image, the frame the predictors' prompts take.
"""
import math
from typing import Tuple

import cv2
import numpy as np

BOUND_TH = 0.008  # DAVIS's boundary tolerance: a share of the image diagonal


def _asmask(mask, name: str) -> np.ndarray:
    array = np.asarray(mask)
    if array.ndim != 2:
        raise ValueError(f'{name} must be an (H, W) mask, got shape {array.shape}')
    return array.astype(bool)


def _aspair(pred, gt) -> Tuple[np.ndarray, np.ndarray]:
    pred, gt = _asmask(pred, 'pred'), _asmask(gt, 'gt')
    if pred.shape != gt.shape:
        raise ValueError(f'pred and gt must have one shape, got {pred.shape} and {gt.shape}')
    return pred, gt


def maskiou(pred, gt) -> float:
    """Intersection over union of two masks.

    Args:
        pred, gt: (H, W) masks of one shape (bool, or numbers where non-zero is in).
    Returns:
        |pred & gt| / |pred | gt| in [0, 1]; 1.0 when both are empty (nothing to find, nothing found).
    Raises:
        ValueError: masks that are not 2-D or differ in shape.
    """
    pred, gt = _aspair(pred, gt)
    union = np.count_nonzero(pred | gt)
    return 1.0 if union == 0 else float(np.count_nonzero(pred & gt) / union)


def jaccard(pred, gt) -> float:
    """DAVIS's region similarity J of one object on one frame (the toolkit's ``db_eval_iou`` without void pixels).

    Args:
        pred, gt: (H, W) masks of one shape.
    Returns:
        The IoU in [0, 1]; 1.0 when both are empty (the object is absent and predicted absent).
    """
    return maskiou(pred, gt)


def boundarymap(mask) -> np.ndarray:
    """The one-pixel boundary of a mask by DAVIS's ``seg2bmap`` rule.

    A pixel is on the boundary when it differs from its right, lower or lower-right neighbour (the boundary lies half
    a pixel towards the origin); on the last row only the right neighbour counts, on the last column only the lower
    one, and the bottom-right pixel is never on it. A mask touching the image border thus has no boundary along the
    left and top borders and none beyond the right and bottom ones.

    Args:
        mask: (H, W) mask.
    Returns:
        (H, W) bool boundary map.
    """
    seg = _asmask(mask, 'mask')
    right, down, diagonal = (np.zeros_like(seg) for _ in range(3))
    right[:, :-1], down[:-1, :], diagonal[:-1, :-1] = seg[:, 1:], seg[1:, :], seg[1:, 1:]
    bmap = (seg ^ right) | (seg ^ down) | (seg ^ diagonal)
    bmap[-1, :] = seg[-1, :] ^ right[-1, :]
    bmap[:, -1] = seg[:, -1] ^ down[:, -1]
    bmap[-1, -1] = False
    return bmap


def _disk(radius: int) -> np.ndarray:
    """(2r+1, 2r+1) uint8 kernel of the pixels within Euclidean distance r of the centre."""
    offsets = np.arange(-radius, radius + 1)
    return (offsets[:, None] ** 2 + offsets[None, :] ** 2 <= radius ** 2).astype(np.uint8)


def boundaryradius(shape: Tuple[int, int], bound_th: float = BOUND_TH) -> int:
    """The match tolerance in pixels: ``bound_th`` itself when it is >= 1, else ``ceil(bound_th * diagonal)``.

    Args:
        shape: (H, W) of the image.
        bound_th: a share of the diagonal (< 1) or pixels (>= 1).
    Returns:
        The radius of the tolerance disk (int >= 0).
    """
    if not bound_th > 0:
        raise ValueError(f'bound_th must be > 0, got {bound_th!r}')
    return int(math.ceil(bound_th)) if bound_th >= 1 else int(math.ceil(bound_th * math.hypot(*shape)))


def fmeasure(pred, gt, bound_th: float = BOUND_TH) -> float:
    """DAVIS's boundary F-measure of one object on one frame.

    Precision is the share of ``pred``'s boundary pixels within the tolerance disk of a ``gt`` boundary pixel, recall
    the share of ``gt``'s within the disk of a ``pred`` one; F = 2PR / (P + R).

    Args:
        pred, gt: (H, W) masks of one shape.
        bound_th: the tolerance, see :func:`boundaryradius` (DAVIS: 0.008 of the diagonal).
    Returns:
        F in [0, 1]: 1.0 when neither has a boundary, 0.0 when only one has.
    """
    pred, gt = _aspair(pred, gt)
    kernel = _disk(boundaryradius(pred.shape, bound_th))
    pred_b, gt_b = boundarymap(pred), boundarymap(gt)
    n_pred, n_gt = np.count_nonzero(pred_b), np.count_nonzero(gt_b)
    if n_pred == 0 or n_gt == 0:
        return 1.0 if n_pred == n_gt else 0.0  # DAVIS: P or R is 0 then, so F is 0 unless both are empty
    pred_near = cv2.dilate(pred_b.astype(np.uint8), kernel).astype(bool)
    gt_near = cv2.dilate(gt_b.astype(np.uint8), kernel).astype(bool)
    precision = np.count_nonzero(pred_b & gt_near) / n_pred
    recall = np.count_nonzero(gt_b & pred_near) / n_gt
    return 0.0 if precision + recall == 0 else float(2 * precision * recall / (precision + recall))


def centerclick(mask) -> Tuple[int, int]:
    """The click of the SAM paper's single-point evaluation: the mask pixel farthest from the mask's boundary.

    Distances are exact Euclidean (``cv2.distanceTransform``, DIST_L2, DIST_MASK_PRECISE) to the nearest background
    pixel, the mask padded by one pixel of background so that the image border counts as boundary.

    Args:
        mask: (H, W) non-empty mask.
    Returns:
        (x, y) = (column, row) int pixel coordinates of the image; ties go to the first in row-major order.
    Raises:
        ValueError: an empty mask.
    """
    mask = _asmask(mask, 'mask')
    if not mask.any():
        raise ValueError('centerclick needs a mask with at least one pixel')
    padded = np.pad(mask.astype(np.uint8), 1)
    distance = cv2.distanceTransform(padded, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)[1:-1, 1:-1]
    row, col = np.unravel_index(int(np.argmax(distance)), distance.shape)  # argmax: the first maximum, row-major
    return int(col), int(row)


def maskbox(mask) -> Tuple[int, int, int, int]:
    """The tight box of a mask, as Meta's training (``mask_to_box``) makes box prompts.

    Args:
        mask: (H, W) non-empty mask.
    Returns:
        (x1, y1, x2, y2) int pixels: x1 / x2 the smallest / largest column of a mask pixel, y1 / y2 the smallest /
        largest row (both ends inclusive: a one-pixel mask at (x, y) gives (x, y, x, y)).
    Raises:
        ValueError: an empty mask.
    """
    mask = _asmask(mask, 'mask')
    rows, cols = np.nonzero(mask.any(axis=1))[0], np.nonzero(mask.any(axis=0))[0]
    if rows.size == 0:
        raise ValueError('maskbox needs a mask with at least one pixel')
    return int(cols[0]), int(rows[0]), int(cols[-1]), int(rows[-1])
