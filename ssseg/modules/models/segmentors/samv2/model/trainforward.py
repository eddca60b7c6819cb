"""The training forward of SAMV2 (Meta's ``SAM2Train.forward``): track a batch of clips from simulated prompts.

Every frame of every clip goes through the image encoder at once; then, frame by frame (the initial conditioning
frames first, then the others in time order), all objects of the batch are decoded together from their prompts and
memories, correction clicks are added on the frames chosen for them, and each frame's final masks are encoded into
the memory. The outputs keep every prediction step, as the loss supervises each one.
"""
from typing import List, Optional

import torch
import torch.utils.checkpoint

from .trainprompts import PromptPlan


def _addpoints(point_inputs, coords, labels):
    """Append clicks (O, P, 2) / (O, P) to an object's existing ``point_inputs`` (or start them)."""
    if point_inputs is None:
        return {'point_coords': coords, 'point_labels': labels}
    return {'point_coords': torch.cat([point_inputs['point_coords'], coords], dim=1),
            'point_labels': torch.cat([point_inputs['point_labels'], labels], dim=1)}


class SAMV2TrainingMixin:
    """``forwardtrain`` for an ``nn.Module`` with SAMV2's tracking step."""

    def forwardtrain(self, images: torch.Tensor, masks: torch.Tensor, obj_to_frame_idx: torch.Tensor, sampler,
                     plan: Optional[PromptPlan] = None, checkpoint_corrections: bool = False) -> List[dict]:
        """Track the objects of a batch of clips from prompts simulated on their ground truth.

        Args:
            images: (T, B, 3, S, S) float normalized frames of B clips (S = ``image_size``; an image is T = 1).
            masks: (T, O, S, S) bool ground truth of the O objects of the batch.
            obj_to_frame_idx: (T, O, 2) int, ``[t, b]``: the frame and clip each object is seen in.
            sampler: a prompt sampler (:class:`SAMV2TrainPromptSampler`), its step already started.
            plan: None to draw the clip's :class:`PromptPlan` from ``sampler``, or a given plan.
            checkpoint_corrections: recompute single-mask correction steps in backward (activation
                checkpointing) to save memory.
        Returns:
            T dicts (time order): ``multistep_pred_multimasks_high_res`` (steps of (O, M, S, S) logits),
            ``multistep_pred_ious`` (steps of (O, M)), ``multistep_object_score_logits`` (steps of (O, 1)),
            ``multistep_point_inputs``, ``multistep_pred_masks`` (O, steps, S/4, S/4) and ``..._high_res``,
            ``pred_masks`` (O, 1, S/4, S/4) and ``pred_masks_high_res`` (O, 1, S, S) of the last step,
            ``point_inputs``, ``mask_inputs``, ``maskmem_features``, ``maskmem_pos_enc``.
        Raises:
            ValueError: inputs of the wrong rank, size or dtype.
        """
        num_frames, num_clips = self._checktraininputs(images, masks, obj_to_frame_idx)
        backbone_out = self.forwardimage(images.transpose(0, 1).flatten(0, 1))
        vision_feats, vision_pos, feat_sizes = self.preparebackbonefeatures(backbone_out)
        plan = sampler.plan(num_frames) if plan is None else plan
        gt_per_frame = masks.unsqueeze(2)  # (T, O, 1, S, S)
        # flat image index of each object on each frame: clip-major, as the encoder saw them
        image_ids = obj_to_frame_idx[..., 1].long() * num_frames + obj_to_frame_idx[..., 0].long()
        output_dict = {'cond_frame_outputs': {}, 'non_cond_frame_outputs': {}}
        for frame_idx in plan.init_cond_frames + plan.framesnotincond(num_frames):
            ids = image_ids[frame_idx]
            point_inputs = mask_inputs = None
            if frame_idx in plan.init_cond_frames:
                if plan.use_pt_input:
                    coords, labels = sampler.initialprompt(gt_per_frame[frame_idx], frame_idx in plan.box_frames)
                    point_inputs = _addpoints(None, coords, labels)
                else:
                    mask_inputs = gt_per_frame[frame_idx]
            current_out = self._trainframe(
                frame_idx, frame_idx in plan.init_cond_frames, [x[:, ids] for x in vision_feats],
                [x[:, ids] for x in vision_pos], feat_sizes, point_inputs, mask_inputs, gt_per_frame[frame_idx],
                frame_idx in plan.frames_to_correct, output_dict, num_frames, sampler, checkpoint_corrections)
            as_cond = frame_idx in plan.init_cond_frames or (
                sampler.add_all_frames_to_correct_as_cond and frame_idx in plan.frames_to_correct)
            output_dict['cond_frame_outputs' if as_cond else 'non_cond_frame_outputs'][frame_idx] = current_out
        frames = {**output_dict['cond_frame_outputs'], **output_dict['non_cond_frame_outputs']}
        # the pointers stay out of the result: the loss does not read them (and DDP would see them unused)
        return [{k: v for k, v in frames[t].items() if k != 'obj_ptr'} for t in range(num_frames)]

    def _trainframe(self, frame_idx, is_init_cond_frame, feats, poses, feat_sizes, point_inputs, mask_inputs,
                    gt_masks, correct, output_dict, num_frames, sampler, checkpoint_corrections):
        """One frame of a training clip: decode, optionally correct with clicks, encode the memory."""
        current_out, sam_outputs, high_res_features, pix_feat = self._decodetrackedframe(
            frame_idx, is_init_cond_frame, feats, poses, feat_sizes, point_inputs, mask_inputs, output_dict,
            num_frames, False, None, None)
        steps = [(sam_outputs, point_inputs)]
        if correct:
            for _ in range(sampler.num_correction_pt_per_frame):
                last = steps[-1][0]
                pred = None if sampler.samplefromgt() else last[4] > 0
                point_inputs = _addpoints(point_inputs, *sampler.correctionclick(gt_masks, pred))
                multimask = self._usemultimask(is_init_cond_frame, point_inputs)
                heads_args = (pix_feat, point_inputs, last[3], high_res_features, multimask)
                if checkpoint_corrections and not multimask:
                    outputs = torch.utils.checkpoint.checkpoint(self.forwardsamheads, *heads_args, use_reentrant=False)
                else:
                    outputs = self.forwardsamheads(*heads_args)
                steps.append((outputs, point_inputs))
        final = steps[-1][0]
        # the frame's result (masks, pointer, memory) is its last prediction step's
        current_out.update(
            multistep_pred_masks=torch.cat([s[0][3] for s in steps], dim=1),
            multistep_pred_masks_high_res=torch.cat([s[0][4] for s in steps], dim=1),
            multistep_pred_multimasks=[s[0][0] for s in steps],
            multistep_pred_multimasks_high_res=[s[0][1] for s in steps],
            multistep_pred_ious=[s[0][2] for s in steps], multistep_point_inputs=[s[1] for s in steps],
            multistep_object_score_logits=[s[0][6] for s in steps],
            pred_masks=final[3], pred_masks_high_res=final[4], obj_ptr=final[5])
        self._addnewmemory(current_out, feats, feat_sizes, final[4], final[6], point_inputs is not None, True, False)
        return current_out

    def _checktraininputs(self, images, masks, obj_to_frame_idx):
        """(T, B) of checked training inputs."""
        size = self.image_size
        if not torch.is_tensor(images) or images.dim() != 5 or tuple(images.shape[2:]) != (3, size, size):
            raise ValueError(f'images must be a (T, B, 3, {size}, {size}) float tensor, got '
                             f'{tuple(images.shape) if torch.is_tensor(images) else type(images).__name__}')
        num_frames, num_clips = images.shape[:2]
        if not torch.is_tensor(masks) or masks.dtype != torch.bool or masks.dim() != 4 or \
                masks.shape[0] != num_frames or tuple(masks.shape[2:]) != (size, size):
            raise ValueError(f'masks must be a (T={num_frames}, O, {size}, {size}) bool tensor, got '
                             f'{(masks.dtype, tuple(masks.shape)) if torch.is_tensor(masks) else type(masks).__name__}')
        expected = (num_frames, masks.shape[1], 2)
        if not torch.is_tensor(obj_to_frame_idx) or tuple(obj_to_frame_idx.shape) != expected or \
                obj_to_frame_idx.is_floating_point():
            got = tuple(obj_to_frame_idx.shape) if torch.is_tensor(obj_to_frame_idx) else obj_to_frame_idx
            raise ValueError(f'obj_to_frame_idx must be a {expected} int tensor of [frame, clip] indices, '
                             f'got {got!r:.80}')
        if masks.shape[1] == 0:
            raise ValueError('masks has no objects (O = 0): a training batch needs at least one object')
        return num_frames, num_clips
