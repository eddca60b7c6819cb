"""Stream mode of the video predictor: frames tracked one at a time as they arrive, in memory that stops growing.

A stream state is an inference state (:mod:`.state`) whose frames arrive one by one through ``trackframe``;
it holds only the latest one. Frame t's output equals what Meta's offline predictor gives on the same
frames when, for each frame s = 0..t in turn, it first propagates frame s alone
(``propagate_in_video(state, start_frame_idx=s, max_frame_num_to_track=0)``, once an object has a prompt)
and then receives the prompts given on frame s. A stream has no known length, so it is tracked as a video
of at least ``max_obj_ptrs_in_encoder`` (16) frames: on shorter videos Meta scales the object pointers'
temporal encoding by the video's length.

What a stream keeps after each frame: that frame and its image features; each object's prompted
(conditioning) frames and their prompts; the tracked outputs of the last ``streamwindow`` frames (what later
frames read: memories of the last ``num_maskmem * memory_temporal_stride_for_eval`` frames, object pointers
of the last ``max_obj_ptrs_in_encoder - 1``). Everything older is dropped, so the bytes held stop growing
once those windows are full, however long the stream runs.
"""
from typing import Optional, Union

import numpy as np
import torch
from PIL import Image

from ssseg.modules.utils.checks import asflag
from ssseg.modules.utils.heap import trimheap

from .frames import FrameIndexError, normalizationtable, normalizeframe
from .memory import HEAP_TRIM_FRAMES
from .state import COND, NON_COND, checkprompted, checkstate, checkstream, newstate

_PER_FRAME_INPUTS = ('point_inputs_per_obj', 'mask_inputs_per_obj')


class StreamFrames:
    """The frames of a stream as model inputs; only the latest one is held.

    ``len()`` is the number of frames appended so far; ``video_height`` / ``video_width`` are None until the
    first frame fixes them. ``frames[t]`` (the float32 (3, S, S) input) and ``rgbframe(t)`` serve the latest
    frame only and raise :class:`FrameIndexError` for any other.

    Args:
        imagesize: the model's input side S.
        device: where the model inputs are kept.
    """

    def __init__(self, imagesize: int, device: Union[str, torch.device]) -> None:
        self.imagesize, self.device = imagesize, torch.device(device)
        self.video_height = self.video_width = None
        self._table = normalizationtable()
        self._count, self._latest = 0, None

    def __len__(self):
        return self._count

    def append(self, rgb: np.ndarray) -> int:
        """Make ``rgb`` the held frame.

        Args:
            rgb: (H, W, 3) uint8 RGB, checked by :func:`asframe`.
        Returns:
            Its frame index.
        """
        tensor = normalizeframe(rgb, self.imagesize, self._table).to(self.device)
        if self.video_height is None:
            self.video_height, self.video_width = rgb.shape[:2]
        self._latest = (self._count, tensor, rgb)
        self._count += 1
        return self._count - 1

    def __getitem__(self, frame_idx: int) -> torch.Tensor:
        """The held frame's float32 (3, S, S) model input (not a copy: read it, do not modify it)."""
        return self._held(frame_idx)[1]

    def rgbframe(self, frame_idx: int) -> np.ndarray:
        """The held frame as given, (H, W, 3) uint8 RGB (a copy).

        Args:
            frame_idx: the held frame's index.
        Returns:
            (video_height, video_width, 3) uint8.
        Raises:
            FrameIndexError: any other index.
        """
        return self._held(frame_idx)[2].copy()

    def close(self) -> None:
        """Drop the held frame.

        Returns:
            None.
        """
        self._latest = None

    def _held(self, frame_idx):
        if self._latest is None or frame_idx != self._latest[0]:
            held = 'no frame' if self._latest is None else f'only frame {self._latest[0]} (the latest)'
            raise FrameIndexError(f'frame {frame_idx} is not held by this stream: it holds {held}')
        return self._latest


def asframe(frame: Union[np.ndarray, Image.Image], size: Optional[tuple] = None) -> np.ndarray:
    """Check one stream frame.

    Args:
        frame: an (H, W, 3) uint8 RGB numpy array, or a PIL image (converted to RGB, as Meta's loader does).
        size: (H, W) the stream's frames have (fixed by its first frame), or None for the first frame.
    Returns:
        (H, W, 3) uint8 RGB array.
    Raises:
        TypeError: neither an array nor a PIL image, or an array of another dtype.
        ValueError: not (H, W, 3), or another size than the stream's.
    """
    if isinstance(frame, Image.Image):
        frame = np.asarray(frame.convert('RGB'))
    elif not isinstance(frame, np.ndarray):
        raise TypeError(f'frame must be an (H, W, 3) uint8 RGB numpy array or a PIL image, got {type(frame).__name__}')
    if frame.dtype != np.uint8:
        raise TypeError(f'frame must have dtype uint8 (RGB values 0..255), got {frame.dtype}')
    if frame.ndim != 3 or frame.shape[2] != 3 or 0 in frame.shape:
        raise ValueError(f'frame must be (H, W, 3) RGB, got shape {frame.shape}')
    if size is not None and frame.shape[:2] != tuple(size):
        raise ValueError(f'frame is {frame.shape[1]}x{frame.shape[0]} (WxH) but this stream\'s frames are '
                         f'{size[1]}x{size[0]}, fixed by its first frame: every frame of a stream has one size')
    return frame


