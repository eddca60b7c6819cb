"""The inference state of SAMV2VideoPredictor and its memory policy.

A state is a plain dict made by :func:`newstate`. Its keys are named as in Meta's predictor, so code
that reads ``state['num_frames']``, ``state['obj_ids']`` or ``state['video_height']`` keeps working:

- ``images``: the :class:`VideoFrames` source (frames decoded lazily, a few cached); ``num_frames``,
  ``video_height``, ``video_width``, ``image_size``; ``device`` (compute) and ``storage_device``
  (CPU with ``offload_state_to_cpu``, else ``device``).
- ``obj_ids`` (in order), ``obj_id_to_idx`` / ``obj_idx_to_id``: user ids <-> slots 0..N-1.
- per object slot: ``point_inputs_per_obj[i][frame]`` (dict ``point_coords`` (1, P, 2) pixels of the
  S x S input, ``point_labels`` (1, P) int32), ``mask_inputs_per_obj[i][frame]`` (1, 1, S, S),
  ``output_dict_per_obj[i]`` and ``temp_output_dict_per_obj[i]`` (each ``{'cond_frame_outputs':
  {frame: record}, 'non_cond_frame_outputs': {frame: record}}``), ``frames_tracked_per_obj[i][frame]
  = {'reverse': bool}``.
- ``cached_features``: ``{frame: backbone output}`` for the last frame encoded only;
  ``constants['maskmem_pos_enc']``: the memory position encoding, one copy shared by every record.

A frame record holds ``pred_masks`` (1, 1, S/4, S/4) float32 low-res logits (after hole filling; kept
for every visited frame: they are the outputs and the mask prompt of refinement clicks),
``obj_ptr`` (1, C), ``object_score_logits`` (1, 1), ``maskmem_features`` (1, Cmem, S/16, S/16) bfloat16
or None once released, ``maskmem_pos_enc`` (views of the shared constant), and what is needed to
encode the same memory again: ``_holes`` (the logits hole filling overwrote, or None) and ``_frompts``.

Memory policy (``release_memory=True``): a non-conditioning frame's memory is read only by frames at
most ``num_maskmem * memory_temporal_stride_for_eval`` (= ``window``) frames after it in the tracking
direction. When a propagation starts at frame s, every non-conditioning memory outside [s - window, s]
(mirrored when tracking in reverse) is released; after each frame f, the memory of frame
f - (window + 1) (mirrored) is released. Conditioning frames keep theirs, and object pointers, scores
and low-res logits are never released. When a later call reads a released memory (a refinement click
on an old frame, a propagation started mid-video), it is encoded again from the frame's image and its
stored logits: the same values, at the cost of one image encoding per frame rebuilt.
"""
import contextlib
import warnings
from collections import OrderedDict
from collections.abc import Mapping

import numpy as np
import torch
import torch.nn.functional as F

from .prompts import BOX_LABELS, asboxes, aspoints
from .transforms import smallregions
from .videoio import FrameIndexError  # noqa: F401 (re-exported for callers catching it here)

# logit Meta's video predictor writes into a filled hole: just above the 0 threshold
HOLE_FILL_LOGIT = 0.1
COND, NON_COND = 'cond_frame_outputs', 'non_cond_frame_outputs'
_PER_OBJECT = ('point_inputs_per_obj', 'mask_inputs_per_obj', 'output_dict_per_obj', 'temp_output_dict_per_obj',
               'frames_tracked_per_obj')
_REQUIRED = ('images', 'num_frames', 'image_size', 'obj_ids', 'obj_id_to_idx', 'device', 'storage_device') + _PER_OBJECT


class VideoStateError(RuntimeError, ValueError):
    """A call that the inference state cannot serve (no prompts yet, an unknown object id)."""


def newstate(frames, image_size, device, offload_video_to_cpu, offload_state_to_cpu):
    """A fresh inference state over the ``VideoFrames`` ``frames``."""
    device = torch.device(device)
    return {
        'images': frames, 'num_frames': len(frames), 'image_size': image_size,
        'video_height': frames.video_height, 'video_width': frames.video_width,
        'offload_video_to_cpu': bool(offload_video_to_cpu), 'offload_state_to_cpu': bool(offload_state_to_cpu),
        'device': device, 'storage_device': torch.device('cpu') if offload_state_to_cpu else device,
        'point_inputs_per_obj': {}, 'mask_inputs_per_obj': {}, 'cached_features': {}, 'constants': {},
        'obj_id_to_idx': OrderedDict(), 'obj_idx_to_id': OrderedDict(), 'obj_ids': [],
        'output_dict_per_obj': {}, 'temp_output_dict_per_obj': {}, 'frames_tracked_per_obj': {},
    }


