"""mmengine's Runner for a fine-tune config: the model, the data, the optimizer, the schedule and the hooks.

``buildrunner(cfg, work_dir)`` turns ``{'SEGMENTOR_CFG', 'TRAIN_CFG'}`` (see :mod:`ssseg.training.config`) into a
Runner with an ``IterBasedTrainLoop``; ``runner.train()`` runs it. Under torchrun (WORLD_SIZE > 1) the process group
must already be open (:func:`processgroup`): gloo on CPUs, nccl on GPUs; each process then trains on its own
``batch_size`` clips, the model is wrapped in DDP and the gradients are averaged.
"""
import contextlib
import datetime
import os
from typing import Optional, Union

import torch
import torch.distributed as dist
from mmengine.config import Config
from mmengine.model import MMDistributedDataParallel
from mmengine.runner import Runner

from .hooks import SAMV2FinalModelHook, SAMV2LossLogHook, SAMV2WeightsOnlyCheckpointHook
from .model import SAMV2Finetuner
from .optim import SAMV2OptimWrapperConstructor

# registered in mmengine's registries when imported: the Runner builds them by name
_REGISTERED = (SAMV2OptimWrapperConstructor, SAMV2LossLogHook, SAMV2FinalModelHook, SAMV2WeightsOnlyCheckpointHook)


def worldsize() -> int:
    """WORLD_SIZE of torchrun's environment (1 without torchrun)."""
    return int(os.environ.get('WORLD_SIZE', 1))


def traindevice(device: Optional[Union[str, torch.device]] = None) -> torch.device:
    """This process's device: ``device``, else this rank's GPU when there is one, else the CPU.

    Under torchrun plain 'cuda' means cuda:LOCAL_RANK."""
    local_rank = int(os.environ.get('LOCAL_RANK', 0))
    if device is None:
        device = 'cuda' if torch.cuda.is_available() else 'cpu'
    device = torch.device(device)
    if device.type == 'cuda' and device.index is None:
        device = torch.device('cuda', local_rank if worldsize() > 1 else torch.cuda.current_device())
    return device


@contextlib.contextmanager
def processgroup(device: torch.device, timeout_minutes: int = 30):
    """Open torch.distributed's group under torchrun (gloo on CPUs, nccl on GPUs) and close it afterwards."""
    opened = False
    if worldsize() > 1 and not dist.is_initialized():
        if device.type == 'cuda':
            torch.cuda.set_device(device)
        dist.init_process_group(backend='nccl' if device.type == 'cuda' else 'gloo',
                                timeout=datetime.timedelta(minutes=timeout_minutes))
        opened = True
    try:
        yield
    finally:
        if opened:
            dist.destroy_process_group()


def builddataset(dataset_cfg: dict, image_size: int):
    """The training dataset of ``dataset_cfg`` (``image_size`` added when missing), checked file by file.

    Raises:
        DatasetError: (from the data layer) bad data, naming the file; the builder's errors for a bad config.
    """
    from ssseg.modules.datasets import BuildDataset, checkdataset
    cfg = dict(dataset_cfg)
    cfg.setdefault('image_size', image_size)
    dataset = BuildDataset(cfg)
    checkdataset(dataset)
    return dataset


class SAMV2Runner(Runner):
    """mmengine's Runner that puts the model on the chosen device (mmengine's own choice is cuda whenever there is
    one)."""

    def __init__(self, *args, device: torch.device, **kwargs):
        self._traindevice = device
        super().__init__(*args, **kwargs)

    def wrap_model(self, model_wrapper_cfg, model):
        """The model on this process's device, in DDP (gradients averaged over ranks) under torchrun."""
        model = model.to(self._traindevice)
        if not self.distributed:
            return model
        device_ids = [self._traindevice.index] if self._traindevice.type == 'cuda' else None
        # find_unused_parameters: frozen modules, and parts a step does not use (no memory on a one-frame clip)
        return MMDistributedDataParallel(module=model, device_ids=device_ids, broadcast_buffers=False,
                                         find_unused_parameters=True)



def _optimwrapper(train_cfg: dict, device: torch.device) -> dict:
    """TRAIN_CFG's optim_wrapper, with bfloat16 (or float16) autocast on CUDA when ``amp`` is enabled."""
    cfg = dict(train_cfg['optim_wrapper'])
    amp = dict(train_cfg.get('amp') or {})
    if device.type == 'cuda' and amp.get('enabled', False):
        cfg.update(type='AmpOptimWrapper', dtype=amp.get('dtype', 'bfloat16'))
    return cfg


