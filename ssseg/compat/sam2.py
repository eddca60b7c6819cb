"""Meta's ``sam2`` builders and predictor classes on top of ssseg, so that a script written for Meta's package
switches by changing its import lines::

    from ssseg.compat.sam2 import build_sam2, build_sam2_video_predictor, SAM2ImagePredictor, SAM2AutomaticMaskGenerator

Config names are Meta's (``configs/sam2.1/sam2.1_hiera_t.yaml``, ``configs/sam2/sam2_hiera_b+.yaml``, the
legacy ``sam2_hiera_l.yaml``); ``hydra_overrides_extra`` may set, as ``++model.<name>=<value>``, any option
SAMV2 shares with Meta's ``SAM2Base`` (e.g. ``++model.non_overlap_masks_for_mem_enc=true``), the mask decoder's
``sam_mask_decoder_extra_args.dynamic_multimask_*`` and, for the video builder, the video predictor's
options (``fill_hole_area``, ``non_overlap_masks``, ...). Anything else is refused by name.

Differences from Meta's, each on purpose: ``device`` defaults to cuda when available, else cpu (Meta's
always to cuda); ``ckpt_path`` is required (Meta's builder returns random weights without one); unknown
keyword arguments raise TypeError (Meta's ignores them); ``vos_optimized=True`` gives ssseg's compiled path
(``compile=True``: the same masks as eager, with objects batched) instead of Meta's predictor class.
"""
import dataclasses
import os
from typing import Any, Optional, Sequence, Union

import torch

from ssseg.modules.models.segmentors.samv2.model import SAMV2
from ssseg.modules.models.segmentors.samv2.model.options import SAMV2Options
from ssseg.modules.models.segmentors.samv2.predictors import SAMV2AutomaticMaskGenerator, SAMV2ImagePredictor
from ssseg.modules.models.segmentors.samv2.predictors.modelchoice import buildsamv2
from ssseg.modules.models.segmentors.samv2.video import SAMV2VideoPredictor
from ssseg.modules.utils.checks import asflag
from ssseg.modules.utils.configs import loadsegmentorcfg

# Meta's config names -> ssseg's configs of the same checkpoints
META_CONFIGS = {
    'configs/sam2/sam2_hiera_t.yaml': 'samv2_hiera_tiny', 'configs/sam2/sam2_hiera_s.yaml': 'samv2_hiera_small',
    'configs/sam2/sam2_hiera_b+.yaml': 'samv2_hiera_baseplus', 'configs/sam2/sam2_hiera_l.yaml': 'samv2_hiera_large',
    'configs/sam2.1/sam2.1_hiera_t.yaml': 'samv21_hiera_tiny',
    'configs/sam2.1/sam2.1_hiera_s.yaml': 'samv21_hiera_small',
    'configs/sam2.1/sam2.1_hiera_b+.yaml': 'samv21_hiera_baseplus',
    'configs/sam2.1/sam2.1_hiera_l.yaml': 'samv21_hiera_large',
}
# the legacy top-level names of Meta's package (SAM 2)
META_CONFIGS.update({os.path.basename(name): ours for name, ours in list(META_CONFIGS.items())
                     if name.startswith('configs/sam2/')})
_MODEL_OPTIONS = {field.name for field in dataclasses.fields(SAMV2Options)} - {'precision'}
_DECODER_OPTIONS = ('dynamic_multimask_via_stability', 'dynamic_multimask_stability_delta',
                    'dynamic_multimask_stability_thresh')
_VIDEO_OPTIONS = ('fill_hole_area', 'non_overlap_masks', 'clear_non_cond_mem_around_input',
                  'clear_non_cond_mem_for_multi_obj', 'add_all_frames_to_correct_as_cond')
# what Meta's video builder adds with apply_postprocessing, after the caller's overrides (so it wins)
_VIDEO_POSTPROCESSING = {'fill_hole_area': 8}


def _parsevalue(text):
    """A hydra override's value: true/false, null, an int or a float (YAML spelling); anything else stays a str."""
    lowered = text.strip().lower()
    if lowered in ('true', 'false'):
        return lowered == 'true'
    if lowered in ('null', 'none', '~'):
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text.strip()


