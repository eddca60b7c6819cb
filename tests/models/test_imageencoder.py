"""Tests for the Hiera trunk, the FPN neck and the SAM 2 image encoder: parity with Meta's modules, shapes,
bad arguments."""

import pytest
import torch

from ssseg.modules.models.backbones.hiera import Hiera
from ssseg.modules.models.backbones.imageencoder import FpnNeck, SAMV2ImageEncoder
from ssseg.modules.models.registries import BuildBackbone

from helpers import assertclose as _assertclose
from helpers import perturbed


def _perturbed(module, seed):
    return perturbed(module, seed, scale=0.1)

TINY_TRUNK = dict(embed_dim=96, num_heads=1, stages=[1, 2, 7, 2], global_att_blocks=[5, 7, 9],
                  window_pos_embed_bkg_spatial_size=[7, 7])
# SAM 2.1 large widths, heads and windows with fewer blocks (global blocks kept inside range) to stay fast
LARGE_TRUNK = dict(embed_dim=144, num_heads=2, stages=[1, 2, 4, 1], global_att_blocks=[4, 5, 6],
                   window_pos_embed_bkg_spatial_size=[7, 7], window_spec=[8, 4, 16, 8])
NECK = dict(d_model=256, fpn_top_down_levels=[2, 3], fpn_interp_model='nearest')
SMALLPOS = dict(type='PositionEmbeddingSine', num_pos_feats=32)
POSENC = dict(num_pos_feats=256, normalize=True, scale=None, temperature=10000)


def _channels(embed_dim, num_stages=4):
    return [embed_dim * 2 ** i for i in range(num_stages)][::-1]


def _pair(trunk_cfg, neck_cfg, scalp, seed):
    """Meta's ImageEncoder(Hiera, FpnNeck(PositionEmbeddingSine)) with perturbed weights, and ours loaded from it."""
    from sam2.modeling.backbones.hieradet import Hiera as MetaHiera
    from sam2.modeling.backbones.image_encoder import FpnNeck as MetaFpnNeck
    from sam2.modeling.backbones.image_encoder import ImageEncoder as MetaImageEncoder
    from sam2.modeling.position_encoding import PositionEmbeddingSine as MetaPositionEmbeddingSine
    channels = _channels(trunk_cfg['embed_dim'])
    torch.manual_seed(0)
    meta = MetaImageEncoder(
        trunk=MetaHiera(**trunk_cfg),
        neck=MetaFpnNeck(position_encoding=MetaPositionEmbeddingSine(**POSENC), backbone_channel_list=channels,
                         **neck_cfg),
        scalp=scalp,
    )
    meta = _perturbed(meta, seed)
    ours = BuildBackbone(dict(
        type='SAMV2ImageEncoder', scalp=scalp, trunk=dict(type='Hiera', **trunk_cfg),
        neck=dict(type='FpnNeck', position_encoding=dict(type='PositionEmbeddingSine', **POSENC),
                  backbone_channel_list=channels, **neck_cfg),
    )).eval()
    ours.load_state_dict(meta.state_dict(), strict=True)
    return meta, ours


def _checkparity(meta, ours, image):
    with torch.no_grad():
        theirs, mine = meta(image), ours(image)
        # the raw trunk outputs too, before the neck mixes them
        for our_level, meta_level in zip(ours.trunk(image), meta.trunk(image)):
            _assertclose(our_level, meta_level)
    assert len(mine['backbone_fpn']) == len(theirs['backbone_fpn'])
    assert len(mine['vision_pos_enc']) == len(theirs['vision_pos_enc'])
    _assertclose(mine['vision_features'], theirs['vision_features'])
    for our_level, meta_level in zip(mine['backbone_fpn'], theirs['backbone_fpn']):
        _assertclose(our_level, meta_level)
    for our_pos, meta_pos in zip(mine['vision_pos_enc'], theirs['vision_pos_enc']):
        _assertclose(our_pos, meta_pos)
    return mine


