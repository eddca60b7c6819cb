"""Meta's training step (``training.model.sam2.SAM2Train`` of sam2 1.1.0) run on the prompts our sampler drew.

Tests and the benchmark compare our training step with Meta's on the same batch: ours draws the prompts through a
:class:`RecordingSampler`, and :func:`metatrainforward` makes Meta's model replay them (its prompt preparation and its
point sampler are replaced, for the call, by the recorded draws). Needs ``sam2`` and ``tensordict``.
"""
import contextlib
from typing import List, Optional

import torch

from ssseg.modules import BuildPromptSampler


class RecordingSampler:
    """A prompt sampler built from ``cfg`` whose initial prompts and correction clicks are recorded in order."""

    def __init__(self, cfg: dict):
        self.sampler = BuildPromptSampler(cfg)
        self.initial, self.corrections = [], []

    def __getattr__(self, name):
        return getattr(self.sampler, name)

    def startstep(self, iteration: int, first_object: int = 0) -> None:
        self.sampler.startstep(iteration, first_object)
        self.initial, self.corrections = [], []

    def initialprompt(self, gt_masks, use_box):
        prompt = self.sampler.initialprompt(gt_masks, use_box)
        self.initial.append(prompt)
        return prompt

    def correctionclick(self, gt_masks, pred_masks):
        click = self.sampler.correctionclick(gt_masks, pred_masks)
        self.corrections.append(click)
        return click


def buildmetatrainmodel(name: str, ckptpath: Optional[str], image_size: int, **options) -> torch.nn.Module:
    """Meta's ``SAM2Train`` for our config ``name`` (Meta's inference config, no post-processing), in train mode.

    Args:
        name: one of our config names with a Meta config (``ssseg.testing.ORACLE_CONFIGS``).
        ckptpath: Meta-format checkpoint, or None for random weights.
        image_size: the model's input size.
        options: ``SAM2Train`` options (e.g. ``num_correction_pt_per_frame=3``).
    """
    from sam2.build_sam import build_sam2

    from .checkpoints import ORACLE_CONFIGS
    overrides = ['++model._target_=training.model.sam2.SAM2Train', f'++model.image_size={image_size}']
    overrides += [f'++model.{key}={str(value).lower() if isinstance(value, bool) else value}'
                  for key, value in options.items()]
    return build_sam2(ORACLE_CONFIGS[name], ckptpath, device='cpu', hydra_overrides_extra=overrides,
                      apply_postprocessing=False).train()


@contextlib.contextmanager
def _replaying(plan, recorder, num_frames):
    import training.model.sam2 as metatrain
    initial, corrections = iter(recorder.initial), iter(recorder.corrections)

    def replayedprompts(self, backbone_out, data, start_frame_idx=0):
        gt = {t: m.unsqueeze(1) for t, m in enumerate(data.masks)}
        backbone_out.update(
            gt_masks_per_frame=gt, num_frames=num_frames, use_pt_input=plan.use_pt_input,
            init_cond_frames=list(plan.init_cond_frames), frames_not_in_init_cond=plan.framesnotincond(num_frames),
            frames_to_add_correction_pt=list(plan.frames_to_correct), mask_inputs_per_frame={},
            point_inputs_per_frame={})
        for t in plan.init_cond_frames:
            if plan.use_pt_input:
                coords, labels = next(initial)
                backbone_out['point_inputs_per_frame'][t] = {'point_coords': coords, 'point_labels': labels}
            else:
                backbone_out['mask_inputs_per_frame'][t] = gt[t]
        return backbone_out

    saved = metatrain.SAM2Train.prepare_prompt_inputs, metatrain.get_next_point
    metatrain.SAM2Train.prepare_prompt_inputs = replayedprompts
    metatrain.get_next_point = lambda gt_masks, pred_masks, method: next(corrections)
    try:
        yield corrections
    finally:
        metatrain.SAM2Train.prepare_prompt_inputs, metatrain.get_next_point = saved


def metatrainforward(theirs: torch.nn.Module, images: torch.Tensor, masks: torch.Tensor,
                     obj_to_frame_idx: torch.Tensor, plan, recorder: RecordingSampler) -> List[dict]:
    """Meta's training forward on our batch layout with the plan and the prompts ``recorder`` handed out.

    Args:
        theirs: Meta's ``SAM2Train`` (see :func:`buildmetatrainmodel`).
        images, masks, obj_to_frame_idx: as for :meth:`SAMV2.forwardtrain` ((T, B, 3, S, S), (T, O, S, S) bool,
            (T, O, 2) [frame, clip]).
        plan: the :class:`PromptPlan` our step used.
        recorder: the sampler our step used.
    Returns:
        Meta's T per-frame output dicts.
    Raises:
        AssertionError: Meta's step used fewer correction clicks than ours drew.
    """
    from training.utils.data_utils import BatchedVideoDatapoint, BatchedVideoMetaData
    num_frames, num_objects = masks.shape[:2]
    metadata = BatchedVideoMetaData(
        unique_objects_identifier=torch.zeros(num_frames, num_objects, 3, dtype=torch.long),
        frame_orig_size=torch.zeros(num_frames, num_objects, 2, dtype=torch.long), batch_size=[num_frames])
    data = BatchedVideoDatapoint(img_batch=images, obj_to_frame_idx=obj_to_frame_idx.int(), masks=masks,
                                 metadata=metadata, dict_key='ssseg', batch_size=[num_frames])
    with _replaying(plan, recorder, num_frames) as corrections:
        outputs = theirs(data)
        assert next(corrections, None) is None, "Meta's step used fewer correction clicks than ours drew"
    return outputs