def _parseoverride(override, video):
    """``'++model.<key>=<value>'`` -> (where, key, value); where is 'model', 'mask_decoder' or 'video'."""
    supported = ('the options SAMV2 shares with SAM2Base, sam_mask_decoder_extra_args.'
                 + '/'.join(_DECODER_OPTIONS) + (', and ' + ', '.join(_VIDEO_OPTIONS) if video else ''))
    if not isinstance(override, str) or '=' not in override:
        raise ValueError(f'hydra_overrides_extra entries must be strings "++model.<name>=<value>", got {override!r}')
    name, value = override.split('=', 1)
    name = name.lstrip('+')
    if not name.startswith('model.'):
        raise ValueError(f'hydra override {override!r} is not supported by ssseg.compat.sam2: only '
                         '++model.<name>=<value> '
                         f'for {supported}')
    key, value = name[len('model.'):], _parsevalue(value)
    if key.startswith('sam_mask_decoder_extra_args.') and key.split('.', 1)[1] in _DECODER_OPTIONS:
        return 'mask_decoder', key.split('.', 1)[1], value
    if key in _MODEL_OPTIONS:
        return 'model', key, value
    if video and key in _VIDEO_OPTIONS:
        return 'video', key, value
    if key == 'compile_image_encoder' and value is False:
        return 'ignored', key, value
    raise ValueError(f'hydra override {override!r}: {key!r} is not supported by ssseg.compat.sam2; supported: '
                     f'{supported}')


def _config(config_file, ckpt_path, overrides, video):
    """(SEGMENTOR_CFG with the overrides applied, the video predictor's options from them)."""
    if config_file not in META_CONFIGS:
        raise ValueError(f'config_file {config_file!r} is not one of Meta\'s config names; known: '
                         f'{", ".join(sorted(META_CONFIGS))}')
    cfg = loadsegmentorcfg(META_CONFIGS[config_file])
    if ckpt_path is None:
        raise ValueError('ckpt_path is required: Meta\'s builder returns random weights without one, ssseg\'s '
                         'never do; '
                         f'pass the checkpoint file or URL, e.g. ckpt_path={cfg["ckptpath"]!r}')
    cfg['ckptpath'] = os.fspath(ckpt_path)
    if isinstance(overrides, str) or not isinstance(overrides, (list, tuple)):
        raise TypeError(f'hydra_overrides_extra must be a list of "++model.<name>=<value>" strings, got '
                        f'{type(overrides).__name__} {overrides!r:.80}')
    videooptions = {}
    for override in overrides:
        where, key, value = _parseoverride(override, video)
        if where == 'model':
            cfg[key] = value
        elif where == 'mask_decoder':
            cfg['mask_decoder'] = {**cfg['mask_decoder'], key: value}
        elif where == 'video':
            videooptions[key] = value
    return cfg, videooptions


def _checkextra(function, mode, kwargs):
    if kwargs:
        raise TypeError(f'{function}() got unexpected keyword argument(s) {sorted(kwargs)}')
    if mode not in ('eval', 'train'):
        raise ValueError(f"mode must be 'eval' or 'train', got {mode!r}")


def build_sam2(config_file: str, ckpt_path: Optional[Union[str, os.PathLike]] = None,
               device: Optional[Union[str, int, torch.device]] = None, mode: str = 'eval',
               hydra_overrides_extra: Sequence[str] = (), apply_postprocessing: bool = True, **kwargs: Any) -> SAMV2:
    """Meta's ``build_sam2``: the SAMV2 model of a Meta config name with a checkpoint, in eval mode on ``device``.

    Args:
        config_file: one of Meta's config names (e.g. 'configs/sam2.1/sam2.1_hiera_t.yaml').
        ckpt_path: the checkpoint file or URL (required).
        device: as for :func:`defaultdevice` (cuda when available, else cpu).
        mode: 'eval' or 'train'.
        hydra_overrides_extra: a list of "++model.<name>=<value>" strings (see the module docstring).
        apply_postprocessing: as Meta's builder (see :func:`buildsamv2`).
        kwargs: refused (TypeError), as any unknown keyword argument.
    Returns:
        The :class:`SAMV2` model, for ``SAM2ImagePredictor(model)`` / ``SAM2AutomaticMaskGenerator(model)``
        (or ssseg's predictors with ``model=``).
    Raises:
        TypeError: unknown keyword arguments, ``hydra_overrides_extra`` not a list or tuple.
        ValueError: an unknown config name, no ``ckpt_path``, another ``mode``, an override that is not a
            "++model.<name>=<value>" string or not supported; and :func:`buildsamv2`'s errors.
    """
    _checkextra('build_sam2', mode, kwargs)
    cfg, _ = _config(config_file, ckpt_path, hydra_overrides_extra, video=False)
    model = buildsamv2(cfg, device=device, apply_postprocessing=apply_postprocessing)
    return model.train() if mode == 'train' else model


