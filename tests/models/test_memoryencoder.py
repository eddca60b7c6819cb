"""Tests for the SAM 2 memory encoder and its parts: parity with Meta's modules, shapes, bad arguments."""
import pytest
import torch

from ssseg.modules.models.registries import BuildHead
from ssseg.modules.models.segmentors.samv2.model.memoryencoder import CXBlock, Fuser, MaskDownSampler, MemoryEncoder

from helpers import assertclose as _assertclose
from helpers import perturbed


def _perturbed(module, seed):
    return perturbed(module, seed, scale=0.1)

# SAM 2 / 2.1 tiny memory encoder
DOWNSAMPLER = dict(type='MaskDownSampler', kernel_size=3, stride=2, padding=1)
CXBLOCK = dict(type='CXBlock', dim=256, kernel_size=7, padding=3, layer_scale_init_value=1e-6, use_dwconv=True)
CFG = dict(
    type='MemoryEncoder', out_dim=64, mask_downsampler=DOWNSAMPLER,
    fuser=dict(type='Fuser', layer=CXBLOCK, num_layers=2),
    position_encoding=dict(type='PositionEmbeddingSine', num_pos_feats=64),
)


def _loaded(meta, ours):
    _perturbed(meta, seed=1)
    ours.load_state_dict(meta.state_dict(), strict=True)
    return meta, ours.eval()


@pytest.fixture(scope='module')
def encoders():
    from sam2.modeling import memory_encoder as meta_me
    from sam2.modeling.position_encoding import PositionEmbeddingSine
    torch.manual_seed(0)
    meta = meta_me.MemoryEncoder(
        out_dim=64, mask_downsampler=meta_me.MaskDownSampler(kernel_size=3, stride=2, padding=1),
        fuser=meta_me.Fuser(meta_me.CXBlock(256, kernel_size=7, padding=3, layer_scale_init_value=1e-6), num_layers=2),
        position_encoding=PositionEmbeddingSine(num_pos_feats=64),
    )
    return _loaded(meta, BuildHead(CFG))


@pytest.mark.parametrize('skip_mask_sigmoid', [False, True])
def test_memoryencoder_matches_meta(encoders, skip_mask_sigmoid):
    meta, ours = encoders
    gen = torch.Generator().manual_seed(2)
    pix_feat = torch.randn(2, 256, 16, 12, generator=gen)
    masks = 10 * torch.randn(2, 1, 256, 192, generator=gen)
    if skip_mask_sigmoid:
        masks = (masks > 0).float()
    with torch.no_grad():
        expected = meta(pix_feat, masks, skip_mask_sigmoid=skip_mask_sigmoid)
        outputs = ours(pix_feat, masks, skip_mask_sigmoid=skip_mask_sigmoid)
    assert outputs['vision_features'].shape == (2, 64, 16, 12)
    assert len(outputs['vision_pos_enc']) == 1 and outputs['vision_pos_enc'][0].shape == (2, 64, 16, 12)
    _assertclose(outputs['vision_features'], expected['vision_features'])
    _assertclose(outputs['vision_pos_enc'][0], expected['vision_pos_enc'][0])


def test_state_dict_keys_match_meta(encoders):
    meta, ours = encoders
    assert {k: v.shape for k, v in ours.state_dict().items()} == {k: v.shape for k, v in meta.state_dict().items()}
    assert 'fuser.layers.1.gamma' in ours.state_dict() and 'mask_downsampler.encoder.12.weight' in ours.state_dict()


def test_same_width_has_no_out_proj():
    cfg = {**CFG, 'out_dim': 256, 'position_encoding': dict(type='PositionEmbeddingSine', num_pos_feats=256)}
    encoder = BuildHead(cfg)
    assert isinstance(encoder.out_proj, torch.nn.Identity)
    out = encoder(torch.randn(1, 256, 4, 4), torch.randn(1, 1, 64, 64))
    assert out['vision_features'].shape == (1, 256, 4, 4)


def test_maskdownsampler_default_matches_meta():
    from sam2.modeling.memory_encoder import MaskDownSampler as MetaMaskDownSampler
    meta, ours = _loaded(MetaMaskDownSampler(embed_dim=32), MaskDownSampler(embed_dim=32))
    x = torch.randn(2, 1, 64, 48)
    with torch.no_grad():
        _assertclose(ours(x), meta(x))
    assert ours(x).shape == (2, 32, 4, 3)


@pytest.mark.parametrize('kwargs', [
    dict(), dict(use_dwconv=False, layer_scale_init_value=0.0, kernel_size=3, padding=1),
])
def test_cxblock_matches_meta(kwargs):
    from sam2.modeling.memory_encoder import CXBlock as MetaCXBlock
    meta, ours = _loaded(MetaCXBlock(32, **kwargs), CXBlock(32, **kwargs))
    assert (ours.gamma is None) == (meta.gamma is None)
    x = torch.randn(2, 32, 9, 7)
    with torch.no_grad():
        _assertclose(ours(x), meta(x))


def test_cxblock_drop_path_only_in_training():
    block = _perturbed(CXBlock(8, drop_path=0.5), seed=3)
    plain = CXBlock(8).eval()
    plain.load_state_dict(block.state_dict())
    x = torch.randn(16, 8, 5, 5)
    with torch.no_grad():
        branch = plain(x) - x
        assert torch.equal(block(x), plain(x))
        torch.manual_seed(0)
        out = block.train()(x) - x
    # each sample either drops its residual branch or keeps it scaled by 1 / keep_prob
    dropped = [torch.equal(out[i], torch.zeros_like(out[i])) for i in range(16)]
    assert any(dropped) and not all(dropped)
    for i in range(16):
        if not dropped[i]:
            torch.testing.assert_close(out[i], 2 * branch[i])


def test_fuser_with_input_projection_matches_meta():
    from sam2.modeling.memory_encoder import CXBlock as MetaCXBlock
    from sam2.modeling.memory_encoder import Fuser as MetaFuser
    meta = MetaFuser(MetaCXBlock(16), num_layers=3, dim=16, input_projection=True)
    ours = Fuser(dict(type='CXBlock', dim=16), num_layers=3, dim=16, input_projection=True)
    meta, ours = _loaded(meta, ours)
    x = torch.randn(2, 16, 6, 6)
    with torch.no_grad():
        _assertclose(ours(x), meta(x))
    # the copies start identical, as Meta's deep copies do
    fresh = Fuser(dict(type='CXBlock', dim=16), num_layers=2)
    assert torch.equal(fresh.layers[0].dwconv.weight, fresh.layers[1].dwconv.weight)


@pytest.mark.parametrize('builder, kwargs, match', [
    (MaskDownSampler, dict(stride=2, total_stride=12), 'total_stride'),
    (MaskDownSampler, dict(stride=1), 'stride'),
    (CXBlock, dict(dim=0), 'dim'),
    (CXBlock, dict(dim=8, drop_path=1.0), 'drop_path'),
    (Fuser, dict(layer=dict(type='CXBlock', dim=8), num_layers=2, input_projection=True), 'dim'),
    (Fuser, dict(layer=dict(type='CXBlock', dim=8), num_layers=-1), 'num_layers'),
    (MemoryEncoder, dict(out_dim=0, mask_downsampler=DOWNSAMPLER, fuser=CFG['fuser'],
                         position_encoding=CFG['position_encoding']), 'out_dim'),
])
def test_bad_arguments(builder, kwargs, match):
    with pytest.raises(ValueError, match=match):
        builder(**kwargs)
