"""Fine-tuning parameter groups against Meta's own optimizer construction on the same model structure.

Meta's side: its SAM2Base of the tiny structure (``build_sam2`` with the tiny overrides), and the optimizer built by
``training.optimizer.construct_optimizer`` from the ``optim`` section of Meta's shipped
``sam2.1_hiera_b+_MOSE_finetune.yaml`` (its lr / weight-decay options and its layer-decay modifier, as written).
fvcore (the package of Meta's schedulers) is not installed here; its schedulers are replaced by a stand-in giving
their start value, which is what a parameter group holds at step 0. Ours: :func:`paramgroups` with the values of our
shipped video config. Per parameter name (equal on both sides: one state dict loads strictly into both), the
learning rate and weight decay must be equal.
"""
import os

import pytest
import torch

from ssseg.modules import BuildSegmentor
from ssseg.modules.utils.configs import CONFIGS_DIR
from ssseg.training.optim import SAMV2OptimWrapperConstructor, paramgroups, trunklayerid

from trainhelpers import buildmetatiny, metatinycfg

pytestmark = pytest.mark.usefixtures('onethread')


class StartValue:
    """Stand-in for fvcore's Cosine/ConstantParamScheduler: the value at the start of training."""

    def __init__(self, start_value=None, end_value=None, value=None):
        self.value = start_value if value is None else value

    def __call__(self, where):
        return self.value


def _metagroups(model):
    """{name: (lr, weight_decay)} from Meta's construct_optimizer and its MOSE fine-tune options."""
    import sam2
    from omegaconf import OmegaConf
    from training.optimizer import construct_optimizer
    from training.utils.train_utils import register_omegaconf_resolvers
    if not OmegaConf.has_resolver('divide'):
        register_omegaconf_resolvers()
    yaml = os.path.join(os.path.dirname(sam2.__file__), 'configs', 'sam2.1_training',
                        'sam2.1_hiera_b+_MOSE_finetune.yaml')
    optim = OmegaConf.load(yaml).trainer.optim
    for option in optim.options.values():
        for entry in option:
            entry.scheduler._target_ = f'{__name__}.StartValue'
    optimizer = construct_optimizer(model, optim.optimizer, optim.options, optim.param_group_modifiers)
    names = {param: name for name, param in model.named_parameters()}
    return {names[p]: (g['lr'], g['weight_decay']) for g in optimizer.optimizer.param_groups for p in g['params']}


def _ourgroups(model, cfg):
    optimizer = cfg['optim_wrapper']['optimizer']
    groups = paramgroups(model, optimizer['lr'], optimizer['weight_decay'], **cfg['optim_wrapper']['paramwise_cfg'])
    names = {param: name for name, param in model.named_parameters()}
    return {names[p]: (g['lr'], g['weight_decay']) for g in groups for p in g['params']}


def _traincfg(name):
    from mmengine.config import Config
    return Config.fromfile(os.path.join(CONFIGS_DIR, 'samv2', 'finetune', f'{name}.py')).to_dict()['TRAIN_CFG']


def test_groups_equal_metas():
    pytest.importorskip('training.optimizer', reason="Meta's training package (sam2 1.1.0)")
    theirs = _metagroups(buildmetatiny())
    cfg = _traincfg('samv21_hiera_bplus_davis')
    ours = _ourgroups(BuildSegmentor(metatinycfg()), cfg)
    assert sorted(ours) == sorted(theirs)
    different = {name: (ours[name], theirs[name]) for name in ours
                 if ours[name][1] != theirs[name][1] or abs(ours[name][0] - theirs[name][0]) > 1e-18}
    assert different == {}
    # the recipe really is exercised: several decayed trunk rates, an undecayed pos_embed, both weight decays
    lrs = {lr for lr, _ in ours.values()}
    assert len(lrs) >= 5 and ours['image_encoder.trunk.pos_embed'][0] == 3e-6
    assert ours['image_encoder.trunk.blocks.0.norm1.weight'][1] == 0.0
    assert ours['sam_mask_decoder.output_upscaling.1.weight'][1] == 0.1  # LayerNorm2d keeps its decay, as Meta's


def test_layer_ids_and_frozen_parameters():
    assert trunklayerid('image_encoder.trunk.blocks.3.attn.qkv.weight', 5) == 4
    assert trunklayerid('image_encoder.trunk.patch_embed.proj.weight', 5) == 0
    assert trunklayerid('image_encoder.trunk.something', 5) == 6
    model = BuildSegmentor(metatinycfg())
    for param in model.image_encoder.parameters():
        param.requires_grad_(False)
    names = {p: n for n, p in model.named_parameters()}
    groups = paramgroups(model, 1e-4, 0.1, vision_lr=1e-5, layer_decay=0.9)
    trained = [names[p] for g in groups for p in g['params']]
    assert trained and not any(n.startswith('image_encoder.') for n in trained)
    assert groups[0]['group'] == 'base'


def test_constructor_builds_adamw_with_clipping():
    model = BuildSegmentor(metatinycfg())
    cfg = _traincfg('samv21_hiera_tiny_davis')['optim_wrapper']
    cfg = {k: v for k, v in cfg.items() if k not in ('constructor', 'paramwise_cfg')}
    wrapper = SAMV2OptimWrapperConstructor(dict(cfg, type='OptimWrapper'), dict(vision_lr=1e-5, layer_decay=0.9))(model)
    assert isinstance(wrapper.optimizer, torch.optim.AdamW)
    assert wrapper.clip_grad_kwargs == dict(max_norm=0.1, norm_type=2)
    assert sum(len(g['params']) for g in wrapper.optimizer.param_groups) == len(list(model.parameters()))
    with pytest.raises(ValueError, match='unknown keys'):
        SAMV2OptimWrapperConstructor(cfg, dict(layer_decays=0.9))
