"""Helpers of the automatic mask generator: point grids, crops, boxes, stability scores and records.

Numerically identical to the matching helpers of Meta's SAM 2 (same counts, boxes, crops and run
lengths), but vectorized and cache-friendly, since the generator runs them on hundreds of
full-resolution masks. Conventions: boxes are XYXY pixels (x1, y1 inclusive for mask boxes, exclusive
for crop boxes), masks are (N, H, W) bool. Their run-length encoding is ``ssseg.modules.utils.rle``.
"""
import math
from typing import ItemsView, KeysView, Sequence, Union

import numpy as np
import torch

from ssseg.modules.utils.maskchunks import checkboolmasks, chunks


def buildpointgrid(n_per_side: int) -> np.ndarray:
    """The centres of an n x n grid of cells over [0, 1]^2.

    Args:
        n_per_side: n, a positive int.
    Returns:
        (n*n, 2) float64 (x, y) centres in [0, 1] (fractions of the crop), x varying fastest.
    Raises:
        ValueError: ``n_per_side`` not a positive int.
    """
    if not isinstance(n_per_side, (int, np.integer)) or n_per_side < 1:
        raise ValueError(f'n_per_side must be a positive int, got {n_per_side!r}')
    half_cell = 1 / (2 * n_per_side)
    side = np.linspace(half_cell, 1 - half_cell, n_per_side)
    xs, ys = np.meshgrid(side, side)
    return np.stack([xs, ys], axis=-1).reshape(-1, 2)


def buildalllayerpointgrids(n_per_side: int, n_layers: int, scale_per_layer: int) -> list:
    """Point grids of crop layers 0..n_layers.

    Args:
        n_per_side: points a side of layer 0.
        n_layers: the last crop layer.
        scale_per_layer: layer i has int(n_per_side / scale_per_layer**i) points a side.
    Returns:
        A list of n_layers + 1 (K_i, 2) float64 (x, y) grids in [0, 1] (see :func:`buildpointgrid`).
    Raises:
        ValueError: a layer with fewer than 1 point a side.
    """
    return [buildpointgrid(int(n_per_side / (scale_per_layer ** i))) for i in range(n_layers + 1)]


def generatecropboxes(im_size: Sequence[int], n_layers: int, overlap_ratio: float) -> tuple[list, list]:
    """Crops of an image of size (h, w): the whole image, then for layer i >= 1 a 2^i x 2^i grid of overlapping crops.

    Within a layer, crops go column by column (x outer, y inner); neighbours overlap by
    int(overlap_ratio * short_side * 2 / 2^i) pixels.

    Args:
        im_size: the image's (h, w).
        n_layers: the number of crop layers after the whole image.
        overlap_ratio: the overlap as a fraction of the image's short side (at layer 1).
    Returns:
        ``(crop_boxes, layer_idxs)``: lists of [x1, y1, x2, y2] int boxes in image pixels (x2, y2 exclusive) and
        the layer of each box.
    """
    im_h, im_w = im_size
    short_side = min(im_h, im_w)
    crop_boxes, layer_idxs = [[0, 0, im_w, im_h]], [0]
    for layer in range(1, n_layers + 1):
        per_side = 2 ** layer
        overlap = int(overlap_ratio * short_side * (2 / per_side))
        crop_w = int(math.ceil((overlap * (per_side - 1) + im_w) / per_side))
        crop_h = int(math.ceil((overlap * (per_side - 1) + im_h) / per_side))
        for i in range(per_side):
            x0 = int((crop_w - overlap) * i)
            for j in range(per_side):
                y0 = int((crop_h - overlap) * j)
                crop_boxes.append([x0, y0, min(x0 + crop_w, im_w), min(y0 + crop_h, im_h)])
                layer_idxs.append(layer)
    return crop_boxes, layer_idxs