def checkstate(state, image_size, device=None, argname='inference_state'):
    """TypeError unless ``state`` is a state dict made by ``initstate`` (naming the missing keys); ValueError
    when it was made for a model of another image size or on another device."""
    if not isinstance(state, dict):
        raise TypeError(f'{argname} must be the dict returned by initstate(video_path), got {type(state).__name__}')
    missing = [key for key in _REQUIRED if key not in state]
    if missing:
        raise TypeError(f'{argname} must be the dict returned by initstate(video_path), got a dict missing the keys '
                        f'{missing}')
    if state['image_size'] != image_size:
        raise ValueError(f'{argname} was made for a model of image_size {state["image_size"]}, this predictor\'s '
                         f'model has image_size {image_size}: call initstate on this predictor')
    if device is not None and torch.device(state['device']) != torch.device(device):
        raise ValueError(f'{argname} was made on device {state["device"]}, this predictor runs on {device}: call '
                         'initstate on this predictor')


def checkobjid(obj_id, argname='obj_id'):
    """An object id: an int (numpy ints become int) or a str; TypeError naming ``argname`` otherwise.

    Meta's predictor takes any hashable, but True, 1.0 and numpy.int64(1) would all address object 1, and None
    or a float is almost always a mistake, so only ints and strings are ids here (bool is not an int here)."""
    if isinstance(obj_id, (bool, np.bool_)):
        raise TypeError(f'{argname} must be an int or a str object id, got bool {obj_id!r}')
    if isinstance(obj_id, (int, np.integer)):
        return int(obj_id)
    if isinstance(obj_id, str):
        return obj_id
    raise TypeError(f'{argname} must be an int or a str object id, got {type(obj_id).__name__} {obj_id!r}')


# ---------------------------------------------------------------------- objects
def objidx(state, obj_id, argname='obj_id'):
    """Slot of an existing object; TypeError for a non-id, VideoStateError naming the known ids when unknown."""
    idx = state['obj_id_to_idx'].get(checkobjid(obj_id, argname))
    if idx is None:
        raise VideoStateError(f'{argname} {obj_id!r} is not an object of this state; known ids: {state["obj_ids"]}')
    return idx


def addobject(state, obj_id):
    """Slot of ``obj_id``, creating an empty object when it is new (objects may join at any time)."""
    obj_id = checkobjid(obj_id)
    idx = state['obj_id_to_idx'].get(obj_id)
    if idx is not None:
        return idx
    idx = len(state['obj_id_to_idx'])
    state['obj_id_to_idx'][obj_id] = idx
    state['obj_idx_to_id'][idx] = obj_id
    state['obj_ids'] = list(state['obj_id_to_idx'])
    for key in ('point_inputs_per_obj', 'mask_inputs_per_obj', 'frames_tracked_per_obj'):
        state[key][idx] = {}
    for key in ('output_dict_per_obj', 'temp_output_dict_per_obj'):
        state[key][idx] = {COND: {}, NON_COND: {}}
    return idx


@contextlib.contextmanager
def newobjectguard(state, obj_id):
    """Slot of ``obj_id`` (created if new) for one call; a slot created for a call that fails is removed again."""
    count = len(state['obj_ids'])
    obj_idx = addobject(state, obj_id)
    try:
        yield obj_idx
    except BaseException:
        if len(state['obj_ids']) > count:
            dropobject(state, obj_idx)
        raise


def dropobject(state, obj_idx):
    """Remove slot ``obj_idx`` and renumber the later ones, keeping the order of the others."""
    remaining = [obj_id for idx, obj_id in state['obj_idx_to_id'].items() if idx != obj_idx]
    for key in _PER_OBJECT:
        old = state[key]
        state[key] = {new: old[idx] for new, idx in enumerate(i for i in sorted(old) if i != obj_idx)}
    state['obj_id_to_idx'] = OrderedDict((obj_id, idx) for idx, obj_id in enumerate(remaining))
    state['obj_idx_to_id'] = OrderedDict(enumerate(remaining))
    state['obj_ids'] = remaining


def clearobjects(state):
    """Forget every object, prompt and output (the video and its cached features stay)."""
    for key in _PER_OBJECT:
        state[key].clear()
    state['obj_id_to_idx'].clear()
    state['obj_idx_to_id'].clear()
    state['obj_ids'] = []


def anyoutput(state, obj_idx, frame_idx, temp_key=None):
    """The newest record of an object on a frame: a temp output first (of ``temp_key``), then stored ones."""
    record = None
    if temp_key is not None:
        record = state['temp_output_dict_per_obj'][obj_idx][temp_key].get(frame_idx)
    outputs = state['output_dict_per_obj'][obj_idx]
    if record is None:
        record = outputs[COND].get(frame_idx)
    if record is None:
        record = outputs[NON_COND].get(frame_idx)
    return record


