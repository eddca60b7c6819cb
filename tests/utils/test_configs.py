"""Every shipped config builds through the registry and strictly loads the official package's checkpoint."""
import pytest
import torch
from mmengine.config import Config

from ssseg.modules import BuildSegmentor
from ssseg.modules.utils.checkpoints import loadstatedict
from ssseg.modules.utils.configs import CONFIGS_DIR, availableconfigs, loadsegmentorcfg, resolveconfigpath

from helpers import buildoraclemodel

# parameter counts of Meta's models (millions), for a check that does not depend on the oracle
PARAMS_M = {'samv21_hiera_tiny': 38.96, 'samv21_hiera_small': 46.06, 'samv21_hiera_baseplus': 80.85,
            'samv21_hiera_large': 224.45}


def test_eight_configs_are_shipped():
    assert availableconfigs() == sorted(f'samv{v}_hiera_{s}' for v in ('2', '21')
                                        for s in ('tiny', 'small', 'baseplus', 'large'))


@pytest.mark.parametrize('name', availableconfigs())
def test_config_builds_and_loads_official_checkpoint_strictly(name):
    path = resolveconfigpath(name)
    assert path.startswith(CONFIGS_DIR)
    cfg = Config.fromfile(path)  # plain mmengine loading works too
    assert cfg.SEGMENTOR_CFG['type'] == 'SAMV2' and cfg.SEGMENTOR_CFG['ckptpath'].startswith('https://')
    model = BuildSegmentor(loadsegmentorcfg(name))
    official = buildoraclemodel(name).state_dict()
    ours = model.state_dict()
    assert sorted(ours) == sorted(official)
    assert all(ours[k].shape == official[k].shape for k in ours)
    loadstatedict(model, official, strict=True)
    assert all(torch.equal(ours[k], official[k]) for k in ours)
    if name in PARAMS_M:
        assert round(sum(p.numel() for p in model.parameters()) / 1e6, 2) == PARAMS_M[name]


def test_samv21_has_three_more_keys_than_samv2():
    keys = {name: set(BuildSegmentor(loadsegmentorcfg(name)).state_dict())
            for name in ('samv2_hiera_tiny', 'samv21_hiera_tiny')}
    assert keys['samv21_hiera_tiny'] - keys['samv2_hiera_tiny'] == {'no_obj_embed_spatial', 'obj_ptr_tpos_proj.weight',
                                                                    'obj_ptr_tpos_proj.bias'}


def test_unknown_config_name_is_a_clear_error():
    with pytest.raises(FileNotFoundError, match='samv21_hiera_tiny'):
        resolveconfigpath('samv21_hiera_tinyy')


def test_conflicting_derived_option_is_a_clear_error():
    cfg = loadsegmentorcfg('samv21_hiera_tiny')
    cfg['mask_decoder']['transformer_dim'] = 128
    with pytest.raises(ValueError, match="transformer_dim"):
        BuildSegmentor(cfg)


def test_unknown_type_lists_registered_names():
    cfg = loadsegmentorcfg('samv21_hiera_tiny')
    cfg['image_encoder']['trunk']['type'] = 'Hieraa'
    with pytest.raises(ValueError, match="'Hieraa' is not a registered backbone.*Hiera"):
        BuildSegmentor(cfg)
