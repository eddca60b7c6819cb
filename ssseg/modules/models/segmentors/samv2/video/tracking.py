"""How the video predictor runs the model on a frame, stores what it returns and hands out masks.

A mixin of :class:`SAMV2VideoPredictor`: it reads ``self.model``, ``self.fill_hole_area``,
``self.non_overlap_masks``, ``self.clear_non_cond_mem_around_input``,
``self.clear_non_cond_mem_for_multi_obj`` and ``self.batch_objects``; the inference state's layout is in :mod:`.state`.
"""
import torch
import torch.nn.functional as F

from ssseg.modules.models.segmentors.samv2.model import NO_OBJ_SCORE

from .memory import fillsmallholes, unfilledmasks
from .state import COND, NON_COND, anyoutput, trackinglength

# largest prompt logit magnitude fed back to the decoder with refinement clicks (avoids extreme values)
PREV_LOGITS_CLAMP = 32.0


def _owned(row, batched):
    """A row of ``batched`` as a tensor of its own: copied only while it is a view of a batch of several (a view
    would keep the whole batch alive); a row already copied (to the storage device, by hole filling) is kept."""
    shares = row.untyped_storage().data_ptr() == batched.untyped_storage().data_ptr()
    return row.clone() if shares and batched.size(0) > 1 else row


