"""Video prompts as model inputs: clicks and boxes in the original frame, masks at the video's resolution."""
import warnings
from typing import Optional, Union

import numpy as np
import torch
import torch.nn.functional as F
from numpy.typing import ArrayLike

from ssseg.modules.models.segmentors.samv2.predictors.prompts import BOX_LABELS, asboxes, aspoints


def pointprompt(state: dict, points: Optional[ArrayLike], labels: Optional[ArrayLike], box: Optional[ArrayLike],
                clear_old_points: bool, normalize_coords: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Clicks and/or a box as model inputs, the two box corners (labels 2, 3) first.

    Args:
        state: the inference state (its video size, ``image_size`` S and ``device``).
        points: None or (P, 2) / (1, P, 2) (x, y) pixels of the original frame ([0, 1] fractions without
            ``normalize_coords``).
        labels: None or (P,) / (1, P), with ``points``; values in {-1, 0, 1, 2, 3}.
        box: None or one x1, y1, x2, y2 box (4 numbers, any nesting) in the same frame.
        clear_old_points: must be True with a box.
        normalize_coords: the coordinates are pixels (else [0, 1] fractions).
    Returns:
        ``(coords (1, P', 2) float32 pixels of the S x S input, labels (1, P') int32)`` on the state's device,
        P' = P (+ 2 with a box).
    Raises:
        ValueError: none of points, labels and box; points without labels or the reverse; a box without
            ``clear_old_points``; bad shapes or values (naming ``points`` / ``labels`` / ``box``).
        TypeError: non-numeric points, labels or box.
    """
    if points is None and labels is None and box is None:
        raise ValueError('give points with labels, a box, or both; got none of them')
    if (points is None) != (labels is None):
        given, missing = ('points', 'labels') if labels is None else ('labels', 'points')
        raise ValueError(f'{given} was given without {missing}: clicks need (P, 2) points and (P,) labels together')
    coords, point_labels = torch.zeros(1, 0, 2), torch.zeros(1, 0, dtype=torch.int32)
    if points is not None:
        try:
            coords, point_labels = aspoints(points, labels, 'cpu')
        except (TypeError, ValueError) as err:
            # the shared checks name the image predictor's arguments
            message = str(err).replace('point_coords', 'points').replace('point_labels', 'labels')
            raise type(err)(message) from None
        if coords.shape[0] != 1:
            raise ValueError(f'points must be (P, 2) or (1, P, 2) for one object, got {tuple(coords.shape)}')
    if box is not None:
        if not clear_old_points:
            raise ValueError('box needs clear_old_points=True: a box goes before any click, so it cannot be added to '
                             'the clicks already on this frame')
        try:
            flat = np.asarray(box.detach().cpu() if isinstance(box, torch.Tensor) else box)
        except (TypeError, ValueError) as err:  # ragged nested lists
            raise ValueError(f'box must be one x1, y1, x2, y2 box (4 numbers), got {type(box).__name__} {box!r}: '
                             f'{err}') from None
        if flat.size != 4:
            raise ValueError(f'box must be one x1, y1, x2, y2 box (4 numbers), got shape {flat.shape}')
        corners = asboxes(flat.reshape(4), 'cpu').reshape(1, 2, 2)
        coords = torch.cat([corners, coords], dim=1)
        point_labels = torch.cat([BOX_LABELS, point_labels], dim=1)
    if normalize_coords:
        coords = coords / torch.tensor([state['video_width'], state['video_height']])
    coords = coords * state['image_size']
    return coords.to(state['device']), point_labels.to(state['device'])


def maskprompt(mask: Union[ArrayLike, torch.Tensor], image_size: int, device: Union[str, torch.device],
               video_size: Optional[tuple] = None) -> torch.Tensor:
    """One object's (H, W) mask as a (1, 1, S, S) float input.

    Arrays (and lists) are read as bool: non-zero is in. Tensors keep their values (as in Meta's predictor: a
    soft S x S mask reaches the model as it is), so they must lie in [0, 1]. Non-finite values are refused.
    A mask of another size than the video's ``video_size`` (H, W) or the model's S x S is resized with a
    warning (a transposed (W, H) mask is a common mistake); resized masks are antialiased and thresholded at 0.5.

    Args:
        mask: (H, W) bool / numeric array, list or tensor.
        image_size: the model's input side S.
        device: where the result goes.
        video_size: the video's (H, W), or None for no size warning.
    Returns:
        (1, 1, S, S) float32 tensor on ``device``.
    Raises:
        TypeError: a non-numeric array or tensor dtype.
        ValueError: NaN/inf values, tensor values outside [0, 1], a mask that is not 2-D or is empty.
    """
    if not isinstance(mask, torch.Tensor):
        try:
            array = np.asarray(mask)
            if array.dtype.kind not in 'biuf':
                raise TypeError(f'dtype {array.dtype} is not numeric')
        except (TypeError, ValueError) as err:
            raise TypeError(f'mask must be an (H, W) bool or 0/1 array, got {type(mask).__name__}: {err}') from err
        if array.dtype.kind == 'f' and not np.isfinite(array).all():
            raise ValueError('mask must be finite (an (H, W) bool or 0/1 array), got NaN or inf values')
        mask = torch.from_numpy(np.ascontiguousarray(array != 0))
    elif mask.dtype != torch.bool:
        if mask.is_complex() or not (mask.is_floating_point() or mask.dtype in (torch.uint8, torch.int8, torch.int16,
                                                                                torch.int32, torch.int64)):
            raise TypeError(f'mask must be an (H, W) bool or 0/1 tensor, got dtype {mask.dtype}')
        if mask.numel():
            low, high = float(mask.min()), float(mask.max())
            if mask.is_floating_point() and not bool(torch.isfinite(mask).all()):
                raise ValueError('mask must be finite (an (H, W) bool or [0, 1] tensor), got NaN or inf values')
            if low < 0 or high > 1:
                raise ValueError(f'mask as a tensor must hold values in [0, 1] (bool or 0/1, as Meta\'s predictor '
                                 f'reads them unchanged), got values in [{low:g}, {high:g}]')
    if mask.dim() != 2 or 0 in mask.shape:
        raise ValueError(f'mask must be one object\'s (H, W) mask (2-D, non-empty), got shape {tuple(mask.shape)}')
    shape = tuple(mask.shape)
    if video_size is not None and shape not in (tuple(video_size), (image_size, image_size)):
        warnings.warn(f'mask has shape {shape} but the video\'s frames are {tuple(video_size)} (H, W): it is resized '
                      'to the frame (is it transposed, or from another video?)', stacklevel=3)
    mask = mask[None, None].float().to(device)
    if shape != (image_size, image_size):
        mask = F.interpolate(mask, size=(image_size, image_size), mode='bilinear', align_corners=False, antialias=True)
        mask = (mask >= 0.5).float()
    return mask
