"""The video tracking step of SAMV2: condition a frame on its memory bank, decode, and encode a new memory.

Conventions shared by every method here: image features are sequence first, ``(HW, B, C)`` with the
HW tokens of an ``(h, w)`` map in row-major order, one tensor per feature level (highest resolution
first, the lowest level, stride 16, last); ``feat_sizes`` lists the matching ``(h, w)``. B counts the
objects tracked together on one frame. Point coordinates are ``(x, y)`` pixels of the model's S x S
input (S = ``image_size``). Frame outputs live in an ``output_dict`` of the form
``{'cond_frame_outputs': {frame_idx: out}, 'non_cond_frame_outputs': {frame_idx: out}}``, where each
``out`` holds at least ``maskmem_features``, ``maskmem_pos_enc`` and ``obj_ptr`` as returned by
:meth:`SAMV2TrackingMixin.trackstep`; stored memories may be bfloat16 (the video predictor keeps them so).
"""
import numbers

import torch
import torch.nn.functional as F

from .positionencoding import sineencode1d
from .precision import inmodelprecision

# logits a binary mask input becomes when it is used directly as the output: sigmoid(-10) ~ 4.5e-5
MASK_AS_OUTPUT_SCALE, MASK_AS_OUTPUT_BIAS = 20.0, -10.0


def _shape(x):
    return tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__


def _closestcondframes(frame_idx, cond_outputs, max_cond_frames):
    """Split conditioning outputs into (selected, unselected) dicts: at most ``max_cond_frames`` (-1: all).

    The nearest frame before ``frame_idx`` and the nearest at or after it come first, then the others
    by temporal distance (ties keep the dict's order).
    """
    if max_cond_frames == -1 or len(cond_outputs) <= max_cond_frames:
        return cond_outputs, {}
    if max_cond_frames < 2:
        raise ValueError(f'max_cond_frames_in_attn must be -1 or at least 2, got {max_cond_frames}')
    before = max((t for t in cond_outputs if t < frame_idx), default=None)
    after = min((t for t in cond_outputs if t >= frame_idx), default=None)
    chosen = [t for t in (before, after) if t is not None]
    rest = sorted((t for t in cond_outputs if t not in chosen), key=lambda t: abs(t - frame_idx))
    chosen += rest[:max_cond_frames - len(chosen)]
    selected = {t: cond_outputs[t] for t in chosen}
    unselected = {t: out for t, out in cond_outputs.items() if t not in selected}
    return selected, unselected


