"""Helpers of the automatic mask generator: point grids, crops, boxes, stability scores, RLE and records.

Numerically identical to the matching helpers of Meta's SAM 2 (same counts, boxes, crops and run
lengths), but vectorized and cache-friendly, since the generator runs them on hundreds of
full-resolution masks. Conventions: boxes are XYXY pixels (x1, y1 inclusive for mask boxes, exclusive
for crop boxes), masks are (N, H, W) bool, uncompressed RLE runs are column-major (Fortran order)
and start with the number of leading zeros (possibly 0), as pycocotools expects.
"""
import math

import cv2
import numpy as np
import torch

# masks are handled a few at a time on the CPU (about 16M pixels): reused, smaller temporaries are faster
_CPU_CHUNK_PIXELS = 1 << 24
# False sends CPU tensors down the accelerator path too (whole batches, torch only): lets tests cover it
_CPU_PATH = True


def _oncpupath(tensor):
    return _CPU_PATH and tensor.device.type == 'cpu'


def _chunks(masks):
    """Slices over the first dim of (N, H, W) ``masks``: small ones on the CPU, a single one elsewhere."""
    n, h, w = masks.shape
    step = max(1, _CPU_CHUNK_PIXELS // max(1, h * w)) if _oncpupath(masks) else max(1, n)
    return [slice(start, start + step) for start in range(0, n, step)]


def _flatnonzero(flags):
    """1-D int64 indices of the True entries of a bool tensor (numpy's scan is faster on the CPU)."""
    if _oncpupath(flags):
        return torch.from_numpy(np.flatnonzero(flags.numpy()))
    return flags.reshape(-1).nonzero()[:, 0]


def _checkmasks(masks, argname, ndim=3):
    if not isinstance(masks, torch.Tensor) or masks.dtype != torch.bool or (ndim and masks.dim() != ndim):
        form = f'a {ndim}-D' if ndim else 'a'
        got = (f'{masks.dtype} tensor of shape {tuple(masks.shape)}' if isinstance(masks, torch.Tensor)
               else type(masks).__name__)
        raise ValueError(f'{argname} must be {form} bool torch tensor, got {got}')


def buildpointgrid(n_per_side):
    """(n*n, 2) float64 (x, y) centres of an n x n grid of cells over [0, 1]^2, x varying fastest."""
    if not isinstance(n_per_side, (int, np.integer)) or n_per_side < 1:
        raise ValueError(f'n_per_side must be a positive int, got {n_per_side!r}')
    half_cell = 1 / (2 * n_per_side)
    side = np.linspace(half_cell, 1 - half_cell, n_per_side)
    xs, ys = np.meshgrid(side, side)
    return np.stack([xs, ys], axis=-1).reshape(-1, 2)


def buildalllayerpointgrids(n_per_side, n_layers, scale_per_layer):
    """Point grids of crop layers 0..n_layers; layer i has int(n_per_side / scale_per_layer**i) points a side."""
    return [buildpointgrid(int(n_per_side / (scale_per_layer ** i))) for i in range(n_layers + 1)]


def generatecropboxes(im_size, n_layers, overlap_ratio):
    """Crops of an image of size (h, w): the whole image, then for layer i >= 1 a 2^i x 2^i grid of overlapping crops.

    Returns (crop_boxes, layer_idxs): XYXY int boxes (x1, y1 exclusive) and the layer of each box. Within a
    layer, crops go column by column (x outer, y inner); neighbours overlap by
    int(overlap_ratio * short_side * 2 / 2^i) pixels.
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


def uncropboxes(boxes, crop_box):
    """XYXY ``boxes`` (..., 4) in a crop's frame -> the image frame (int64 offsets, as torch promotes)."""
    x0, y0 = crop_box[0], crop_box[1]
    return boxes + torch.tensor([x0, y0, x0, y0], device=boxes.device)


def uncroppoints(points, crop_box):
    """(x, y) ``points`` (..., 2) in a crop's frame -> the image frame."""
    return points + torch.tensor([crop_box[0], crop_box[1]], device=points.device)


def uncropmasks(masks, crop_box, orig_h, orig_w):
    """(..., h, w) crop masks -> (..., orig_h, orig_w), zero outside the crop; returned as is for a full-image crop."""
    x0, y0, x1, y1 = crop_box
    if x0 == 0 and y0 == 0 and x1 == orig_w and y1 == orig_h:
        return masks
    if tuple(masks.shape[-2:]) != (y1 - y0, x1 - x0):
        raise ValueError(f'masks of crop_box {list(crop_box)} must be (..., {y1 - y0}, {x1 - x0}), '
                         f'got shape {tuple(masks.shape)}')
    out = masks.new_zeros(*masks.shape[:-2], orig_h, orig_w)
    out[..., y0:y1, x0:x1] = masks
    return out


def isboxnearcropedge(boxes, crop_box, orig_box, atol=20.0):
    """(N,) bool: XYXY crop-frame ``boxes`` (N, 4) within ``atol`` of a crop edge that is not an image edge."""
    crop = torch.as_tensor(crop_box, dtype=torch.float, device=boxes.device)
    orig = torch.as_tensor(orig_box, dtype=torch.float, device=boxes.device)
    boxes = uncropboxes(boxes, crop_box).float()
    near_crop = torch.isclose(boxes, crop[None, :], atol=atol, rtol=0)
    near_image = torch.isclose(boxes, orig[None, :], atol=atol, rtol=0)
    return (near_crop & ~near_image).any(dim=1)


def batchedmasktobox(masks):
    """XYXY int64 boxes (..., 4) around (..., H, W) bool masks; x1, y1 are the last covered column and row.

    Empty masks give [0, 0, 0, 0]; an input with no elements gives float32 zeros (..., 4).
    """
    _checkmasks(masks, 'masks', ndim=0)
    if masks.dim() < 2:
        raise ValueError(f'masks must be (..., H, W), got shape {tuple(masks.shape)}')
    lead, (h, w) = masks.shape[:-2], masks.shape[-2:]
    if masks.numel() == 0:
        return torch.zeros(*lead, 4, device=masks.device)
    flat = masks.reshape(-1, h, w)
    rows = torch.empty(flat.shape[0], h, dtype=torch.bool, device=masks.device)
    cols = torch.empty(flat.shape[0], w, dtype=torch.bool, device=masks.device)
    for chunk in _chunks(flat):
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


def boxxyxytoxywh(box):
    """XYXY -> XYWH (width = x1 - x0) for a box or boxes (..., 4), torch or numpy; the input is not modified."""
    out = box.clone() if isinstance(box, torch.Tensor) else np.array(box, copy=True)
    out[..., 2] = out[..., 2] - out[..., 0]
    out[..., 3] = out[..., 3] - out[..., 1]
    return out


def stabilityscore(mask_logits, mask_threshold, offset):
    """(...,) float32 IoU of the (..., H, W) logits thresholded at mask_threshold + offset and - offset.

    The high-threshold mask lies inside the low one, so the IoU is count(> thr + offset) / count(> thr - offset)
    (NaN when both are empty). Counts are int32; one bool buffer the size of a chunk is reused for both.
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
    chunks = _chunks(logits) if logits.numel() else []
    rows = chunks[0].stop - chunks[0].start if chunks else 0
    buffer = torch.empty((rows, h, w), dtype=torch.bool, device=logits.device)
    for chunk in chunks:
        part = logits[chunk]
        view = buffer[:part.shape[0]]
        for k, threshold in enumerate((high, low)):
            torch.gt(part, threshold, out=view)
            counts[k, chunk] = view.sum(-1, dtype=row_dtype).sum(-1, dtype=torch.int32)
    return (counts[0] / counts[1]).reshape(lead)


def masktorle(masks):
    """Uncompressed column-major RLE of (N, H, W) bool masks: a list of {'size': [H, W], 'counts': [...]}.

    Run starts are found on the C-order masks (vertical changes inside a column, plus the jump from the
    bottom of one column to the top of the next), keyed by their column-major position and sorted, so no
    transposed copy of the masks is made.
    """
    _checkmasks(masks, 'masks')
    n, h, w = masks.shape
    hw = h * w
    if n == 0:
        return []
    if hw == 0:
        return [{'size': [h, w], 'counts': [0]} for _ in range(n)]
    # mask i spans keys i*hw .. (i+1)*hw; these boundaries make the diff below yield each mask's last run
    keys = [torch.arange(n + 1, device=masks.device) * hw]
    for chunk in _chunks(masks):
        part = masks[chunk]
        # a change between rows r and r + 1 of column c starts a run at column-major position c * h + r + 1
        inside = _flatnonzero(part[:, 1:, :] != part[:, :-1, :])
        per_part = max(1, (h - 1) * w)
        index, rest = inside // per_part, inside % per_part
        keys.append((index + chunk.start) * hw + (rest % w) * h + rest // w + 1)
        # bottom of column c differs from top of column c + 1: a run starts at (c + 1) * h
        across = _flatnonzero(part[:, 0, 1:] != part[:, -1, :-1])
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


def rletomask(rle):
    """(H, W) bool numpy mask of an uncompressed RLE (a Fortran-ordered transposed view, as Meta's)."""
    h, w = rle['size']
    counts = np.asarray(rle['counts'], dtype=np.int64)
    if counts.ndim != 1 or (counts < 0).any() or int(counts.sum()) != h * w:
        raise ValueError(f"rle counts must be non-negative run lengths summing to h * w = {h * w}, "
                         f"got {len(counts)} runs summing to {int(counts.sum())}")
    values = np.zeros(len(counts), dtype=bool)
    values[1::2] = True
    return np.repeat(values, counts).reshape(w, h).T


def areafromrle(rle):
    """Foreground pixel count of an uncompressed RLE (the odd runs)."""
    return sum(rle['counts'][1::2])


def cocoencoderle(uncompressed_rle):
    """COCO compressed RLE {'size': [H, W], 'counts': str} of an uncompressed RLE (pycocotools, JSON-ready)."""
    from pycocotools import mask as mask_utils
    h, w = uncompressed_rle['size']
    rle = mask_utils.frPyObjects(uncompressed_rle, h, w)
    rle['counts'] = rle['counts'].decode('utf-8')
    return rle


def removesmallregions(mask, area_thresh, mode):
    """Drop 8-connected regions smaller than ``area_thresh`` from an (H, W) bool numpy mask.

    mode 'holes': fill background regions below the threshold; 'islands': remove such foreground
    regions, keeping the largest one if all are small. Returns (mask, changed); the input is returned
    as is when nothing changes.
    """
    if mode not in ('holes', 'islands'):
        raise ValueError(f"mode must be 'holes' or 'islands', got {mode!r}")
    if not isinstance(mask, np.ndarray) or mask.ndim != 2 or mask.dtype != bool:
        raise ValueError(f'mask must be an (H, W) bool numpy array, got {getattr(mask, "dtype", type(mask))} '
                         f'of shape {getattr(mask, "shape", None)}')
    holes = mode == 'holes'
    region = (~mask if holes else mask).astype(np.uint8)
    n_labels, labels, stats, _ = cv2.connectedComponentsWithStats(region, connectivity=8)
    sizes = stats[1:, cv2.CC_STAT_AREA]  # label 0 is the complement of the regions
    small = sizes < area_thresh
    if not small.any():
        return mask, False
    # look-up table over labels: True where the output is foreground
    if holes:
        foreground = np.concatenate([[True], small])
    else:
        foreground = np.concatenate([[False], ~small])
        if not foreground.any():
            foreground[int(np.argmax(sizes)) + 1] = True
    return foreground[labels], True


class MaskRecords:
    """Columns of per-mask data (torch tensors, numpy arrays or lists) of equal length, filtered and joined together.

    ``records[key]`` reads or sets a column; ``filter(keep)`` keeps rows by bool mask or index tensor,
    ``cat(other)`` appends another MaskRecords's rows, ``tonumpy()`` turns tensors into float32 arrays.
    """

    def __init__(self, **columns):
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

    def keys(self):
        return self._columns.keys()

    def items(self):
        return self._columns.items()

    def filter(self, keep):
        """Keep the rows selected by ``keep``: a bool mask or int64 indices (torch or numpy), in that order."""
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

    def cat(self, other):
        """Append the rows of ``other``, a MaskRecords with the same columns.

        Columns only have to match when both sides have rows: a side without rows (e.g. a batch whose
        masks were all filtered out) gives way to the other one, whatever its columns.
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

    def tonumpy(self):
        """Turn every tensor column into a float32 numpy array (as Meta's generator does, boxes included)."""
        for key, value in self._columns.items():
            if isinstance(value, torch.Tensor):
                self._columns[key] = value.float().detach().cpu().numpy()
