"""Tests for the SAM prompt encoder: parity with Meta's module for every prompt kind, shapes, bad arguments."""
import pytest
import torch

from ssseg.modules.models.registries import BuildHead
from ssseg.modules.models.segmentors.samv2.model.promptencoder import PromptEncoder

from helpers import assertclose as _assertclose
from helpers import perturbed


def _perturbed(module, seed):
    return perturbed(module, seed, scale=0.1)

CFG = dict(embed_dim=256, image_embedding_size=(64, 64), input_image_size=(1024, 1024), mask_in_chans=16)


@pytest.fixture(scope='module')
def pair():
    from sam2.modeling.sam.prompt_encoder import PromptEncoder as MetaPromptEncoder
    torch.manual_seed(0)
    meta = _perturbed(MetaPromptEncoder(**CFG), seed=1)
    ours = BuildHead(dict(type='PromptEncoder', **CFG)).eval()
    ours.load_state_dict(meta.state_dict(), strict=True)
    return meta, ours


def _points(batch, num, seed):
    gen = torch.Generator().manual_seed(seed)
    coords = torch.rand(batch, num, 2, generator=gen) * 1023
    # every label kind, padding included
    labels = torch.tensor([1, 0, -1, 2, 3, 1, 0])[:num].repeat(batch, 1).to(torch.int32)
    return coords, labels


def _boxes(batch, seed):
    gen = torch.Generator().manual_seed(seed)
    xy = torch.rand(batch, 2, 2, generator=gen) * 1023
    return torch.cat([xy.min(dim=1).values, xy.max(dim=1).values], dim=1)


def _masks(batch, seed):
    return torch.randn(batch, 1, 256, 256, generator=torch.Generator().manual_seed(seed)) * 5


CASES = {
    'points': lambda: dict(points=_points(3, 7, 2), boxes=None, masks=None),
    'boxes': lambda: dict(points=None, boxes=_boxes(3, 3), masks=None),
    'points_boxes': lambda: dict(points=_points(2, 4, 4), boxes=_boxes(2, 5), masks=None),
    'masks': lambda: dict(points=None, boxes=None, masks=_masks(2, 6)),
    'points_masks': lambda: dict(points=_points(2, 3, 7), boxes=None, masks=_masks(2, 8)),
    'all': lambda: dict(points=_points(2, 5, 9), boxes=_boxes(2, 10), masks=_masks(2, 11)),
    'none': lambda: dict(points=None, boxes=None, masks=None),
}
EXPECTED_TOKENS = {'points': 8, 'boxes': 2, 'points_boxes': 6, 'masks': 0, 'points_masks': 4, 'all': 7, 'none': 0}


@pytest.mark.parametrize('case', sorted(CASES))
def test_matches_meta(pair, case):
    meta, ours = pair
    inputs = CASES[case]()
    with torch.no_grad():
        meta_sparse, meta_dense = meta(**inputs)
        our_sparse, our_dense = ours(**inputs)
    batch = 1 if case == 'none' else (2 if case != 'points' and case != 'boxes' else 3)
    assert our_sparse.shape == (batch, EXPECTED_TOKENS[case], 256)
    assert our_dense.shape == (batch, 256, 64, 64)
    _assertclose(our_sparse, meta_sparse)
    _assertclose(our_dense, meta_dense)


def test_dense_pe_matches_meta(pair):
    meta, ours = pair
    with torch.no_grad():
        pe = ours.getdensepe()
        assert pe.shape == (1, 256, 64, 64)
        _assertclose(pe, meta.get_dense_pe())


def test_attributes():
    encoder = PromptEncoder(embed_dim=32, image_embedding_size=(8, 12), input_image_size=(128, 192), mask_in_chans=8)
    assert encoder.mask_input_size == (32, 48)
    assert encoder.image_embedding_size == (8, 12)
    sparse, dense = encoder(points=None, boxes=torch.tensor([[1.0, 2.0, 30.0, 40.0]]), masks=torch.zeros(1, 1, 32, 48))
    assert sparse.shape == (1, 2, 32) and dense.shape == (1, 32, 8, 12)
    assert encoder.getdensepe().shape == (1, 32, 8, 12)


def test_state_dict_keys_match_meta():
    from sam2.modeling.sam.prompt_encoder import PromptEncoder as MetaPromptEncoder
    meta = {k: v.shape for k, v in MetaPromptEncoder(**CFG).state_dict().items()}
    ours = {k: v.shape for k, v in PromptEncoder(**CFG).state_dict().items()}
    assert ours == meta


@pytest.mark.parametrize('kwargs, match', [
    (dict(embed_dim=255), 'embed_dim'),
    (dict(mask_in_chans=6), 'mask_in_chans'),
    (dict(image_embedding_size=(64,)), 'image_embedding_size'),
    (dict(input_image_size=(1024, 0)), 'input_image_size'),
    (dict(activation='tanh'), 'activation'),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        PromptEncoder(**{**CFG, **kwargs})