def uncropboxes(boxes: torch.Tensor, crop_box: Sequence[int]) -> torch.Tensor:
    """Boxes in a crop's frame -> the image frame.

    Args:
        boxes: (..., 4) XYXY boxes in pixels of the crop.
        crop_box: the crop's [x1, y1, x2, y2] in image pixels.
    Returns:
        (..., 4) XYXY boxes in image pixels (int64 offsets, as torch promotes), on ``boxes``' device.
    """
    x0, y0 = crop_box[0], crop_box[1]
    return boxes + torch.tensor([x0, y0, x0, y0], device=boxes.device)


def uncroppoints(points: torch.Tensor, crop_box: Sequence[int]) -> torch.Tensor:
    """Points in a crop's frame -> the image frame.

    Args:
        points: (..., 2) (x, y) pixels of the crop.
        crop_box: the crop's [x1, y1, x2, y2] in image pixels.
    Returns:
        (..., 2) (x, y) image pixels, on ``points``' device.
    """
    return points + torch.tensor([crop_box[0], crop_box[1]], device=points.device)


def uncropmasks(masks: torch.Tensor, crop_box: Sequence[int], orig_h: int, orig_w: int) -> torch.Tensor:
    """Crop masks -> image masks, zero outside the crop.

    Args:
        masks: (..., h, w) masks of the crop (any dtype), h = y2 - y1, w = x2 - x1.
        crop_box: the crop's [x1, y1, x2, y2] in image pixels.
        orig_h, orig_w: the image's size.
    Returns:
        (..., orig_h, orig_w) masks of the same dtype; ``masks`` itself for a full-image crop.
    Raises:
        ValueError: masks whose (h, w) is not the crop's.
    """
    x0, y0, x1, y1 = crop_box
    if x0 == 0 and y0 == 0 and x1 == orig_w and y1 == orig_h:
        return masks
    if tuple(masks.shape[-2:]) != (y1 - y0, x1 - x0):
        raise ValueError(f'masks of crop_box {list(crop_box)} must be (..., {y1 - y0}, {x1 - x0}), '
                         f'got shape {tuple(masks.shape)}')
    out = masks.new_zeros(*masks.shape[:-2], orig_h, orig_w)
    out[..., y0:y1, x0:x1] = masks
    return out


def isboxnearcropedge(boxes: torch.Tensor, crop_box: Sequence[int], orig_box: Sequence[int],
                      atol: float = 20.0) -> torch.Tensor:
    """Which boxes are within ``atol`` of a crop edge that is not an image edge.

    Args:
        boxes: (N, 4) XYXY boxes in pixels of the crop.
        crop_box: the crop's [x1, y1, x2, y2] in image pixels.
        orig_box: the image's [0, 0, W, H].
        atol: the distance in pixels.
    Returns:
        (N,) bool tensor on ``boxes``' device.
    """
    crop = torch.as_tensor(crop_box, dtype=torch.float, device=boxes.device)
    orig = torch.as_tensor(orig_box, dtype=torch.float, device=boxes.device)
    boxes = uncropboxes(boxes, crop_box).float()
    near_crop = torch.isclose(boxes, crop[None, :], atol=atol, rtol=0)
    near_image = torch.isclose(boxes, orig[None, :], atol=atol, rtol=0)
    return (near_crop & ~near_image).any(dim=1)


