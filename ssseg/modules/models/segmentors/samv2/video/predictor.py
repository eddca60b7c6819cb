"""SAMV2VideoPredictor: prompt objects on some frames of a video and track them through the others.

Gives the outputs of Meta's ``SAM2VideoPredictor`` (sam2 1.1.0: every object is tracked on its own,
from its own prompted frames, and objects may be added at any time), with two differences in cost:
frames are decoded lazily (see :class:`VideoFrames`) and the memories of frames that tracking has left
behind are released (see :mod:`.memory`), so a long video runs in bounded memory.

Coordinates: points and boxes are (x, y) pixels of the original frame (or [0, 1] fractions with
``normalize_coords=False``); masks in and out are at the video's resolution (H, W). Every method
returning masks returns ``(frame_idx, obj_ids, mask_logits)`` with ``mask_logits`` a float32
(num_objects, 1, H, W) tensor on the model's device, rows in ``obj_ids`` order; ``mask_logits > 0`` is
the mask (an object without output on the frame gets -1024 everywhere).

Bad arguments raise before the state changes, so a failed call leaves the state as it was: TypeError for a
wrong type (a non-int frame index, an object id that is neither int nor str, a flag that is not a bool, something
that is not a state), FrameIndexError (a ValueError, and an IndexError for older code) for a frame index outside
[0, num_frames - 1], ValueError for a bad value (prompt shapes and values, NaN/inf) and VideoStateError (a
ValueError) for a call the state cannot serve (an unknown object, propagation without prompts).
"""
import os
from typing import Iterator, Optional, Sequence, Union

import numpy as np
import torch
from numpy.typing import ArrayLike
from tqdm import tqdm

from ssseg.modules.models.segmentors.samv2.model import SAMV2
from ssseg.modules.models.segmentors.samv2.predictors.base import SAMV2PredictorBase, showprogress
from ssseg.modules.utils.aliases import metaaliases
from ssseg.modules.utils.checks import asflag
from ssseg.modules.utils.heap import trimheap

from .frames import VideoFrames, checkframeindex
from .memory import HEAP_TRIM_FRAMES, releaseframe, releaseoutside
from .prompts import maskprompt, pointprompt
from .state import (
    COND,
    VideoStateError,
    checkobjid,
    checkprompted,
    checkpromptframe,
    checkstate,
    checkstream,
    clearobjects,
    dropobject,
    newobjectguard,
    newstate,
    objidx,
)
from .stream import SAMV2VideoStreaming
from .tracking import SAMV2VideoTracking


@metaaliases('init_state', 'reset_state', 'add_new_points', 'add_new_points_or_box', 'add_new_mask',
             'propagate_in_video', 'remove_object', 'clear_all_prompts_in_frame', '_apply_non_overlapping_constraints',
             'init_stream', 'track_frame')
