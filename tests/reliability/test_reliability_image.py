"""Input validation of the still-image entry points (SAMV2ImagePredictor, SAMV2AutomaticMaskGenerator) on a tiny
random model: every bad input raises TypeError / ValueError naming the argument and what was received, a failed
call leaves the object as a fresh one would be, and property tests over prompt shapes and values for predict."""
import math

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from ssseg.modules.models.segmentors.samv2 import SAMV2AutomaticMaskGenerator, SAMV2ImagePredictor
from ssseg.modules.models.segmentors.samv2.predictors.imagepredictor import NoImageError

from helpers import syntheticimage, writetinyckpt

pytestmark = pytest.mark.usefixtures('onethread')

H, W = 60, 80
LOWRES = 32  # the tiny model's 128 x 128 input gives 32 x 32 low-res logits
IMAGE = syntheticimage(H, W)
OTHER = syntheticimage(40, 50, seed=2)
POINT = dict(point_coords=[[10, 20], [50, 30]], point_labels=[1, 0])


@pytest.fixture(scope='module')
def cfg(tmp_path_factory):
    return writetinyckpt(tmp_path_factory.mktemp('tiny') / 'tiny.pt')


@pytest.fixture(scope='module')
def predictor(cfg):
    predictor = SAMV2ImagePredictor(samv2_cfg=cfg, device='cpu')
    predictor.setimage(IMAGE)
    return predictor


@pytest.fixture(scope='module')
def batchpredictor(cfg):
    predictor = SAMV2ImagePredictor(samv2_cfg=cfg, device='cpu')
    predictor.setimagebatch([IMAGE, OTHER])
    return predictor


def _pil(mode, size=(W, H)):
    return Image.new(mode, size)


def _tensor():
    return torch.zeros(3, H, W, dtype=torch.uint8)


# ---------------------------------------------------------------------- images
# (make the bad image, exception, regex with {name} for the argument's name)
BAD_IMAGES = {
    'float32': (lambda: IMAGE.astype(np.float32), TypeError, r'{name} must have dtype uint8 .*got float32: convert'),
    'float64 in [0, 1]': (lambda: IMAGE / 255.0, TypeError, r'{name} must have dtype uint8 .*got float64.*\* 255'),
    'uint16': (lambda: IMAGE.astype(np.uint16) * 257, TypeError, r'{name} must have dtype uint8 .*got uint16.*// 257'),
    'uint16 grayscale': (lambda: np.zeros((H, W), np.uint16), TypeError, r'{name} must have dtype uint8 .*got uint16'),
    'int64': (lambda: IMAGE.astype(np.int64), TypeError, r'{name} must have dtype uint8 .*got int64'),
    'bool': (lambda: IMAGE > 100, TypeError, r'{name} must have dtype uint8 .*got bool'),
    'CHW': (lambda: np.ascontiguousarray(IMAGE.transpose(2, 0, 1)), ValueError,
            r'{name} must be an \(H, W, 3\) .*got shape \(3, 60, 80\), '
            r'which looks channel-first .*transpose\(1, 2, 0\)'),
    'CHW grayscale': (lambda: IMAGE[None, :, :, 0], ValueError,
                      r'{name} .*got shape \(1, 60, 80\), which looks channel-first'),
    'CHW RGBA': (lambda: np.zeros((4, H, W), np.uint8), ValueError,
                 r'{name} .*\(4, 60, 80\), which looks channel-first'),
    'two channels': (lambda: IMAGE[:, :, :2], ValueError, r'{name} must be an \(H, W, 3\) .*got shape \(60, 80, 2\)'),
    '4-D batch': (lambda: IMAGE[None], ValueError, r'{name} must be an \(H, W, 3\) .*got 4-D shape \(1, 60, 80, 3\)'),
    '1-D': (lambda: IMAGE.reshape(-1), ValueError, r'{name} must be an \(H, W, 3\) .*got 1-D shape \(14400,\)'),
    '0-D': (lambda: np.array(3, np.uint8), ValueError, r'{name} must be an \(H, W, 3\) .*got 0-D shape \(\)'),
    'empty rows': (lambda: IMAGE[:0], ValueError, r'{name} is empty: .*got shape \(0, 80, 3\)'),
    'empty columns': (lambda: IMAGE[:, :0], ValueError, r'{name} is empty: .*got shape \(60, 0, 3\)'),
    'empty grayscale': (lambda: np.zeros((0, 0), np.uint8), ValueError, r'{name} is empty: .*got shape \(0, 0\)'),
    'empty PIL': (lambda: _pil('RGB', (0, 0)), ValueError, r'{name} is empty: .*PIL image of size 0 x 0'),
    'empty PIL rows': (lambda: _pil('L', (5, 0)), ValueError, r'{name} is empty: .*PIL image of size 5 x 0'),
    "PIL 'I;16'": (lambda: _pil('I;16'), TypeError, r"{name} must be an 8-bit PIL image .*got mode 'I;16'"),
    "PIL 'I'": (lambda: _pil('I'), TypeError, r"{name} must be an 8-bit PIL image .*got mode 'I'"),
    "PIL 'F'": (lambda: _pil('F'), TypeError, r"{name} must be an 8-bit PIL image .*got mode 'F'"),
    'path string': (lambda: 'image.png', TypeError, r'{name} must be an \(H, W, 3\) uint8 .*got str: read the file'),
    'nested list': (lambda: IMAGE.tolist(), TypeError, r'{name} must be .*numpy array or a PIL image, got list'),
    'None': (lambda: None, TypeError, r'{name} must be .*numpy array or a PIL image, got NoneType'),
    'torch tensor': (_tensor, TypeError,
                     r'{name} must be .*got a torch.Tensor of shape \(3, 60, 80\): pass a HWC uint8 numpy'),
}


