"""Validation and conversion of user prompts (points, labels, boxes, mask inputs) to tensors.

Every check names the argument, the expected form and what was received, and raises ValueError or
TypeError before anything is computed or stored.
"""
from typing import Optional, Sequence, Union

import torch
from numpy.typing import ArrayLike

from ssseg.modules.utils.checks import shapeof

# labels of a box's top-left and bottom-right corners in the prompt encoder
BOX_LABELS = torch.tensor([[2, 3]], dtype=torch.int32)
VALID_LABELS = (-1, 0, 1, 2, 3)


def _astensor(value, argname, dtype):
    try:
        tensor = torch.as_tensor(value, dtype=dtype)
    except (TypeError, ValueError, RuntimeError) as err:
        raise TypeError(f'{argname} must be a numeric array, got {type(value).__name__}: {err}') from err
    if tensor.is_floating_point() and not torch.isfinite(tensor).all():
        raise ValueError(f'{argname} must be finite, got NaN or inf values (or values beyond the float32 range)')
    return tensor


def _formatlabels(values):
    return [int(v) if float(v).is_integer() else v for v in values]


def aspoints(point_coords: Optional[ArrayLike], point_labels: Optional[ArrayLike], device: Union[str, torch.device],
             names: Sequence[str] = ('point_coords', 'point_labels')) -> Optional[tuple[torch.Tensor, torch.Tensor]]:
    """Check and convert points and their labels.

    Args:
        point_coords: coords (P, 2) with labels (P,), or coords (N, P, 2) with labels (N, P) (or (P,) when N = 1),
            as numpy arrays, tensors or lists; (x, y), finite. None with ``point_labels`` None for no points.
        point_labels: labels in {-1, 0, 1, 2, 3}.
        device: where the tensors go.
        names: the two arguments' names in error messages.
    Returns:
        ``(coords (N, P, 2) float32, labels (N, P) int32)`` on ``device``, or None when no points are given.
    Raises:
        ValueError: one given without the other, bad shapes, NaN/inf coordinates, labels outside the set.
        TypeError: non-numeric values.
    """
    coords_name, labels_name = names
    if point_coords is None and point_labels is None:
        return None
    if point_coords is None or point_labels is None:
        given, missing = (coords_name, labels_name) if point_labels is None else (labels_name, coords_name)
        raise ValueError(f'{given} was given without {missing}: points need both coordinates and labels')
    coords = _astensor(point_coords, coords_name, torch.float32)
    labels = _astensor(point_labels, labels_name, torch.float32)
    if coords.ndim not in (2, 3) or coords.shape[-1] != 2 or 0 in coords.shape:
        raise ValueError(f'{coords_name} must have shape (P, 2) or (N, P, 2) with N, P >= 1, got {tuple(coords.shape)}')
    if coords.ndim == 3 and coords.shape[0] == 1 and labels.ndim == 1:
        labels = labels[None]  # one prompt's (P,) labels with its (1, P, 2) points, as Meta's video predictor allows
    if tuple(labels.shape) != tuple(coords.shape[:-1]):
        form = '(P,)' if coords.ndim == 2 else '(N, P)'
        raise ValueError(f'{labels_name} must have one label per point, shape {form} = {tuple(coords.shape[:-1])} for '
                         f'{coords_name} of shape {tuple(coords.shape)}, got {tuple(labels.shape)}')
    if coords.ndim == 2:
        coords, labels = coords[None], labels[None]
    invalid = sorted(set(labels.unique().tolist()) - set(VALID_LABELS))
    if invalid:
        raise ValueError(f'{labels_name} must be in {VALID_LABELS} (1 foreground, 0 background, -1 padding, 2/3 box '
                         f'corners), got {_formatlabels(invalid)}')
    return coords.to(device), labels.to(device=device, dtype=torch.int32)


def asboxes(box: Optional[ArrayLike], device: Union[str, torch.device], name: str = 'box') -> Optional[torch.Tensor]:
    """Check and convert boxes.

    Args:
        box: (4,) or (N, 4) xyxy with x2 >= x1 and y2 >= y1 (array, tensor or list), or None.
        device: where the tensor goes.
        name: the argument's name in error messages.
    Returns:
        (N, 4) float32 xyxy boxes on ``device``, or None.
    Raises:
        ValueError: another shape, NaN/inf, or a flipped box; TypeError: non-numeric values.
    """
    if box is None:
        return None
    boxes = _astensor(box, name, torch.float32)
    if boxes.ndim == 1:
        boxes = boxes[None]
    if boxes.ndim != 2 or boxes.shape[-1] != 4 or boxes.shape[0] == 0:
        raise ValueError(f'{name} must be xyxy with shape (4,) or (N, 4), got shape {shapeof(box)}')
    flipped = (boxes[:, 2] < boxes[:, 0]) | (boxes[:, 3] < boxes[:, 1])
    if flipped.any():
        raise ValueError(f'{name} must be x1, y1, x2, y2 with x2 >= x1 and y2 >= y1, got {boxes[flipped][0].tolist()}')
    return boxes.to(device)


def asmaskinput(mask_input: Optional[ArrayLike], size: Sequence[int], device: Union[str, torch.device],
                name: str = 'mask_input') -> Optional[torch.Tensor]:
    """Check and convert low-res mask logits.

    Args:
        mask_input: (h, w), (1, h, w) or (N, 1, h, w) logits (array, tensor or list), or None.
        size: the (h, w) they must have (the prompt encoder's mask input size).
        device: where the tensor goes.
        name: the argument's name in error messages.
    Returns:
        (N, 1, h, w) float32 low-res mask logits on ``device``, or None.
    Raises:
        ValueError: another shape or NaN/inf; TypeError: non-numeric values.
    """
    if mask_input is None:
        return None
    masks = _astensor(mask_input, name, torch.float32)
    while masks.ndim < 4:
        masks = masks[None]
    if masks.ndim != 4 or masks.shape[0] == 0 or masks.shape[1] != 1 or tuple(masks.shape[-2:]) != tuple(size):
        raise ValueError(f'{name} must be low-res logits of shape (1, {size[0]}, {size[1]}) or '
                         f'(N, 1, {size[0]}, {size[1]}) (the third output of predict), got {shapeof(mask_input)}')
    return masks.to(device)