class SAMV2VideoPredictor(SAMV2VideoStreaming, SAMV2VideoTracking, SAMV2PredictorBase):
    """Interactive video object segmentation with SAM 2 / SAM 2.1.

    Memory (details in :mod:`.memory`): frames are decoded on demand and only the last frame's image features are
    cached. Memory features are stored as bfloat16 (as Meta's predictor stores them), with one shared copy of their
    position encoding. The S/4 x S/4 float32 low-res logits, object pointers and scores of every visited frame are
    kept: they are the outputs and what refinement clicks start from. On a CPU the freed heap pages go back to the
    system every ``HEAP_TRIM_FRAMES`` frames of a propagation, so resident memory does not creep up.

    Live video (a camera, a stream, a video too long to hold): ``initstream()`` and ``trackframe(state, frame)``
    track frames as they arrive, with prompts on the latest frame, in memory that stops growing (:mod:`.stream`).

    Args:
        samv2_cfg, model, device, load_ckpt_strict, use_default: the model, chosen as for :class:`SAMV2ImagePredictor`
            (exactly one of ``samv2_cfg``, ``use_default_samv2{,1}_{t,s,bplus,l}=True`` or a built ``model``).
        apply_postprocessing: default True, as Meta's ``build_sam2_video_predictor``: a single-mask output falls back to
            the most stable multimask candidate, masks from clicks are binarized before they are encoded into memory,
            and ``fill_hole_area`` defaults to 8 (else 0; also 0 with ``model``, whose build options are its own).
        fill_hole_area: background holes of at most this many pixels of the S/4 x S/4 low-res mask become
            foreground (logit 0.1), with OpenCV on the CPU. A number >= 0, else ValueError.
        non_overlap_masks: each output pixel keeps only its highest-scoring object.
        clear_non_cond_mem_around_input: after a prompt on a frame, forget that object's tracked (not prompted)
            outputs within W = ``num_maskmem * memory_temporal_stride_for_eval`` frames of it; with several
            objects only if ``clear_non_cond_mem_for_multi_obj``.
        add_all_frames_to_correct_as_cond: a correction on a tracked frame makes it a conditioning frame.
        release_memory: (default) a tracked frame's memory features are dropped once tracking is more than W
            frames past it, and encoded again from its frame if a later call reads them (same outputs, one
            image encoding each); prompted frames keep theirs. False keeps everything, as Meta does.
        progress: progress bar while propagating (None: only when stderr is a terminal).
        precision: 'float32' (default) or the opt-in 'bfloat16', as for :class:`SAMV2ImagePredictor`.
        batch_objects: True runs the objects tracked on a frame through memory attention, the mask decoder and the
            memory encoder as one batch, their memory banks of different lengths padded and masked; each object
            still reads only its own memories, so the outputs are those of tracking one object at a time (False,
            Meta's way) up to float rounding. None (default): batched on CUDA, one at a time on a CPU.
        compile: opt in to ``torch.compile`` of the model's heavy modules, as for :class:`SAMV2ImagePredictor`; a new
            number of objects or of memory frames reuses the compiled code.
    """

    def __init__(self, samv2_cfg: Optional[dict] = None, model: Optional[SAMV2] = None,
                 device: Optional[Union[str, int, torch.device]] = None, load_ckpt_strict: Optional[bool] = None,
                 apply_postprocessing: Optional[bool] = None, fill_hole_area: Optional[float] = None,
                 non_overlap_masks: bool = False, clear_non_cond_mem_around_input: bool = False,
                 clear_non_cond_mem_for_multi_obj: bool = False, add_all_frames_to_correct_as_cond: bool = False,
                 release_memory: bool = True, progress: Optional[bool] = None, precision: Optional[str] = None,
                 batch_objects: Optional[bool] = None, compile: Optional[bool] = None, **use_default: bool) -> None:
        flags = dict(non_overlap_masks=non_overlap_masks,
                     clear_non_cond_mem_around_input=clear_non_cond_mem_around_input,
                     clear_non_cond_mem_for_multi_obj=clear_non_cond_mem_for_multi_obj,
                     add_all_frames_to_correct_as_cond=add_all_frames_to_correct_as_cond, release_memory=release_memory)
        flags = {name: asflag(value, name) for name, value in flags.items()}
        if progress is not None:
            progress = asflag(progress, 'progress')
        if apply_postprocessing is not None:
            apply_postprocessing = asflag(apply_postprocessing, 'apply_postprocessing')
        if fill_hole_area is None:
            # Meta's post-processing fills holes of up to 8 pixels; a given model= brings no such choice
            fill_hole_area = 8 if (model is None and apply_postprocessing is not False) else 0
        if isinstance(fill_hole_area, bool) or not isinstance(fill_hole_area, (int, float)) or not fill_hole_area >= 0:
            raise ValueError(f'fill_hole_area must be a number >= 0 (pixels of the low-res mask), '
                             f'got {fill_hole_area!r}')
        buildoptions = dict(load_ckpt_strict=load_ckpt_strict, apply_postprocessing=apply_postprocessing,
                            precision=precision, compile=compile)
        self._usemodel(model, samv2_cfg, device, buildoptions, use_default, video=True)
        self.fill_hole_area, self.progress = fill_hole_area, progress
        # batching pays on GPUs; on a CPU it measured no faster than one object at a time (docs/benchmarks.md)
        self.batch_objects = (self.model.device.type == 'cuda' if batch_objects is None
                              else asflag(batch_objects, 'batch_objects'))
        for name, value in flags.items():
            setattr(self, name, value)

    # ------------------------------------------------------------------ state
    @torch.inference_mode()
    def initstate(self, video_path: Union[str, os.PathLike, Sequence, np.ndarray], offload_video_to_cpu: bool = False,
                  offload_state_to_cpu: bool = False, async_loading_frames: bool = False) -> dict:
        """A new inference state for a video; frames are decoded when first needed (frame 0 at once).
        Args:
            video_path: a folder of numbered JPEG frames, a video file or a list of (H, W, 3) uint8 RGB frames of one
                size (or one (T, H, W, 3) uint8 array).
            offload_video_to_cpu: decoded frames wait on the CPU; offload_state_to_cpu: stored masks and memories
                live on the CPU; async_loading_frames: decode the next frames in a background thread.
        Returns:
            The inference state, a dict (its keys are in :mod:`.state`).
        Raises:
            Errors name ``video_path``: FileNotFoundError (no such path), TypeError (wrong type or dtype),
            ValueError (empty or unlistable folder, unreadable or undecodable file, non-numeric frame names, frames
            of several sizes or not (H, W, 3)); a corrupt later frame raises ValueError when it is reached.
        """
        offload_video_to_cpu = asflag(offload_video_to_cpu, 'offload_video_to_cpu')
        offload_state_to_cpu = asflag(offload_state_to_cpu, 'offload_state_to_cpu')
        async_loading_frames = asflag(async_loading_frames, 'async_loading_frames')
        frames = VideoFrames(video_path, self.model.image_size, offload_video_to_cpu=offload_video_to_cpu,
                             async_loading_frames=async_loading_frames, device=self.device)
        return newstate(frames, self.model.image_size, self.device, offload_video_to_cpu, offload_state_to_cpu)

    @torch.inference_mode()
    def resetstate(self, inference_state: dict) -> None:
        """Remove every object, prompt and result; the video stays loaded.
        Args:
            inference_state: the dict made by :meth:`initstate` (on this predictor, else TypeError / ValueError).
        Returns:
            None.
        """
        checkstate(inference_state, self.model.image_size, self.device)
        clearobjects(inference_state)

    # ------------------------------------------------------------------ prompts
    @torch.inference_mode()
    def addnewpointsorbox(self, inference_state: dict, frame_idx: int, obj_id: Union[int, str],
                          points: Optional[ArrayLike] = None, labels: Optional[ArrayLike] = None,
                          clear_old_points: bool = True, normalize_coords: bool = True,
                          box: Optional[ArrayLike] = None) -> tuple[int, list, torch.Tensor]:
        """Add clicks and/or a box for object ``obj_id`` on frame ``frame_idx`` and segment it there.
        Args:
            inference_state: from :meth:`initstate` (or :meth:`initstream`); frame_idx: an int in [0, num_frames - 1]
                (on a stream: its latest frame); obj_id: an int or a str (a new one adds an object).
            points: (P, 2) or (1, P, 2) (x, y) pixels of the frame; labels: (P,) or (1, P), 1 foreground, 0
                background. On a frame the object was already tracked on, the clicks refine the tracked mask.
            box: one x1, y1, x2, y2 box, pixels too (needs ``clear_old_points``; it goes before the points).
            clear_old_points: False adds to the object's clicks here; normalize_coords: False takes [0, 1] fractions.
        Returns:
            ``(frame_idx, obj_ids, mask_logits)``, the (N, 1, H, W) float32 logits (video resolution) of all N objects.
        Raises:
            ValueError: NaN/inf, labels outside {-1, 0, 1, 2, 3}, a box that is not 4 numbers or has x2 < x1 or
                y2 < y1 (coordinates outside the frame are accepted, as by Meta's predictor).
        """
        state = inference_state
        checkstate(state, self.model.image_size, self.device)
        frame_idx = checkpromptframe(state, frame_idx)
        obj_id = checkobjid(obj_id)
        clear_old_points = asflag(clear_old_points, 'clear_old_points')
        normalize_coords = asflag(normalize_coords, 'normalize_coords')
        coords, labels = pointprompt(state, points, labels, box, clear_old_points, normalize_coords)
        with newobjectguard(state, obj_id) as obj_idx:
            old = state['point_inputs_per_obj'][obj_idx].get(frame_idx) if not clear_old_points else None
            if old is not None:
                coords = torch.cat([old['point_coords'], coords], dim=1)
                labels = torch.cat([old['point_labels'], labels], dim=1)
            point_inputs = {'point_coords': coords, 'point_labels': labels}
            return self._promptframe(state, obj_idx, frame_idx, point_inputs=point_inputs)

    def addnewpoints(self, inference_state: dict, frame_idx: int, obj_id: Union[int, str],
                     points: Optional[ArrayLike] = None, labels: Optional[ArrayLike] = None,
                     clear_old_points: bool = True, normalize_coords: bool = True,
                     box: Optional[ArrayLike] = None) -> tuple[int, list, torch.Tensor]:
        """Same as :meth:`addnewpointsorbox` (Meta's older name).
        Args:
            inference_state, frame_idx, obj_id, points, labels, clear_old_points, normalize_coords, box: as there.
        Returns:
            ``(frame_idx, obj_ids, mask_logits)``, as there.
        """
        return self.addnewpointsorbox(inference_state, frame_idx, obj_id, points=points, labels=labels,
                                      clear_old_points=clear_old_points, normalize_coords=normalize_coords, box=box)

    @torch.inference_mode()
    def addnewmask(self, inference_state: dict, frame_idx: int, obj_id: Union[int, str],
                   mask: Union[np.ndarray, torch.Tensor]) -> tuple[int, list, torch.Tensor]:
        """Give object ``obj_id``'s mask on frame ``frame_idx``.
        Args:
            inference_state, frame_idx, obj_id: as for :meth:`addnewpointsorbox`.
            mask: an (H, W) array at the video's resolution (bool or 0/1; non-zero is in), or a tensor with values in
                [0, 1] (kept as they are, as Meta's predictor does). A mask of another size is resized to the model's
                input (as Meta's predictor does) with a warning, unless it is already S x S (the model's input size).
        Returns:
            ``(frame_idx, obj_ids, mask_logits)``, the (N, 1, H, W) float32 logits (video resolution) of all N objects.
        Raises:
            ValueError: NaN/inf, a mask that is not 2-D.
        """
        state = inference_state
        checkstate(state, self.model.image_size, self.device)
        frame_idx = checkpromptframe(state, frame_idx)
        obj_id = checkobjid(obj_id)
        mask_inputs = maskprompt(mask, state['image_size'], state['device'],
                                 (state['video_height'], state['video_width']))
        with newobjectguard(state, obj_id) as obj_idx:
            return self._promptframe(state, obj_idx, frame_idx, mask_inputs=mask_inputs)

    @torch.inference_mode()
    def clearallpromptsinframe(self, inference_state: dict, frame_idx: int, obj_id: Union[int, str],
                               need_output: bool = True) -> Optional[tuple[int, list, torch.Tensor]]:
        """Remove object ``obj_id``'s prompts on one frame (its output there becomes an ordinary tracked one).
        Args:
            inference_state, frame_idx, obj_id: as for :meth:`addnewpointsorbox` (a known object); need_output: a bool.
        Returns:
            ``(frame_idx, obj_ids, mask_logits)`` (logits (N, 1, H, W) float32), or None with ``need_output=False``.
        """
        state = inference_state
        checkstate(state, self.model.image_size, self.device)
        frame_idx = checkpromptframe(state, frame_idx)
        need_output = asflag(need_output, 'need_output')
        self._clearprompts(state, objidx(state, obj_id), frame_idx)
        if not need_output:
            return None
        return frame_idx, list(state['obj_ids']), self._framemasks(state, frame_idx, self._tempiscond(state, frame_idx))

    @torch.inference_mode()
    def removeobject(self, inference_state: dict, obj_id: Union[int, str], strict: bool = False,
                     need_output: bool = True) -> tuple[list, list]:
        """Remove object ``obj_id``.
        Args:
            inference_state: from :meth:`initstate`. obj_id: an int or a str; an unknown one (of the right type) is
                ignored and returns ``(obj_ids, [])``, as in Meta's predictor. strict, need_output: bools.
        Returns:
            ``(obj_ids, updated_frames)``: the remaining ids and, with ``need_output``, a list of ``(frame_idx,
            mask_logits (N, 1, H, W) float32)`` for the frames the object had prompts on.
        Raises:
            VideoStateError: (a ValueError) an unknown id with ``strict=True``, listing the known ids.
            TypeError: an id that is neither an int nor a str, either way.
        """
        state = inference_state
        checkstate(state, self.model.image_size, self.device)
        strict = asflag(strict, 'strict')
        need_output = asflag(need_output, 'need_output')
        try:
            obj_idx = objidx(state, obj_id)
        except VideoStateError:
            if strict:
                raise
            return list(state['obj_ids']), []
        if len(state['obj_ids']) == 1:
            clearobjects(state)
            return [], []
        prompted = sorted(set(state['point_inputs_per_obj'][obj_idx]) | set(state['mask_inputs_per_obj'][obj_idx]))
        for frame_idx in prompted:
            self._clearprompts(state, obj_idx, frame_idx)
        dropobject(state, obj_idx)
        updated = []
        if need_output:
            # a stream re-outputs only the frame it holds: the masks of earlier frames were handed out already
            for frame_idx in prompted if not state.get('is_stream') else set(prompted) & {state['num_frames'] - 1}:
                updated.append((frame_idx, self._framemasks(state, frame_idx, self._tempiscond(state, frame_idx))))
        return list(state['obj_ids']), updated

    # ------------------------------------------------------------------ propagation
    def propagateinvideo(self, inference_state: dict, start_frame_idx: Optional[int] = None,
                         max_frame_num_to_track: Optional[int] = None,
                         reverse: bool = False) -> Iterator[tuple[int, list, torch.Tensor]]:
        """Track every object through the video: prompted frames give their prompted masks, the rest come from memory.
        Tracked outputs overwrite earlier results. Arguments and prompts are checked here, the work happens while
        iterating. A pass that stops early (an error while tracking, or the caller breaking out) keeps the frames
        tracked so far; running the pass again gives the same results as on a fresh state.
        Args:
            inference_state: from :meth:`initstate`. start_frame_idx: an int (default: the earliest prompted frame).
            max_frame_num_to_track: None or an int >= 0, frames covered after the start (default: to the end).
            reverse: towards the start (nothing when starting at frame 0, as in Meta's).
        Returns:
            An iterator yielding ``(frame_idx, obj_ids, mask_logits (N, 1, H, W) float32 logits)`` per frame.
        Raises:
            VideoStateError: no object, or one without prompts (they were cleared).
        """
        state = inference_state
        checkstate(state, self.model.image_size, self.device)
        checkstream(state, False, 'propagateinvideo')
        if start_frame_idx is not None:
            start_frame_idx = checkframeindex(start_frame_idx, state['num_frames'], 'start_frame_idx')
        count = max_frame_num_to_track
        if count is not None:
            if isinstance(count, (bool, np.bool_)) or not isinstance(count, (int, np.integer)):
                raise TypeError(f'max_frame_num_to_track must be None or an int >= 0, got {type(count).__name__} '
                                f'{count!r}')
            if count < 0:
                raise ValueError(f'max_frame_num_to_track must be None or an int >= 0, got {int(count)}')
            count = int(count)
        reverse = asflag(reverse, 'reverse')
        checkprompted(state, 'propagateinvideo')
        return self._propagate(state, start_frame_idx, count, reverse)

    @torch.inference_mode()
    def _propagate(self, state, start_frame_idx, max_frame_num_to_track, reverse):
        self._consolidate(state)
        num_frames, num_objects = state['num_frames'], len(state['obj_ids'])
        outputs = state['output_dict_per_obj']
        if start_frame_idx is None:
            start_frame_idx = min(t for obj_outputs in outputs.values() for t in obj_outputs[COND])
        if max_frame_num_to_track is None:
            max_frame_num_to_track = num_frames
        if reverse:
            end = max(start_frame_idx - max_frame_num_to_track, 0)
            order = range(start_frame_idx, end - 1, -1) if start_frame_idx > 0 else range(0)
        else:
            end = min(start_frame_idx + max_frame_num_to_track, num_frames - 1)
            order = range(start_frame_idx, end + 1)
        window, sign = self.memorywindow, -1 if reverse else 1
        if self.release_memory:
            releaseoutside(state, start_frame_idx, reverse, window)
        bar = tqdm(order, desc='propagate in video', disable=not showprogress(self.progress))
        for step, frame_idx in enumerate(bar):
            masks = self._trackframe(state, frame_idx, num_objects, reverse)
            if self.release_memory:
                releaseframe(state, frame_idx - sign * (window + 1))
            if step % HEAP_TRIM_FRAMES == HEAP_TRIM_FRAMES - 1:
                trimheap()  # one frame's page faults per HEAP_TRIM_FRAMES keep resident memory from creeping up
            yield frame_idx, list(state['obj_ids']), self._tovideores(state, torch.cat(masks, dim=0))

    def applynonoverlappingconstraints(self, pred_masks: torch.Tensor) -> torch.Tensor:
        """Keep each pixel for the highest-scoring object only: the others' logits are clamped to at most -10.
        Args:
            pred_masks: (N, 1, H, W) float logits of N objects on one frame (any H, W, e.g. the merged
                ``mask_logits`` of several propagations); ValueError if it is not 4-D.
        Returns:
            A tensor of the same shape (the input when N = 1).
        """
        return self.model.applynonoverlappingconstraints(pred_masks)
