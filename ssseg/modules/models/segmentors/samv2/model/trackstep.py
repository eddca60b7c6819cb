"""The video tracking step of SAMV2: condition a frame on its memory bank, decode, and encode a new memory.

Conventions shared by every method here: image features are sequence first, ``(HW, B, C)`` with the
HW tokens of an ``(h, w)`` map in row-major order, one tensor per feature level (highest resolution
first, the lowest level, stride 16, last); ``feat_sizes`` lists the matching ``(h, w)``. With high-res
features the two finest levels are already projected by the decoder's ``conv_s0`` / ``conv_s1`` (see
``forwardimage``). B counts the objects tracked together on one frame. Point coordinates are ``(x, y)``
pixels of the model's S x S input (S = ``image_size``); point labels are int32: 1 positive, 0 negative,
2/3 box corners, -1 padding. Frame outputs live in an ``output_dict`` of the form
``{'cond_frame_outputs': {frame_idx: out}, 'non_cond_frame_outputs': {frame_idx: out}}``, where each
``out`` holds at least ``maskmem_features``, ``maskmem_pos_enc`` and ``obj_ptr`` as returned by
:meth:`SAMV2TrackingMixin.trackstep`; stored memories may be bfloat16 (the video predictor keeps them so).
A returned ``maskmem_pos_enc`` may be a view of a cache: read only.
"""
import numbers
from typing import Callable, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F

from ssseg.modules.utils.checks import shapeof

from .memorybank import SAMV2MemoryMixin
from .precision import inmodelprecision

# logits a binary mask input becomes when it is used directly as the output: sigmoid(-10) ~ 4.5e-5
MASK_AS_OUTPUT_SCALE, MASK_AS_OUTPUT_BIAS = 20.0, -10.0


