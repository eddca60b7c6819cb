"""Random-weight checkpoints in Meta's official format, written by Meta's own ``sam2`` package.

Every float tensor is perturbed with seeded noise (plain init leaves many tensors constant, which
would hide bugs in the paths they feed), and the mask hypernetworks are scaled so mask logits have a
trained model's magnitude (about +-10), so thresholds and stability scores see realistic values.
"""
import os
from typing import Any, Optional, Union

import torch

from ssseg.compat.sam2 import META_CONFIGS
from ssseg.modules.utils.configs import availableconfigs, loadsegmentorcfg

# our config name -> the oracle's config name
ORACLE_CONFIGS = {ours: meta for meta, ours in META_CONFIGS.items() if meta.startswith('configs/')}
# our config name -> Meta's file name of its checkpoint (what torch.hub's cache holds)
CHECKPOINT_NAMES = {name: os.path.basename(loadsegmentorcfg(name)['ckptpath']) for name in availableconfigs()}
HYPERNETWORK_GAIN = 40.0


def buildoraclemodel(name: str, ckptpath: Optional[Union[str, os.PathLike]] = None,
                     **kwargs: Any) -> torch.nn.Module:
    """Meta's model for our config ``name`` (built by Meta's ``build_sam2`` on the CPU; needs ``sam2``).

    Args:
        name: one of our config names (a key of ``ORACLE_CONFIGS``, e.g. 'samv21_hiera_tiny').
        ckptpath: a checkpoint for Meta's builder, or None for its random weights.
        kwargs: further arguments of Meta's ``build_sam2``.
    Returns:
        Meta's ``SAM2Base`` model on the CPU.
    Raises:
        KeyError: an unknown ``name``; ImportError: ``sam2`` is not installed.
    """
    from sam2.build_sam import build_sam2
    return build_sam2(ORACLE_CONFIGS[name], ckptpath, device='cpu', **kwargs)


def writerandomcheckpoint(name: str, path: Union[str, os.PathLike], seed: int = 0,
                          **build_kwargs: Any) -> Union[str, os.PathLike]:
    """Write a perturbed random ``{'model': state_dict}`` for config ``name`` to ``path`` (atomically).

    Args:
        name: one of our config names (see :func:`buildoraclemodel`).
        path: the checkpoint file to create or replace (its folder is created).
        seed: the seed of the random init and of the noise, so a checkpoint is the same in every run.
        build_kwargs: go to Meta's builder (e.g. ``hydra_overrides_extra``).
    Returns:
        ``path``.
    """
    torch.manual_seed(seed)  # the oracle's own random init, so a checkpoint is the same in every run
    model = buildoraclemodel(name, apply_postprocessing=False, **build_kwargs)
    generator = torch.Generator().manual_seed(seed)
    state = model.state_dict()
    for key, tensor in state.items():
        if tensor.is_floating_point():
            tensor.add_(torch.randn(tensor.shape, generator=generator) * 0.02)
        if 'output_hypernetworks_mlps' in key and '.layers.2.' in key:
            tensor.mul_(HYPERNETWORK_GAIN)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f'{path}.tmp{os.getpid()}'
    torch.save({'model': state}, tmp)
    os.replace(tmp, path)
    return path
