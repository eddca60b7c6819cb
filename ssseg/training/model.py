"""The model mmengine's Runner trains: a SAMV2 with its prompt sampler and loss, and the batch's move to the device.

One training iteration is :meth:`SAMV2.forwardtrain` on a :class:`ClipBatch` with prompts simulated by the sampler,
then the loss. The sampler's draws of a step are a function of (its seed, the iteration, each object's index in the
global batch over all ranks), so a resumed run draws what an uninterrupted one does, and one process with two clips
draws what two processes with one clip each draw.
"""
from collections import OrderedDict
from typing import Dict, Iterable, Optional, Tuple

import torch
import torch.distributed as dist
from mmengine.logging import MessageHub
from mmengine.model import BaseDataPreprocessor, BaseModel

from ssseg.modules import BuildLoss, BuildPromptSampler, BuildSegmentor

_SEED_MIX = 1_000_003  # a prime spreading (seed, iteration, rank) over distinct generator seeds


class ClipBatchPreprocessor(BaseDataPreprocessor):
    """Moves the collated :class:`ClipBatch` to the model's device: ``{'batch': batch.to(device)}``."""

    def forward(self, data, training: bool = False) -> dict:
        """Args: data: a ClipBatch (``collateclips``' output). Returns: {'batch': the batch on this device}."""
        return {'batch': data.to(self.device)}


def _rankinfo() -> Tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def firstobjectindex(num_objects: int, device: torch.device) -> int:
    """The index, in the global batch over all ranks, of this rank's first object.

    Args:
        num_objects: the number of objects of this rank's batch.
        device: where the collective runs (the process group's device).
    Returns:
        The sum of the object counts of the lower ranks (0 without torch.distributed).
    """
    rank, world = _rankinfo()
    if world == 1:
        return 0
    counts = [torch.zeros(1, dtype=torch.int64, device=device) for _ in range(world)]
    dist.all_gather(counts, torch.tensor([num_objects], dtype=torch.int64, device=device))
    return int(sum(c.item() for c in counts[:rank]))


class SAMV2Finetuner(BaseModel):
    """SAMV2 training for mmengine: ``forward(batch, mode='loss')`` returns the losses of one iteration.

    Args:
        segmentor: the SAMV2 config (``SEGMENTOR_CFG``); its ``ckptpath`` (when not None) is loaded strictly.
        prompt_sampler: the prompt sampler config (e.g. type='SAMV2TrainPromptSampler').
        loss: the loss config (e.g. type='SAMV2MultiStepLoss').
        freeze: SAMV2 module names (e.g. 'image_encoder', 'sam_prompt_encoder', 'image_encoder.trunk') whose
            parameters are not trained.
        checkpoint_corrections: recompute the correction-click steps in backward (less memory).
        step_seed: None, or the seed from which torch's random generator is reset at every iteration (from
            (seed, iteration, rank)): dropout and drop path then repeat exactly after a resume.
        data_preprocessor: None for :class:`ClipBatchPreprocessor`.
    Raises:
        ValueError: an unknown ``freeze`` name (listing the module names), and the builders' errors.
    """

    def __init__(self, segmentor: dict, prompt_sampler: dict, loss: dict, freeze: Iterable[str] = (),
                 checkpoint_corrections: bool = False, step_seed: Optional[int] = None, data_preprocessor=None):
        super().__init__(data_preprocessor=data_preprocessor or ClipBatchPreprocessor())
        self.segmentor = BuildSegmentor(dict(segmentor))
        if segmentor.get('ckptpath'):
            self.segmentor.loadckpt(segmentor['ckptpath'])
        self.prompt_sampler = BuildPromptSampler(dict(prompt_sampler))
        self.loss = BuildLoss(dict(loss))
        self.freeze = freezemodules(self.segmentor, freeze)
        self.checkpoint_corrections = bool(checkpoint_corrections)
        self.step_seed = None if step_seed is None else int(step_seed)
        self._calls = 0

    def _iteration(self) -> int:
        """The runner's iteration (mmengine's message hub), or the number of earlier training calls without one."""
        iteration = MessageHub.get_current_instance().get_info('iter')
        return self._calls if iteration is None else int(iteration)

    def forward(self, batch, mode: str = 'loss') -> Dict[str, torch.Tensor]:
        """One training step's losses.

        Args:
            batch: a ClipBatch on this device: images (T, B, 3, S, S) float32, masks (T, O, S, S) bool,
                obj_to_frame_idx (T, O, 2) int64.
            mode: 'loss' (the only mode: fine-tuning has no validation loop).
        Returns:
            0-d float32 tensors: ``loss`` (the weighted total that is back-propagated) and its unweighted terms
            ``loss_mask``, ``loss_dice``, ``loss_iou``, ``loss_class``.
        Raises:
            ValueError: another mode.
        """
        if mode != 'loss':
            raise ValueError(f"mode must be 'loss' (SAMV2Finetuner only trains), got {mode!r}")
        iteration = self._iteration()
        self._calls += 1
        if self.step_seed is not None:
            rank, _ = _rankinfo()
            torch.manual_seed(((self.step_seed * _SEED_MIX + iteration) * _SEED_MIX + rank) % (2 ** 63))
        first = firstobjectindex(batch.masks.shape[1], batch.masks.device)
        self.prompt_sampler.startstep(iteration, first_object=first)
        outputs = self.segmentor.forwardtrain(batch.images, batch.masks, batch.obj_to_frame_idx, self.prompt_sampler,
                                              checkpoint_corrections=self.checkpoint_corrections)
        return self.loss(outputs, batch.masks)

    def parse_losses(self, losses: Dict[str, torch.Tensor]) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
        """(the total to back-propagate, the values to log): ``loss`` is the loss's own weighted total, not a sum
        of every key holding 'loss' (which would add the unweighted terms to it again)."""
        total = losses['loss']
        log_vars = OrderedDict([('loss', total.detach())])
        log_vars.update((name, value.detach()) for name, value in losses.items() if name != 'loss')
        return total, log_vars


def freezemodules(model: torch.nn.Module, names: Iterable[str]) -> list:
    """Stop training the parameters of the named submodules (or parameters) of ``model``.

    Args:
        model: the SAMV2.
        names: module names as in ``model.named_modules()`` (e.g. 'image_encoder'), or parameter names.
    Returns:
        The names, as a list.
    Raises:
        TypeError: ``names`` not a list of str; ValueError: a name that is neither, listing the top-level modules.
    """
    if isinstance(names, str) or not all(isinstance(n, str) for n in names):
        raise TypeError(f'freeze must be a list of module names, e.g. ["image_encoder"], got {names!r:.120}')
    names = list(names)
    modules, params = dict(model.named_modules()), dict(model.named_parameters())
    unknown = [n for n in names if n not in modules and n not in params or n == '']
    if unknown:
        children = [n for n, _ in model.named_children()] + [n for n, _ in model.named_parameters(recurse=False)]
        raise ValueError(f'freeze: unknown module names {unknown}; the modules of {type(model).__name__} are '
                         f'{", ".join(children)} (or a submodule of one, e.g. image_encoder.trunk)')
    for name in names:
        for param in ([params[name]] if name in params else modules[name].parameters()):
            param.requires_grad_(False)
    return names