class SAMV2TrackingMixin(SAMV2MemoryMixin):
    """Tracking step of SAM 2 / SAM 2.1 for an ``nn.Module`` that has SAMV2's options, parameters and heads."""

    # ------------------------------------------------------------------ public API
    @inmodelprecision
    def trackstep(self, frame_idx: int, is_init_cond_frame: bool, current_vision_feats: List[torch.Tensor],
                  current_vision_pos_embeds: List[torch.Tensor], feat_sizes: List[Tuple[int, int]],
                  point_inputs: Optional[dict], mask_inputs: Optional[torch.Tensor],
                  output_dict: Union[dict, Sequence[dict]], num_frames: int, track_in_reverse: bool = False,
                  run_mem_encoder: bool = True,
                  prev_sam_mask_logits: Optional[torch.Tensor] = None,
                  rebuildmemory: Optional[Callable] = None) -> dict:
        """Segment B objects on frame ``frame_idx`` from its prompts and the memories in ``output_dict``.

        Args:
            frame_idx: index of the frame in the video, a non-negative int.
            is_init_cond_frame: the frame is segmented without memory.
            current_vision_feats, current_vision_pos_embeds: ``num_feature_levels`` (h*w, B, C_l) tensors each.
            feat_sizes: the levels' sizes [(h, w), ...].
            point_inputs: None or dict(point_coords (B, P, 2) float pixels, point_labels (B, P) int32).
            mask_inputs: None or (B, 1, S, S) float/bool mask (the output if ``use_mask_input_as_output_without_sam``).
            output_dict: the memory bank (see the module docstring) of all B objects together, as Meta's predictor
                kept it before 1.1; or a list of B memory banks, one per object (objects tracked independently,
                batched: memories of different lengths are padded and masked, and no step mixes objects).
            num_frames: length of the video (bounds the pointer window).
            track_in_reverse: memories come from later frames.
            run_mem_encoder: also encode this frame's memory.
            prev_sam_mask_logits: None or (B, 1, S/4, S/4) logits of an earlier prediction on this frame, fed with
                new points (and no ``mask_inputs``) as a mask prompt.
            rebuildmemory: None or ``(frame_idx, output) -> maskmem_features`` for outputs whose memory was released.
        Returns:
            Dict: point_inputs, mask_inputs (as given), pred_masks (B, 1, S/4, S/4) and pred_masks_high_res (B, 1, S, S)
            float32 logits, obj_ptr (B, C), object_score_logits (B, 1), maskmem_features (B, Cmem, S/16, S/16) float32
            and maskmem_pos_enc [(B, Cmem, S/16, S/16)] (both None without the memory encoder).
        Raises:
            ValueError: malformed inputs or ``output_dict``, or ``prev_sam_mask_logits`` misused."""
        current_out, sam_outputs, _, _ = self._decodetrackedframe(
            frame_idx, is_init_cond_frame, current_vision_feats, current_vision_pos_embeds, feat_sizes, point_inputs,
            mask_inputs, output_dict, num_frames, track_in_reverse, prev_sam_mask_logits, rebuildmemory)
        low_res_masks, high_res_masks, obj_ptr, object_score_logits = sam_outputs[3:]
        current_out.update(pred_masks=low_res_masks, pred_masks_high_res=high_res_masks, obj_ptr=obj_ptr,
                           object_score_logits=object_score_logits)
        self._addnewmemory(current_out, current_vision_feats, feat_sizes, high_res_masks, object_score_logits,
                           point_inputs is not None, run_mem_encoder, isinstance(output_dict, (list, tuple)))
        return current_out

    def _decodetrackedframe(self, frame_idx, is_init_cond_frame, current_vision_feats, current_vision_pos_embeds,
                            feat_sizes, point_inputs, mask_inputs, output_dict, num_frames, track_in_reverse,
                            prev_sam_mask_logits, rebuildmemory):
        """Checked inputs -> ``(current_out, sam_outputs, high_res_features, pix_feat)``: the prompts, the decoder's
        7-tuple (see :meth:`forwardsamheads`), and the features it decoded from, which correction clicks reuse."""
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
                                                       num_frames, track_in_reverse, rebuildmemory)
            mask_inputs = self._maskprompt(mask_inputs, prev_sam_mask_logits, point_inputs, batch_size)
            sam_outputs = self.forwardsamheads(pix_feat, point_inputs, mask_inputs, high_res_features,
                                               self._usemultimask(is_init_cond_frame, point_inputs))
        return current_out, sam_outputs, high_res_features, pix_feat

    def _addnewmemory(self, current_out, current_vision_feats, feat_sizes, high_res_masks, object_score_logits,
                      is_mask_from_pts, run_mem_encoder, independent_objects):
        """Set ``maskmem_features`` / ``maskmem_pos_enc`` of ``current_out`` (None without the memory encoder)."""
        maskmem_features = maskmem_pos_enc = None
        if run_mem_encoder and self.num_maskmem > 0:
            maskmem_features, maskmem_pos_enc = self.encodenewmemory(
                current_vision_feats, feat_sizes, high_res_masks, object_score_logits, is_mask_from_pts,
                independent_objects=independent_objects)
        current_out.update(maskmem_features=maskmem_features, maskmem_pos_enc=maskmem_pos_enc)

    def _maskprompt(self, mask_inputs, prev_sam_mask_logits, point_inputs, batch_size):
        """The decoder's mask prompt: the given mask, or an earlier prediction on the frame fed back with new points."""
        if mask_inputs is not None:
            self._checkmask(mask_inputs, 'mask_inputs', batch_size)
        if prev_sam_mask_logits is None:
            return mask_inputs
        if point_inputs is None or mask_inputs is not None:
            raise ValueError('prev_sam_mask_logits is fed together with new points: it needs point_inputs '
                             'and no mask_inputs')
        self._checkmask(prev_sam_mask_logits, 'prev_sam_mask_logits', batch_size)
        return prev_sam_mask_logits

    @inmodelprecision
    def encodenewmemory(self, current_vision_feats: List[torch.Tensor], feat_sizes: List[Tuple[int, int]],
                        pred_masks_high_res: torch.Tensor, object_score_logits: torch.Tensor,
                        is_mask_from_pts: bool,
                        independent_objects: bool = False) -> Tuple[torch.Tensor, List[torch.Tensor]]:
        """Encode a frame and its predicted masks into a memory.

        Args:
            current_vision_feats: per-level (h*w, B, C) features (only the last, stride 16, is used).
            feat_sizes: the levels' sizes [(h, w), ...].
            pred_masks_high_res: (B, 1, S, S) logits.
            object_score_logits: (B, 1) logits; objects judged absent (<= 0) get ``no_obj_embed_spatial`` if any.
            is_mask_from_pts: the masks came from clicks (binarized when the model says so).
            independent_objects: the B objects are tracked independently, so ``non_overlap_masks_for_mem_enc``
                does not make them compete for pixels.

        Returns:
            ``(maskmem_features (B, Cmem, S/16, S/16), maskmem_pos_enc [(B, Cmem, S/16, S/16)])``.

        Raises:
            ValueError: the last features do not match ``feat_sizes[-1]``, or the masks are not (B, 1, H, W).
        """
        feats = current_vision_feats[-1]
        if feats.dim() != 3 or feats.shape[0] != feat_sizes[-1][0] * feat_sizes[-1][1]:
            raise ValueError(f'current_vision_feats[-1] must be (h*w, B, C) for feat_sizes[-1]='
                             f'{tuple(feat_sizes[-1])}, got {shapeof(feats)}')
        self._checkmask(pred_masks_high_res, 'pred_masks_high_res', feats.shape[1])
        pix_feat = self._tomap(feats, feat_sizes[-1])
        masks = pred_masks_high_res
        if self.non_overlap_masks_for_mem_enc and not self.training and not independent_objects:
            masks = self.applynonoverlappingconstraints(masks)
        if self.binarize_mask_from_pts_for_mem_enc and is_mask_from_pts and not self.training:
            mask_for_mem = (masks > 0).float()
        else:
            mask_for_mem = torch.sigmoid(masks)
        # out of place: the sigmoid's backward (training) needs its output unchanged
        if self.sigmoid_scale_for_mem_enc != 1.0:
            mask_for_mem = mask_for_mem * self.sigmoid_scale_for_mem_enc
        if self.sigmoid_bias_for_mem_enc != 0.0:
            mask_for_mem = mask_for_mem + self.sigmoid_bias_for_mem_enc
        encoded = self.memory_encoder(pix_feat, mask_for_mem, skip_mask_sigmoid=True)
        maskmem_features, maskmem_pos_enc = encoded['vision_features'], encoded['vision_pos_enc']
        if self.no_obj_embed_spatial is not None:
            # frames where the object is judged absent carry a learned "not here" offset in every position
            absent = 1 - (object_score_logits > 0).float()
            maskmem_features = maskmem_features + (absent[..., None, None] * self.no_obj_embed_spatial[..., None, None])
        return maskmem_features, maskmem_pos_enc

    def applynonoverlappingconstraints(self, pred_masks: torch.Tensor) -> torch.Tensor:
        """Keep each pixel only for the highest-scoring object: others are clamped to at most -10.

        Args:
            pred_masks: (B, 1, H, W) logits of B objects of one frame.

        Returns:
            (B, 1, H, W) logits, ``pred_masks`` itself when B is 1.

        Raises:
            ValueError: ``pred_masks`` is not 4-d.
        """
        if pred_masks.dim() != 4:
            raise ValueError(f'pred_masks must be (B, 1, H, W) logits, got {shapeof(pred_masks)}')
        batch_size = pred_masks.size(0)
        if batch_size == 1:
            return pred_masks
        winner = torch.argmax(pred_masks, dim=0, keepdim=True)
        keep = winner == torch.arange(batch_size, device=pred_masks.device)[:, None, None, None]
        return torch.where(keep, pred_masks, torch.clamp(pred_masks, max=-10.0))

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
            obj_ptr = self._withnoobjptr(obj_ptr, appearing)
        return low_res_masks, high_res_masks, ious, low_res_masks, high_res_masks, obj_ptr, object_score_logits

    def numdecodedmasks(self, is_init_cond_frame: bool, point_inputs: Optional[dict],
                        mask_inputs: Optional[torch.Tensor]) -> int:
        """How many candidate masks :meth:`trackstep` decodes, and upsamples together, for these inputs.

        Args:
            is_init_cond_frame, point_inputs, mask_inputs: as for :meth:`trackstep`.
        Returns:
            1, or the mask decoder's number of multimask outputs. Re-encoding a stored frame's memory from its
            chosen low-res mask needs it: bilinear upsampling of one channel rounds differently from several.
        """
        if mask_inputs is not None and self.use_mask_input_as_output_without_sam:
            return 1
        multimask = self._usemultimask(is_init_cond_frame, point_inputs)
        return self.sam_mask_decoder.num_multimask_outputs if multimask else 1

    def _usemultimask(self, is_init_cond_frame, point_inputs):
        """Whether the decoder gives 3 candidates: first clicks (and tracking, if enabled) within the point range."""
        num_points = 0 if point_inputs is None else point_inputs['point_labels'].size(1)
        return bool(self.multimask_output_in_sam and (is_init_cond_frame or self.multimask_output_for_tracking)
                    and self.multimask_min_pt_num <= num_points <= self.multimask_max_pt_num)

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
                got = (f'{type(value).__name__} of length {len(value)}' if isinstance(value, (list, tuple))
                       else shapeof(value))
                raise ValueError(f'{name} must be a list of {levels} feature levels (lowest resolution last), got '
                                 f'{got}')
        batch_size = feats[-1].shape[1] if isinstance(feats[-1], torch.Tensor) and feats[-1].dim() == 3 else None
        for level, (feat, pos, size) in enumerate(zip(feats, poses, feat_sizes)):
            numel = size[0] * size[1]
            if not isinstance(feat, torch.Tensor) or feat.dim() != 3 or feat.shape[:2] != (numel, batch_size):
                raise ValueError(f'current_vision_feats[{level}] must be (h*w, B, C) = ({numel}, B, C) for '
                                 f'feat_sizes[{level}]={tuple(size)}, same B on every level, got {shapeof(feat)}')
            # position encodings keep the full width on every level (only the lowest level's is used)
            if not isinstance(pos, torch.Tensor) or pos.dim() != 3 or pos.shape[:2] != feat.shape[:2]:
                raise ValueError(f'current_vision_pos_embeds[{level}] must be (h*w, B, C) = ({numel}, {batch_size}, '
                                 f'C) like current_vision_feats[{level}], got {shapeof(pos)}')
        if self.use_high_res_features_in_sam:
            for level, conv in enumerate((self.sam_mask_decoder.conv_s0, self.sam_mask_decoder.conv_s1)):
                if feats[level].shape[2] != conv.out_channels:
                    raise ValueError(f'current_vision_feats[{level}] must have {conv.out_channels} channels (already '
                                     f'projected by conv_s{level}, see forwardimage), got {shapeof(feats[level])}')
        embed = self.sam_image_embedding_size
        if (tuple(feat_sizes[-1]) != (embed, embed) or feats[-1].shape[2] != self.hidden_dim
                or poses[-1].shape[2] != self.hidden_dim):
            raise ValueError(f'current_vision_feats[-1] and current_vision_pos_embeds[-1] must be ({embed * embed}, '
                             f'B, {self.hidden_dim}) with feat_sizes[-1]=({embed}, {embed}), got {shapeof(feats[-1])}, '
                             f'{shapeof(poses[-1])} and {tuple(feat_sizes[-1])}')
        if point_inputs is not None:
            if not isinstance(point_inputs, dict) or not {'point_coords', 'point_labels'} <= set(point_inputs):
                got = sorted(point_inputs) if isinstance(point_inputs, dict) else shapeof(point_inputs)
                raise ValueError('point_inputs must be None or a dict with point_coords (B, P, 2) and point_labels '
                                 f'(B, P), got {got}')
            coords, labels = point_inputs['point_coords'], point_inputs['point_labels']
            if (not isinstance(coords, torch.Tensor) or coords.dim() != 3 or coords.shape[0] != batch_size
                    or coords.shape[2] != 2):
                raise ValueError(f'point_inputs["point_coords"] must be (B, P, 2) = ({batch_size}, P, 2), '
                                 f'got {shapeof(coords)}')
            if not isinstance(labels, torch.Tensor) or labels.shape != coords.shape[:2]:
                raise ValueError(f'point_inputs["point_labels"] must be (B, P) = {tuple(coords.shape[:2])}, '
                                 f'got {shapeof(labels)}')
        return batch_size

    @staticmethod
    def _checkmask(mask, name, batch_size, size=None):
        expected = f'({batch_size}, 1, {size[0]}, {size[1]})' if size else f'({batch_size}, 1, H, W)'
        if (not isinstance(mask, torch.Tensor) or mask.dim() != 4 or mask.shape[:2] != (batch_size, 1)
                or (size is not None and tuple(mask.shape[-2:]) != tuple(size))):
            raise ValueError(f'{name} must be a (B, 1, H, W) mask = {expected}, got {shapeof(mask)}')