class SAMV2VideoTracking:
    """The per-frame work of the video predictor (no public methods)."""

    @property
    def memorywindow(self) -> int:
        """Frames after a tracked frame that may read its memory.

        Returns:
            ``num_maskmem * memory_temporal_stride_for_eval`` of the model.
        """
        return self.model.num_maskmem * self.model.memory_temporal_stride_for_eval

    def _trackframe(self, state, frame_idx, num_objects, reverse):
        """Every object's low-res logits on one frame: its prompted masks, or tracked from memory.

        The objects to track go through the model as one batch (``batch_objects``) or one by one."""
        outputs = state['output_dict_per_obj']
        masks, tracked = [None] * num_objects, []
        for obj_idx in range(num_objects):
            prompted = outputs[obj_idx][COND].get(frame_idx)
            if prompted is not None:
                masks[obj_idx] = prompted['pred_masks'].to(state['device'], non_blocking=True)
                self._clearmemoryaround(state, obj_idx, frame_idx)
            else:
                tracked.append(obj_idx)
            state['frames_tracked_per_obj'][obj_idx][frame_idx] = {'reverse': reverse}
        groups = [tracked] if self.batch_objects else [[obj_idx] for obj_idx in tracked]
        for group in filter(None, groups):
            for obj_idx, (record, pred_masks) in zip(group, self._trackobjects(state, group, frame_idx, reverse)):
                outputs[obj_idx][NON_COND][frame_idx] = record
                masks[obj_idx] = pred_masks
        return masks

    def _trackobjects(self, state, obj_idxs, frame_idx, reverse):
        """Objects tracked from memory on one frame, as one batch: ``[(record, low-res logits)]`` in their order."""
        feats, poses, sizes = self._framefeatures(state, frame_idx, batch_size=len(obj_idxs))
        banks = [state['output_dict_per_obj'][obj_idx] for obj_idx in obj_idxs]
        out = self.model.trackstep(frame_idx, False, feats, poses, sizes, None, None, banks, trackinglength(state),
                                   track_in_reverse=reverse, run_mem_encoder=True,
                                   rebuildmemory=lambda t, record: self._rebuildmemory(state, t, record))
        return self._records(state, out, False, None, None)

    # ------------------------------------------------------------------ prompted frames
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

    # ------------------------------------------------------------------ running the model on frames
    def _framefeatures(self, state, frame_idx, cache=True, batch_size=1):
        """``(vision_feats, vision_pos_embeds, feat_sizes)`` of one frame, as views for ``batch_size`` objects;
        only the last frame's are cached."""
        backbone_out = state['cached_features'].get(frame_idx)
        if backbone_out is None:
            # the host hands the frame over without waiting for the device's queue
            image = state['images'][frame_idx].to(state['device'], non_blocking=True).float()[None]
            backbone_out = self.model.forwardimage(image)
            if cache:
                state['cached_features'] = {frame_idx: backbone_out}
        feats, poses, sizes = self.model.preparebackbonefeatures(backbone_out)
        if batch_size > 1:
            feats, poses = ([x.expand(-1, batch_size, -1) for x in level] for level in (feats, poses))
        return feats, poses, sizes

    def _inferframe(self, state, obj_idx, frame_idx, is_init_cond_frame, point_inputs=None, mask_inputs=None,
                    reverse=False, run_mem_encoder=True, prev_logits=None):
        """One object on one frame: ``(record to store, low-res logits on the compute device)``."""
        feats, poses, sizes = self._framefeatures(state, frame_idx)
        out = self.model.trackstep(frame_idx, is_init_cond_frame, feats, poses, sizes, point_inputs, mask_inputs,
                                   state['output_dict_per_obj'][obj_idx], trackinglength(state),
                                   track_in_reverse=reverse, run_mem_encoder=run_mem_encoder,
                                   prev_sam_mask_logits=prev_logits,
                                   rebuildmemory=lambda t, record: self._rebuildmemory(state, t, record))
        return self._records(state, out, is_init_cond_frame, point_inputs, mask_inputs)[0]

    def _records(self, state, out, is_init_cond_frame, point_inputs, mask_inputs):
        """Split a trackstep output of B objects into B ``(record to store, low-res logits)``, each owning its
        tensors (a kept row never holds the other objects' batch alive)."""
        storage, batch = state['storage_device'], out['pred_masks'].size(0)
        candidates = self.model.numdecodedmasks(is_init_cond_frame, point_inputs, mask_inputs)
        features = out['maskmem_features']
        pos_enc = self._sharedposenc(state, out['maskmem_pos_enc'], batch_size=1)
        results = []
        for b in range(batch):
            row = slice(b, b + 1)
            pred_masks, holes = fillsmallholes(out['pred_masks'][row], self.fill_hole_area)
            record = {
                'maskmem_features': None if features is None else self._tostorage(state, features[row]),
                'maskmem_pos_enc': pos_enc,
                # device-to-host copies stay blocking: a non-blocking one could be read before it lands
                'pred_masks': _owned(pred_masks.to(storage), out['pred_masks']),
                'obj_ptr': _owned(out['obj_ptr'][row], out['obj_ptr']),
                'object_score_logits': _owned(out['object_score_logits'][row], out['object_score_logits']),
                # how this memory is encoded again once released (unused until memory is encoded)
                '_holes': None if holes is None else tuple(x.to(storage) for x in holes),
                '_frompts': point_inputs is not None,
                '_candidates': candidates,
            }
            results.append((record, pred_masks))
        return results

    def _rebuildmemory(self, state, frame_idx, record):
        """A released memory encoded again (kept in its record until released again), without evicting the
        cached features of the frame being tracked."""
        record['maskmem_features'] = self._encodememory(state, frame_idx, record, cache=False)[0]
        return record['maskmem_features']

    def _encodememory(self, state, frame_idx, record, cache=True):
        """``(maskmem_features, maskmem_pos_enc)`` of a stored record, from its frame and its logits.

        Features are bfloat16 on the storage device; the encoding is a list of views of the shared copy.
        """
        feats, _, sizes = self._framefeatures(state, frame_idx, cache=cache)
        size = self.model.image_size
        # upsampled with as many channels as the decoder's candidates had, so the values are the same to the bit
        low_res = unfilledmasks(record).to(state['device']).expand(-1, record['_candidates'], -1, -1)
        high_res = F.interpolate(low_res, size=(size, size), mode='bilinear', align_corners=False)[:, :1]
        features, pos = self.model.encodenewmemory(feats, sizes, high_res, record['object_score_logits'],
                                                   record['_frompts'])
        return self._tostorage(state, features), self._sharedposenc(state, pos)

    @staticmethod
    def _tostorage(state, features):
        # stored as bfloat16 like Meta's predictor (the memory attention promotes them back), in a tensor of its own
        if features is None:
            return None
        stored = features.to(torch.bfloat16).to(state['storage_device'])
        return stored.clone() if stored.data_ptr() == features.data_ptr() else stored

    @staticmethod
    def _sharedposenc(state, maskmem_pos_enc, batch_size=None):
        """The memory position encoding is the same for every frame: keep one copy, hand out views."""
        if maskmem_pos_enc is None:
            return None
        constants = state['constants']
        if 'maskmem_pos_enc' not in constants:
            constants['maskmem_pos_enc'] = [x[0:1].clone() for x in maskmem_pos_enc]
        batch_size = maskmem_pos_enc[0].size(0) if batch_size is None else batch_size
        return [x.expand(batch_size, -1, -1, -1) for x in constants['maskmem_pos_enc']]

    def _consolidate(self, state):
        """Before tracking: encode the memories of newly prompted frames and move them to the stored outputs."""
        for obj_idx in range(len(state['obj_ids'])):
            outputs, temp = state['output_dict_per_obj'][obj_idx], state['temp_output_dict_per_obj'][obj_idx]
            for key in (NON_COND, COND):
                for frame_idx, record in temp[key].items():
                    if record['maskmem_features'] is None:
                        # what the user prompted is encoded as from clicks, from the (hole-filled) output
                        record['_holes'], record['_frompts'], record['_candidates'] = None, True, 1
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

    # ------------------------------------------------------------------ outputs
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
            masks = self.model.applynonoverlappingconstraints(masks)
        return masks

    @staticmethod
    def _resize(masks, height, width):
        if tuple(masks.shape[-2:]) == (height, width):
            return masks
        return F.interpolate(masks, size=(height, width), mode='bilinear', align_corners=False)