@pytest.mark.parametrize('case', list(BAD_IMAGES))
@pytest.mark.parametrize('entry', ['setimage', 'setimagebatch', 'generate'])
def test_bad_images_are_refused_by_every_entry_point(cfg, predictor, case, entry):
    make, error, pattern = BAD_IMAGES[case]
    before = predictor.getimageembedding().clone()
    if entry == 'generate':
        generator = SAMV2AutomaticMaskGenerator(samv2_cfg=cfg, device='cpu', points_per_side=2)
        with pytest.raises(error, match=pattern.format(name='image')):
            generator.generate(make())
        return
    with pytest.raises(error, match=pattern.format(name='image' if entry == 'setimage' else r'images\[1\]')):
        if entry == 'setimage':
            predictor.setimage(make())
        else:
            predictor.setimagebatch([IMAGE, make()])
    # nothing was reset: the single image is still set
    assert torch.equal(predictor.getimageembedding(), before)
    predictor.predict(**POINT)


@pytest.mark.parametrize('images, error, match', [
    (np.stack([IMAGE, IMAGE]), TypeError, r'images must be a non-empty list .*got ndarray \(wrap a single image'),
    (IMAGE, TypeError, r'images must be a non-empty list .*got ndarray'),
    ((image for image in [IMAGE]), TypeError, r'images must be a non-empty list .*got generator'),
    ([], ValueError, r'images must be a non-empty list .*got an empty list'),
    (None, TypeError, r'images must be a non-empty list .*got NoneType'),
])
def test_setimagebatch_needs_a_non_empty_list(predictor, images, error, match):
    with pytest.raises(error, match=match):
        predictor.setimagebatch(images)
    predictor.predict(**POINT)  # still in single-image mode


def _alpha(image):
    return np.dstack([image, np.arange(H * W, dtype=np.uint8).reshape(H, W)])


# (the accepted input, the RGB array it must embed like, the warning expected or None)
CONVERTED = {
    'grayscale (H, W)': (lambda: IMAGE[:, :, 1], lambda: np.repeat(IMAGE[:, :, 1:2], 3, axis=2), 'image is grayscale'),
    'grayscale (H, W, 1)': (lambda: IMAGE[:, :, 1:2], lambda: np.repeat(IMAGE[:, :, 1:2], 3, axis=2),
                            'image is grayscale'),
    'RGBA array': (lambda: _alpha(IMAGE), lambda: IMAGE, 'treating it as RGBA and dropping alpha'),
    "PIL 'L'": (lambda: Image.fromarray(IMAGE[:, :, 1]), lambda: np.repeat(IMAGE[:, :, 1:2], 3, axis=2),
                "grayscale PIL image \\(mode 'L'\\)"),
    "PIL '1'": (lambda: Image.fromarray(IMAGE[:, :, 1] > 128), lambda: np.repeat(
        (IMAGE[:, :, 1:2] > 128).astype(np.uint8) * 255, 3, axis=2), "grayscale PIL image \\(mode '1'\\)"),
    "PIL 'RGBA'": (lambda: Image.fromarray(_alpha(IMAGE)), lambda: IMAGE,
                   "mode 'RGBA': converting it to RGB and dropping alpha"),
    "PIL 'LA'": (lambda: Image.fromarray(_alpha(np.repeat(IMAGE[:, :, 1:2], 3, axis=2))).convert('LA'),
                 lambda: np.repeat(IMAGE[:, :, 1:2], 3, axis=2), "mode 'LA': converting it to RGB and dropping alpha"),
    "PIL 'P'": (lambda: Image.fromarray(IMAGE).quantize(16),
                lambda: np.asarray(Image.fromarray(IMAGE).quantize(16).convert('RGB')), None),
    "PIL 'P' with transparency": (lambda: _transparentpalette(),
                                  lambda: np.asarray(_transparentpalette().convert('RGB')),
                                  "mode 'P': converting it to RGB and dropping alpha"),
    'negative strides (BGR view)': (lambda: IMAGE[:, :, ::-1], lambda: np.ascontiguousarray(IMAGE[:, :, ::-1]), None),
    'negative strides (mirrored)': (lambda: IMAGE[::-1, ::-1], lambda: np.ascontiguousarray(IMAGE[::-1, ::-1]), None),
    'strided view': (lambda: syntheticimage(2 * H, 3 * W)[::2, ::3], lambda: np.ascontiguousarray(
        syntheticimage(2 * H, 3 * W)[::2, ::3]), None),
    'HWC view of a CHW array': (lambda: np.ascontiguousarray(IMAGE.transpose(2, 0, 1)).transpose(1, 2, 0),
                                lambda: IMAGE, None),
    'read-only array': (lambda: _readonly(IMAGE), lambda: IMAGE, None),
    'Fortran order': (lambda: np.asfortranarray(IMAGE), lambda: IMAGE, None),
}


def _transparentpalette():
    image = Image.fromarray(IMAGE).quantize(16)
    image.info['transparency'] = 0
    return image


def _readonly(image):
    image = image.copy()
    image.flags.writeable = False
    return image