class SAMV2VideoStreaming:
    """The stream API of :class:`SAMV2VideoPredictor` (a mixin: it uses the predictor's tracking methods)."""

    @torch.inference_mode()
    def initstream(self, offload_state_to_cpu: bool = False) -> dict:
        """An empty stream: frames come one by one through :meth:`trackframe`; the first fixes their size.

        Args:
            offload_state_to_cpu: stored masks and memories live on the CPU.
        Returns:
            The stream's inference state, a dict (the keys of :mod:`.state`, ``num_frames`` counting the frames
            given so far). Prompts use ``addnewpoints``, ``addnewpointsorbox``, ``addnewmask`` with ``frame_idx``
            the latest frame; ``removeobject`` works at any time.
        """
        offload_state_to_cpu = asflag(offload_state_to_cpu, 'offload_state_to_cpu')
        frames = StreamFrames(self.model.image_size, self.device)
        state = newstate(frames, self.model.image_size, self.device, False, offload_state_to_cpu)
        state['is_stream'] = True
        return state

    @torch.inference_mode()
    def trackframe(self, inference_state: dict, frame: Union[np.ndarray, Image.Image]) -> tuple[int, list,
                                                                                               torch.Tensor]:
        """Append the next frame of a stream and track every prompted object into it.

        Args:
            inference_state: from :meth:`initstream`.
            frame: (H, W, 3) uint8 RGB numpy array or a PIL image, of the stream's size.
        Returns:
            ``(frame_idx, obj_ids, mask_logits)`` as ``propagateinvideo`` yields them: ``frame_idx`` 0, 1, 2, ...;
            ``mask_logits`` float32 (N, 1, H, W) on the model's device, rows in ``obj_ids`` order (no object
            yet: ``[]`` and a (0, 1, H, W) tensor).
        Raises:
            TypeError / ValueError: a bad frame (see :func:`asframe`), a state made by ``initstate``, or an object
                whose prompts were all cleared (VideoStateError); the stream is unchanged and takes the next call.
        """
        state = inference_state
        checkstate(state, self.model.image_size, self.device)
        checkstream(state, True, 'trackframe')
        frames = state['images']
        rgb = asframe(frame, None if len(frames) == 0 else (frames.video_height, frames.video_width))
        if state['obj_ids']:
            checkprompted(state, 'trackframe')
            self._consolidate(state)  # the latest frame's prompts become memories while that frame is held
        frame_idx = frames.append(rgb)
        state['num_frames'], state['cached_features'] = len(frames), {}
        state['video_height'], state['video_width'] = frames.video_height, frames.video_width
        if state['obj_ids']:
            masks = self._trackframe(state, frame_idx, len(state['obj_ids']), reverse=False)
            logits = self._tovideores(state, torch.cat(masks, dim=0))
        else:
            logits = torch.zeros((0, 1, frames.video_height, frames.video_width), device=state['device'])
        self._forgetbehind(state, frame_idx)
        if frame_idx % HEAP_TRIM_FRAMES == HEAP_TRIM_FRAMES - 1:
            trimheap()  # one frame's page faults per HEAP_TRIM_FRAMES keep resident memory from creeping up
        return frame_idx, list(state['obj_ids']), logits

    @property
    def streamwindow(self) -> int:
        """Frames behind the latest whose tracked outputs a stream keeps.

        Returns:
            ``memorywindow``, or ``max_obj_ptrs_in_encoder - 1`` when that is larger and pointers are used.
        """
        pointers = self.model.max_obj_ptrs_in_encoder - 1 if self.model.use_obj_ptrs_in_encoder else 0
        return max(self.memorywindow, pointers)

    def _forgetbehind(self, state, frame_idx):
        """Drop what no later frame of the stream can read (see the module docstring)."""
        keep_from, memory_from = frame_idx + 1 - self.streamwindow, frame_idx + 1 - self.memorywindow
        for obj_idx, outputs in state['output_dict_per_obj'].items():
            non_cond = outputs[NON_COND]
            for t in [t for t in non_cond if t < keep_from]:
                del non_cond[t]
            for t, record in non_cond.items():
                # no memory of a stream is ever encoded again, so what that would need goes at once
                record['_holes'] = None
                if t < memory_from:
                    record['maskmem_features'] = None
            tracked = state['frames_tracked_per_obj'][obj_idx]
            for t in [t for t in tracked if t < frame_idx]:
                del tracked[t]
            for key in _PER_FRAME_INPUTS:
                inputs = state[key][obj_idx]
                for t in [t for t in inputs if t < frame_idx and t not in outputs[COND]]:
                    del inputs[t]