@pytest.fixture(scope='module')
def tinypair():
    return _pair(TINY_TRUNK, NECK, scalp=1, seed=1)


@pytest.mark.parametrize('size', [(256, 256), (256, 192)])
def test_tiny_matches_meta(tinypair, size):
    image = torch.randn(1, 3, *size, generator=torch.Generator().manual_seed(2))
    mine = _checkparity(*tinypair, image)
    height, width = size
    assert mine['vision_features'].shape == (1, 256, height // 16, width // 16)
    assert [f.shape[-2:] for f in mine['backbone_fpn']] == [(height // s, width // s) for s in (4, 8, 16)]


def test_large_matches_meta():
    meta, ours = _pair(LARGE_TRUNK, dict(d_model=256, fpn_interp_model='bilinear', fuse_type='avg'), scalp=0, seed=3)
    image = torch.randn(2, 3, 128, 128, generator=torch.Generator().manual_seed(4))
    mine = _checkparity(meta, ours, image)
    assert len(mine['backbone_fpn']) == 4 and mine['vision_features'].shape == (2, 256, 4, 4)


def test_hiera_shapes_and_channels():
    trunk = Hiera(embed_dim=8, num_heads=1, stages=[1, 1, 2, 1], global_att_blocks=[3],
                  window_pos_embed_bkg_spatial_size=[4, 4], window_spec=[4, 2, 4, 2]).eval()
    assert trunk.channel_list == [64, 32, 16, 8]
    with torch.no_grad():
        outputs = trunk(torch.randn(2, 3, 64, 96))
    assert [tuple(o.shape) for o in outputs] == [(2, 8, 16, 24), (2, 16, 8, 12), (2, 32, 4, 6), (2, 64, 2, 3)]
    last_only = Hiera(embed_dim=8, stages=[1, 1], q_pool=1, window_spec=[4, 2], global_att_blocks=None,
                      return_interm_layers=False).eval()
    assert last_only.channel_list == [16]
    with torch.no_grad():
        assert [tuple(o.shape) for o in last_only(torch.randn(1, 3, 32, 32))] == [(1, 16, 4, 4)]


def test_hiera_drop_path_is_identity_in_eval():
    trunk = Hiera(embed_dim=8, stages=[1, 1], q_pool=1, window_spec=[4, 2], global_att_blocks=[1], drop_path_rate=0.5)
    image = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        first, second = trunk.eval()(image)[0], trunk(image)[0]
    assert torch.equal(first, second)


def test_encoder_shapes_and_scalp():
    neck = dict(type='FpnNeck', position_encoding=SMALLPOS, d_model=32, backbone_channel_list=[32, 16, 8])
    trunk = dict(type='Hiera', embed_dim=8, stages=[1, 1, 1], q_pool=2, window_spec=[4, 2, 2], global_att_blocks=[2],
                 window_pos_embed_bkg_spatial_size=[4, 4])
    encoder = SAMV2ImageEncoder(trunk=trunk, neck=neck, scalp=1).eval()
    with torch.no_grad():
        out = encoder(torch.randn(2, 3, 64, 32))
    assert [tuple(f.shape) for f in out['backbone_fpn']] == [(2, 32, 16, 8), (2, 32, 8, 4)]
    assert [tuple(p.shape) for p in out['vision_pos_enc']] == [(2, 32, 16, 8), (2, 32, 8, 4)]
    assert out['vision_features'] is out['backbone_fpn'][-1]


@pytest.mark.parametrize('kwargs, match', [
    (dict(stages=[1, 2], window_spec=[8, 4, 14]), 'window_spec'),
    (dict(q_pool=4), 'q_pool'),
    (dict(q_stride=2), 'q_stride'),
    (dict(global_att_blocks=[30]), 'global_att_blocks'),
    (dict(stages=[1, 0, 1, 1]), 'stages'),
    (dict(window_spec=[0, 4, 14, 7]), 'window_spec'),
    (dict(dim_mul=1.0), 'dim_mul'),
    (dict(window_pos_embed_bkg_spatial_size=7), 'window_pos_embed_bkg_spatial_size'),
    (dict(window_spec=[7, 4, 14, 7]), 'window_spec'),
    (dict(q_stride=(2, 1)), 'q_stride'),
])
def test_hiera_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Hiera(**kwargs)


def test_hiera_bad_input_size():
    trunk = Hiera(embed_dim=8, stages=[1, 1], q_pool=1, window_spec=[8, 4], global_att_blocks=None)
    with pytest.raises(ValueError, match='window_spec'):
        trunk(torch.randn(1, 3, 48, 48))


@pytest.mark.parametrize('kwargs, match', [
    (dict(backbone_channel_list=[]), 'backbone_channel_list'),
    (dict(fpn_interp_model='area'), 'fpn_interp_model'),
    (dict(fuse_type='max'), 'fuse_type'),
    (dict(fpn_top_down_levels=[4]), 'fpn_top_down_levels'),
])
def test_neck_bad_arguments(kwargs, match):
    cfg = dict(position_encoding=SMALLPOS, d_model=32, backbone_channel_list=[32, 16, 8, 4])
    cfg.update(kwargs)
    with pytest.raises(ValueError, match=match):
        FpnNeck(**cfg)


def test_neck_wrong_number_of_levels():
    neck = FpnNeck(position_encoding=SMALLPOS, d_model=32, backbone_channel_list=[16, 8])
    with pytest.raises(ValueError, match='2 feature maps'):
        neck([torch.randn(1, 8, 8, 8)])


def test_encoder_bad_arguments():
    trunk = dict(type='Hiera', embed_dim=8, stages=[1, 1], q_pool=1, window_spec=[4, 2], global_att_blocks=None)
    neck = dict(type='FpnNeck', position_encoding=SMALLPOS, d_model=32)
    with pytest.raises(ValueError, match='channel_list'):
        SAMV2ImageEncoder(trunk=trunk, neck=dict(neck, backbone_channel_list=[8, 16]))
    with pytest.raises(ValueError, match='scalp'):
        SAMV2ImageEncoder(trunk=trunk, neck=dict(neck, backbone_channel_list=[16, 8]), scalp=2)


def test_hiera_position_embedding_cache_follows_parameters():
    """The cached position embedding equals a fresh interpolation and is rebuilt when the weights or grid change."""
    torch.manual_seed(0)
    trunk = Hiera(**TINY_TRUNK).eval()
    with torch.no_grad():
        trunk.pos_embed.normal_()
        first = trunk._posembed(16, 16)
        assert trunk._posembed(16, 16) is first
        torch.testing.assert_close(first, trunk._interpolateposembed(16, 16), rtol=0, atol=0)
        trunk.load_state_dict({**trunk.state_dict(), 'pos_embed': torch.randn_like(trunk.pos_embed)})
        second = trunk._posembed(16, 16)
        torch.testing.assert_close(second, trunk._interpolateposembed(16, 16), rtol=0, atol=0)
        assert not torch.equal(first, second)
        assert trunk._posembed(32, 32).shape == (1, 32, 32, 96)
    with torch.inference_mode():
        torch.testing.assert_close(trunk._posembed(16, 16), second, rtol=0, atol=0)
    # training with autograd: never cached, gradients reach the parameter
    trunk.train()
    trunk._posembed(16, 16).sum().backward()
    assert trunk.pos_embed.grad is not None


def test_hiera_built_under_inference_mode_runs_everywhere():
    """Weights created under inference_mode have no version counter: the embedding is recomputed, not cached."""
    with torch.inference_mode():
        trunk = Hiera(**TINY_TRUNK).eval()
        inside = trunk(torch.randn(1, 3, 64, 64))
    with torch.no_grad():
        outside = trunk(torch.randn(1, 3, 64, 64))
    assert [o.shape for o in inside] == [o.shape for o in outside]
