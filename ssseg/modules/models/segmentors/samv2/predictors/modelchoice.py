"""The one way every SAMV2 predictor picks, builds and loads its model: ``use_default_*``, ``samv2_cfg``, ``model``."""
import copy
from typing import Optional, Union

import torch

from ssseg.modules.models.registries import BuildSegmentor
from ssseg.modules.models.segmentors.samv2.model import SAMV2
from ssseg.modules.models.segmentors.samv2.model.precision import checkprecision, warnifslow
from ssseg.modules.utils.checks import asflag
from ssseg.modules.utils.configs import loadsegmentorcfg

# constructor flag -> shipped config (each names Meta's checkpoint URL)
DEFAULT_MODELS = {
    'use_default_samv2_t': 'samv2_hiera_tiny', 'use_default_samv2_s': 'samv2_hiera_small',
    'use_default_samv2_bplus': 'samv2_hiera_baseplus', 'use_default_samv2_l': 'samv2_hiera_large',
    'use_default_samv21_t': 'samv21_hiera_tiny', 'use_default_samv21_s': 'samv21_hiera_small',
    'use_default_samv21_bplus': 'samv21_hiera_baseplus', 'use_default_samv21_l': 'samv21_hiera_large',
}
# what Meta's builders switch on with apply_postprocessing: the decoder falls back to the most stable
# multimask candidate, and (video) masks from clicks enter the memory binarized
POSTPROCESSING_DECODER = {'dynamic_multimask_via_stability': True, 'dynamic_multimask_stability_delta': 0.05,
                          'dynamic_multimask_stability_thresh': 0.98}
POSTPROCESSING_VIDEO = {'binarize_mask_from_pts_for_mem_enc': True}
# the build options a built model already fixed (so they cannot go with model=)
BUILD_OPTIONS = ('load_ckpt_strict', 'apply_postprocessing', 'precision', 'compile')


