"""SAMV2VideoPredictor: prompt objects on some frames of a video and track them through the others.

Gives the outputs of Meta's ``SAM2VideoPredictor`` (sam2 1.1.0: every object is tracked on its own,
from its own prompted frames, and objects may be added at any time), with two differences in cost:
frames are decoded lazily (see :class:`VideoFrames`) and the memories of frames that tracking has left
behind are released (see :mod:`.videostate`), so a long video runs in bounded memory.

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
import sys

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from ....utils.heap import trimheap
from .modelchoice import buildsamv2, choosesegmentorcfg
from .prompts import asflag
from .samv2 import NO_OBJ_SCORE
from .videoio import VideoFrames, checkframeindex
from .videostate import (COND, NON_COND, RebuildingOutputs, VideoStateError, anyoutput,
                         checkobjid, checkstate, clearobjects, dropobject, fillsmallholes, maskprompt, newobjectguard,
                         newstate, objidx, pointprompt, releaseframe, releaseoutside, unfilledmasks)

# frames between two returns of free heap pages to the system during a propagation (see heap.trimheap)
HEAP_TRIM_FRAMES = 50
# largest prompt logit magnitude fed back to the decoder with refinement clicks (avoids extreme values)
PREV_LOGITS_CLAMP = 32.0


class SAMV2VideoPredictor:
    """Interactive video object segmentation with SAM 2 / SAM 2.1.

    The model is chosen as for :class:`SAMV2ImagePredictor` (exactly one of ``samv2_cfg`` or
    ``use_default_samv2{,1}_{t,s,bplus,l}=True``; ``device``, ``load_ckpt_strict``).
    ``apply_postprocessing`` (as Meta's ``build_sam2_video_predictor``): a single-mask output falls back to
    the most stable multimask candidate, masks from clicks are binarized before they are encoded into
    memory, and ``fill_hole_area`` defaults to 8 (else 0). ``fill_hole_area``: background holes of at most
    this many pixels of the S/4 x S/4 low-res mask become foreground (logit 0.1), with OpenCV on the CPU.
    ``non_overlap_masks``: each output pixel keeps only its highest-scoring object.
    ``clear_non_cond_mem_around_input``: after a prompt on a frame, forget that object's tracked (not
    prompted) outputs within ``num_maskmem * memory_temporal_stride_for_eval`` frames of it; with several
    objects only if ``clear_non_cond_mem_for_multi_obj``. ``add_all_frames_to_correct_as_cond``: a
    correction on a tracked frame makes it a conditioning frame.
    ``progress``: progress bar while propagating (None: only when stderr is a terminal).
    ``precision``: 'float32' (default) or the opt-in 'bfloat16', as for :class:`SAMV2ImagePredictor`.

    Memory (details in :mod:`.videostate`): frames are decoded on demand and only the last frame's image
    features are cached. Memory features are stored as bfloat16 (as Meta's predictor stores them), with one
    shared copy of their position encoding. With ``release_memory`` (default) a tracked frame's memory
    features are dropped once tracking is more than ``num_maskmem * memory_temporal_stride_for_eval``
    frames past it, and encoded again from its frame if a later call reads them (same outputs, one image
    encoding each); prompted frames keep theirs. The S/4 x S/4 float32 low-res logits, object pointers and
    scores of every visited frame are kept: they are the outputs and what refinement clicks start from.
    ``release_memory=False`` keeps everything, as Meta does. On a CPU the freed heap pages go back to the
    system every ``HEAP_TRIM_FRAMES`` frames of a propagation, so resident memory does not creep up.
    """

    def __init__(self, samv2_cfg=None, use_default_samv2_l=False, use_default_samv2_bplus=False,
                 use_default_samv2_s=False, use_default_samv2_t=False, use_default_samv21_l=False,
                 use_default_samv21_bplus=False, use_default_samv21_s=False, use_default_samv21_t=False,
                 device=None, load_ckpt_strict=True, apply_postprocessing=True, fill_hole_area=None,
                 non_overlap_masks=False, clear_non_cond_mem_around_input=False,
                 clear_non_cond_mem_for_multi_obj=False, add_all_frames_to_correct_as_cond=False, release_memory=True,
                 progress=None, precision='float32'):
        flags = dict(apply_postprocessing=apply_postprocessing, non_overlap_masks=non_overlap_masks,
                     clear_non_cond_mem_around_input=clear_non_cond_mem_around_input,
                     clear_non_cond_mem_for_multi_obj=clear_non_cond_mem_for_multi_obj,
                     add_all_frames_to_correct_as_cond=add_all_frames_to_correct_as_cond, release_memory=release_memory)
        flags = {name: asflag(value, name) for name, value in flags.items()}
        if progress is not None:
            progress = asflag(progress, 'progress')
        apply_postprocessing = flags['apply_postprocessing']
        if fill_hole_area is None:
            fill_hole_area = 8 if apply_postprocessing else 0
        if isinstance(fill_hole_area, bool) or not isinstance(fill_hole_area, (int, float)) or not fill_hole_area >= 0:
            raise ValueError(f'fill_hole_area must be a number >= 0 (pixels of the low-res mask), '
                             f'got {fill_hole_area!r}')
        cfg = choosesegmentorcfg(
            samv2_cfg, use_default_samv2_l=use_default_samv2_l, use_default_samv2_bplus=use_default_samv2_bplus,
            use_default_samv2_s=use_default_samv2_s, use_default_samv2_t=use_default_samv2_t,
            use_default_samv21_l=use_default_samv21_l, use_default_samv21_bplus=use_default_samv21_bplus,
            use_default_samv21_s=use_default_samv21_s, use_default_samv21_t=use_default_samv21_t,
        )
        self.model = buildsamv2(cfg, device=device, load_ckpt_strict=load_ckpt_strict,
                                apply_postprocessing=apply_postprocessing, precision=precision)
        if apply_postprocessing:
            # what the user clicked is what gets remembered
            self.model.binarize_mask_from_pts_for_mem_enc = True
        self.fill_hole_area = fill_hole_area
        self.non_overlap_masks = flags['non_overlap_masks']
        self.clear_non_cond_mem_around_input = flags['clear_non_cond_mem_around_input']
        self.clear_non_cond_mem_for_multi_obj = flags['clear_non_cond_mem_for_multi_obj']
        self.add_all_frames_to_correct_as_cond = flags['add_all_frames_to_correct_as_cond']
        self.release_memory = flags['release_memory']
        self.progress = progress

    @property
    def device(self):
        return self.model.device

    @property
    def memorywindow(self):
        """Frames after a tracked frame that may read its memory: num_maskmem * memory_temporal_stride_for_eval."""
        return self.model.num_maskmem * self.model.memory_temporal_stride_for_eval

    # ------------------------------------------------------------------ state
    @torch.inference_mode()
    def initstate(self, video_path, offload_video_to_cpu=False, offload_state_to_cpu=False, async_loading_frames=False):
        """A new inference state for a video: a folder of numbered JPEG frames, a video file or a list of
        (H, W, 3) uint8 RGB frames of one size (or one (T, H, W, 3) uint8 array). ``offload_video_to_cpu``:
        decoded frames wait on the CPU; ``offload_state_to_cpu``: stored masks and memories live on the CPU;
        ``async_loading_frames``: decode the next frames in a background thread. Frames are decoded when
        first needed (frame 0 at once), so a corrupt later frame raises ValueError when it is reached.
        Errors name ``video_path``: FileNotFoundError (no such path), TypeError (wrong type or dtype),
        ValueError (empty or unlistable folder, unreadable or undecodable file, non-numeric frame names,
        frames of several sizes or not (H, W, 3))."""
        offload_video_to_cpu = asflag(offload_video_to_cpu, 'offload_video_to_cpu')
        offload_state_to_cpu = asflag(offload_state_to_cpu, 'offload_state_to_cpu')
        async_loading_frames = asflag(async_loading_frames, 'async_loading_frames')
        frames = VideoFrames(video_path, self.model.image_size, offload_video_to_cpu=offload_video_to_cpu,
                             async_loading_frames=async_loading_frames, device=self.device)
        return newstate(frames, self.model.image_size, self.device, offload_video_to_cpu, offload_state_to_cpu)

    @torch.inference_mode()
    def resetstate(self, inference_state):
        """Remove every object, prompt and result; the video stays loaded."""
        checkstate(inference_state, self.model.image_size, self.device)
        clearobjects(inference_state)

    # ------------------------------------------------------------------ prompts
    @torch.inference_mode()
    def addnewpointsorbox(self, inference_state, frame_idx, obj_id, points=None, labels=None, clear_old_points=True,
                          normalize_coords=True, box=None):
        """Add clicks and/or a box for object ``obj_id`` on frame ``frame_idx`` and segment it there.

        ``points``: (P, 2) or (1, P, 2) (x, y); ``labels``: (P,) or (1, P), 1 foreground, 0 background.
        ``box``: one x1, y1, x2, y2 box (needs ``clear_old_points``; it goes before the points). On a frame
        the object was already tracked on, the clicks refine the tracked mask. A new ``obj_id`` adds an
        object. Returns ``(frame_idx, obj_ids, mask_logits)`` for every object on this frame.
        Coordinates outside the frame are accepted (as by Meta's predictor); NaN/inf, labels outside
        {-1, 0, 1, 2, 3}, a box that is not 4 numbers or has x2 < x1 or y2 < y1 raise ValueError.
        ``obj_id``: an int or a str; ``clear_old_points``, ``normalize_coords``: bools.
        """
        state = inference_state
        checkstate(state, self.model.image_size, self.device)
        frame_idx = checkframeindex(frame_idx, state['num_frames'])
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

    def addnewpoints(self, inference_state, frame_idx, obj_id, points=None, labels=None, clear_old_points=True,
                     normalize_coords=True, box=None):
        """Same as :meth:`addnewpointsorbox` (Meta's older name)."""
        return self.addnewpointsorbox(inference_state, frame_idx, obj_id, points=points, labels=labels,
                                      clear_old_points=clear_old_points, normalize_coords=normalize_coords, box=box)

    @torch.inference_mode()
    def addnewmask(self, inference_state, frame_idx, obj_id, mask):
        """Give object ``obj_id``'s mask on frame ``frame_idx``. Returns ``(frame_idx, obj_ids, mask_logits)``.

        ``mask``: an (H, W) array at the video's resolution (bool or 0/1; non-zero is in), or a tensor with
        values in [0, 1] (kept as they are, as Meta's predictor does); NaN/inf raise ValueError, a mask that is
        not 2-D raises ValueError. A mask of another size is resized to the model's input (as Meta's
        predictor does) with a warning, unless it is already S x S (the model's input size).
        """
        state = inference_state
        checkstate(state, self.model.image_size, self.device)
        frame_idx = checkframeindex(frame_idx, state['num_frames'])
        obj_id = checkobjid(obj_id)
        mask_inputs = maskprompt(mask, state['image_size'], state['device'],
                                 (state['video_height'], state['video_width']))
        with newobjectguard(state, obj_id) as obj_idx:
            return self._promptframe(state, obj_idx, frame_idx, mask_inputs=mask_inputs)

    @torch.inference_mode()
    def clearallpromptsinframe(self, inference_state, frame_idx, obj_id, need_output=True):
        """Remove object ``obj_id``'s prompts on one frame (its output there becomes an ordinary tracked one).

        Returns ``(frame_idx, obj_ids, mask_logits)``, or None with ``need_output=False``.
        """
        state = inference_state
        checkstate(state, self.model.image_size, self.device)
        frame_idx = checkframeindex(frame_idx, state['num_frames'])
        need_output = asflag(need_output, 'need_output')
        self._clearprompts(state, objidx(state, obj_id), frame_idx)
        if not need_output:
            return None
        return frame_idx, list(state['obj_ids']), self._framemasks(state, frame_idx, self._tempiscond(state, frame_idx))

    @torch.inference_mode()
    def removeobject(self, inference_state, obj_id, strict=False, need_output=True):
        """Remove object ``obj_id``.

        An unknown id (of the right type) is ignored and returns ``(obj_ids, [])``, as in Meta's predictor;
        with ``strict=True`` it raises VideoStateError (a ValueError) listing the known ids. An id that is
        neither an int nor a str raises TypeError either way.
        Returns ``(obj_ids, updated_frames)``: the remaining ids and, with ``need_output``, a list of
        ``(frame_idx, mask_logits)`` for the frames the object had prompts on.
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
            for frame_idx in prompted:
                updated.append((frame_idx, self._framemasks(state, frame_idx, self._tempiscond(state, frame_idx))))
        return list(state['obj_ids']), updated

    # ------------------------------------------------------------------ propagation
    def propagateinvideo(self, inference_state, start_frame_idx=None, max_frame_num_to_track=None, reverse=False):
        """Track every object through the video; yields ``(frame_idx, obj_ids, mask_logits)`` per frame.

        Starts at ``start_frame_idx`` (default: the earliest prompted frame) and covers
        ``max_frame_num_to_track`` frames after it (default: to the end), towards the start with
        ``reverse`` (nothing when starting at frame 0, as in Meta's). Prompted frames yield their
        prompted masks; the others are tracked from memory, overwriting earlier results. Arguments and
        prompts are checked here, the work happens while iterating. A pass that stops early (an error while
        tracking, or the caller breaking out) keeps the frames tracked so far; running the pass again gives
        the same results as on a fresh state.
        """
        state = inference_state
        checkstate(state, self.model.image_size, self.device)
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
        if not state['obj_ids']:
            raise VideoStateError('propagateinvideo needs prompts: add points, a box or a mask for at least one '
                                  'object first (addnewpointsorbox / addnewmask)')
        for obj_idx, obj_id in state['obj_idx_to_id'].items():
            if not (state['output_dict_per_obj'][obj_idx][COND] or state['temp_output_dict_per_obj'][obj_idx][COND]):
                raise VideoStateError(f'object {obj_id!r} has no prompted frame (its prompts were cleared): add '
                                      'points, a box or a mask for it, or remove it with removeobject')
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
        for step, frame_idx in enumerate(tqdm(order, desc='propagate in video', disable=not self._showprogress())):
            masks = self._trackframe(state, frame_idx, num_objects, reverse)
            if self.release_memory:
                releaseframe(state, frame_idx - sign * (window + 1))
            if step % HEAP_TRIM_FRAMES == HEAP_TRIM_FRAMES - 1:
                trimheap()  # one frame's page faults per HEAP_TRIM_FRAMES keep resident memory from creeping up
            yield frame_idx, list(state['obj_ids']), self._tovideores(state, torch.cat(masks, dim=0))

    def _trackframe(self, state, frame_idx, num_objects, reverse):
        """Every object's low-res logits on one frame: its prompted masks, or tracked from memory."""
        outputs = state['output_dict_per_obj']
        masks = []
        for obj_idx in range(num_objects):
            obj_outputs = outputs[obj_idx]
            if frame_idx in obj_outputs[COND]:
                pred_masks = obj_outputs[COND][frame_idx]['pred_masks'].to(state['device'], non_blocking=True)
                self._clearmemoryaround(state, obj_idx, frame_idx)
            else:
                record, pred_masks = self._inferframe(state, obj_idx, frame_idx, False, reverse=reverse,
                                                      run_mem_encoder=True)
                obj_outputs[NON_COND][frame_idx] = record
            state['frames_tracked_per_obj'][obj_idx][frame_idx] = {'reverse': reverse}
            masks.append(pred_masks)
        return masks

    # ------------------------------------------------------------------ internals: prompts
    def _promptframe(self, state, obj_idx, frame_idx, point_inputs=None, mask_inputs=None):
        """Segment one object on a prompted frame (no memory encoding yet) and return every object's masks."""
        tracked = state['frames_tracked_per_obj'][obj_idx]
        is_init_cond_frame = frame_idx not in tracked
        reverse = False if is_init_cond_frame else tracked[frame_idx]['reverse']
        is_cond = is_init_cond_frame or self.add_all_frames_to_correct_as_cond
        storage_key = COND if is_cond else NON_COND
        prev_logits = None
        if point_inputs is not None:
            previous = anyoutput(state, obj_idx, frame_idx, temp_key=storage_key)
            if previous is not None and previous['pred_masks'] is not None:
                prev_logits = previous['pred_masks'].to(state['device'], non_blocking=True)
                prev_logits = torch.clamp(prev_logits, -PREV_LOGITS_CLAMP, PREV_LOGITS_CLAMP)
        # the memory is encoded when propagation starts, once every object's prompts are final
        record, _ = self._inferframe(state, obj_idx, frame_idx, is_init_cond_frame, point_inputs, mask_inputs,
                                     reverse, run_mem_encoder=False, prev_logits=prev_logits)
        if point_inputs is not None:
            state['point_inputs_per_obj'][obj_idx][frame_idx] = point_inputs
            state['mask_inputs_per_obj'][obj_idx].pop(frame_idx, None)
        else:
            state['mask_inputs_per_obj'][obj_idx][frame_idx] = mask_inputs
            state['point_inputs_per_obj'][obj_idx].pop(frame_idx, None)
        state['temp_output_dict_per_obj'][obj_idx][storage_key][frame_idx] = record
        return frame_idx, list(state['obj_ids']), self._framemasks(state, frame_idx, is_cond)

    def _clearprompts(self, state, obj_idx, frame_idx):
        state['point_inputs_per_obj'][obj_idx].pop(frame_idx, None)
        state['mask_inputs_per_obj'][obj_idx].pop(frame_idx, None)
        temp = state['temp_output_dict_per_obj'][obj_idx]
        temp[COND].pop(frame_idx, None)
        temp[NON_COND].pop(frame_idx, None)
        outputs = state['output_dict_per_obj'][obj_idx]
        record = outputs[COND].pop(frame_idx, None)
        if record is not None:
            # no longer prompted: its output stays as a tracked one, and the frame counts as untracked
            outputs[NON_COND][frame_idx] = record
            state['frames_tracked_per_obj'][obj_idx].pop(frame_idx, None)

    @staticmethod
    def _tempiscond(state, frame_idx):
        return any(frame_idx in temp[COND] for temp in state['temp_output_dict_per_obj'].values())

    # ------------------------------------------------------------------ internals: model
    def _framefeatures(self, state, frame_idx, cache=True):
        """``(vision_feats, vision_pos_embeds, feat_sizes)`` of one frame; only the last frame's are cached."""
        backbone_out = state['cached_features'].get(frame_idx)
        if backbone_out is None:
            image = state['images'][frame_idx].to(state['device']).float()[None]
            backbone_out = self.model.forwardimage(image)
            if cache:
                state['cached_features'] = {frame_idx: backbone_out}
        return self.model.preparebackbonefeatures(backbone_out)

    def _inferframe(self, state, obj_idx, frame_idx, is_init_cond_frame, point_inputs=None, mask_inputs=None,
                    reverse=False, run_mem_encoder=True, prev_logits=None):
        """One object on one frame: ``(record to store, low-res logits on the compute device)``."""
        feats, poses, sizes = self._framefeatures(state, frame_idx)
        out = self.model.trackstep(frame_idx, is_init_cond_frame, feats, poses, sizes, point_inputs, mask_inputs,
                                   self._memoryview(state, obj_idx), state['num_frames'], track_in_reverse=reverse,
                                   run_mem_encoder=run_mem_encoder, prev_sam_mask_logits=prev_logits)
        pred_masks, holes = fillsmallholes(out['pred_masks'], self.fill_hole_area)
        storage = state['storage_device']
        record = {
            'maskmem_features': self._tostorage(state, out['maskmem_features']),
            'maskmem_pos_enc': self._sharedposenc(state, out['maskmem_pos_enc']),
            # device-to-host copies stay blocking: a non-blocking one could be read before it lands
            'pred_masks': pred_masks.to(storage),
            'obj_ptr': out['obj_ptr'],
            'object_score_logits': out['object_score_logits'],
            # how this memory is encoded again once released (unused until memory is encoded)
            '_holes': None if holes is None else tuple(x.to(storage) for x in holes),
            '_frompts': point_inputs is not None,
        }
        return record, pred_masks

    def _memoryview(self, state, obj_idx):
        outputs = state['output_dict_per_obj'][obj_idx]
        # a released memory is encoded again without evicting the cached features of the frame being tracked
        rebuild = lambda frame_idx, record: self._encodememory(state, frame_idx, record, cache=False)[0]  # noqa: E731
        return {COND: outputs[COND], NON_COND: RebuildingOutputs(outputs[NON_COND], rebuild)}

    def _encodememory(self, state, frame_idx, record, cache=True):
        """``(maskmem_features, maskmem_pos_enc)`` of a stored record, from its frame and its logits.

        Features are bfloat16 on the storage device; the encoding is a list of views of the shared copy.
        """
        feats, _, sizes = self._framefeatures(state, frame_idx, cache=cache)
        size = self.model.image_size
        high_res = F.interpolate(unfilledmasks(record).to(state['device']), size=(size, size), mode='bilinear',
                                 align_corners=False)
        features, pos = self.model.encodenewmemory(feats, sizes, high_res, record['object_score_logits'],
                                                   record['_frompts'])
        return self._tostorage(state, features), self._sharedposenc(state, pos)

    @staticmethod
    def _tostorage(state, features):
        # stored as bfloat16 like Meta's predictor (the memory attention promotes them back)
        return None if features is None else features.to(torch.bfloat16).to(state['storage_device'])

    @staticmethod
    def _sharedposenc(state, maskmem_pos_enc):
        """The memory position encoding is the same for every frame: keep one copy, hand out views."""
        if maskmem_pos_enc is None:
            return None
        constants = state['constants']
        if 'maskmem_pos_enc' not in constants:
            constants['maskmem_pos_enc'] = [x[0:1].clone() for x in maskmem_pos_enc]
        batch_size = maskmem_pos_enc[0].size(0)
        return [x.expand(batch_size, -1, -1, -1) for x in constants['maskmem_pos_enc']]

    def _consolidate(self, state):
        """Before tracking: encode the memories of newly prompted frames and move them to the stored outputs."""
        for obj_idx in range(len(state['obj_ids'])):
            outputs, temp = state['output_dict_per_obj'][obj_idx], state['temp_output_dict_per_obj'][obj_idx]
            for key in (NON_COND, COND):
                for frame_idx, record in temp[key].items():
                    if record['maskmem_features'] is None:
                        # what the user prompted is encoded as from clicks, from the (hole-filled) output
                        record['_holes'], record['_frompts'] = None, True
                        record['maskmem_features'], record['maskmem_pos_enc'] = self._encodememory(
                            state, frame_idx, record)
                    outputs[key][frame_idx] = record
                    self._clearmemoryaround(state, obj_idx, frame_idx)
                temp[key].clear()
            for frame_idx in outputs[COND]:
                outputs[NON_COND].pop(frame_idx, None)

    def _clearmemoryaround(self, state, obj_idx, frame_idx):
        """Forget an object's tracked outputs near a prompted frame (they may contradict the new prompt)."""
        if not self.clear_non_cond_mem_around_input:
            return
        if len(state['obj_ids']) > 1 and not self.clear_non_cond_mem_for_multi_obj:
            return
        non_cond = state['output_dict_per_obj'][obj_idx][NON_COND]
        for t in range(frame_idx - self.memorywindow, frame_idx + self.memorywindow + 1):
            non_cond.pop(t, None)

    # ------------------------------------------------------------------ internals: outputs
    def _framemasks(self, state, frame_idx, is_cond):
        """Every object's newest logits on a frame at video resolution, (N, 1, H, W); -1024 where none."""
        height, width = state['video_height'], state['video_width']
        key = COND if is_cond else NON_COND
        masks = torch.full((len(state['obj_ids']), 1, height, width), NO_OBJ_SCORE, dtype=torch.float32,
                           device=state['storage_device'])
        for obj_idx in range(len(state['obj_ids'])):
            record = anyoutput(state, obj_idx, frame_idx, temp_key=key)
            if record is not None:
                masks[obj_idx:obj_idx + 1] = self._resize(record['pred_masks'], height, width)
        return self._tovideores(state, masks)

    def _tovideores(self, state, masks):
        """(N, 1, h, w) logits -> (N, 1, H, W) on the compute device, one object per pixel if asked."""
        masks = self._resize(masks.to(state['device'], non_blocking=True), state['video_height'], state['video_width'])
        if self.non_overlap_masks:
            masks = self.model.applynonoverlapconstraints(masks)
        return masks

    @staticmethod
    def _resize(masks, height, width):
        if tuple(masks.shape[-2:]) == (height, width):
            return masks
        return F.interpolate(masks, size=(height, width), mode='bilinear', align_corners=False)

    def _showprogress(self):
        return sys.stderr.isatty() if self.progress is None else bool(self.progress)

    # Meta's method names, so code written for the official package runs unchanged
    init_state = initstate
    reset_state = resetstate
    add_new_points = addnewpoints
    add_new_points_or_box = addnewpointsorbox
    add_new_mask = addnewmask
    propagate_in_video = propagateinvideo
    remove_object = removeobject
    clear_all_prompts_in_frame = clearallpromptsinframe