@pytest.mark.parametrize('case', list(CONVERTED))
def test_accepted_images_embed_like_their_rgb_contiguous_copy(predictor, case, recwarn):
    make, expected, warning = CONVERTED[case]
    reference = expected()
    assert reference.flags.c_contiguous and reference.dtype == np.uint8 and reference.shape == (H, W, 3)
    predictor.setimage(reference)
    embedding = predictor.getimageembedding().clone()
    recwarn.clear()
    try:
        if warning is None:
            import warnings
            with warnings.catch_warnings():
                warnings.simplefilter('error')
                predictor.setimage(make())
        else:
            with pytest.warns(UserWarning, match=warning):
                predictor.setimage(make())
        assert torch.equal(predictor.getimageembedding(), embedding)
    finally:
        predictor.setimage(IMAGE)


def test_non_contiguous_images_in_a_batch_and_in_the_generator(cfg, batchpredictor):
    view = IMAGE[:, :, ::-1]
    copy = np.ascontiguousarray(view)
    fresh = SAMV2ImagePredictor(samv2_cfg=cfg, device='cpu')
    fresh.setimagebatch([copy, OTHER])
    batchpredictor.setimagebatch([view, OTHER])
    try:
        assert torch.equal(batchpredictor.getimageembedding(), fresh.getimageembedding())
    finally:
        batchpredictor.setimagebatch([IMAGE, OTHER])
    generator = SAMV2AutomaticMaskGenerator(samv2_cfg=cfg, device='cpu', points_per_side=3, pred_iou_thresh=0.0,
                                            stability_score_thresh=0.0)
    _assertsamerecords(generator.generate(view), generator.generate(copy))


# ---------------------------------------------------------------------- predict
BAD_PROMPTS = [
    # flags
    (dict(multimask_output='no'), TypeError, r"multimask_output must be a bool, got str 'no'"),
    (dict(multimask_output=None), TypeError, r'multimask_output must be a bool, got NoneType None'),
    (dict(return_logits='False'), TypeError, r"return_logits must be a bool, got str 'False'"),
    (dict(return_logits=2), TypeError, r'return_logits must be a bool, got int 2'),
    (dict(normalize_coords=0.5), TypeError, r'normalize_coords must be a bool, got float 0.5'),
    (dict(normalize_coords=[True]), TypeError, r'normalize_coords must be a bool, got list \[True\]'),
    # points and labels
    (dict(point_coords=[[1, 2]]), ValueError, 'point_coords was given without point_labels'),
    (dict(point_labels=[1]), ValueError, 'point_labels was given without point_coords'),
    (dict(point_coords=[[1, 2], [3, 4]], point_labels=[1]), ValueError,
     r'point_labels must have one label per point, shape \(P,\) = \(2,\) '
     r'for point_coords of shape \(2, 2\), got \(1,\)'),
    (dict(point_coords=[[[1, 2], [3, 4]], [[5, 6], [7, 8]]], point_labels=[1, 1]), ValueError,
     r'point_labels must have one label per point, shape \(N, P\) = \(2, 2\) '
     r'for point_coords of shape \(2, 2, 2\), got \(2,\)'),
    (dict(point_coords=[[[1, 2], [3, 4]]], point_labels=[1, 1, 1]), ValueError,
     r'point_labels must have one label per point, shape \(N, P\) = \(1, 2\) '
     r'for point_coords of shape \(1, 2, 2\), got \(1, 3\)'),
    (dict(point_coords=[[1, 2]], point_labels=[[1]]), ValueError, r'shape \(P,\) = \(1,\) .*got \(1, 1\)'),
    (dict(point_coords=[[1, 2, 3]], point_labels=[1]), ValueError,
     r'point_coords must have shape \(P, 2\) or \(N, P, 2\) with N, P >= 1, got \(1, 3\)'),
    (dict(point_coords=[1, 2], point_labels=[1]), ValueError, r'point_coords must have shape .*got \(2,\)'),
    (dict(point_coords=np.zeros((0, 2)), point_labels=np.zeros(0)), ValueError,
     r'point_coords must have shape .*got \(0, 2\)'),
    (dict(point_coords=np.zeros((0, 1, 2)), point_labels=np.zeros((0, 1))), ValueError, r'got \(0, 1, 2\)'),
    (dict(point_coords=np.zeros((1, 1, 1, 2)), point_labels=np.zeros((1, 1, 1))), ValueError, r'got \(1, 1, 1, 2\)'),
    (dict(point_coords=[[1, 2]], point_labels=[5]), ValueError,
     r'point_labels must be in \(-1, 0, 1, 2, 3\).*got \[5\]'),
    (dict(point_coords=[[1, 2], [3, 4]], point_labels=[0.5, -2]), ValueError,
     r'point_labels must be in .*got \[-2, 0.5\]'),
    (dict(point_coords=[[np.nan, 2]], point_labels=[1]), ValueError, r'point_coords must be finite, got NaN or inf'),
    (dict(point_coords=[[np.inf, 2]], point_labels=[1]), ValueError, r'point_coords must be finite'),
    (dict(point_coords=[[1e39, 2]], point_labels=[1]), ValueError, r'point_coords must be finite.*float32 range'),
    (dict(point_coords=[[1, 2]], point_labels=[np.nan]), ValueError, r'point_labels must be finite'),
    (dict(point_coords=[['a', 'b']], point_labels=[1]), TypeError, r'point_coords must be a numeric array, got list'),
    (dict(point_coords=[[1, 2], [3]], point_labels=[1, 1]), TypeError,
     r'point_coords must be a numeric array, got list'),
    (dict(point_coords=[[1, 2]], point_labels='1'), TypeError, r'point_labels must be a numeric array, got str'),
    # boxes
    (dict(box=[10, 10, 5, 20]), ValueError,
     r'box must be x1, y1, x2, y2 with x2 >= x1 and y2 >= y1, got \[10.0, 10.0, 5.0, 20.0\]'),
    (dict(box=[[0, 0, 9, 9], [0, 20, 9, 10]]), ValueError,
     r'box must be x1, y1, x2, y2 .*got \[0.0, 20.0, 9.0, 10.0\]'),
    (dict(box=[1, 2, 3]), ValueError, r'box must be xyxy with shape \(4,\) or \(N, 4\), got shape \(3,\)'),
    (dict(box=[1, 2, 3, 4, 5]), ValueError, r'box must be xyxy .*got shape \(5,\)'),
    (dict(box=[[[0, 0], [9, 9]]]), ValueError, r'box must be xyxy .*got shape \(1, 2, 2\)'),
    (dict(box=np.zeros((0, 4))), ValueError, r'box must be xyxy .*got shape \(0, 4\)'),
    (dict(box=[0, 0, np.nan, 9]), ValueError, r'box must be finite'),
    (dict(box=[0, 0, np.inf, 9]), ValueError, r'box must be finite'),
    (dict(box='0 0 9 9'), TypeError, r'box must be a numeric array, got str'),
    (dict(box=[[0, 0, 9, 9]] * 3, point_coords=[[[1, 1]]] * 2, point_labels=[[1]] * 2), ValueError,
     r'point_coords has 2 prompt sets but box has 3 boxes: give one point set, or one per box'),
    # mask inputs
    (dict(mask_input=np.zeros((1, 64, 64))), ValueError,
     r'mask_input must be low-res logits of shape \(1, 32, 32\) or \(N, 1, 32, 32\) .*got \(1, 64, 64\)'),
    (dict(mask_input=np.zeros((3, 32, 32))), ValueError, r'mask_input must be low-res logits .*got \(3, 32, 32\)'),
    (dict(mask_input=np.zeros((1, 1, 1, 32, 32))), ValueError,
     r'mask_input must be low-res logits .*got \(1, 1, 1, 32, 32\)'),
    (dict(mask_input=np.zeros((0, 1, 32, 32))), ValueError,
     r'mask_input must be low-res logits .*got \(0, 1, 32, 32\)'),
    (dict(mask_input=np.float32(0)), ValueError, r'mask_input must be low-res logits .*got \(\)'),
    (dict(mask_input=np.full((1, 32, 32), np.nan)), ValueError, r'mask_input must be finite'),
    (dict(mask_input=np.zeros((3, 1, 32, 32)), **POINT), ValueError,
     r'mask_input must hold 1 mask for 1 prompt set\(s\), got 3 masks'),
    (dict(mask_input=np.zeros((3, 1, 32, 32)), box=[[0, 0, 9, 9], [0, 0, 20, 20]]), ValueError,
     r'mask_input must hold 1 mask \(shared\) or 2 \(one per prompt\) for 2 prompt set\(s\), got 3 masks'),
    (dict(mask_input='logits'), TypeError, r'mask_input must be a numeric array, got str'),
]


