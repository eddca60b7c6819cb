"""SAMV2ImagePredictor on a tiny random model: output shapes, aliases, state handling and error paths."""
import numpy as np
import pytest
import torch
from PIL import Image

from ssseg.modules.models.segmentors.samv2 import SAMV2ImagePredictor
from ssseg.modules.models.segmentors.samv2.predictors.transforms import fillholes

from helpers import syntheticimage, writetinyckpt

H, W = 60, 80


@pytest.fixture(scope='module')
def predictor(tmp_path_factory):
    cfg = writetinyckpt(tmp_path_factory.mktemp('tiny') / 'tiny.pt')
    predictor = SAMV2ImagePredictor(samv2_cfg=cfg, device='cpu')
    predictor.setimage(syntheticimage(H, W))
    return predictor


def test_shapes_single_image(predictor):
    masks, scores, logits = predictor.predict(point_coords=[[10, 20]], point_labels=[1])
    assert masks.shape == (3, H, W) and scores.shape == (3,) and logits.shape == (3, 32, 32)
    assert masks.dtype == np.float32 and set(np.unique(masks)) <= {0.0, 1.0}
    masks, scores, logits = predictor.predict(box=[[0, 0, 30, 30], [10, 10, 70, 50]], multimask_output=False)
    assert masks.shape == (2, 1, H, W) and scores.shape == (2, 1) and logits.shape == (2, 1, 32, 32)
    masks, _, _ = predictor.predict(box=[5, 5, 40, 40], point_coords=[[20, 20]], point_labels=[0], return_logits=True)
    assert masks.shape == (3, H, W) and not set(np.unique(masks)) <= {0.0, 1.0}
    masks, _, _ = predictor.predict()  # no prompt at all: the model still answers
    assert masks.shape == (3, H, W)
    assert predictor.getimageembedding().shape == (1, 32, 8, 8)


def test_one_point_set_is_shared_by_several_boxes(predictor):
    boxes = np.array([[0, 0, 30, 30], [10, 10, 70, 50]])
    shared = predictor.predict(box=boxes, point_coords=[[20, 20]], point_labels=[1], multimask_output=False)
    each = [predictor.predict(box=b, point_coords=[[20, 20]], point_labels=[1], multimask_output=False) for b in boxes]
    for i in range(2):
        np.testing.assert_allclose(shared[2][i], each[i][2], atol=1e-5)


def test_pil_and_numpy_give_the_same_embedding(predictor):
    image = syntheticimage(H, W)
    embedding = predictor.getimageembedding().clone()
    predictor.setimage(Image.fromarray(image))
    assert torch.equal(predictor.getimageembedding(), embedding)


def test_snake_case_aliases_are_the_same_methods():
    for official, ours in [('set_image', 'setimage'), ('set_image_batch', 'setimagebatch'),
                           ('predict_batch', 'predictbatch'), ('get_image_embedding', 'getimageembedding'),
                           ('reset_predictor', 'resetpredictor')]:
        assert getattr(SAMV2ImagePredictor, official) is getattr(SAMV2ImagePredictor, ours)


def test_batch_mode(predictor):
    images = [syntheticimage(H, W, seed=1), syntheticimage(40, 50, seed=2)]
    try:
        predictor.setimagebatch(images)
        masks, scores, logits = predictor.predictbatch(box_batch=[np.array([0, 0, 20, 20]), None])
        assert masks[0].shape == (3, H, W) and masks[1].shape == (3, 40, 50) and len(scores) == len(logits) == 2
        with pytest.raises(RuntimeError, match='after setimagebatch use predictbatch'):
            predictor.predict(point_coords=[[1, 1]], point_labels=[1])
        with pytest.raises(ValueError, match='one entry per image'):
            predictor.predictbatch(box_batch=[np.array([0, 0, 20, 20])])
    finally:
        predictor.setimage(syntheticimage(H, W))
    with pytest.raises(ValueError, match='after setimage use predict'):
        predictor.predictbatch(box_batch=[None])


def test_predict_before_setimage(tmp_path):
    predictor = SAMV2ImagePredictor(samv2_cfg=writetinyckpt(tmp_path / 't.pt'), device='cpu')
    for call in (lambda: predictor.predict(point_coords=[[1, 1]], point_labels=[1]), predictor.getimageembedding):
        with pytest.raises(ValueError, match=r'call setimage\(...\) first'):
            call()


