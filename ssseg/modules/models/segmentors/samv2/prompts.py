"""Validation and conversion of user prompts (points, labels, boxes, mask inputs) to tensors."""
import torch

# labels of a box's top-left and bottom-right corners in the prompt encoder
BOX_LABELS = torch.tensor([[2, 3]], dtype=torch.int32)
VALID_LABELS = (-1, 0, 1, 2, 3)


def _astensor(value, argname, dtype):
    try:
        tensor = torch.as_tensor(value, dtype=dtype)
    except (TypeError, ValueError, RuntimeError) as err:
        raise TypeError(f'{argname} must be a numeric array, got {type(value).__name__}: {err}') from err
    if tensor.is_floating_point() and not torch.isfinite(tensor).all():
        raise ValueError(f'{argname} must be finite, got NaN or inf values')
    return tensor


def aspoints(point_coords, point_labels, device):
    """Return ``(coords (N, P, 2) float32, labels (N, P) int32)`` or None when no points are given.

    Accepts coords (P, 2) / (N, P, 2) and labels (P,) / (N, P) as numpy arrays, tensors or lists.
    """
    if point_coords is None and point_labels is None:
        return None
    if point_coords is None or point_labels is None:
        given, missing = ('point_coords', 'point_labels') if point_labels is None else ('point_labels', 'point_coords')
        raise ValueError(f'{given} was given without {missing}: points need both coordinates and labels')
    coords = _astensor(point_coords, 'point_coords', torch.float32)
    labels = _astensor(point_labels, 'point_labels', torch.float32)
    if coords.ndim == 2:
        coords, labels = coords[None], labels[None]
    if coords.ndim != 3 or coords.shape[-1] != 2 or coords.shape[1] == 0:
        raise ValueError(f'point_coords must have shape (P, 2) or (N, P, 2) with P >= 1, got {tuple(torch.as_tensor(point_coords).shape)}')
    if tuple(labels.shape) != tuple(coords.shape[:2]):
        raise ValueError(f'point_labels must have one label per point, shape {tuple(coords.shape[:2])} (or '
                         f'{(coords.shape[1],)}), got {tuple(torch.as_tensor(point_labels).shape)}')
    if not all(float(v) in VALID_LABELS for v in labels.unique()):
        raise ValueError(f'point_labels must be in {VALID_LABELS} (1 foreground, 0 background), got '
                         f'{sorted(set(labels.unique().tolist()) - set(VALID_LABELS))}')
    return coords.to(device), labels.to(device=device, dtype=torch.int32)


def asboxes(box, device):
    """Return (N, 4) float32 xyxy boxes, or None. Accepts (4,) or (N, 4)."""
    if box is None:
        return None
    boxes = _astensor(box, 'box', torch.float32)
    if boxes.ndim == 1:
        boxes = boxes[None]
    if boxes.ndim != 2 or boxes.shape[-1] != 4 or boxes.shape[0] == 0:
        raise ValueError(f'box must be xyxy with shape (4,) or (N, 4), got shape {tuple(torch.as_tensor(box).shape)}')
    flipped = (boxes[:, 2] < boxes[:, 0]) | (boxes[:, 3] < boxes[:, 1])
    if flipped.any():
        raise ValueError(f'box must be x1, y1, x2, y2 with x2 >= x1 and y2 >= y1, got {boxes[flipped][0].tolist()}')
    return boxes.to(device)


def asmaskinput(mask_input, size, device):
    """Return (N, 1, h, w) float32 low-res mask logits, or None. Accepts (h, w), (1, h, w) or (N, 1, h, w)."""
    if mask_input is None:
        return None
    masks = _astensor(mask_input, 'mask_input', torch.float32)
    while masks.ndim < 4:
        masks = masks[None]
    if masks.ndim != 4 or masks.shape[1] != 1 or tuple(masks.shape[-2:]) != tuple(size):
        raise ValueError(f'mask_input must be low-res logits of shape (1, {size[0]}, {size[1]}) or '
                         f'(N, 1, {size[0]}, {size[1]}) (the third output of predict), got {tuple(torch.as_tensor(mask_input).shape)}')
    return masks.to(device)
