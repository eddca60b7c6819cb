"""SAM 2's training loss: focal and dice on the best of the candidate masks, IoU prediction and object score,
summed over every prediction step (the first prompt and each correction click) of every frame.

Reductions follow Meta's ``MultiStepMultiMasksAndIous`` (``training/loss_fns.py`` of ``sam2==1.1.0``): each
per-object term is divided by the number of objects in the batch (averaged over ranks under torch.distributed), the
mask terms are summed over steps and frames, and an object absent from the ground truth contributes only its object
score term.
"""
from typing import Dict, List, Optional

import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F

from ..registries import LOSSES

LOSS_NAMES = ('loss_mask', 'loss_dice', 'loss_iou', 'loss_class')


def sigmoidfocalloss(logits: torch.Tensor, targets: torch.Tensor, num_objects: float, alpha: float = 0.25,
                     gamma: float = 2.0, per_mask: bool = False) -> torch.Tensor:
    """Focal loss of logits against 0/1 targets of the same shape, divided by ``num_objects``.

    Args:
        logits, targets: (N, M, H, W) with ``per_mask``, else (N, K) (K values averaged per row).
        alpha: weight of positives in [0, 1], or < 0 for none.
    Returns:
        (N, M) per-mask losses with ``per_mask`` (spatial mean), else a 0-d tensor (row means summed).
    """
    prob = logits.sigmoid()
    loss = F.binary_cross_entropy_with_logits(logits, targets, reduction='none')
    p_t = prob * targets + (1 - prob) * (1 - targets)
    loss = loss * (1 - p_t) ** gamma
    if alpha >= 0:
        loss = (alpha * targets + (1 - alpha) * (1 - targets)) * loss
    if per_mask:
        return loss.flatten(2).mean(-1) / num_objects
    return loss.mean(1).sum() / num_objects


def diceloss(logits: torch.Tensor, targets: torch.Tensor, num_objects: float) -> torch.Tensor:
    """Soft dice loss per mask (smoothed by 1): (N, M, H, W) logits and 0/1 targets -> (N, M) / ``num_objects``."""
    prob, targets = logits.sigmoid().flatten(2), targets.flatten(2)
    dice = (2 * (prob * targets).sum(-1) + 1) / (prob.sum(-1) + targets.sum(-1) + 1)
    return (1 - dice) / num_objects


def iouloss(logits: torch.Tensor, targets: torch.Tensor, pred_ious: torch.Tensor, num_objects: float,
            use_l1: bool = False) -> torch.Tensor:
    """Error of the predicted IoUs (N, M) against the IoUs of the binarized masks (N, M, H, W) -> (N, M)."""
    pred, gt = logits.flatten(2) > 0, targets.flatten(2) > 0
    actual = (pred & gt).sum(-1).float() / (pred | gt).sum(-1).float().clamp(min=1.0)
    error = F.l1_loss if use_l1 else F.mse_loss
    return error(pred_ious, actual, reduction='none') / num_objects


