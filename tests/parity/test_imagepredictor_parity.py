"""Parity of SAMV2ImagePredictor with Meta's SAM2ImagePredictor on the same random-weight checkpoint."""
import numpy as np
import pytest
import torch

from ssseg.modules.models.segmentors.samv2 import SAMV2ImagePredictor
from ssseg.modules.utils.configs import loadsegmentorcfg

from helpers import buildoraclemodel, syntheticimage

FAST_MODELS = ['samv21_hiera_tiny', 'samv2_hiera_tiny', 'samv21_hiera_small']
SLOW_MODELS = ['samv2_hiera_small', 'samv21_hiera_baseplus', 'samv2_hiera_baseplus', 'samv21_hiera_large',
               'samv2_hiera_large']
MODELS = FAST_MODELS + [pytest.param(name, marks=pytest.mark.slow) for name in SLOW_MODELS]
HEIGHT, WIDTH = 480, 640


def assertclose(ours, theirs, what, rtol=1e-4):
    ours, theirs = np.asarray(ours, dtype=np.float64), np.asarray(theirs, dtype=np.float64)
    assert ours.shape == theirs.shape, f'{what}: shape {ours.shape} != {theirs.shape}'
    scale = max(np.abs(theirs).max(), 1e-6)
    error = np.abs(ours - theirs).max() / scale
    assert error <= rtol, f'{what}: relative error {error:.2e} > {rtol:.0e} (scale {scale:.3g})'


def assertsamemasks(ours, theirs, what, agreement=0.9995):
    assert ours.shape == theirs.shape, f'{what}: shape {ours.shape} != {theirs.shape}'
    same = np.mean((ours > 0.5) == (theirs > 0.5))
    assert same >= agreement, f'{what}: only {same:.4%} of mask pixels agree'


def assertsameoutputs(ours, theirs, what):
    masks, scores, logits = ours
    omasks, oscores, ologits = theirs
    if masks.dtype == np.float32 and set(np.unique(masks)) <= {0.0, 1.0} and set(np.unique(omasks)) <= {0.0, 1.0}:
        assertsamemasks(masks, omasks, f'{what} masks')
    else:
        assertclose(masks, omasks, f'{what} mask logits')
    assertclose(scores, oscores, f'{what} scores')
    assertclose(logits, ologits, f'{what} low-res logits')


@pytest.fixture(scope='module', params=MODELS)
def predictors(request, makeckpt):
    from sam2.sam2_image_predictor import SAM2ImagePredictor
    name = request.param
    ckpt = makeckpt(name)
    cfg = loadsegmentorcfg(name)
    cfg['ckptpath'] = ckpt
    ours = SAMV2ImagePredictor(samv2_cfg=cfg, device='cpu')
    theirs = SAM2ImagePredictor(buildoraclemodel(name, ckpt))
    image = syntheticimage(HEIGHT, WIDTH, seed=1)
    with torch.no_grad():
        ours.setimage(image)
        theirs.set_image(image)
    return ours, theirs


def both(predictors, **kwargs):
    ours, theirs = predictors
    return ours.predict(**kwargs), theirs.predict(**kwargs)


def test_image_embedding_and_high_res_features(predictors):
    ours, theirs = predictors
    assertclose(ours.getimageembedding(), theirs.get_image_embedding(), 'image embedding')
    for level, (mine, official) in enumerate(zip(ours._features['high_res_feats'], theirs._features['high_res_feats'])):
        assertclose(mine, official, f'high-res features level {level}')


def test_one_point_multimask(predictors):
    ours, theirs = both(predictors, point_coords=np.array([[320, 200]]), point_labels=np.array([1]),
                        multimask_output=True)
    assert ours[0].shape == (3, HEIGHT, WIDTH) and ours[1].shape == (3,) and ours[2].shape == (3, 256, 256)
    assertsameoutputs(ours, theirs, 'one point')


