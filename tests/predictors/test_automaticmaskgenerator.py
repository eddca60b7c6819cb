"""SAMV2AutomaticMaskGenerator on a tiny random model: record format, options, progress bar and errors."""
import json

import numpy as np
import pytest
from pycocotools.coco import COCO

from ssseg.modules.models.segmentors.samv2 import SAMV2AutomaticMaskGenerator
from ssseg.modules.utils.maskio import recordstolabelmap, savecocojson, savelabelmap

from helpers import syntheticimage, writetinyckpt

IMAGE = syntheticimage(60, 80, seed=3)
ALL = dict(pred_iou_thresh=0.0, stability_score_thresh=0.0, box_nms_thresh=1.0)


@pytest.fixture(scope='module')
def cfg(tmp_path_factory):
    return writetinyckpt(tmp_path_factory.mktemp('tiny') / 'tiny.pt')


def test_records_have_the_documented_fields(cfg):
    records = SAMV2AutomaticMaskGenerator(samv2_cfg=cfg, device='cpu', points_per_side=4, **ALL).generate(IMAGE)
    assert len(records) == 4 * 4 * 3
    for record in records:
        assert set(record) == {'segmentation', 'area', 'bbox', 'predicted_iou', 'point_coords', 'stability_score',
                               'crop_box'}
        assert record['segmentation'].shape == (60, 80) and record['segmentation'].dtype == bool
        assert record['area'] == int(record['segmentation'].sum())
        assert len(record['bbox']) == 4 and record['crop_box'] == [0, 0, 80, 60]
        assert len(record['point_coords']) == 1 and len(record['point_coords'][0]) == 2


def test_output_modes_and_exports(cfg, tmp_path):
    options = dict(samv2_cfg=cfg, device='cpu', points_per_side=3, **ALL)
    binary = SAMV2AutomaticMaskGenerator(output_mode='binary_mask', **options).generate(IMAGE)
    coco = SAMV2AutomaticMaskGenerator(output_mode='coco_rle', **options).generate(IMAGE)
    plain = SAMV2AutomaticMaskGenerator(output_mode='uncompressed_rle', **options).generate(IMAGE)
    assert isinstance(coco[0]['segmentation']['counts'], str) and isinstance(plain[0]['segmentation']['counts'], list)
    path = tmp_path / 'masks.json'
    savecocojson(coco, str(path), image_size=(60, 80), file_name='image.png')
    dataset = COCO(str(path))
    for record, annotation in zip(binary, dataset.loadAnns(dataset.getAnnIds())):
        np.testing.assert_array_equal(dataset.annToMask(annotation).astype(bool), record['segmentation'])
    assert json.loads(path.read_text())['annotations'][0]['score'] == pytest.approx(coco[0]['predicted_iou'])
    labels = recordstolabelmap(plain, (60, 80))
    assert labels.shape == (60, 80) and labels.max() <= len(plain)
    savelabelmap(binary, str(tmp_path / 'labels.png'), (60, 80))
    assert (tmp_path / 'labels.png').exists()


def test_crops_m2m_and_region_removal_run(cfg):
    records = SAMV2AutomaticMaskGenerator(
        samv2_cfg=cfg, device='cpu', points_per_side=4, crop_n_layers=1, crop_n_points_downscale_factor=2,
        use_m2m=True, min_mask_region_area=5, multimask_output=False, **ALL).generate(IMAGE)
    assert all(record['segmentation'].shape == (60, 80) for record in records)


def test_explicit_point_grids(cfg):
    grid = np.array([[0.25, 0.25], [0.75, 0.5]])
    records = SAMV2AutomaticMaskGenerator(samv2_cfg=cfg, device='cpu', points_per_side=None, point_grids=[grid],
                                          **ALL).generate(IMAGE)
    assert sorted({tuple(r['point_coords'][0]) for r in records}) == [(20.0, 15.0), (60.0, 30.0)]


def test_nothing_found_is_an_empty_list(cfg):
    generator = SAMV2AutomaticMaskGenerator(samv2_cfg=cfg, device='cpu', points_per_side=2, pred_iou_thresh=1.0)
    assert generator.generate(IMAGE) == []


def test_progress_bar_is_switchable(cfg, capsys):
    SAMV2AutomaticMaskGenerator(samv2_cfg=cfg, device='cpu', points_per_side=2, progress=True, **ALL).generate(IMAGE)
    assert 'automatic masks' in capsys.readouterr().err
    SAMV2AutomaticMaskGenerator(samv2_cfg=cfg, device='cpu', points_per_side=2, **ALL).generate(IMAGE)
    assert 'automatic masks' not in capsys.readouterr().err  # off by default when stderr is not a terminal


@pytest.mark.parametrize('kwargs, match', [
    (dict(points_per_side=8, point_grids=[np.zeros((4, 2))]), 'exactly one of points_per_side'),
    (dict(points_per_side=None), 'exactly one of points_per_side'),
    (dict(output_mode='png'), "output_mode must be one of .*'png'"),
    (dict(points_per_side=0), 'points_per_side must be a positive int'),
    (dict(points_per_side=None, point_grids=[np.zeros((4, 3))]),
     r'point_grids\[0\] must be a non-empty \(K, 2\) array'),
    (dict(points_per_side=None, point_grids=[np.zeros((4, 2))], crop_n_layers=1), 'crop_n_layers \\+ 1 = 2 arrays'),
    (dict(points_per_batch=0), 'points_per_batch must be a positive int'),
])
def test_bad_options(cfg, kwargs, match):
    with pytest.raises(ValueError, match=match):
        SAMV2AutomaticMaskGenerator(samv2_cfg=cfg, device='cpu', **kwargs)


@pytest.mark.parametrize('image, error, match', [
    (np.zeros((3, 60, 80), np.uint8), ValueError, r'\(H, W, 3\)'),
    (np.zeros((60, 80, 3), np.float32), TypeError, 'uint8'),
    (None, TypeError, 'numpy array or a PIL image'),
])
def test_bad_images(cfg, image, error, match):
    generator = SAMV2AutomaticMaskGenerator(samv2_cfg=cfg, device='cpu', points_per_side=2)
    with pytest.raises(error, match=match):
        generator.generate(image)