def batchedmasktobox(masks: torch.Tensor) -> torch.Tensor:
    """Boxes around masks.

    Args:
        masks: (..., H, W) bool tensor.
    Returns:
        (..., 4) XYXY int64 boxes in pixels, x1, y1 the last covered column and row. Empty masks give
        [0, 0, 0, 0]; an input with no elements gives float32 zeros (..., 4).
    Raises:
        ValueError: not a bool tensor, or fewer than 2 dims.
    """
    checkboolmasks(masks, 'masks', ndim=None)
    if masks.dim() < 2:
        raise ValueError(f'masks must be (..., H, W), got shape {tuple(masks.shape)}')
    lead, (h, w) = masks.shape[:-2], masks.shape[-2:]
    if masks.numel() == 0:
        return torch.zeros(*lead, 4, device=masks.device)
    flat = masks.reshape(-1, h, w)
    rows = torch.empty(flat.shape[0], h, dtype=torch.bool, device=masks.device)
    cols = torch.empty(flat.shape[0], w, dtype=torch.bool, device=masks.device)
    for chunk in chunks(flat):
        torch.amax(flat[chunk], dim=-1, out=rows[chunk])
        torch.amax(flat[chunk], dim=-2, out=cols[chunk])
    row_idx = torch.arange(h, device=masks.device)
    col_idx = torch.arange(w, device=masks.device)
    top = torch.where(rows, row_idx, h).amin(-1)
    bottom = torch.where(rows, row_idx, -1).amax(-1)
    left = torch.where(cols, col_idx, w).amin(-1)
    right = torch.where(cols, col_idx, -1).amax(-1)
    boxes = torch.stack([left, top, right, bottom], dim=-1)
    boxes.masked_fill_(~rows.any(-1, keepdim=True), 0)
    return boxes.reshape(*lead, 4)


def boxxyxytoxywh(box: Union[torch.Tensor, np.ndarray]) -> Union[torch.Tensor, np.ndarray]:
    """XYXY -> XYWH (width = x1 - x0) for a box or boxes; the input is not modified.

    Args:
        box: (..., 4) XYXY, torch tensor or numpy array (or a list).
    Returns:
        (..., 4) XYWH of the same kind (a tensor for a tensor, else a numpy array) and dtype.
    """
    out = box.clone() if isinstance(box, torch.Tensor) else np.array(box, copy=True)
    out[..., 2] = out[..., 2] - out[..., 0]
    out[..., 3] = out[..., 3] - out[..., 1]
    return out


def stabilityscore(mask_logits: torch.Tensor, mask_threshold: float, offset: float) -> torch.Tensor:
    """IoU of the logits thresholded at mask_threshold + offset and - offset.

    The high-threshold mask lies inside the low one, so the IoU is count(> thr + offset) / count(> thr - offset)
    (NaN when both are empty). Counts are int32; one bool buffer the size of a chunk is reused for both.

    Args:
        mask_logits: (..., H, W) float logits.
        mask_threshold: the mask threshold.
        offset: the offset (+-) around it.
    Returns:
        (...,) float32 stability scores, on the logits' device.
    Raises:
        ValueError: not a torch tensor, or fewer than 2 dims.
    """
    if not isinstance(mask_logits, torch.Tensor) or mask_logits.dim() < 2:
        got = tuple(mask_logits.shape) if isinstance(mask_logits, torch.Tensor) else type(mask_logits).__name__
        raise ValueError(f'mask_logits must be a (..., H, W) torch tensor, got {got}')
    lead, (h, w) = mask_logits.shape[:-2], mask_logits.shape[-2:]
    logits = mask_logits.reshape(-1, h, w)
    high, low = mask_threshold + offset, mask_threshold - offset
    # per-row partial sums in int16 are exact while a row holds fewer than 2^15 pixels, and faster
    row_dtype = torch.int16 if w < 2 ** 15 else torch.int32
    counts = torch.zeros(2, logits.shape[0], dtype=torch.int32, device=logits.device)
    slices = chunks(logits) if logits.numel() else []
    rows = slices[0].stop - slices[0].start if slices else 0
    buffer = torch.empty((rows, h, w), dtype=torch.bool, device=logits.device)
    for chunk in slices:
        part = logits[chunk]
        view = buffer[:part.shape[0]]
        for k, threshold in enumerate((high, low)):
            torch.gt(part, threshold, out=view)
            counts[k, chunk] = view.sum(-1, dtype=row_dtype).sum(-1, dtype=torch.int32)
    return (counts[0] / counts[1]).reshape(lead)


