"""SAM 2's parameter groups for fine-tuning, built by an mmengine optimizer-wrapper constructor.

The groups follow the recipe of Meta's training configs (``sam2.1_hiera_b+_MOSE_finetune.yaml``):

- every parameter named ``image_encoder.*`` trains at the vision learning rate, all others at the base rate;
- inside the Hiera trunk the rate decays layer by layer, ``layer_decay ** (num_blocks + 1 - layer_id)``: the patch
  embedding and position embeddings are layer 0, block k is layer k + 1, anything else in the trunk is the top
  layer (no decay); names matching an override pattern (``*pos_embed*`` -> 1.0) take the override's scale instead;
- weight decay is 0 for names matching ``*bias*`` and for the parameters of ``torch.nn.LayerNorm`` modules (the
  module's exact class, as Meta matches it: ``LayerNorm2d`` keeps its decay), and the base weight decay elsewhere.

Parameters that do not require gradients (frozen) are left out of the optimizer.
"""
import fnmatch
import importlib
from collections import OrderedDict
from typing import Dict, List, Optional, Sequence

import torch.nn as nn
from mmengine.optim import OptimWrapper
from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS, OPTIM_WRAPPERS, OPTIMIZERS

_PARAMWISE_KEYS = ('vision_lr', 'vision_params', 'layer_decay', 'layer_decay_apply_to', 'layer_decay_overrides',
                   'no_decay_names', 'no_decay_modules')


def trunklayerid(name: str, num_blocks: int) -> int:
    """The layer index of a Hiera trunk parameter for layer-wise decay.

    Args:
        name: the parameter's name (any prefix before the trunk's own names).
        num_blocks: the number of blocks of the trunk.
    Returns:
        0 for the patch and position embeddings, k + 1 for block k, num_blocks + 1 for the rest.
    """
    if 'rel_pos' in name:
        return num_blocks + 1
    if 'pos_embed' in name or 'patch_embed' in name:
        return 0
    if 'blocks' in name:
        return int(name.split('blocks', 1)[1].split('.')[1]) + 1
    return num_blocks + 1


def _moduleclasses(names: Sequence[str]) -> tuple:
    classes = []
    for dotted in names:
        module, _, attr = dotted.rpartition('.')
        try:
            classes.append(getattr(importlib.import_module(module), attr))
        except (ImportError, AttributeError, ValueError) as err:
            raise ValueError(f'no_decay_modules: {dotted!r} is not an importable class (e.g. torch.nn.LayerNorm)') \
                from err
    return tuple(classes)


def _nodecaynames(model: nn.Module, patterns: Sequence[str], module_classes: tuple) -> set:
    """Names of the parameters without weight decay: by name pattern, or owned directly by a module of those classes."""
    names = {name for name, _ in model.named_parameters() if any(fnmatch.fnmatchcase(name, p) for p in patterns)}
    for module_name, module in model.named_modules():
        if type(module) in module_classes:  # the exact class, not subclasses, as Meta's matching
            names.update(f'{module_name}.{p}' if module_name else p for p, _ in module.named_parameters(recurse=False))
    return names