def test_one_prompt_set_may_take_flat_labels(predictor):
    # (1, P, 2) points with (P,) labels are one prompt, as Meta's video predictor reads them
    flat = predictor.predict(point_coords=[[10, 20], [30, 40]], point_labels=[1, 0])
    nested = predictor.predict(point_coords=[[[10, 20], [30, 40]]], point_labels=[1, 0])
    assert all(np.array_equal(a, b) for a, b in zip(flat, nested))


@pytest.mark.parametrize('kwargs, error, match', BAD_PROMPTS)
def test_bad_prompts_to_predict(predictor, kwargs, error, match):
    with pytest.raises(error, match=match):
        predictor.predict(**kwargs)


@pytest.mark.parametrize('flags', [
    dict(multimask_output=np.bool_(False), return_logits=np.bool_(True), normalize_coords=np.bool_(True)),
    dict(multimask_output=0, return_logits=1, normalize_coords=1),
    dict(multimask_output=np.int64(0), return_logits=np.uint8(1), normalize_coords=True),
])
def test_numpy_bools_and_0_1_are_flags(predictor, flags):
    got = predictor.predict(**POINT, **flags)
    want = predictor.predict(**POINT, **{name: bool(value) for name, value in flags.items()})
    for a, b in zip(got, want):
        assert np.array_equal(a, b)


def test_predictor_options_are_checked_before_the_build(cfg):
    for kwargs, error, match in [
        (dict(mask_threshold=float('nan')), ValueError, r'mask_threshold must be a finite number, got nan'),
        (dict(mask_threshold='0'), TypeError, r"mask_threshold must be a number, got str '0'"),
        (dict(max_hole_area=-1), ValueError, r'max_hole_area must be a finite number >= 0, got -1.0'),
        (dict(max_sprinkle_area=float('inf')), ValueError, r'max_sprinkle_area must be a finite number >= 0, got inf'),
        (dict(max_hole_area=True), TypeError, r'max_hole_area must be a number, got bool True'),
    ]:
        with pytest.raises(error, match=match):
            SAMV2ImagePredictor(samv2_cfg={**cfg, 'ckptpath': '/nonexistent/checkpoint.pt'}, device='cpu', **kwargs)


