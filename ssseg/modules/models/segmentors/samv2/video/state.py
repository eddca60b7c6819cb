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
- ``is_stream``: present (True) in a stream from ``initstream``, whose ``images`` is a
  :class:`.stream.StreamFrames` holding only the latest frame and whose ``num_frames`` counts the
  frames given so far.
- ``cached_features``: ``{frame: backbone output}`` for the last frame encoded only;
  ``constants['maskmem_pos_enc']``: the memory position encoding, one copy shared by every record.

A frame record holds ``pred_masks`` (1, 1, S/4, S/4) float32 low-res logits (after hole filling; kept
for every visited frame: they are the outputs and the mask prompt of refinement clicks),
``obj_ptr`` (1, C), ``object_score_logits`` (1, 1), ``maskmem_features`` (1, Cmem, S/16, S/16) bfloat16
or None once released, ``maskmem_pos_enc`` (views of the shared constant), and what is needed to
encode the same memory again: ``_holes`` (the logits hole filling overwrote, or None; on the CPU their
indices and values, elsewhere a hole map and the unfilled logits, see ``fillsmallholes``), ``_frompts`` and
``_candidates`` (how many masks the decoder upsampled together). Each record owns its tensors, also when
its objects were tracked as one batch.

How memories are released and rebuilt is in :mod:`.memory`, how prompts become model inputs in
:mod:`.prompts`.
"""
import contextlib
from collections import OrderedDict
from typing import Iterator, Optional, Union

import numpy as np
import torch

from .frames import FrameIndexError, VideoFrames, checkframeindex

COND, NON_COND = 'cond_frame_outputs', 'non_cond_frame_outputs'
# a stream's length is unknown: tracking treats it as a video longer than any pointer window
STREAM_LENGTH = 2 ** 31 - 1
_PER_OBJECT = ('point_inputs_per_obj', 'mask_inputs_per_obj', 'output_dict_per_obj', 'temp_output_dict_per_obj',
               'frames_tracked_per_obj')
_REQUIRED = ('images', 'num_frames', 'image_size', 'obj_ids', 'obj_id_to_idx', 'device', 'storage_device') + _PER_OBJECT


class VideoStateError(RuntimeError, ValueError):
    """A call that the inference state cannot serve (no prompts yet, an unknown object id)."""


def newstate(frames: VideoFrames, image_size: int, device: Union[str, torch.device], offload_video_to_cpu: bool,
             offload_state_to_cpu: bool) -> dict:
    """A fresh inference state over the ``VideoFrames`` ``frames``.

    Args:
        frames: the video's frames (``frames[i]`` a float32 (3, S, S) tensor).
        image_size: the model's input side S.
        device: the compute device.
        offload_video_to_cpu: recorded in the state (the frames themselves were made with it).
        offload_state_to_cpu: stored masks and memories live on the CPU (``storage_device``).
    Returns:
        The state dict, with no objects yet (its keys are in the module docstring).
    """
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


def checkstate(state: dict, image_size: int, device: Optional[Union[str, torch.device]] = None,
               argname: str = 'inference_state') -> None:
    """Check that ``state`` is a state dict made by ``initstate`` for this model and device.

    Args:
        state: the object to check.
        image_size: the model's input side S the state must have been made for.
        device: the device it must have been made on (None: any).
        argname: the argument's name in error messages.
    Returns:
        None.
    Raises:
        TypeError: not a dict, or a dict missing some keys (naming them).
        ValueError: a state made for a model of another image size or on another device.
    """
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


def checkstream(state: dict, stream: bool, method: str) -> None:
    """Check that a state is of the kind ``method`` serves: a stream (``initstream``) or a video (``initstate``).

    Args:
        state: a checked inference state.
        stream: whether ``method`` needs a stream.
        method: the public method's name, for the message.
    Returns:
        None.
    Raises:
        VideoStateError: (a ValueError) a state of the other kind.
    """
    if bool(state.get('is_stream')) == stream:
        return
    if stream:
        raise VideoStateError(f'{method} needs a stream from initstream(); this state was made by '
                              'initstate(video_path): track it with propagateinvideo')
    raise VideoStateError(f'{method} needs a state from initstate(video_path); this one is a stream from '
                          'initstream(): give it frames one at a time with trackframe(state, frame)')


def checkpromptframe(state: dict, frame_idx: int, argname: str = 'frame_idx') -> int:
    """A frame index a prompt may go on: any frame of a video, the latest (held) frame of a stream.

    Args:
        state: a checked inference state.
        frame_idx: the index to check, a Python or numpy int.
        argname: the argument's name in error messages.
    Returns:
        ``frame_idx`` as a Python int.
    Raises:
        TypeError: a non-int. FrameIndexError: (a ValueError) outside the video, or not the frame a stream holds.
        VideoStateError: a stream that holds no frame yet.
    """
    if not state.get('is_stream'):
        return checkframeindex(frame_idx, state['num_frames'], argname)
    if state['num_frames'] == 0:
        raise VideoStateError('this stream holds no frame yet: give it one with trackframe(state, frame), then '
                              'prompt that frame')
    held = state['num_frames'] - 1
    if isinstance(frame_idx, (bool, np.bool_)) or not isinstance(frame_idx, (int, np.integer)):
        raise TypeError(f'{argname} must be an int (the latest frame of this stream, {held}), got '
                        f'{type(frame_idx).__name__} {frame_idx!r}')
    if frame_idx != held:
        raise FrameIndexError(f'{argname} {int(frame_idx)}: this stream holds only frame {held} (the latest); '
                              'prompts go on the latest frame')
    return held


def trackinglength(state: dict) -> int:
    """The video length tracking is told: the frame count, or for a stream (no known length) ``STREAM_LENGTH``.

    Args:
        state: an inference state.
    Returns:
        A positive int.
    """
    return STREAM_LENGTH if state.get('is_stream') else state['num_frames']


def checkprompted(state: dict, method: str) -> None:
    """Check that tracking can start: there is an object, and each has a prompted frame.

    Args:
        state: a checked inference state.
        method: the public method's name, for the message.
    Returns:
        None.
    Raises:
        VideoStateError: no object, or one whose prompts were all cleared.
    """
    if not state['obj_ids']:
        raise VideoStateError(f'{method} needs prompts: add points, a box or a mask for at least one object first '
                              '(addnewpointsorbox / addnewmask)')
    for obj_idx, obj_id in state['obj_idx_to_id'].items():
        if not (state['output_dict_per_obj'][obj_idx][COND] or state['temp_output_dict_per_obj'][obj_idx][COND]):
            raise VideoStateError(f'object {obj_id!r} has no prompted frame (its prompts were cleared): add '
                                  'points, a box or a mask for it, or remove it with removeobject')


def checkobjid(obj_id: Union[int, str], argname: str = 'obj_id') -> Union[int, str]:
    """An object id: an int (numpy ints become int) or a str.

    Meta's predictor takes any hashable, but True, 1.0 and numpy.int64(1) would all address object 1, and None
    or a float is almost always a mistake, so only ints and strings are ids here (bool is not an int here).

    Args:
        obj_id: the id to check.
        argname: the argument's name in error messages.
    Returns:
        The id, a Python int or a str.
    Raises:
        TypeError: anything else (bool included), naming ``argname``.
    """
    if isinstance(obj_id, (bool, np.bool_)):
        raise TypeError(f'{argname} must be an int or a str object id, got bool {obj_id!r}')
    if isinstance(obj_id, (int, np.integer)):
        return int(obj_id)
    if isinstance(obj_id, str):
        return obj_id
    raise TypeError(f'{argname} must be an int or a str object id, got {type(obj_id).__name__} {obj_id!r}')


# ---------------------------------------------------------------------- objects
def objidx(state: dict, obj_id: Union[int, str], argname: str = 'obj_id') -> int:
    """Slot of an existing object.

    Args:
        state: an inference state.
        obj_id: an int or str object id.
        argname: the argument's name in error messages.
    Returns:
        The object's slot, an int in [0, N - 1].
    Raises:
        TypeError: a non-id; VideoStateError: an unknown id (naming the known ids).
    """
    idx = state['obj_id_to_idx'].get(checkobjid(obj_id, argname))
    if idx is None:
        raise VideoStateError(f'{argname} {obj_id!r} is not an object of this state; known ids: {state["obj_ids"]}')
    return idx


def addobject(state: dict, obj_id: Union[int, str]) -> int:
    """Slot of ``obj_id``, creating an empty object when it is new (objects may join at any time).

    Args:
        state: an inference state (modified when the object is new).
        obj_id: an int or str object id (TypeError otherwise).
    Returns:
        The object's slot, an int.
    """
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
def newobjectguard(state: dict, obj_id: Union[int, str]) -> Iterator[int]:
    """Slot of ``obj_id`` (created if new) for one call; a slot created for a call that fails is removed again.

    Args:
        state: an inference state.
        obj_id: an int or str object id.
    Returns:
        A context manager yielding the object's slot (an int).
    Raises:
        TypeError: an obj_id that is neither an int nor a str; whatever the guarded call raises.
    """
    count = len(state['obj_ids'])
    obj_idx = addobject(state, obj_id)
    try:
        yield obj_idx
    except BaseException:
        if len(state['obj_ids']) > count:
            dropobject(state, obj_idx)
        raise


def dropobject(state: dict, obj_idx: int) -> None:
    """Remove slot ``obj_idx`` and renumber the later ones, keeping the order of the others.

    Args:
        state: an inference state (modified).
        obj_idx: an existing slot.
    Returns:
        None.
    """
    remaining = [obj_id for idx, obj_id in state['obj_idx_to_id'].items() if idx != obj_idx]
    for key in _PER_OBJECT:
        old = state[key]
        state[key] = {new: old[idx] for new, idx in enumerate(i for i in sorted(old) if i != obj_idx)}
    state['obj_id_to_idx'] = OrderedDict((obj_id, idx) for idx, obj_id in enumerate(remaining))
    state['obj_idx_to_id'] = OrderedDict(enumerate(remaining))
    state['obj_ids'] = remaining


def clearobjects(state: dict) -> None:
    """Forget every object, prompt and output (the video and its cached features stay).

    Args:
        state: an inference state (modified).
    Returns:
        None.
    """
    for key in _PER_OBJECT:
        state[key].clear()
    state['obj_id_to_idx'].clear()
    state['obj_idx_to_id'].clear()
    state['obj_ids'] = []


def anyoutput(state: dict, obj_idx: int, frame_idx: int, temp_key: Optional[str] = None) -> Optional[dict]:
    """The newest record of an object on a frame: a temp output first (of ``temp_key``), then stored ones.

    Args:
        state: an inference state.
        obj_idx: the object's slot.
        frame_idx: the frame.
        temp_key: COND or NON_COND to look at that kind of temp output first, or None for stored ones only.
    Returns:
        The frame record (``pred_masks`` (1, 1, S/4, S/4) float32 low-res logits, ...; see the module
        docstring), or None when the object has none on that frame.
    """
    record = None
    if temp_key is not None:
        record = state['temp_output_dict_per_obj'][obj_idx][temp_key].get(frame_idx)
    outputs = state['output_dict_per_obj'][obj_idx]
    if record is None:
        record = outputs[COND].get(frame_idx)
    if record is None:
        record = outputs[NON_COND].get(frame_idx)
    return record