@pytest.mark.parametrize('image, error, match', [
    (np.zeros((H, W, 3), np.float32), TypeError, 'dtype uint8'),
    (np.zeros((3, H, W), np.uint8), ValueError, r'\(H, W, 3\).*got shape \(3, 60, 80\)'),
    (np.zeros((0, W, 3), np.uint8), ValueError, 'empty'),
    ('image.png', TypeError, 'numpy array or a PIL image'),
])
def test_bad_images(predictor, image, error, match):
    with pytest.raises(error, match=match):
        predictor.setimage(image)


def test_grayscale_and_rgba_are_converted_with_a_warning(predictor):
    gray = syntheticimage(H, W)[:, :, 0]
    with pytest.warns(UserWarning, match='grayscale'):
        predictor.setimage(gray)
    rgba = np.dstack([syntheticimage(H, W), np.full((H, W), 255, np.uint8)])
    with pytest.warns(UserWarning, match='RGBA'):
        predictor.setimage(rgba)
    assert torch.equal(predictor.getimageembedding(),
                       (predictor.setimage(syntheticimage(H, W)), predictor.getimageembedding())[1])


@pytest.mark.parametrize('kwargs, match', [
    (dict(point_coords=[[1, 2]]), 'point_coords was given without point_labels'),
    (dict(point_labels=[1]), 'point_labels was given without point_coords'),
    (dict(point_coords=[[1, 2], [3, 4]], point_labels=[1]), 'one label per point'),
    (dict(point_coords=[[1, 2, 3]], point_labels=[1]), r'shape \(P, 2\)'),
    (dict(point_coords=[[1, 2]], point_labels=[5]), r'point_labels must be in'),
    (dict(point_coords=[[np.nan, 2]], point_labels=[1]), 'finite'),
    (dict(box=[10, 10, 5, 20]), 'x2 >= x1'),
    (dict(box=[1, 2, 3]), r'shape \(4,\) or \(N, 4\)'),
    (dict(mask_input=np.zeros((1, 64, 64))), r'mask_input must be low-res logits of shape \(1, 32, 32\)'),
    (dict(box=[[0, 0, 9, 9]] * 3, point_coords=[[[1, 1]]] * 2, point_labels=[[1]] * 2),
     'one point set, or one per box'),
])
def test_bad_prompts(predictor, kwargs, match):
    with pytest.raises(ValueError, match=match):
        predictor.predict(**kwargs)


def test_failed_call_leaves_the_predictor_usable(predictor):
    expected = predictor.predict(point_coords=[[10, 20]], point_labels=[1])
    with pytest.raises(ValueError):
        predictor.predict(point_coords=[[10, 20]], point_labels=[7])
    with pytest.raises(TypeError):
        predictor.setimage(np.zeros((H, W, 3), np.float64))
    # a rejected image is checked before anything is reset
    again = predictor.predict(point_coords=[[10, 20]], point_labels=[1])
    for a, b in zip(expected, again):
        np.testing.assert_array_equal(a, b)


def test_fillholes_fills_small_holes_and_removes_sprinkles():
    logits = -torch.ones(1, 1, 20, 20)
    logits[..., 2:12, 2:12] = 1.0
    logits[..., 5, 5] = -1.0       # a 1-pixel hole inside the square
    logits[..., 16, 16] = 1.0      # a 1-pixel sprinkle outside it
    out = fillholes(logits, 0.0, max_hole_area=2, max_sprinkle_area=2)
    assert out[0, 0, 5, 5] > 0 and out[0, 0, 16, 16] < 0
    assert (out[..., 2:12, 2:12] > 0).all()
    assert ((out > 0).sum() == 100)
    assert torch.equal(fillholes(logits, 0.0), logits)


def test_hole_filling_option_changes_only_small_regions(tmp_path):
    cfg = writetinyckpt(tmp_path / 't.pt')
    plain = SAMV2ImagePredictor(samv2_cfg=cfg, device='cpu')
    filled = SAMV2ImagePredictor(samv2_cfg=cfg, device='cpu', max_hole_area=4, max_sprinkle_area=4)
    image = syntheticimage(H, W)
    plain.setimage(image)
    filled.setimage(image)
    a = plain.predict(point_coords=[[10, 20]], point_labels=[1])[0]
    b = filled.predict(point_coords=[[10, 20]], point_labels=[1])[0]
    assert a.shape == b.shape and np.mean(a == b) > 0.9