# ---------------------------------------------------------------------- prompts
def pointprompt(state, points, labels, box, clear_old_points, normalize_coords):
    """Clicks and/or a box as model inputs: ``(coords (1, P, 2) float32 pixels of the S x S input, labels (1, P)
    int32)`` on the state's device, the two box corners (labels 2, 3) first."""
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


def maskprompt(mask, image_size, device, video_size=None):
    """One object's (H, W) mask as a (1, 1, S, S) float input.

    Arrays (and lists) are read as bool: non-zero is in. Tensors keep their values (as in Meta's predictor: a
    soft S x S mask reaches the model as it is), so they must lie in [0, 1]. Non-finite values are refused.
    A mask of another size than the video's ``video_size`` (H, W) or the model's S x S is resized with a
    warning (a transposed (W, H) mask is a common mistake); resized masks are antialiased and thresholded at 0.5.
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


# ---------------------------------------------------------------------- hole filling
def fillsmallholes(pred_masks, max_area):
    """Fill background regions of at most ``max_area`` low-res pixels (8-connected) with logit 0.1.

    ``pred_masks``: (B, 1, h, w) logits, background is <= 0. Returns ``(filled, holes)``; ``holes`` is None
    when nothing changed, else ``(flat indices, original values)`` to undo the filling.
    """
    if max_area <= 0:
        return pred_masks, None
    is_hole = smallregions(pred_masks <= 0, max_area)
    if not bool(is_hole.any()):
        return pred_masks, None
    index = is_hole.flatten().nonzero().squeeze(1)
    return torch.where(is_hole, HOLE_FILL_LOGIT, pred_masks), (index, pred_masks.flatten()[index])


def unfilledmasks(record):
    """The low-res logits the record's memory was encoded from (hole filling undone where it applied)."""
    masks = record['pred_masks']
    holes = record.get('_holes')
    if holes is None:
        return masks
    index, values = holes
    return masks.flatten().index_put((index.to(masks.device),), values.to(masks.device)).view_as(masks)


# ---------------------------------------------------------------------- memory release and rebuild
class _RebuildingRecord(dict):
    """A copy of a frame record whose released memory is encoded again on first read."""

    def __init__(self, record, rebuild):
        super().__init__(record)
        self._record, self._rebuild = record, rebuild

    def __getitem__(self, key):
        if key == 'maskmem_features' and dict.get(self, key) is None:
            features = self._rebuild(self._record)
            self._record['maskmem_features'] = features
            dict.__setitem__(self, key, features)
        return dict.__getitem__(self, key)

    def get(self, key, default=None):
        return self[key] if key in self else default


class RebuildingOutputs(Mapping):
    """Read-only view of ``{frame: record}`` that rebuilds released memories when the tracking step reads them.

    ``rebuild(frame_idx, record)`` returns the record's memory features. Only the records whose
    ``maskmem_features`` are actually read get rebuilt (object pointers of older frames are read too,
    and need no memory).
    """

    def __init__(self, records, rebuild):
        self._records, self._rebuildframe = records, rebuild

    def __getitem__(self, frame_idx):
        record = self._records[frame_idx]
        if record.get('maskmem_features') is None:
            return _RebuildingRecord(record, lambda rec, t=frame_idx: self._rebuildframe(t, rec))
        return record

    def __iter__(self):
        return iter(self._records)

    def __len__(self):
        return len(self._records)


def releaseoutside(state, frame_idx, reverse, window):
    """Release every non-conditioning memory outside the ``window`` frames behind ``frame_idx`` (and itself)."""
    sign = -1 if reverse else 1
    for outputs in state['output_dict_per_obj'].values():
        for t, record in outputs[NON_COND].items():
            if record.get('maskmem_features') is not None and not 0 <= sign * (frame_idx - t) <= window:
                record['maskmem_features'] = None


def releaseframe(state, frame_idx):
    """Release the non-conditioning memory of every object on one frame."""
    for outputs in state['output_dict_per_obj'].values():
        record = outputs[NON_COND].get(frame_idx)
        if record is not None:
            record['maskmem_features'] = None


def heldmemories(state):
    """Number of stored records holding memory features, as ``{'cond': n, 'non_cond': m}`` (for diagnostics)."""
    counts = {'cond': 0, 'non_cond': 0}
    for outputs in state['output_dict_per_obj'].values():
        for key, name in ((COND, 'cond'), (NON_COND, 'non_cond')):
            counts[name] += sum(record.get('maskmem_features') is not None for record in outputs[key].values())
    return counts