def defaultdevice(device: Optional[Union[str, int, torch.device]] = None) -> torch.device:
    """``device`` as a checked torch.device, before anything is built or loaded.

    Args:
        device: "cpu", "cuda", "cuda:N" (a str or torch.device) or an int N for cuda:N; None means cuda when
            available, else cpu.
    Returns:
        The torch.device.
    Raises:
        TypeError: other types.
        ValueError: other device strings, cuda where CUDA is not available, and cuda:N where this machine has no
            N-th CUDA device.
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


def choosesegmentorcfg(samv2_cfg: Optional[dict] = None, **flags: bool) -> dict:
    """Return a copy of the chosen model's config; exactly one of ``samv2_cfg`` and the flags must be on.

    Args:
        samv2_cfg: a config dict (``SEGMENTOR_CFG``), or None.
        flags: the ``use_default_*`` flags given (bools).
    Returns:
        A deep copy of ``samv2_cfg``, or the shipped config of the flag that is on.
    Raises:
        TypeError: other keyword names, a flag that is not a bool, or a ``samv2_cfg`` that is not a dict.
        ValueError: none or several models chosen.
    """
    unknown = sorted(set(flags) - set(DEFAULT_MODELS))
    if unknown:
        raise TypeError(f'unknown keyword argument(s) {unknown}: the model is chosen with samv2_cfg=<config dict>, '
                        f'model=<built SAMV2> or one of {sorted(DEFAULT_MODELS)}')
    chosen = [name for name in DEFAULT_MODELS if name in flags and asflag(flags[name], name)]
    if samv2_cfg is not None:
        chosen.append('samv2_cfg')
    if len(chosen) != 1:
        raise ValueError('choose exactly one model: samv2_cfg=<config dict>, model=<built SAMV2> or one of '
                         f'{", ".join(f"{k}=True" for k in DEFAULT_MODELS)}; got '
                         f'{", ".join(chosen) if chosen else "none"}')
    if samv2_cfg is None:
        return loadsegmentorcfg(DEFAULT_MODELS[chosen[0]])
    if not isinstance(samv2_cfg, dict):
        if isinstance(samv2_cfg, str):
            hint = f' (for a config name or file use samv2_cfg=loadsegmentorcfg({samv2_cfg!r}))'
        elif isinstance(samv2_cfg, torch.nn.Module):
            hint = ' (a built model goes in model=...)'
        else:
            hint = ''
        raise TypeError(f'samv2_cfg must be a config dict (SEGMENTOR_CFG of a config file), got '
                        f'{type(samv2_cfg).__name__} {samv2_cfg!r:.80}{hint}')
    return copy.deepcopy(samv2_cfg)


def buildsamv2(cfg: dict, device: Optional[Union[str, int, torch.device]] = None, load_ckpt_strict: bool = True,
               apply_postprocessing: bool = True, precision: Optional[Union[str, torch.dtype]] = None,
               video: bool = False, compile: Optional[bool] = None) -> SAMV2:
    """Build SAMV2 from ``cfg``, load ``cfg['ckptpath']`` and return it in eval mode on ``device``.

    Args:
        cfg: a config dict (``SEGMENTOR_CFG``); its ``ckptpath`` (URL or local path) must be set.
        device: see :func:`defaultdevice`.
        load_ckpt_strict: refuse any missing or unexpected key.
        apply_postprocessing: as Meta's builders, a single-mask output falls back to the most stable
            multimask candidate (stability delta 0.05, threshold 0.98); with ``video`` masks from clicks
            are also binarized before they are encoded into memory.
        precision: 'float32', the opt-in 'bfloat16' (autocast; warns where the device has no fast
            bfloat16), their torch dtypes, or None for the config's own (float32 unless it says otherwise).
        video: build for the video predictor (see ``apply_postprocessing``).
        compile: torch.compile the image encoder, memory attention, memory encoder and mask decoder (the config's
            ``compile_modules``; None keeps the config's, False by default). Opt-in: the first calls compile.
    Returns:
        The SAMV2 model; every option is passed through the config, none is set after the build.
    Raises:
        TypeError: a ``cfg`` that is not a dict, a flag that is not a bool.
        ValueError: a ``cfg`` without "type" or without ``ckptpath``, a bad ``precision`` or ``device`` (checked
            before the build and checkpoint load); the checkpoint's own errors (e.g. CheckpointError).
    """
    if not isinstance(cfg, dict):
        raise TypeError(f'samv2_cfg must be a config dict (SEGMENTOR_CFG of a config file), got {type(cfg).__name__}')
    if 'type' not in cfg:
        raise ValueError(f'samv2_cfg must have a "type" key naming a registered segmentor (e.g. "SAMV2"), got keys '
                         f'{sorted(map(str, cfg))}')
    precision = checkprecision(cfg.get('precision', 'float32') if precision is None else precision)
    load_ckpt_strict = asflag(load_ckpt_strict, 'load_ckpt_strict')
    apply_postprocessing = asflag(apply_postprocessing, 'apply_postprocessing')
    compile_modules = asflag(cfg.get('compile_modules', False) if compile is None else compile, 'compile')
    # checked before the (slow) build and checkpoint load
    device = defaultdevice(device)
    if not cfg.get('ckptpath'):
        raise ValueError('samv2_cfg["ckptpath"] must name the checkpoint (a URL or a local path): a predictor '
                         'never runs with random weights')
    cfg = {**copy.deepcopy(cfg), 'precision': precision, 'compile_modules': compile_modules}
    if apply_postprocessing:
        cfg['mask_decoder'] = {**cfg.get('mask_decoder', {}), **POSTPROCESSING_DECODER}
        if video:
            cfg.update(POSTPROCESSING_VIDEO)
    model = BuildSegmentor(cfg).loadckpt(strict=load_ckpt_strict).to(device).eval()
    warnifslow(precision, model.device)
    return model


def choosemodel(model: Optional[SAMV2] = None, samv2_cfg: Optional[dict] = None,
                device: Optional[Union[str, int, torch.device]] = None, video: bool = False,
                buildoptions: Optional[dict] = None, flags: Optional[dict] = None) -> SAMV2:
    """The model a predictor runs: ``model`` as given (an already built SAMV2, shared), or one built by
    :func:`buildsamv2` from ``samv2_cfg`` or a ``use_default_*`` flag.

    Args:
        model: a built SAMV2, or None to build one.
        samv2_cfg: a config dict, or None.
        device: see :func:`defaultdevice`. With ``model``, ``device`` moves nothing: it must be None or the
            model's device.
        video: build for the video predictor.
        buildoptions: {'load_ckpt_strict', 'apply_postprocessing', 'precision', 'compile'}: None for the defaults
            (True, True, the config's precision and compile_modules); with ``model`` they must stay None, since the
            model fixed them.
        flags: the ``use_default_*`` flags given, {name: bool}.
    Returns:
        The SAMV2 model.
    Raises:
        TypeError: a ``model`` that is not a SAMV2; :func:`choosesegmentorcfg`'s and :func:`buildsamv2`'s errors.
        ValueError: ``model`` with ``samv2_cfg``, a flag on or a build option; ``device`` not the model's.
    """
    buildoptions, flags = dict(buildoptions or {}), dict(flags or {})
    if model is None:
        buildoptions = {name: value for name, value in buildoptions.items() if value is not None}
        return buildsamv2(choosesegmentorcfg(samv2_cfg, **flags), device=device, video=video, **buildoptions)
    if not isinstance(model, SAMV2):
        raise TypeError(f'model must be a built SAMV2 (e.g. from BuildSegmentor(cfg).loadckpt() or '
                        f'ssseg.compat.sam2.build_sam2), got {type(model).__name__}')
    given = sorted(['samv2_cfg'] * (samv2_cfg is not None) + [name for name, on in flags.items() if on])
    if given:
        raise ValueError(f'model= is a built model: give it alone, without {", ".join(given)}')
    fixed = sorted(name for name, value in buildoptions.items() if value is not None)
    if fixed:
        raise ValueError(f'{", ".join(fixed)} are options of building the model, which model= already fixed '
                         f'(e.g. model.precision={model.precision!r}): pass them to buildsamv2 or build_sam2 instead')
    wanted = None if device is None else defaultdevice(device)
    on = model.device
    if wanted is not None and (wanted.type, on.index if wanted.index is None else wanted.index) != (on.type, on.index):
        raise ValueError(f'device={device!r} but model= is on {model.device}: move the model first (model.to(...))')
    return model