def build_sam2_video_predictor(config_file: str, ckpt_path: Optional[Union[str, os.PathLike]] = None,
                               device: Optional[Union[str, int, torch.device]] = None, mode: str = 'eval',
                               hydra_overrides_extra: Sequence[str] = (), apply_postprocessing: bool = True,
                               vos_optimized: bool = False, **kwargs: Any) -> SAMV2VideoPredictor:
    """Meta's ``build_sam2_video_predictor``: a :class:`SAMV2VideoPredictor` of a Meta config name with a checkpoint.

    Args:
        config_file, ckpt_path, device, mode, kwargs: as for :func:`build_sam2`.
        hydra_overrides_extra: as for :func:`build_sam2`, plus the video predictor's options.
        apply_postprocessing: as Meta's builder; holes of up to 8 low-res pixels are then filled whatever the
            overrides say, as in Meta's builder (whose hole filling needs its compiled extension; ssseg's runs with
            OpenCV everywhere).
        vos_optimized: True compiles the model (``compile=True``; the outputs stay those of the eager path).
    Returns:
        The :class:`SAMV2VideoPredictor`.
    Raises:
        TypeError: ``vos_optimized`` not a bool; and :func:`build_sam2`'s errors (TypeError, ValueError).
    """
    _checkextra('build_sam2_video_predictor', mode, kwargs)
    vos_optimized = asflag(vos_optimized, 'vos_optimized')
    cfg, options = _config(config_file, ckpt_path, hydra_overrides_extra, video=True)
    if apply_postprocessing:
        options.update(_VIDEO_POSTPROCESSING)
    predictor = SAMV2VideoPredictor(samv2_cfg=cfg, device=device, apply_postprocessing=apply_postprocessing,
                                    compile=vos_optimized or None, **options)
    if mode == 'train':
        predictor.model.train()
    return predictor


def SAM2ImagePredictor(sam_model: SAMV2, mask_threshold: float = 0.0, max_hole_area: float = 0.0,
                       max_sprinkle_area: float = 0.0, **kwargs: Any) -> SAMV2ImagePredictor:
    """Meta's ``SAM2ImagePredictor(sam_model, mask_threshold=0.0, max_hole_area=0.0, max_sprinkle_area=0.0)``.

    Args:
        sam_model: a built SAMV2 (e.g. from :func:`build_sam2`).
        mask_threshold, max_hole_area, max_sprinkle_area: as for :class:`SAMV2ImagePredictor`, in Meta's order.
        kwargs: other keyword arguments of :class:`SAMV2ImagePredictor`.
    Returns:
        An ssseg :class:`SAMV2ImagePredictor` sharing the given model.
    Raises:
        TypeError, ValueError: as :class:`SAMV2ImagePredictor`.
    """
    return SAMV2ImagePredictor(model=sam_model, mask_threshold=mask_threshold, max_hole_area=max_hole_area,
                               max_sprinkle_area=max_sprinkle_area, **kwargs)


def SAM2AutomaticMaskGenerator(model: SAMV2, *args: Any, **kwargs: Any) -> SAMV2AutomaticMaskGenerator:
    """Meta's ``SAM2AutomaticMaskGenerator(model, points_per_side=32, ...)``.

    Args:
        model: a built SAMV2 (e.g. from :func:`build_sam2`).
        args, kwargs: the same options in the same order as :class:`SAMV2AutomaticMaskGenerator`.
    Returns:
        An ssseg :class:`SAMV2AutomaticMaskGenerator` sharing the given model.
    Raises:
        TypeError, ValueError: as :class:`SAMV2AutomaticMaskGenerator`.
    """
    return SAMV2AutomaticMaskGenerator(*args, model=model, **kwargs)

