"""Opt-in reduced precision: run SAMV2's heavy entry points under bfloat16 autocast.

``precision='float32'`` (the default) changes nothing and matches Meta's outputs to round-off;
``precision='bfloat16'`` runs matrix products, convolutions and attention in bfloat16 (CUDA or
CPU autocast) while every floating tensor handed back to the predictors is float32 again, so the
predictors' post-processing and numpy outputs are unchanged. Masks then differ slightly from
float32 (the docs' benchmarks give the IoU).
"""
import functools
import warnings
from typing import Callable, Union

import torch

PRECISIONS = {'float32': torch.float32, 'bfloat16': torch.bfloat16}


def checkprecision(precision: Union[str, torch.dtype]) -> str:
    """Return ``precision`` as 'float32' or 'bfloat16' (a torch dtype of either is accepted too).

    Args:
        precision: 'float32', 'bfloat16', torch.float32 or torch.bfloat16.

    Returns:
        'float32' or 'bfloat16'.

    Raises:
        ValueError: ``precision`` is none of these.
    """
    for name, dtype in PRECISIONS.items():
        if precision == name or precision is dtype:
            return name
    raise ValueError(f"precision must be 'float32' or 'bfloat16' (or the torch dtype), got {precision!r}")


def bfloat16isfast(device: torch.device) -> bool:
    """Whether ``device`` has hardware bfloat16 products.

    Args:
        device: the device to ask about.

    Returns:
        CUDA: what the GPU says; CPU: oneDNN's AVX512-BF16/AMX check; any other device type: False.
    """
    if device.type == 'cuda':
        return torch.cuda.is_bf16_supported()
    if device.type == 'cpu':
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    return False


def warnifslow(precision: str, device: torch.device) -> None:
    """Warn when bfloat16 was asked for on a device that only emulates it (it is then slower than float32).

    Args:
        precision: 'float32' or 'bfloat16'.
        device: the device the model runs on.
    """
    if precision == 'bfloat16' and not bfloat16isfast(device):
        warnings.warn(f'precision="bfloat16" on {device} without hardware bfloat16 support (CPU capability '
                      f'{torch.backends.cpu.get_cpu_capability()}): it runs, but slower than float32', stacklevel=4)


def _tofloat32(value):
    """Cast bfloat16 tensors in a (nested) dict / list / tuple back to float32; everything else is returned as is."""
    if isinstance(value, torch.Tensor):
        return value.float() if value.dtype == torch.bfloat16 else value
    if isinstance(value, dict):
        return {key: _tofloat32(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_tofloat32(item) for item in value)
    return value


def inmodelprecision(method: Callable) -> Callable:
    """Decorate a model method to run under bfloat16 autocast when ``self.precision == 'bfloat16'``.

    Args:
        method: a method of a module with ``precision`` and ``device`` attributes.

    Returns:
        The wrapped method: bfloat16 tensors in its (nested dict / list / tuple) output come back float32;
        nested calls of decorated methods autocast once.
    """
    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        if getattr(self, 'precision', 'float32') == 'float32' or torch.is_autocast_enabled(self.device.type):
            return method(self, *args, **kwargs)
        with torch.autocast(self.device.type, dtype=torch.bfloat16):
            out = method(self, *args, **kwargs)
        return _tofloat32(out)
    return wrapper