# ---------------------------------------------------------------------- predictbatch and image modes
BAD_BATCH_PROMPTS = [
    (dict(box_batch=[[0, 0, 9, 9]]), ValueError,
     r'box_batch must be a list with one entry per image: expected length 2 '
     r'\(the images given to setimagebatch\), got length 1'),
    (dict(point_coords_batch=[[[1, 2]]] * 3, point_labels_batch=[[1]] * 3), ValueError,
     r'point_coords_batch must be a list with one entry per image: expected length 2 .*got length 3'),
    (dict(mask_input_batch=[]), ValueError, r'mask_input_batch must be .*expected length 2 .*got length 0'),
    (dict(box_batch=np.zeros((2, 4))), TypeError,
     r'box_batch must be a list or tuple with one entry \(or None\) per image, got ndarray'),
    (dict(point_labels_batch=torch.ones(2, 1), point_coords_batch=[[[1, 2]]] * 2), TypeError,
     r'point_labels_batch must be a list or tuple .*got Tensor'),
    (dict(point_coords_batch=[[[1, 2]], [[1, 2], [3, 4]]], point_labels_batch=[[1], [1]]), ValueError,
     r'point_labels_batch\[1\] must have one label per point, shape \(P,\) = \(2,\) '
     r'for point_coords_batch\[1\] of shape \(2, 2\)'),
    (dict(point_coords_batch=[[[1, 2]], None], point_labels_batch=[[1], [1]]), ValueError,
     r'point_labels_batch\[1\] was given without point_coords_batch\[1\]'),
    (dict(point_coords_batch=[[[1, 2]], [[1, 2]]], point_labels_batch=[[1], [9]]), ValueError,
     r'point_labels_batch\[1\] must be in .*got \[9\]'),
    (dict(point_coords_batch=[[[np.nan, 2]], [[1, 2]]], point_labels_batch=[[1], [1]]), ValueError,
     r'point_coords_batch\[0\] must be finite'),
    (dict(box_batch=[None, [5, 5, 1, 1]]), ValueError, r'box_batch\[1\] must be x1, y1, x2, y2 with x2 >= x1'),
    (dict(box_batch=[[1, 2, 3], None]), ValueError,
     r'box_batch\[0\] must be xyxy with shape \(4,\) or \(N, 4\), got shape \(3,\)'),
    (dict(mask_input_batch=[np.zeros((1, 64, 64)), None]), ValueError,
     r'mask_input_batch\[0\] must be low-res logits of shape \(1, 32, 32\) .*got \(1, 64, 64\)'),
    (dict(mask_input_batch=[None, np.zeros((2, 1, 32, 32))], box_batch=[None, [0, 0, 9, 9]]), ValueError,
     r'mask_input_batch\[1\] must hold 1 mask for 1 prompt set\(s\), got 2 masks'),
    (dict(box_batch=[[[0, 0, 9, 9]] * 2, None], point_coords_batch=[[[[1, 1]]] * 3, None],
          point_labels_batch=[[[1]] * 3, None]), ValueError,
     r'point_coords_batch\[0\] has 3 prompt sets but box_batch\[0\] has 2 boxes'),
    (dict(multimask_output='yes'), TypeError, r"multimask_output must be a bool, got str 'yes'"),
    (dict(return_logits=None), TypeError, r'return_logits must be a bool, got NoneType None'),
    (dict(normalize_coords=2.0), TypeError, r'normalize_coords must be a bool, got float 2.0'),
]


@pytest.mark.parametrize('kwargs, error, match', BAD_BATCH_PROMPTS)
def test_bad_prompts_to_predictbatch(batchpredictor, kwargs, error, match):
    with pytest.raises(error, match=match):
        batchpredictor.predictbatch(**kwargs)


def test_calls_in_the_wrong_image_mode(cfg, predictor, batchpredictor):
    empty = SAMV2ImagePredictor(samv2_cfg=cfg, device='cpu')
    for call, match in [
        (lambda: empty.predict(**POINT), r'predict needs an image: call setimage\(...\) first'),
        (lambda: empty.predictbatch(box_batch=[None]), r'predictbatch needs an image: call setimagebatch\(...\) first'),
        (empty.getimageembedding, r'getimageembedding needs an image: call setimage\(...\) first'),
        (lambda: predictor.predictbatch(box_batch=[None]),
         'predictbatch is for images set with setimagebatch; after setimage use predict'),
        (lambda: batchpredictor.predict(**POINT),
         'predict is for an image set with setimage; after setimagebatch use predictbatch'),
    ]:
        with pytest.raises(NoImageError, match=match) as info:
            call()
        assert isinstance(info.value, ValueError)
    empty.setimage(IMAGE)
    empty.resetpredictor()
    with pytest.raises(ValueError, match='predict needs an image'):
        empty.predict(**POINT)


# ---------------------------------------------------------------------- a failed call leaves the predictor usable
def _failencoding(predictor):
    def broken(*args, **kwargs):
        raise RuntimeError('simulated failure while encoding (e.g. out of memory)')
    predictor.model.encodeimage = broken
    try:
        with pytest.raises(RuntimeError, match='simulated'):
            predictor.setimage(OTHER)
    finally:
        del predictor.model.encodeimage


FAILING_SINGLE_CALLS = {
    'float image': (lambda p: p.setimage(IMAGE.astype(np.float32)), TypeError),
    'CHW image': (lambda p: p.setimage(np.ascontiguousarray(IMAGE.transpose(2, 0, 1))), ValueError),
    'empty PIL image': (lambda p: p.setimage(Image.new('RGB', (0, 0))), ValueError),
    "PIL 'I;16' image": (lambda p: p.setimage(Image.new('I;16', (W, H))), TypeError),
    'bad images[1]': (lambda p: p.setimagebatch([OTHER, np.zeros((0, 3, 3), np.uint8)]), ValueError),
    'empty image list': (lambda p: p.setimagebatch([]), ValueError),
    'label 7': (lambda p: p.predict(point_coords=[[10, 20]], point_labels=[7]), ValueError),
    'NaN box': (lambda p: p.predict(box=[0, 0, np.nan, 5]), ValueError),
    'flipped box with points': (lambda p: p.predict(box=[9, 9, 0, 0], **POINT), ValueError),
    'bad mask_input size': (lambda p: p.predict(mask_input=np.zeros((1, 16, 16)), **POINT), ValueError),
    'bad mask_input count': (lambda p: p.predict(mask_input=np.zeros((2, 1, 32, 32)), **POINT), ValueError),
    'non-bool flag': (lambda p: p.predict(multimask_output='False', **POINT), TypeError),
    'predictbatch after setimage': (lambda p: p.predictbatch(box_batch=[None]), ValueError),
    'encoder failure': (_failencoding, None),
}