def paramgroups(model: nn.Module, lr: float, weight_decay: float, vision_lr: Optional[float] = None,
                vision_params: Sequence[str] = ('image_encoder.*',), layer_decay: Optional[float] = None,
                layer_decay_apply_to: str = 'image_encoder.trunk', layer_decay_overrides: Optional[Dict] = None,
                no_decay_names: Sequence[str] = ('*bias*',),
                no_decay_modules: Sequence[str] = ('torch.nn.LayerNorm',), trainable_only: bool = True) -> List[dict]:
    """Optimizer parameter groups of a SAMV2 (names as in Meta's checkpoints).

    Args:
        model: the SAMV2 (its parameter names decide the groups).
        lr, weight_decay: the base learning rate and weight decay.
        vision_lr: the learning rate of the ``vision_params`` patterns (None: ``lr``).
        layer_decay: the per-layer factor inside ``layer_decay_apply_to`` (a Hiera trunk); None for none.
        layer_decay_overrides: {name pattern: scale} replacing the layer scale of matching trunk parameters.
        no_decay_names, no_decay_modules: name patterns and module classes (dotted) without weight decay.
        trainable_only: leave out parameters that do not require gradients.
    Returns:
        A list of dicts ``params`` (list of nn.Parameter), ``lr``, ``weight_decay``, ``lr_scale`` (of the layer
        decay) and ``group`` (a readable name, e.g. 'vision/layer3/no_decay'); the groups whose rate is the base
        rate come first, so mmengine's logged ``lr`` is the base rate.
    Raises:
        ValueError: a ``layer_decay_apply_to`` that is not a submodule with ``blocks``, or a bad class name.
    """
    overrides = dict(layer_decay_overrides or {})
    num_blocks = None
    if layer_decay is not None:
        try:
            num_blocks = len(model.get_submodule(layer_decay_apply_to).blocks)
        except AttributeError as err:
            raise ValueError(f'layer_decay_apply_to={layer_decay_apply_to!r} must name a submodule with blocks (a '
                             f'Hiera trunk) of {type(model).__name__}') from err
    nodecay = _nodecaynames(model, no_decay_names, _moduleclasses(no_decay_modules))
    groups = OrderedDict()
    for name, param in model.named_parameters():
        if trainable_only and not param.requires_grad:
            continue
        vision = any(fnmatch.fnmatchcase(name, p) for p in vision_params)
        scale, layer = 1.0, ''
        if num_blocks is not None and name.startswith(layer_decay_apply_to):
            layer_id = trunklayerid(name, num_blocks)
            scale, layer = layer_decay ** (num_blocks + 1 - layer_id), f'/layer{layer_id}'
            for pattern, value in overrides.items():
                if fnmatch.fnmatchcase(name, pattern):
                    scale, layer = float(value), f'/{pattern}'
                    break
        decays = name not in nodecay
        key = ('vision' if vision else 'base') + layer + ('' if decays else '/no_decay')
        group = groups.setdefault(key, dict(params=[], lr=(vision_lr if vision and vision_lr is not None else lr)
                                            * scale, weight_decay=weight_decay if decays else 0.0, lr_scale=scale,
                                            group=key))
        group['params'].append(param)
    return sorted(groups.values(), key=lambda g: not g['group'].startswith('base'))


def _segmentor(model: nn.Module) -> nn.Module:
    """The SAMV2 inside a (DDP-wrapped) fine-tuning model, or the model itself."""
    model = getattr(model, 'module', model)
    return getattr(model, 'segmentor', model)


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class SAMV2OptimWrapperConstructor:
    """Builds the optimizer wrapper of a fine-tuning model with :func:`paramgroups`.

    Args:
        optim_wrapper_cfg: mmengine's optim_wrapper dict: ``type`` (OptimWrapper or AmpOptimWrapper, with their
            ``clip_grad``, ``accumulative_counts``, ``dtype``) and ``optimizer`` (e.g. dict(type='AdamW', lr=5e-6,
            weight_decay=0.1): the base rate and decay).
        paramwise_cfg: the keyword arguments of :func:`paramgroups` beyond the model, lr and weight decay:
            vision_lr, vision_params, layer_decay, layer_decay_apply_to, layer_decay_overrides, no_decay_names,
            no_decay_modules.
    Raises:
        ValueError: unknown paramwise keys, or an optimizer without lr.
    """

    def __init__(self, optim_wrapper_cfg: dict, paramwise_cfg: Optional[dict] = None):
        self.optim_wrapper_cfg = dict(optim_wrapper_cfg)
        self.paramwise_cfg = dict(paramwise_cfg or {})
        unknown = sorted(set(self.paramwise_cfg) - set(_PARAMWISE_KEYS))
        if unknown:
            raise ValueError(f'paramwise_cfg: unknown keys {unknown}; known: {list(_PARAMWISE_KEYS)}')
        optimizer = self.optim_wrapper_cfg.get('optimizer')
        if not isinstance(optimizer, dict) or 'lr' not in optimizer:
            raise ValueError(f"optim_wrapper.optimizer must be a dict with type and lr, got {optimizer!r:.120}")

    def __call__(self, model: nn.Module) -> OptimWrapper:
        """The optimizer wrapper for ``model`` (a :class:`SAMV2Finetuner`, DDP-wrapped or not, or a SAMV2)."""
        wrapper_cfg = dict(self.optim_wrapper_cfg)
        optimizer_cfg = dict(wrapper_cfg.pop('optimizer'))
        groups = paramgroups(_segmentor(model), optimizer_cfg['lr'], optimizer_cfg.get('weight_decay', 0.0),
                             **self.paramwise_cfg)
        if not groups:
            raise ValueError('nothing to train: every parameter is frozen (see freeze)')
        optimizer = OPTIMIZERS.build(dict(optimizer_cfg, params=groups))
        wrapper_cfg.setdefault('type', 'OptimWrapper')
        return OPTIM_WRAPPERS.build(dict(wrapper_cfg, optimizer=optimizer))