def test_positive_and_negative_points(predictors):
    kwargs = dict(point_coords=np.array([[320, 200], [100, 400], [500, 80]]), point_labels=np.array([1, 0, 1]))
    for multimask in (True, False):
        ours, theirs = both(predictors, multimask_output=multimask, **kwargs)
        assertsameoutputs(ours, theirs, f'three points multimask={multimask}')


def test_box(predictors):
    ours, theirs = both(predictors, box=np.array([100, 80, 420, 360]), multimask_output=False)
    assert ours[0].shape == (1, HEIGHT, WIDTH)
    assertsameoutputs(ours, theirs, 'box')


def test_box_and_point(predictors):
    ours, theirs = both(predictors, point_coords=np.array([[300, 250]]), point_labels=np.array([0]),
                        box=np.array([100, 80, 420, 360]), multimask_output=False)
    assertsameoutputs(ours, theirs, 'box + point')


def test_several_boxes(predictors):
    boxes = np.array([[10, 10, 200, 200], [250, 100, 600, 470], [50, 300, 300, 460]])
    ours, theirs = both(predictors, box=boxes, multimask_output=False)
    assert ours[0].shape == (3, 1, HEIGHT, WIDTH) and ours[1].shape == (3, 1)
    assertsameoutputs(ours, theirs, 'three boxes')
    ours, theirs = both(predictors, box=boxes, multimask_output=True)
    assertsameoutputs(ours, theirs, 'three boxes multimask')


def test_mask_input_refinement(predictors):
    first = predictors[1].predict(point_coords=np.array([[320, 200]]), point_labels=np.array([1]))
    mask_input = first[2][np.argmax(first[1])][None]
    ours, theirs = both(predictors, point_coords=np.array([[320, 200], [330, 300]]), point_labels=np.array([1, 1]),
                        mask_input=mask_input, multimask_output=False)
    assertsameoutputs(ours, theirs, 'mask_input refinement')


def test_return_logits(predictors):
    ours, theirs = both(predictors, point_coords=np.array([[200, 150]]), point_labels=np.array([1]), return_logits=True)
    assert not set(np.unique(ours[0])) <= {0.0, 1.0}
    assertsameoutputs(ours, theirs, 'return_logits')


def test_normalized_coordinates(predictors):
    ours, theirs = both(predictors, point_coords=np.array([[0.5, 0.4], [0.1, 0.9]]), point_labels=np.array([1, 0]),
                        box=np.array([0.1, 0.1, 0.7, 0.8]), normalize_coords=False, multimask_output=False)
    assertsameoutputs(ours, theirs, 'normalize_coords=False')


def test_image_batch(predictors):
    """Last in this file, so the predictors' single image is not set again (a test after it would get NoImageError)."""
    ours, theirs = predictors
    images = [syntheticimage(HEIGHT, WIDTH, seed=2), syntheticimage(360, 500, seed=3)]
    with torch.no_grad():
        ours.setimagebatch(images)
        theirs.set_image_batch(images)
    boxes = [np.array([[50, 50, 300, 300], [200, 100, 600, 400]]), np.array([[20, 30, 250, 200]])]
    mine, official = ours.predictbatch(box_batch=boxes, multimask_output=False), theirs.predict_batch(
        box_batch=boxes, multimask_output=False)
    for i in range(2):
        assertsameoutputs([m[i] for m in mine], [o[i] for o in official], f'batch boxes image {i}')
    points = [np.array([[[100, 100]], [[400, 300]]]), np.array([[[200, 150]], [[50, 300]]])]
    labels = [np.array([[1], [1]]), np.array([[1], [0]])]
    mine = ours.predictbatch(points, labels, multimask_output=True)
    official = theirs.predict_batch(points, labels, multimask_output=True)
    for i in range(2):
        assertsameoutputs([m[i] for m in mine], [o[i] for o in official], f'batch points image {i}')
