"""The one way every SAMV2 predictor picks, builds and loads its model (``use_default_*`` or ``samv2_cfg``)."""
import copy

import torch

from ..builder import BuildSegmentor
from ....utils.configs import loadsegmentorcfg
from ....utils.heap import holdheapfor
from .precision import checkprecision, warnifslow
from .prompts import asflag

# constructor flag -> shipped config (each names Meta's checkpoint URL)
DEFAULT_MODELS = {
    'use_default_samv2_t': 'samv2_hiera_tiny', 'use_default_samv2_s': 'samv2_hiera_small',
    'use_default_samv2_bplus': 'samv2_hiera_baseplus', 'use_default_samv2_l': 'samv2_hiera_large',
    'use_default_samv21_t': 'samv21_hiera_tiny', 'use_default_samv21_s': 'samv21_hiera_small',
    'use_default_samv21_bplus': 'samv21_hiera_baseplus', 'use_default_samv21_l': 'samv21_hiera_large',
}


def defaultdevice(device=None):
    """``device`` as a checked torch.device; None means cuda when available, else cpu.

    Accepts "cpu", "cuda", "cuda:N" (a str or torch.device) or an int N for cuda:N. Raises TypeError for
    other types and ValueError for other device strings, for cuda where CUDA is not available, and
    for cuda:N where this machine has no N-th CUDA device, before anything is built or loaded.
    """
    if device is None:
        return torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    expected = 'device must be "cpu", "cuda" or "cuda:N" (a str, torch.device or int N)'
    if isinstance(device, bool) or not isinstance(device, (str, torch.device, int)):
        raise TypeError(f'{expected}, got {type(device).__name__} {device!r}')
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError, ValueError) as err:
        raise ValueError(f'{expected}, got {device!r}') from err
    if parsed.type not in ('cpu', 'cuda'):
        raise ValueError(f'{expected}, got {device!r} (device type {parsed.type!r} is not supported)')
    if parsed.type == 'cuda':
        label = f'{device} (cuda:{device})' if isinstance(device, int) else repr(device)
        if not torch.cuda.is_available():
            raise ValueError(f'device={label}: CUDA is not available here (torch.cuda.is_available() is False); '
                             'use device="cpu"')
        count = torch.cuda.device_count()
        if parsed.index is not None and parsed.index >= count:
            raise ValueError(f'device={label}: this machine has {count} CUDA device(s), so N in "cuda:N" must be '
                             f'in [0, {count - 1}]')
    return parsed


def choosesegmentorcfg(samv2_cfg=None, **flags):
    """Return a copy of the chosen model's config; exactly one of ``samv2_cfg`` and the flags must be given."""
    unknown = sorted(set(flags) - set(DEFAULT_MODELS))
    if unknown:
        raise TypeError(f'unknown model choice arguments {unknown}; known: {sorted(DEFAULT_MODELS)} or samv2_cfg')
    chosen = [name for name, on in flags.items() if on]
    if samv2_cfg is not None:
        chosen.append('samv2_cfg')
    if len(chosen) != 1:
        raise ValueError('choose exactly one model: samv2_cfg=<config dict> or one of '
                         f'{", ".join(f"{k}=True" for k in DEFAULT_MODELS)}; got '
                         f'{", ".join(chosen) if chosen else "none"}')
    if samv2_cfg is None:
        return loadsegmentorcfg(DEFAULT_MODELS[chosen[0]])
    if not isinstance(samv2_cfg, dict):
        hint = f' (for a config name or file use samv2_cfg=loadsegmentorcfg({samv2_cfg!r}))' if isinstance(samv2_cfg, str) else ''
        raise TypeError(f'samv2_cfg must be a config dict (SEGMENTOR_CFG of a config file), got '
                        f'{type(samv2_cfg).__name__} {samv2_cfg!r:.80}{hint}')
    return copy.deepcopy(samv2_cfg)


def buildsamv2(cfg, device=None, load_ckpt_strict=True, apply_postprocessing=True, precision='float32'):
    """Build SAMV2 from ``cfg``, load ``cfg['ckptpath']`` (if set) and return it in eval mode on ``device``.

    ``apply_postprocessing`` falls back to multimask output when a single mask is unstable
    (stability delta 0.05, threshold 0.98), as Meta's builder does. ``precision='bfloat16'`` opts in to
    bfloat16 autocast (``precision.py``; warns where the device has no fast bfloat16). On a CPU the model keeps freed
    memory in the heap while it lives (``ssseg.modules.utils.heap``).
    """
    precision = checkprecision(precision)
    if not isinstance(cfg, dict):
        raise TypeError(f'samv2_cfg must be a config dict (SEGMENTOR_CFG of a config file), got {type(cfg).__name__}')
    if 'type' not in cfg:
        raise ValueError(f'samv2_cfg must have a "type" key naming a registered segmentor (e.g. "SAMV2"), got keys '
                         f'{sorted(map(str, cfg))}')
    load_ckpt_strict = asflag(load_ckpt_strict, 'load_ckpt_strict')
    apply_postprocessing = asflag(apply_postprocessing, 'apply_postprocessing')
    # checked before the (slow) build and checkpoint load
    device = defaultdevice(device)
    cfg = copy.deepcopy(cfg)
    if apply_postprocessing:
        cfg['mask_decoder'] = {**cfg.get('mask_decoder', {}), 'dynamic_multimask_via_stability': True,
                               'dynamic_multimask_stability_delta': 0.05, 'dynamic_multimask_stability_thresh': 0.98}
    if not cfg.get('ckptpath'):
        raise ValueError('samv2_cfg["ckptpath"] must name the checkpoint (a URL or a local path): a predictor '
                         'never runs with random weights')
    model = BuildSegmentor(cfg).loadckpt(strict=load_ckpt_strict).to(device).eval()
    model.precision = precision
    warnifslow(precision, model.device)
    if model.device.type == 'cpu':
        holdheapfor(model)  # activations are reused from call to call instead of page-faulted anew
    return model