class SAMV2TrackingMixin:
    """Tracking step of SAM 2 / SAM 2.1 for an ``nn.Module`` that has SAMV2's options, parameters and heads."""

    # ------------------------------------------------------------------ public API
    @inmodelprecision
    def trackstep(self, frame_idx, is_init_cond_frame, current_vision_feats, current_vision_pos_embeds, feat_sizes,
                  point_inputs, mask_inputs, output_dict, num_frames, track_in_reverse=False, run_mem_encoder=True,
                  prev_sam_mask_logits=None):
        """Segment B objects on frame ``frame_idx`` from its prompts and the memories in ``output_dict``.

        ``current_vision_feats`` / ``current_vision_pos_embeds``: ``num_feature_levels`` tensors (h*w, B, C_l)
        of sizes ``feat_sizes`` [(h, w), ...]; with high-res features the two finest levels are already
        projected by the decoder's ``conv_s0`` / ``conv_s1`` (see ``forwardimage``). ``point_inputs``: None or
        dict(point_coords (B, P, 2) float pixels, point_labels (B, P) int32: 1 positive, 0 negative, 2/3 box
        corners, -1 padding). ``mask_inputs``: None or (B, 1, S, S) float/bool mask; when
        ``use_mask_input_as_output_without_sam`` it is the output itself. ``is_init_cond_frame``: the frame
        is segmented without memory. ``num_frames``: length of the video (bounds the pointer window).
        ``track_in_reverse``: memories come from later frames. ``run_mem_encoder``: also encode this
        frame's memory. ``prev_sam_mask_logits``: None or (B, 1, S/4, S/4) logits of an earlier prediction
        on this frame, fed with new points as a mask prompt.

        Returns a dict: ``point_inputs``, ``mask_inputs`` (as given), ``pred_masks`` (B, 1, S/4, S/4) and
        ``pred_masks_high_res`` (B, 1, S, S) float32 logits, ``obj_ptr`` (B, C), ``object_score_logits``
        (B, 1), ``maskmem_features`` (B, Cmem, S/16, S/16) float32 and ``maskmem_pos_enc`` [(B, Cmem, S/16,
        S/16)] (both None without the memory encoder). ``maskmem_pos_enc`` may be a view of a cache: read only.
        """
        batch_size = self._checktrackinputs(frame_idx, current_vision_feats, current_vision_pos_embeds, feat_sizes,
                                            point_inputs, num_frames)
        current_out = {'point_inputs': point_inputs, 'mask_inputs': mask_inputs}
        high_res_features = [self._tomap(x, size) for x, size in zip(current_vision_feats[:-1], feat_sizes[:-1])]
        high_res_features = high_res_features or None
        if mask_inputs is not None and self.use_mask_input_as_output_without_sam:
            self._checkmask(mask_inputs, 'mask_inputs', batch_size, (self.image_size, self.image_size))
            pix_feat = self._tomap(current_vision_feats[-1], feat_sizes[-1])
            sam_outputs = self._usemaskasoutput(pix_feat, high_res_features, mask_inputs)
        else:
            pix_feat = self._memoryconditionedfeatures(frame_idx, is_init_cond_frame, current_vision_feats[-1],
                                                       current_vision_pos_embeds[-1], feat_sizes[-1], output_dict,
                                                       num_frames, track_in_reverse)
            if mask_inputs is not None:
                self._checkmask(mask_inputs, 'mask_inputs', batch_size)
            if prev_sam_mask_logits is not None:
                if point_inputs is None or mask_inputs is not None:
                    raise ValueError('prev_sam_mask_logits is fed together with new points: it needs point_inputs '
                                     'and no mask_inputs')
                self._checkmask(prev_sam_mask_logits, 'prev_sam_mask_logits', batch_size)
                mask_inputs = prev_sam_mask_logits
            sam_outputs = self.forwardsamheads(pix_feat, point_inputs, mask_inputs, high_res_features,
                                               self._usemultimask(is_init_cond_frame, point_inputs))
        low_res_masks, high_res_masks, obj_ptr, object_score_logits = sam_outputs[3:]
        current_out.update(pred_masks=low_res_masks, pred_masks_high_res=high_res_masks, obj_ptr=obj_ptr,
                           object_score_logits=object_score_logits)
        maskmem_features = maskmem_pos_enc = None
        if run_mem_encoder and self.num_maskmem > 0:
            maskmem_features, maskmem_pos_enc = self.encodenewmemory(
                current_vision_feats, feat_sizes, high_res_masks, object_score_logits, point_inputs is not None)
        current_out.update(maskmem_features=maskmem_features, maskmem_pos_enc=maskmem_pos_enc)
        return current_out

    @inmodelprecision
    def encodenewmemory(self, current_vision_feats, feat_sizes, pred_masks_high_res, object_score_logits,
                        is_mask_from_pts):
        """Encode a frame and its predicted masks into a memory.

        ``current_vision_feats``: per-level (h*w, B, C) features (only the last, stride 16, is used);
        ``pred_masks_high_res``: (B, 1, S, S) logits; ``object_score_logits``: (B, 1);
        ``is_mask_from_pts``: the masks came from clicks (binarized when the model says so).
        Returns ``(maskmem_features (B, Cmem, S/16, S/16), maskmem_pos_enc [(B, Cmem, S/16, S/16)])``.
        """
        feats = current_vision_feats[-1]
        if feats.dim() != 3 or feats.shape[0] != feat_sizes[-1][0] * feat_sizes[-1][1]:
            raise ValueError(f'current_vision_feats[-1] must be (h*w, B, C) for feat_sizes[-1]='
                             f'{tuple(feat_sizes[-1])}, got {_shape(feats)}')
        self._checkmask(pred_masks_high_res, 'pred_masks_high_res', feats.shape[1])
        pix_feat = self._tomap(feats, feat_sizes[-1])
        masks = pred_masks_high_res
        if self.non_overlap_masks_for_mem_enc and not self.training:
            masks = self.applynonoverlapconstraints(masks)
        if self.binarize_mask_from_pts_for_mem_enc and is_mask_from_pts and not self.training:
            mask_for_mem = (masks > 0).float()
        else:
            mask_for_mem = torch.sigmoid(masks)
        # mask_for_mem is a fresh tensor here, so scaling it in place changes nothing the caller holds
        if self.sigmoid_scale_for_mem_enc != 1.0:
            mask_for_mem.mul_(self.sigmoid_scale_for_mem_enc)
        if self.sigmoid_bias_for_mem_enc != 0.0:
            mask_for_mem.add_(self.sigmoid_bias_for_mem_enc)
        encoded = self.memory_encoder(pix_feat, mask_for_mem, skip_mask_sigmoid=True)
        maskmem_features, maskmem_pos_enc = encoded['vision_features'], encoded['vision_pos_enc']
        if self.no_obj_embed_spatial is not None:
            # frames where the object is judged absent carry a learned "not here" offset in every position
            absent = 1 - (object_score_logits > 0).float()
            maskmem_features = maskmem_features + (absent[..., None, None] * self.no_obj_embed_spatial[..., None, None])
        return maskmem_features, maskmem_pos_enc

    def applynonoverlapconstraints(self, pred_masks):
        """Keep each pixel only for the highest-scoring object: others are clamped to at most -10.

        ``pred_masks``: (B, 1, H, W) logits of B objects of one frame; returned with the same shape.
        """
        if pred_masks.dim() != 4:
            raise ValueError(f'pred_masks must be (B, 1, H, W) logits, got {_shape(pred_masks)}')
        batch_size = pred_masks.size(0)
        if batch_size == 1:
            return pred_masks
        winner = torch.argmax(pred_masks, dim=0, keepdim=True)
        keep = winner == torch.arange(batch_size, device=pred_masks.device)[:, None, None, None]
        return torch.where(keep, pred_masks, torch.clamp(pred_masks, max=-10.0))

    # ------------------------------------------------------------------ memory-conditioned features
    def _memoryconditionedfeatures(self, frame_idx, is_init_cond_frame, vision_feat, vision_pos, feat_size,
                                   output_dict, num_frames, track_in_reverse):
        """Fuse the lowest-level (h*w, B, C) features with the memory bank -> (B, C, h, w)."""
        batch_size = vision_feat.shape[1]
        if self.num_maskmem == 0:
            return self._tomap(vision_feat, feat_size)
        if is_init_cond_frame:
            if self.directly_add_no_mem_embed:
                return self._tomap(vision_feat + self.no_mem_embed, feat_size)
            if self.mem_dim != self.hidden_dim:
                raise ValueError(f'directly_add_no_mem_embed=False needs memories as wide as the features '
                                 f'(mem_dim == hidden_dim), got {self.mem_dim} and {self.hidden_dim}')
            # a single placeholder memory token, so attention never sees an empty memory
            memory = self.no_mem_embed.expand(1, batch_size, self.mem_dim)
            memory_pos = self.no_mem_pos_enc.expand(1, batch_size, self.mem_dim)
            num_ptr_tokens = 0
        else:
            memory, memory_pos, num_ptr_tokens = self._gathermemory(frame_idx, batch_size, vision_feat, output_dict,
                                                                    num_frames, track_in_reverse)
        fused = self.memory_attention(curr=[vision_feat], curr_pos=[vision_pos], memory=memory,
                                      memory_pos=memory_pos, num_obj_ptr_tokens=num_ptr_tokens)
        return self._tomap(fused, feat_size)

    def _gathermemory(self, frame_idx, batch_size, vision_feat, output_dict, num_frames, track_in_reverse):
        """Memory tokens (M, B, Cmem), their encodings (M, B, Cmem) and the number of pointer tokens at the end."""
        device = vision_feat.device
        cond_outputs, non_cond_outputs = self._checkoutputdict(output_dict)
        selected, unselected = _closestcondframes(frame_idx, cond_outputs, self.max_cond_frames_in_attn)
        # conditioning frames first (temporal slot 0), then the recent frames, oldest first
        slots = [(0, out) for out in selected.values()]
        stride = 1 if self.training else self.memory_temporal_stride_for_eval
        sign = -1 if track_in_reverse else 1
        # going backwards in time is going forwards in negated frame indices
        forward_idx = sign * frame_idx
        for t_pos in range(1, self.num_maskmem):
            t_rel = self.num_maskmem - t_pos
            if t_rel == 1:
                prev_idx = forward_idx - 1
            else:
                # the nearest multiple of stride at least two frames back, then further strides back
                prev_idx = (forward_idx - 2) // stride * stride - (t_rel - 2) * stride
            prev_idx *= sign
            out = non_cond_outputs.get(prev_idx)
            if out is None:
                # an unselected conditioning frame among the recent ones still serves as a recent memory
                out = unselected.get(prev_idx)
            if out is not None:
                slots.append((t_pos, out))
        feats, poses = [], []
        for t_pos, out in slots:
            if out.get('maskmem_features') is None or not out.get('maskmem_pos_enc'):
                raise ValueError('output_dict: every stored frame output needs maskmem_features and maskmem_pos_enc '
                                 '(run trackstep with run_mem_encoder=True, or encodenewmemory, before storing it)')
            feats.append(out['maskmem_features'].to(device, non_blocking=True).flatten(2).permute(2, 0, 1))
            poses.append(out['maskmem_pos_enc'][-1].to(device).flatten(2).permute(2, 0, 1))
        num_ptr_tokens = 0
        if self.use_obj_ptrs_in_encoder:
            ptrs, ptr_pos = self._gatherobjptrs(frame_idx, batch_size, device, selected, unselected,
                                                non_cond_outputs, num_frames, track_in_reverse)
            if ptrs is not None:
                feats.append(ptrs)
                poses.append(ptr_pos)
                num_ptr_tokens = ptrs.shape[0]
        # one copy each; bfloat16 memories are promoted by the concatenation with float32 pointers
        memory = torch.cat(feats, dim=0)
        memory = memory.to(torch.promote_types(memory.dtype, vision_feat.dtype))
        memory_pos = torch.cat(poses, dim=0)
        tpos = self.maskmem_tpos_enc[[self.num_maskmem - t_pos - 1 for t_pos, _ in slots]]
        memory_pos = memory_pos.to(torch.promote_types(memory_pos.dtype, tpos.dtype))
        # temporal encodings added in place to the spatial part (a fresh tensor from cat)
        spatial = memory_pos[:memory_pos.shape[0] - num_ptr_tokens]
        spatial.view(len(slots), -1, *spatial.shape[1:]).add_(tpos)
        return memory, memory_pos, num_ptr_tokens

    def _gatherobjptrs(self, frame_idx, batch_size, device, selected, unselected, non_cond_outputs, num_frames,
                       track_in_reverse):
        """Object-pointer tokens (N, B, Cmem) and their temporal encodings, or (None, None) when there are none."""
        max_ptrs = min(num_frames, self.max_obj_ptrs_in_encoder)
        if not self.training and self.only_obj_ptrs_in_the_past_for_eval:
            in_past = (lambda t: t >= frame_idx) if track_in_reverse else (lambda t: t <= frame_idx)
            ptr_cond = {t: out for t, out in selected.items() if in_past(t)}
        else:
            ptr_cond = selected
        sign = -1 if track_in_reverse else 1
        if self.use_signed_tpos_enc_to_obj_ptrs:
            positions = [(frame_idx - t) * sign for t in ptr_cond]
        else:
            positions = [abs(frame_idx - t) for t in ptr_cond]
        ptrs = [out['obj_ptr'] for out in ptr_cond.values()]
        for t_diff in range(1, max_ptrs):
            t = frame_idx - t_diff * sign
            if t < 0 or t >= num_frames:
                break
            out = non_cond_outputs.get(t, unselected.get(t))
            if out is not None:
                positions.append(t_diff)
                ptrs.append(out['obj_ptr'])
        if not ptrs:
            return None, None
        obj_ptrs = torch.stack(ptrs, dim=0)
        hidden = obj_ptrs.shape[-1]
        if self.add_tpos_enc_to_obj_ptrs:
            # distances normalized by the window; a one-frame window (max_ptrs 1) would divide by zero
            scale = max(max_ptrs - 1, 1)
            tpos_dim = hidden if self.proj_tpos_enc_in_obj_ptrs else self.mem_dim
            obj_pos = sineencode1d(torch.tensor(positions, device=device) / scale, dim=tpos_dim)
            obj_pos = self.obj_ptr_tpos_proj(obj_pos).unsqueeze(1).expand(-1, batch_size, self.mem_dim)
        else:
            obj_pos = obj_ptrs.new_zeros(len(positions), batch_size, self.mem_dim)
        if self.mem_dim < hidden:
            # a wide pointer becomes hidden // mem_dim consecutive memory tokens
            split = hidden // self.mem_dim
            obj_ptrs = obj_ptrs.reshape(-1, batch_size, split, self.mem_dim).permute(0, 2, 1, 3).flatten(0, 1)
            obj_pos = obj_pos.repeat_interleave(split, dim=0)
        return obj_ptrs, obj_pos

    # ------------------------------------------------------------------ SAM-head helpers
    def _usemaskasoutput(self, backbone_features, high_res_features, mask_inputs):
        """Turn a binary (B, 1, S, S) mask into logits of +-10 directly; same 7-tuple as ``forwardsamheads``."""
        mask = mask_inputs.float()
        high_res_masks = mask * MASK_AS_OUTPUT_SCALE + MASK_AS_OUTPUT_BIAS
        low_res_masks = F.interpolate(high_res_masks, size=(high_res_masks.size(-2) // 4, high_res_masks.size(-1) // 4),
                                      mode='bilinear', align_corners=False, antialias=True)
        ious = mask.new_ones(mask.size(0), 1)
        if self.use_obj_ptrs_in_encoder:
            # the decoder still makes the pointer, from the mask brought to its prompt size
            obj_ptr = self.forwardsamheads(backbone_features, mask_inputs=self.mask_downsample(mask),
                                           high_res_features=high_res_features)[5]
        else:
            obj_ptr = torch.zeros(mask.size(0), self.hidden_dim, device=mask.device)
        # presence follows the given mask, not the decoder's object score
        appearing = torch.any(mask.flatten(1) > 0.0, dim=1)[:, None].float()
        object_score_logits = MASK_AS_OUTPUT_SCALE * appearing + MASK_AS_OUTPUT_BIAS
        if self.pred_obj_scores:
            if self.fixed_no_obj_ptr:
                obj_ptr = appearing * obj_ptr
            obj_ptr = obj_ptr + (1 - appearing) * self.no_obj_ptr
        return low_res_masks, high_res_masks, ious, low_res_masks, high_res_masks, obj_ptr, object_score_logits

    def _usemultimask(self, is_init_cond_frame, point_inputs):
        """Whether the decoder gives 3 candidates: first clicks (and tracking, if enabled) within the point range."""
        num_points = 0 if point_inputs is None else point_inputs['point_labels'].size(1)
        return bool(self.multimask_output_in_sam and (is_init_cond_frame or self.multimask_output_for_tracking)
                    and self.multimask_min_pt_num <= num_points <= self.multimask_max_pt_num)

    @staticmethod
    def _tomap(tokens, size):
        """(h*w, B, C) tokens -> (B, C, h, w) view."""
        return tokens.permute(1, 2, 0).view(tokens.size(1), tokens.size(2), *size)

    # ------------------------------------------------------------------ input checks
    def _checktrackinputs(self, frame_idx, feats, poses, feat_sizes, point_inputs, num_frames):
        """Validate trackstep's inputs (shapes only, no copies); returns B."""
        if isinstance(frame_idx, bool) or not isinstance(frame_idx, numbers.Integral) or frame_idx < 0:
            raise ValueError(f'frame_idx must be a non-negative int, got {frame_idx!r}')
        if isinstance(num_frames, bool) or not isinstance(num_frames, numbers.Integral) or num_frames <= 0:
            raise ValueError(f'num_frames must be a positive int (frames in the video), got {num_frames!r}')
        levels = self.num_feature_levels
        for name, value in (('current_vision_feats', feats), ('current_vision_pos_embeds', poses),
                            ('feat_sizes', feat_sizes)):
            if not isinstance(value, (list, tuple)) or len(value) != levels:
                got = f'{type(value).__name__} of length {len(value)}' if isinstance(value, (list, tuple)) else _shape(value)
                raise ValueError(f'{name} must be a list of {levels} feature levels (lowest resolution last), got {got}')
        batch_size = feats[-1].shape[1] if isinstance(feats[-1], torch.Tensor) and feats[-1].dim() == 3 else None
        for level, (feat, pos, size) in enumerate(zip(feats, poses, feat_sizes)):
            numel = size[0] * size[1]
            if not isinstance(feat, torch.Tensor) or feat.dim() != 3 or feat.shape[:2] != (numel, batch_size):
                raise ValueError(f'current_vision_feats[{level}] must be (h*w, B, C) = ({numel}, B, C) for '
                                 f'feat_sizes[{level}]={tuple(size)}, same B on every level, got {_shape(feat)}')
            # position encodings keep the full width on every level (only the lowest level's is used)
            if not isinstance(pos, torch.Tensor) or pos.dim() != 3 or pos.shape[:2] != feat.shape[:2]:
                raise ValueError(f'current_vision_pos_embeds[{level}] must be (h*w, B, C) = ({numel}, {batch_size}, '
                                 f'C) like current_vision_feats[{level}], got {_shape(pos)}')
        if self.use_high_res_features_in_sam:
            for level, conv in enumerate((self.sam_mask_decoder.conv_s0, self.sam_mask_decoder.conv_s1)):
                if feats[level].shape[2] != conv.out_channels:
                    raise ValueError(f'current_vision_feats[{level}] must have {conv.out_channels} channels (already '
                                     f'projected by conv_s{level}, see forwardimage), got {_shape(feats[level])}')
        embed = self.sam_image_embedding_size
        if (tuple(feat_sizes[-1]) != (embed, embed) or feats[-1].shape[2] != self.hidden_dim
                or poses[-1].shape[2] != self.hidden_dim):
            raise ValueError(f'current_vision_feats[-1] and current_vision_pos_embeds[-1] must be ({embed * embed}, '
                             f'B, {self.hidden_dim}) with feat_sizes[-1]=({embed}, {embed}), got {_shape(feats[-1])}, '
                             f'{_shape(poses[-1])} and {tuple(feat_sizes[-1])}')
        if point_inputs is not None:
            if not isinstance(point_inputs, dict) or not {'point_coords', 'point_labels'} <= set(point_inputs):
                got = sorted(point_inputs) if isinstance(point_inputs, dict) else _shape(point_inputs)
                raise ValueError('point_inputs must be None or a dict with point_coords (B, P, 2) and point_labels '
                                 f'(B, P), got {got}')
            coords, labels = point_inputs['point_coords'], point_inputs['point_labels']
            if (not isinstance(coords, torch.Tensor) or coords.dim() != 3 or coords.shape[0] != batch_size
                    or coords.shape[2] != 2):
                raise ValueError(f'point_inputs["point_coords"] must be (B, P, 2) = ({batch_size}, P, 2), '
                                 f'got {_shape(coords)}')
            if not isinstance(labels, torch.Tensor) or labels.shape != coords.shape[:2]:
                raise ValueError(f'point_inputs["point_labels"] must be (B, P) = {tuple(coords.shape[:2])}, '
                                 f'got {_shape(labels)}')
        return batch_size

    @staticmethod
    def _checkmask(mask, name, batch_size, size=None):
        expected = f'({batch_size}, 1, {size[0]}, {size[1]})' if size else f'({batch_size}, 1, H, W)'
        if (not isinstance(mask, torch.Tensor) or mask.dim() != 4 or mask.shape[:2] != (batch_size, 1)
                or (size is not None and tuple(mask.shape[-2:]) != tuple(size))):
            raise ValueError(f'{name} must be a (B, 1, H, W) mask = {expected}, got {_shape(mask)}')

    @staticmethod
    def _checkoutputdict(output_dict):
        keys = {'cond_frame_outputs', 'non_cond_frame_outputs'}
        if not isinstance(output_dict, dict) or not keys <= set(output_dict):
            got = sorted(output_dict) if isinstance(output_dict, dict) else _shape(output_dict)
            raise ValueError('output_dict must be a dict with "cond_frame_outputs" and "non_cond_frame_outputs" '
                             f'({{frame_idx: output}} each), got {got}')
        cond_outputs = output_dict['cond_frame_outputs']
        if not cond_outputs:
            raise ValueError('output_dict["cond_frame_outputs"] is empty: a frame tracked from memory needs at least '
                             'one conditioning (prompted) frame; use is_init_cond_frame=True on the first prompted one')
        return cond_outputs, output_dict['non_cond_frame_outputs']
