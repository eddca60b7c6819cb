"""SAMV2 model internals against Meta's SAM2Base on one checkpoint: image features and the SAM heads."""
import pytest
import torch

from ssseg.modules.models.segmentors.samv2.predictors.modelchoice import buildsamv2
from ssseg.modules.utils.configs import loadsegmentorcfg
from ssseg.modules.utils.heap import keepheap

from helpers import assertclose, buildoraclemodel

NAME = 'samv21_hiera_tiny'


@pytest.fixture(scope='module')
def models(makeckpt):
    ckpt = makeckpt(NAME)
    cfg = loadsegmentorcfg(NAME)
    cfg['ckptpath'] = ckpt
    ours = buildsamv2(cfg, device='cpu', apply_postprocessing=False)
    theirs = buildoraclemodel(NAME, ckpt, apply_postprocessing=False)
    images = torch.randn(2, 3, 1024, 1024, generator=torch.Generator().manual_seed(0))
    with torch.no_grad(), keepheap():  # freed activations reused, as inside a predictor
        mine, official = ours.forwardimage(images), theirs.forward_image(images)
    return ours, theirs, mine, official


def test_forwardimage_and_flattened_features(models):
    ours, theirs, mine, official = models
    for key in ('backbone_fpn', 'vision_pos_enc'):
        for a, b in zip(mine[key], official[key]):
            assertclose(a, b)
    _, feats, pos, sizes = theirs._prepare_backbone_features(official)
    my_feats, my_pos, my_sizes = ours.preparebackbonefeatures(mine)
    assert my_sizes == sizes == [(256, 256), (128, 128), (64, 64)]
    for a, b in zip(my_feats + my_pos, feats + pos):
        assertclose(a, b)


@pytest.mark.parametrize('prompt', ['points', 'mask', 'points+mask', 'none'])
@pytest.mark.parametrize('multimask', [False, True])
def test_forwardsamheads(models, prompt, multimask):
    ours, theirs, mine, _ = models
    generator = torch.Generator().manual_seed(1)
    maps = mine['backbone_fpn']
    features = maps[-1]
    high_res = list(maps[:-1])
    points = None
    if 'points' in prompt:
        points = {'point_coords': torch.rand(2, 3, 2, generator=generator) * 1024,
                  'point_labels': torch.tensor([[1, 0, 1], [1, 1, -1]], dtype=torch.int32)}
    masks = (torch.randn(2, 1, 1024, 1024, generator=generator) > 0).float() if 'mask' in prompt else None
    with torch.no_grad():
        expected = theirs._forward_sam_heads(features, points, masks, high_res, multimask)
        outputs = ours.forwardsamheads(features, points, masks, high_res, multimask)
    assert len(outputs) == len(expected) == 7
    for a, b in zip(outputs, expected):
        assertclose(a, b)


def test_forwardsamheads_rejects_wrong_feature_size(models):
    ours = models[0]
    with pytest.raises(ValueError, match=r'backbone_features must be \(B, 256, 64, 64\)'):
        ours.forwardsamheads(torch.zeros(1, 256, 32, 32))
