"""Batches of full-resolution masks handled a few at a time on the CPU, all at once on accelerators.

On a CPU, reusing smaller temporaries (about 16M pixels) is faster than one pass over hundreds of
large masks; on a GPU one pass is. Tests replace ``oncpupath`` to run the accelerator path on a CPU.
"""
from typing import Any, Optional

import numpy as np
import torch

CHUNK_PIXELS = 1 << 24


def oncpupath(tensor: torch.Tensor) -> bool:
    """Whether ``tensor`` is processed in CPU chunks (with numpy scans) rather than in one torch pass.

    Args:
        tensor: any tensor.
    Returns:
        True on the CPU.
    """
    return tensor.device.type == 'cpu'


def chunks(masks: torch.Tensor) -> list:
    """Slices over the first dim of ``masks``: about CHUNK_PIXELS each on the CPU, a single one elsewhere.

    Args:
        masks: (N, H, W) tensor.
    Returns:
        A list of slices covering [0, N) (empty for N = 0).
    """
    n, h, w = masks.shape
    step = max(1, CHUNK_PIXELS // max(1, h * w)) if oncpupath(masks) else max(1, n)
    return [slice(start, start + step) for start in range(0, n, step)]


def flatnonzero(flags: torch.Tensor) -> torch.Tensor:
    """Indices of the True entries of a bool tensor (numpy's scan is faster on the CPU).

    Args:
        flags: bool tensor of any shape.
    Returns:
        1-D int64 indices into ``flags.reshape(-1)``, on ``flags``' device.
    """
    if oncpupath(flags):
        return torch.from_numpy(np.flatnonzero(flags.numpy()))
    return flags.reshape(-1).nonzero()[:, 0]


def checkboolmasks(masks: Any, argname: str, ndim: Optional[int] = 3) -> None:
    """Check that ``masks`` is a bool torch tensor (with ``ndim`` dims unless None).

    Args:
        masks: the value to check.
        argname: the argument's name in the message.
        ndim: the number of dims it must have, or None for any.
    Returns:
        None.
    Raises:
        ValueError: naming ``argname``, for anything else.
    """
    if not isinstance(masks, torch.Tensor) or masks.dtype != torch.bool or (ndim and masks.dim() != ndim):
        form = f'a {ndim}-D' if ndim else 'a'
        got = (f'{masks.dtype} tensor of shape {tuple(masks.shape)}' if isinstance(masks, torch.Tensor)
               else type(masks).__name__)
        raise ValueError(f'{argname} must be {form} bool torch tensor, got {got}')
