"""What a fine-tuning run leaves in its work dir besides mmengine's checkpoints and logs.

- ``losses.jsonl``: one JSON object per iteration, ``{"iter": n, "lr": ..., "vision_lr": ..., "loss": ...,
  "loss_mask": ...}`` (n counts finished iterations, as mmengine's ``iter_n.pth``; losses are the mean over ranks,
  which is the loss of the whole global batch). A resumed run first drops the lines past its checkpoint, so every
  iteration appears once.
- ``model_final.pt``: ``{'model': state_dict}`` of the SAMV2 alone, in Meta's format and key names, written
  atomically when training ends: ``BuildSegmentor(cfg).loadckpt(path)`` and Meta's ``build_sam2`` load it strictly.
"""
import json
import os
from typing import Optional

import torch
import torch.distributed as dist
from mmengine.hooks import Hook
from mmengine.registry import HOOKS

from ssseg.modules.utils.fileio import writeatomically, writebytes

LOSSES_FILE, FINAL_FILE = 'losses.jsonl', 'model_final.pt'


def _segmentor(runner):
    model = getattr(runner.model, 'module', runner.model)
    return getattr(model, 'segmentor', model)


def _ranksmean(values: dict, device) -> dict:
    """{name: float}: the mean of each 0-d tensor over the ranks (every rank must call this)."""
    names = sorted(values)
    stacked = torch.stack([values[n].detach().float().reshape(()) for n in names]).to(device)
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.all_reduce(stacked)
        stacked = stacked / dist.get_world_size()
    return dict(zip(names, stacked.tolist()))


def _grouplrs(optimizer) -> dict:
    """The unscaled base and vision rates of :func:`ssseg.training.optim.paramgroups`' groups."""
    lrs = {}
    for group in optimizer.param_groups:
        kind = str(group.get('group', 'base')).split('/')[0]
        key = 'lr' if kind == 'base' else f'{kind}_lr'
        if key not in lrs or group.get('lr_scale', 1.0) == 1.0:
            lrs[key] = group['lr'] / group.get('lr_scale', 1.0)
    return lrs


@HOOKS.register_module()
class SAMV2LossLogHook(Hook):
    """Appends every iteration's losses and learning rates to ``work_dir/losses.jsonl`` (rank 0 writes).

    Args:
        filename: the file name inside the work dir.
    """

    priority = 'BELOW_NORMAL'

    def __init__(self, filename: str = LOSSES_FILE):
        self.filename = filename
        self.path: Optional[str] = None

    def before_train(self, runner) -> None:
        """Start the file: empty for a new run, cut back to the resumed iteration for a resumed one."""
        self.path = os.path.join(runner.work_dir, self.filename)
        if runner.rank != 0:
            return
        kept = []
        if runner.iter > 0 and os.path.isfile(self.path):
            with open(self.path, encoding='utf-8') as file:
                for line in file:
                    try:
                        record = json.loads(line)
                    except ValueError:  # a line cut short when the run was killed
                        continue
                    if isinstance(record, dict) and isinstance(record.get('iter'), int) and \
                            record['iter'] <= runner.iter:
                        kept.append(json.dumps(record) + '\n')
        writebytes(self.path, ''.join(kept).encode('utf-8'))

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs: Optional[dict] = None) -> None:
        """Append ``{"iter": runner.iter + 1, lrs..., losses...}`` (one write of one line)."""
        losses = {k: v for k, v in (outputs or {}).items() if torch.is_tensor(v)}
        values = _ranksmean(losses, next(_segmentor(runner).parameters()).device)
        if runner.rank != 0:
            return
        record = {'iter': runner.iter + 1, **_grouplrs(runner.optim_wrapper.optimizer), **values}
        with open(self.path, 'a', encoding='utf-8') as file:
            file.write(json.dumps(record) + '\n')


def _plain(value):
    """``value`` with numpy scalars and arrays turned into Python numbers and lists."""
    if isinstance(value, dict):
        return type(value)((k, _plain(v)) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(v) for v in value)
    return value.tolist() if hasattr(value, 'tolist') and not torch.is_tensor(value) else value


@HOOKS.register_module()
class SAMV2WeightsOnlyCheckpointHook(Hook):
    """Keeps mmengine's resumable checkpoints loadable with ``torch.load(weights_only=True)``: the message hub's
    logging history (numpy buffers, whose pickles call ``getattr``) is left out and numpy values become Python ones.
    A resumed run restarts its log smoothing windows; the iteration, schedules and optimizer state are all kept."""

    priority = 'VERY_LOW'

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        """Edit ``checkpoint`` in place before mmengine writes it."""
        hub = checkpoint.get('message_hub')
        if isinstance(hub, dict):
            hub['log_scalars'] = type(hub.get('log_scalars', {}))()
            hub['runtime_info'] = _plain(hub.get('runtime_info', {}))
            hub['resumed_keys'] = type(hub.get('resumed_keys', {}))(
                (k, v) for k, v in hub.get('resumed_keys', {}).items() if k in hub['runtime_info'])
        checkpoint['meta'] = _plain(checkpoint.get('meta', {}))


@HOOKS.register_module()
class SAMV2FinalModelHook(Hook):
    """Writes ``work_dir/model_final.pt`` = ``{'model': SAMV2 state_dict}`` (CPU tensors) when training ends.

    Args:
        filename: the file name inside the work dir.
    """

    priority = 'LOW'

    def __init__(self, filename: str = FINAL_FILE):
        self.filename = filename

    def after_train(self, runner) -> None:
        """Save the trained SAMV2 on rank 0 (atomically: the file is complete or absent)."""
        if runner.rank != 0:
            return
        state = {k: v.detach().cpu() for k, v in _segmentor(runner).state_dict().items()}
        writeatomically(os.path.join(runner.work_dir, self.filename), lambda temp: torch.save({'model': state}, temp))