def _validcalls(predictor, mask_input=None):
    """The same valid calls on any predictor with IMAGE set: masks, scores, logits of three prompts and the
    embedding."""
    single = predictor.predict(**POINT)
    boxes = predictor.predict(box=[[0, 0, 30, 30], [10, 10, 70, 50]], multimask_output=False, return_logits=True)
    refined = predictor.predict(**POINT, mask_input=single[2][:1], multimask_output=False)
    return [*single, *boxes, *refined, predictor.getimageembedding().clone()]


def _assertsame(got, want):
    assert len(got) == len(want)
    for a, b in zip(got, want):
        if isinstance(a, torch.Tensor):
            assert torch.equal(a, b)
        else:
            assert a.dtype == b.dtype and np.array_equal(a, b)


@pytest.fixture(scope='module')
def freshresults(cfg):
    fresh = SAMV2ImagePredictor(samv2_cfg=cfg, device='cpu')
    fresh.setimage(IMAGE)
    return _validcalls(fresh)


@pytest.mark.parametrize('case', list(FAILING_SINGLE_CALLS))
def test_failed_call_leaves_the_predictor_like_a_fresh_one(cfg, freshresults, case):
    call, error = FAILING_SINGLE_CALLS[case]
    used = SAMV2ImagePredictor(samv2_cfg=cfg, device='cpu')
    used.setimage(IMAGE)
    used.predict(box=[5, 5, 40, 40])
    if error is None:
        call(used)
    else:
        with pytest.raises(error):
            call(used)
    _assertsame(_validcalls(used), freshresults)


BATCH_PROMPTS = dict(point_coords_batch=[[[10, 20]], None], point_labels_batch=[[1], None],
                     box_batch=[None, [[0, 0, 30, 30], [5, 5, 45, 35]]])


@pytest.mark.parametrize('failing, error', [
    (lambda p: p.predictbatch(box_batch=[[0, 0, 9, 9]]), ValueError),
    (lambda p: p.predictbatch(box_batch=np.zeros((2, 4))), TypeError),
    (lambda p: p.predictbatch(point_coords_batch=[[[1, 2]], [[1, 2]]], point_labels_batch=[[1], [4]]), ValueError),
    (lambda p: p.predictbatch(mask_input_batch=[None, np.zeros((1, 8, 8))]), ValueError),
    (lambda p: p.predictbatch(multimask_output=None), TypeError),
    (lambda p: p.predict(**POINT), ValueError),
    (lambda p: p.setimagebatch([IMAGE, IMAGE.astype(np.uint16)]), TypeError),
    (lambda p: p.setimage(np.zeros((H, W, 2), np.uint8)), ValueError),
])
def test_failed_call_leaves_a_batch_predictor_like_a_fresh_one(cfg, failing, error):
    fresh = SAMV2ImagePredictor(samv2_cfg=cfg, device='cpu')
    fresh.setimagebatch([IMAGE, OTHER])
    used = SAMV2ImagePredictor(samv2_cfg=cfg, device='cpu')
    used.setimagebatch([IMAGE, OTHER])
    used.predictbatch(box_batch=[[0, 0, 9, 9], None])
    with pytest.raises(error):
        failing(used)
    got, want = used.predictbatch(**BATCH_PROMPTS), fresh.predictbatch(**BATCH_PROMPTS)
    for got_column, want_column in zip(got, want):
        _assertsame(got_column, want_column)


# ---------------------------------------------------------------------- automatic mask generator
AMG_SMALL = dict(points_per_side=3, pred_iou_thresh=0.0, stability_score_thresh=0.0, crop_n_layers=1)


def _assertsamerecords(got, want):
    assert len(got) == len(want) > 0
    for a, b in zip(got, want):
        assert set(a) == set(b)
        assert np.array_equal(a['segmentation'], b['segmentation'])
        assert all(a[key] == b[key] for key in a if key != 'segmentation')