@LOSSES.register_module()
class SAMV2MultiStepLoss(nn.Module):
    """Loss of :meth:`SAMV2.forwardtrain`'s outputs against the ground-truth masks.

    Args:
        weight_dict: weights of ``loss_mask`` (focal), ``loss_dice``, ``loss_iou`` and ``loss_class`` (object score;
            0 when missing) in the total ``loss``.
        focal_alpha, focal_gamma: the focal loss of the masks.
        supervise_all_iou: the IoU term covers every candidate mask, not only the best one.
        iou_use_l1_loss: L1 instead of squared error for the IoU term.
        pred_obj_scores: supervise the object score logits (the model predicts them).
        focal_alpha_obj_score, focal_gamma_obj_score: the focal loss of the object scores.
    """

    def __init__(self, weight_dict: Dict[str, float], focal_alpha: float = 0.25, focal_gamma: float = 2.0,
                 supervise_all_iou: bool = False, iou_use_l1_loss: bool = False, pred_obj_scores: bool = False,
                 focal_gamma_obj_score: float = 0.0, focal_alpha_obj_score: float = -1.0):
        super().__init__()
        if not isinstance(weight_dict, dict):
            raise TypeError(f'weight_dict must be a dict of loss weights, got {type(weight_dict).__name__}')
        unknown = sorted(set(weight_dict) - set(LOSS_NAMES))
        missing = [name for name in LOSS_NAMES[:3] if name not in weight_dict]
        if unknown or missing:
            raise ValueError(f'weight_dict must weigh {list(LOSS_NAMES[:3])} (and optionally loss_class), got '
                             f'{sorted(weight_dict)}' + (f'; unknown: {unknown}' if unknown else ''))
        self.weight_dict = {name: float(weight_dict.get(name, 0.0)) for name in LOSS_NAMES}
        self.focal_alpha, self.focal_gamma = focal_alpha, focal_gamma
        self.supervise_all_iou, self.iou_use_l1_loss = supervise_all_iou, iou_use_l1_loss
        self.pred_obj_scores = pred_obj_scores
        self.focal_alpha_obj_score, self.focal_gamma_obj_score = focal_alpha_obj_score, focal_gamma_obj_score

    def forward(self, frame_outputs: List[dict], masks: torch.Tensor,
                num_objects: Optional[float] = None) -> Dict[str, torch.Tensor]:
        """Sum the losses over frames and prediction steps.

        Args:
            frame_outputs: T dicts with ``multistep_pred_multimasks_high_res`` (steps of (O, M, S, S) logits),
                ``multistep_pred_ious`` (steps of (O, M)) and ``multistep_object_score_logits`` (steps of (O, 1)).
            masks: (T, O, S, S) bool or 0/1 ground truth.
            num_objects: the divisor; None uses O, averaged over ranks when torch.distributed is initialized.
        Returns:
            0-d tensors ``loss_mask``, ``loss_dice``, ``loss_iou``, ``loss_class`` and their weighted sum ``loss``.
        Raises:
            ValueError: frame count or object count of the outputs not matching ``masks``.
        """
        if masks.dim() != 4 or len(frame_outputs) != masks.shape[0]:
            raise ValueError(f'masks must be (T, O, H, W) with T = {len(frame_outputs)} frames of outputs, '
                             f'got {tuple(masks.shape)}')
        if num_objects is None:
            num_objects = self._numobjects(masks)
        totals = {name: masks.new_zeros((), dtype=torch.float32) for name in LOSS_NAMES}
        for outputs, frame_masks in zip(frame_outputs, masks):
            steps = zip(outputs['multistep_pred_multimasks_high_res'], outputs['multistep_pred_ious'],
                        outputs['multistep_object_score_logits'])
            for step_masks, step_ious, step_scores in steps:
                if step_masks.shape[0] != frame_masks.shape[0]:
                    raise ValueError(f'outputs have {step_masks.shape[0]} objects, masks {frame_masks.shape[0]}')
                for name, value in self._steplosses(step_masks, frame_masks, step_ious, step_scores,
                                                    num_objects).items():
                    totals[name] = totals[name] + value
        totals['loss'] = sum(totals[name] * weight for name, weight in self.weight_dict.items() if weight != 0)
        return totals

    @staticmethod
    def _numobjects(masks):
        count = torch.tensor(float(masks.shape[1]), device=masks.device)
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(count)
            count = count / dist.get_world_size()
        return max(count.item(), 1.0)

    def _steplosses(self, logits, frame_masks, ious, object_scores, num_objects):
        """The four terms of one prediction step: (O, M, S, S) logits against (O, S, S) masks."""
        targets = frame_masks[:, None].to(logits.dtype).expand_as(logits)
        focal = sigmoidfocalloss(logits, targets, num_objects, self.focal_alpha, self.focal_gamma, per_mask=True)
        dice = diceloss(logits, targets, num_objects)
        iou = iouloss(logits, targets, ious, num_objects, self.iou_use_l1_loss)
        if self.pred_obj_scores:
            present = targets[:, 0].flatten(1).gt(0).any(-1, keepdim=True).to(logits.dtype)
            score = sigmoidfocalloss(object_scores, present, num_objects, self.focal_alpha_obj_score,
                                     self.focal_gamma_obj_score)
        else:
            present = logits.new_ones(logits.shape[0], 1)
            score = logits.new_zeros(())
        if logits.shape[1] > 1:
            # the candidate closest to the ground truth takes the mask terms, as in SAM
            best = torch.argmin(focal * self.weight_dict['loss_mask'] + dice * self.weight_dict['loss_dice'], dim=-1)
            rows = torch.arange(logits.shape[0], device=logits.device)
            iou = iou.mean(-1, keepdim=True) if self.supervise_all_iou else iou[rows, best, None]
            focal, dice = focal[rows, best, None], dice[rows, best, None]
        return {'loss_mask': (focal * present).sum(), 'loss_dice': (dice * present).sum(),
                'loss_iou': (iou * present).sum(), 'loss_class': score}