def _paramschedulers(train_cfg: dict) -> list:
    """Cosine from each group's rate to ``lr_end_ratio`` of it over max_iters, after an optional linear warm-up."""
    max_iters, warmup = int(train_cfg['max_iters']), int(train_cfg.get('warmup_iters', 0))
    schedulers = [dict(type='CosineAnnealingLR', eta_min_ratio=float(train_cfg.get('lr_end_ratio', 0.1)),
                       begin=0, end=max_iters, T_max=max_iters, by_epoch=False)]
    if warmup > 0:
        schedulers.insert(0, dict(type='LinearLR', start_factor=float(train_cfg.get('warmup_ratio', 1e-3)),
                                  begin=0, end=min(warmup, max_iters), by_epoch=False))
    return schedulers


def _hooks(train_cfg: dict) -> tuple:
    checkpoint = dict(train_cfg.get('checkpoint') or {})
    default_hooks = dict(
        logger=dict(type='LoggerHook', interval=int(train_cfg.get('log_interval', 10)), log_metric_by_epoch=False),
        checkpoint=dict(type='CheckpointHook', by_epoch=False, save_last=True,
                        interval=checkpoint.pop('interval', 1000), **checkpoint))
    custom_hooks = [dict(type='SAMV2LossLogHook'), dict(type='SAMV2FinalModelHook'),
                    dict(type='SAMV2WeightsOnlyCheckpointHook')]
    custom_hooks += list(train_cfg.get('custom_hooks') or [])
    return default_hooks, custom_hooks


def buildmodel(cfg: dict) -> SAMV2Finetuner:
    """The :class:`SAMV2Finetuner` of a fine-tune config (the SAMV2 loaded from its ``ckptpath`` when set)."""
    train = cfg['TRAIN_CFG']
    step_seed = int(train.get('seed', 0)) if train.get('step_seed', True) else None
    return SAMV2Finetuner(cfg['SEGMENTOR_CFG'], train['prompt_sampler'], train['loss'], freeze=train.get('freeze', ()),
                          checkpoint_corrections=train.get('checkpoint_corrections', False), step_seed=step_seed)


def buildrunner(cfg: dict, work_dir: str, dataset=None, model: Optional[SAMV2Finetuner] = None,
                device: Optional[Union[str, torch.device]] = None, resume: bool = False) -> SAMV2Runner:
    """mmengine's Runner fine-tuning SAMV2 as ``cfg`` says.

    Args:
        cfg: {'SEGMENTOR_CFG': dict, 'TRAIN_CFG': dict} (:func:`ssseg.training.config.loadfinetunecfg`).
        work_dir: where checkpoints (iter_N.pth, last_checkpoint), losses.jsonl, model_final.pt and the logs go.
        dataset: the training dataset; None builds and checks TRAIN_CFG['dataset'] (:func:`builddataset`).
        model: the model; None builds it (:func:`buildmodel`).
        device: this process's device (see :func:`traindevice`).
        resume: continue from the latest checkpoint of ``work_dir`` (model, optimizer, schedulers, iteration).
    Returns:
        The Runner; ``.train()`` runs the loop and returns the model.
    """
    train, device = cfg['TRAIN_CFG'], traindevice(device)
    seed, workers = int(train.get('seed', 0)), int(train.get('num_workers', 0))
    if dataset is None:
        dataset = builddataset(train['dataset'], cfg['SEGMENTOR_CFG']['image_size'])
    from ssseg.modules.datasets import collateclips
    dataloader = dict(dataset=dataset, sampler=dict(train.get('data_sampler') or dict(type='SAMV2InfiniteSampler')),
                      batch_size=int(train['batch_size']), num_workers=workers, persistent_workers=workers > 0,
                      pin_memory=device.type == 'cuda', collate_fn=collateclips)
    default_hooks, custom_hooks = _hooks(train)
    backend = 'nccl' if device.type == 'cuda' else 'gloo'
    return SAMV2Runner(
        model=buildmodel(cfg) if model is None else model, work_dir=os.path.abspath(work_dir),
        train_dataloader=dataloader, train_cfg=dict(type='IterBasedTrainLoop', max_iters=int(train['max_iters'])),
        optim_wrapper=_optimwrapper(train, device), param_scheduler=_paramschedulers(train),
        default_hooks=default_hooks, custom_hooks=custom_hooks, resume=resume,
        launcher='pytorch' if worldsize() > 1 else 'none',
        env_cfg=dict(cudnn_benchmark=False, dist_cfg=dict(backend=backend)),
        randomness=dict(seed=seed), log_processor=dict(by_epoch=False), cfg=Config(cfg), device=device)