def test_failed_generate_leaves_the_generator_like_a_fresh_one(cfg):
    want = SAMV2AutomaticMaskGenerator(samv2_cfg=cfg, device='cpu', **AMG_SMALL).generate(IMAGE)
    used = SAMV2AutomaticMaskGenerator(samv2_cfg=cfg, device='cpu', **AMG_SMALL)
    used.generate(OTHER)
    for bad in (IMAGE.astype(np.float32), Image.new('RGB', (0, 0)), IMAGE[None], 'image.png'):
        with pytest.raises((TypeError, ValueError)):
            used.generate(bad)
    # a failure in the middle of the second crop (after the first crop's masks were made)
    calls = []
    original = used._processbatch

    def failing(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError('simulated failure in the middle of generate')
        return original(*args, **kwargs)
    used._processbatch = failing
    with pytest.raises(RuntimeError, match='simulated'):
        used.generate(IMAGE)
    del used._processbatch
    assert not used.predictor._is_image_set  # the crop's features were released
    _assertsamerecords(used.generate(IMAGE), want)


BAD_AMG_OPTIONS = [
    (dict(pred_iou_thresh=float('nan')), ValueError, r'pred_iou_thresh must be a finite number in \[0, 1\], got nan'),
    (dict(pred_iou_thresh=1.5), ValueError, r'pred_iou_thresh must be a finite number in \[0, 1\], got 1.5'),
    (dict(pred_iou_thresh='0.8'), TypeError, r"pred_iou_thresh must be a number, got str '0.8'"),
    (dict(stability_score_thresh=-0.1), ValueError,
     r'stability_score_thresh must be a finite number in \[0, 1\], got -0.1'),
    (dict(stability_score_thresh=float('inf')), ValueError, r'stability_score_thresh must be .*got inf'),
    (dict(box_nms_thresh=2), ValueError, r'box_nms_thresh must be a finite number in \[0, 1\], got 2.0'),
    (dict(box_nms_thresh=None), TypeError, r'box_nms_thresh must be a number, got NoneType None'),
    (dict(crop_nms_thresh=float('nan')), ValueError, r'crop_nms_thresh must be a finite number in \[0, 1\], got nan'),
    (dict(stability_score_offset=float('inf')), ValueError, r'stability_score_offset must be a finite number, got inf'),
    (dict(crop_overlap_ratio=1.0), ValueError, r'crop_overlap_ratio must be a finite number in \[0, 1\), got 1.0'),
    (dict(crop_overlap_ratio=-1), ValueError, r'crop_overlap_ratio must be a finite number in \[0, 1\), got -1.0'),
    (dict(mask_threshold=float('nan')), ValueError, r'mask_threshold must be a finite number, got nan'),
    (dict(min_mask_region_area=-5), ValueError, r'min_mask_region_area must be a finite number >= 0, got -5.0'),
    (dict(min_mask_region_area=float('nan')), ValueError,
     r'min_mask_region_area must be a finite number >= 0, got nan'),
    (dict(crop_n_points_downscale_factor=0, crop_n_layers=1), ValueError,
     r'crop_n_points_downscale_factor must be a positive int, got 0'),
    (dict(crop_n_points_downscale_factor=1.5, crop_n_layers=1), TypeError,
     r'crop_n_points_downscale_factor must be a positive int, got float 1.5'),
    (dict(crop_n_points_downscale_factor=True), TypeError,
     r'crop_n_points_downscale_factor must be a positive int, got bool True'),
    (dict(points_per_side=8, crop_n_layers=2, crop_n_points_downscale_factor=4), ValueError,
     r'crop_n_points_downscale_factor=4 leaves crop layer 2 with 0 points per side \(points_per_side=8 // 4\*\*2\)'),
    (dict(points_per_side=True), TypeError, r'points_per_side must be a positive int, got bool True'),
    (dict(points_per_side=8.0), TypeError, r'points_per_side must be a positive int, got float 8.0'),
    (dict(points_per_side=-3), ValueError, r'points_per_side must be a positive int, got -3'),
    (dict(points_per_batch=True), TypeError, r'points_per_batch must be a positive int, got bool True'),
    (dict(crop_n_layers=True), TypeError, r'crop_n_layers must be an int >= 0, got bool True'),
    (dict(crop_n_layers=-1), ValueError, r'crop_n_layers must be an int >= 0, got -1'),
    (dict(crop_n_layers=1.0), TypeError, r'crop_n_layers must be an int >= 0, got float 1.0'),
    (dict(use_m2m='yes'), TypeError, r"use_m2m must be a bool, got str 'yes'"),
    (dict(multimask_output=None), TypeError, r'multimask_output must be a bool, got NoneType None'),
    (dict(points_per_side=None, point_grids=[np.array([[0.5, 1.5], [0.2, 0.2]])]), ValueError,
     r'point_grids\[0\] must hold finite \(x, y\) in \[0, 1\] .*got 1 point\(s\) outside it, e.g. \[0.5, 1.5\]'),
    (dict(points_per_side=None, point_grids=[np.array([[-0.1, 0.5]])]), ValueError,
     r'point_grids\[0\] must hold finite'),
    (dict(points_per_side=None, point_grids=[np.array([[np.nan, 0.5]])]), ValueError,
     r'point_grids\[0\] must hold finite'),
    (dict(points_per_side=None, point_grids=[[['a', 'b']]]), TypeError,
     r'point_grids\[0\] must be a numeric \(K, 2\) array'),
]


@pytest.mark.parametrize('kwargs, error, match', BAD_AMG_OPTIONS)
def test_bad_generator_options(cfg, kwargs, error, match):
    with pytest.raises(error, match=match):
        SAMV2AutomaticMaskGenerator(samv2_cfg=cfg, device='cpu', **kwargs)


def test_generator_accepts_numpy_numbers_and_edge_values(cfg):
    generator = SAMV2AutomaticMaskGenerator(
        samv2_cfg=cfg, device='cpu', points_per_side=np.int64(4), crop_n_layers=np.int32(1),
        pred_iou_thresh=np.float32(0), stability_score_thresh=0, box_nms_thresh=1, crop_overlap_ratio=0,
        crop_n_points_downscale_factor=4, use_m2m=np.bool_(False), multimask_output=1)
    assert [len(grid) for grid in generator.point_grids] == [16, 1]
    assert generator.generate(IMAGE)


# ---------------------------------------------------------------------- property tests for predict
NONFINITE = [math.nan, math.inf, -math.inf]
# at most one fault per example, so about half of the examples are valid prompts that must succeed
FAULTS = ['nonfinite coordinate', 'bad label', 'label count', 'empty points', 'flipped box', 'box length',
          'nonfinite box', 'set count', 'bad flag', 'mask size']


def _floats(draw, count, low, high):
    return np.array(draw(st.lists(st.floats(low, high, allow_nan=False), min_size=count, max_size=count)), np.float64)


@st.composite
def prompts(draw):
    """``(kwargs for predict, valid, N prompt sets, masks per set)``: valid prompts must succeed, others must raise."""
    fault = draw(st.sampled_from([None] * len(FAULTS) + FAULTS))
    points_mode = draw(st.sampled_from(['some', 'none', 'sets']))
    box_mode = draw(st.sampled_from(['none', 'one', 'several']))
    if fault in ('nonfinite coordinate', 'bad label', 'label count', 'empty points') and points_mode == 'none':
        points_mode = 'some'
    if fault in ('flipped box', 'box length', 'nonfinite box') and box_mode == 'none':
        box_mode = 'one'
    if fault == 'set count':
        points_mode, box_mode = 'sets', 'several'
    num_boxes = draw(st.integers(2, 3)) if box_mode == 'several' else 1
    num_sets = draw(st.integers(1, 3)) if points_mode == 'sets' else 1
    if fault == 'set count':
        num_sets = draw(st.sampled_from([n for n in (2, 3, 4) if n != num_boxes]))
    elif box_mode != 'none' and num_sets not in (1, num_boxes):
        num_sets = num_boxes
    kwargs = {}
    if points_mode != 'none':
        num_points = 0 if fault == 'empty points' else draw(st.integers(1, 6))
        coords = _floats(draw, 2 * num_points * num_sets, -200, 300).reshape(num_sets, num_points, 2)
        labels = np.array(draw(st.lists(st.sampled_from(VALID_LABELS_LIST), min_size=num_points * num_sets,
                                        max_size=num_points * num_sets)), np.int64).reshape(num_sets, num_points)
        if fault == 'nonfinite coordinate':
            coords.flat[draw(st.integers(0, coords.size - 1))] = draw(st.sampled_from(NONFINITE))
        elif fault == 'bad label':
            labels = labels.astype(np.float64)
            labels.flat[draw(st.integers(0, labels.size - 1))] = draw(st.sampled_from([5, -2, 0.5, 7, 100, math.nan]))
        if points_mode == 'some':
            coords, labels = coords[0], labels[0]
        if fault == 'label count':
            labels = labels[..., :-1] if draw(st.booleans()) else np.concatenate([labels, labels[..., :1]], axis=-1)
        kwargs.update(point_coords=coords, point_labels=labels)
    if box_mode != 'none':
        corners = _floats(draw, 4 * num_boxes, -50, 150).reshape(num_boxes, 4)
        box = np.concatenate([np.minimum(corners[:, :2], corners[:, 2:]),
                              np.maximum(corners[:, :2], corners[:, 2:])], 1)
        if fault == 'flipped box':
            axis = draw(st.integers(0, 1))
            box[0, axis] = box[0, axis + 2] + draw(st.floats(0.5, 100))
        elif fault == 'nonfinite box':
            box[draw(st.integers(0, num_boxes - 1)), draw(st.integers(0, 3))] = draw(st.sampled_from(NONFINITE))
        if fault == 'box length':
            kwargs['box'] = box[0, :draw(st.sampled_from([0, 2, 3]))] if draw(st.booleans()) else np.append(box[0], 1.0)
        else:
            kwargs['box'] = box[0] if box_mode == 'one' and draw(st.booleans()) else box
        num_sets = num_boxes if fault != 'set count' else num_sets
    multimask = draw(st.booleans())
    kwargs.update(multimask_output=multimask, return_logits=draw(st.booleans()), normalize_coords=draw(st.booleans()))
    if fault == 'bad flag':
        kwargs[draw(st.sampled_from(['multimask_output', 'return_logits', 'normalize_coords']))] = draw(
            st.sampled_from(['yes', None, 2, 0.5, 'False', [True]]))
    mask_mode = 'wrong size' if fault == 'mask size' else draw(st.sampled_from(['none', 'one', 'each']))
    if mask_mode == 'one':
        kwargs['mask_input'] = _floats(draw, 1, -20, 20)[0] * np.ones((1, LOWRES, LOWRES), np.float32)
    elif mask_mode == 'each':
        kwargs['mask_input'] = np.zeros((num_sets, 1, LOWRES, LOWRES), np.float32)
    elif mask_mode == 'wrong size':
        kwargs['mask_input'] = np.zeros(draw(st.sampled_from([(1, LOWRES // 2, LOWRES), (2, 2, LOWRES, LOWRES),
                                                             (LOWRES * 4, LOWRES * 4)])), np.float32)
    return kwargs, fault is None, num_sets, 3 if multimask else 1


VALID_LABELS_LIST = [-1, 0, 1, 2, 3]


@settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=prompts())
def test_predict_either_returns_documented_shapes_or_raises_a_documented_error(predictor, case):
    kwargs, valid, num_sets, num_masks = case
    try:
        masks, scores, logits = predictor.predict(**kwargs)
    except (TypeError, ValueError) as error:
        assert not valid, f'valid prompts were refused: {error}'
        assert str(error)
        return
    assert valid, f'invalid prompts were accepted: {kwargs}'
    lead = (num_sets,) if num_sets > 1 else ()
    assert masks.shape == lead + (num_masks, H, W)
    assert scores.shape == lead + (num_masks,)
    assert logits.shape == lead + (num_masks, LOWRES, LOWRES)
    assert masks.dtype == scores.dtype == logits.dtype == np.float32
    assert np.isfinite(scores).all() and np.isfinite(logits).all()
    if not kwargs['return_logits']:
        assert set(np.unique(masks)) <= {0.0, 1.0}