class MaskRecords:
    """Columns of per-mask data (torch tensors, numpy arrays or lists) of equal length, filtered and joined together.

    ``records[key]`` reads or sets a column; ``filter(keep)`` keeps rows by bool mask or index tensor,
    ``cat(other)`` appends another MaskRecords's rows, ``tonumpy()`` turns tensors into float32 arrays.

    Args:
        columns: name -> column (a list, numpy array or torch tensor, rows along the first dim).
    Raises:
        ValueError: a column of another type.
    """

    def __init__(self, **columns: Union[list, np.ndarray, torch.Tensor]) -> None:
        self._columns = {}
        for key, value in columns.items():
            self[key] = value

    def __setitem__(self, key, value):
        if not isinstance(value, (list, np.ndarray, torch.Tensor)):
            raise ValueError(f'MaskRecords column {key!r} must be a list, numpy array or torch tensor, '
                             f'got {type(value).__name__}')
        self._columns[key] = value

    def __getitem__(self, key):
        return self._columns[key]

    def __delitem__(self, key):
        del self._columns[key]

    def __contains__(self, key):
        return key in self._columns

    def __len__(self):
        return len(next(iter(self._columns.values()))) if self._columns else 0

    def keys(self) -> KeysView:
        """The column names.

        Returns:
            A view of the names, as ``dict.keys()``.
        """
        return self._columns.keys()

    def items(self) -> ItemsView:
        """The columns.

        Returns:
            A view of (name, column) pairs, as ``dict.items()``.
        """
        return self._columns.items()

    def filter(self, keep: Union[torch.Tensor, np.ndarray]) -> None:
        """Keep the rows selected by ``keep``, in that order.

        Args:
            keep: a (N,) bool mask or (K,) int64 indices (torch or numpy).
        Returns:
            None (the columns are replaced).
        """
        keep = torch.as_tensor(keep)
        keep_list = keep.tolist()
        keep_numpy = keep.cpu().numpy()
        for key, value in self._columns.items():
            if isinstance(value, torch.Tensor):
                self._columns[key] = value[keep.to(value.device)]
            elif isinstance(value, np.ndarray):
                self._columns[key] = value[keep_numpy]
            elif keep.dtype == torch.bool:
                self._columns[key] = [item for item, kept in zip(value, keep_list) if kept]
            else:
                self._columns[key] = [value[i] for i in keep_list]

    def cat(self, other: 'MaskRecords') -> None:
        """Append the rows of ``other``, a MaskRecords with the same columns.

        Columns only have to match when both sides have rows: a side without rows (e.g. a batch whose
        masks were all filtered out) gives way to the other one, whatever its columns.

        Args:
            other: the records to append (not modified).
        Returns:
            None.
        Raises:
            ValueError: columns that differ, or a column of another kind (tensor, array, list) than this one's.
        """
        same = set(self._columns) == set(other.keys())
        if not other._columns or (len(other) == 0 and not same):
            return
        if not self._columns or (len(self) == 0 and not same):
            self._columns = {key: list(value) if isinstance(value, list) else value for key, value in other.items()}
            return
        if not same:
            raise ValueError(f'cannot join MaskRecords with columns {sorted(self._columns)} and {sorted(other.keys())}')
        for key, value in other.items():
            mine = self._columns[key]
            if isinstance(mine, torch.Tensor) and isinstance(value, torch.Tensor):
                self._columns[key] = torch.cat([mine, value], dim=0)
            elif isinstance(mine, np.ndarray) and isinstance(value, np.ndarray):
                self._columns[key] = np.concatenate([mine, value], axis=0)
            elif isinstance(mine, list) and isinstance(value, list):
                self._columns[key] = mine + value
            else:
                raise ValueError(f'MaskRecords column {key!r}: cannot join {type(mine).__name__} '
                                 f'and {type(value).__name__}')

    def tonumpy(self) -> None:
        """Turn every tensor column into a float32 numpy array (as Meta's generator does, boxes included).

        Returns:
            None.
        """
        for key, value in self._columns.items():
            if isinstance(value, torch.Tensor):
                self._columns[key] = value.float().detach().cpu().numpy()
