"""Parity of SAMV2AutomaticMaskGenerator with Meta's SAM2AutomaticMaskGenerator on one random-weight checkpoint.

Thresholds are lowered so random weights still yield many masks (their predicted IoUs sit near 0.5),
and box NMS is switched off (threshold 1.0) in most cases, since random-weight masks overlap heavily.
"""
import cv2
import numpy as np
import pytest
import torch

from ssseg.modules.models.segmentors.samv2 import SAMV2AutomaticMaskGenerator
from ssseg.modules.models.segmentors.samv2.predictors.modelchoice import buildsamv2
from ssseg.modules.utils import rle
from ssseg.modules.utils.configs import loadsegmentorcfg

from helpers import buildoraclemodel, syntheticimage, writerandomcheckpoint

NAME = 'samv21_hiera_tiny'
IMAGE = syntheticimage(300, 400, seed=5)
LOOSE = dict(pred_iou_thresh=0.4, stability_score_thresh=0.3, box_nms_thresh=1.0)


def _connectedcomponents(mask):
    """CPU stand-in for the CUDA extension the oracle uses for hole filling: 8-connected labels and areas
    of the foreground of (N, 1, H, W) masks, each (N, 1, H, W) int32 (0 on background)."""
    masks = mask.to(torch.uint8).cpu().numpy()
    labels, areas = np.zeros(masks.shape, np.int32), np.zeros(masks.shape, np.int32)
    for i in range(masks.shape[0]):
        count, label, stats, _ = cv2.connectedComponentsWithStats(masks[i, 0], connectivity=8)
        labels[i, 0] = label
        areas[i, 0] = np.where(label > 0, stats[label, cv2.CC_STAT_AREA], 0)
    return torch.from_numpy(labels).to(mask.device), torch.from_numpy(areas).to(mask.device)


@pytest.fixture(scope='module')
def ckpt(tmp_path_factory):
    # a seed whose random weights give several masks in every case below (checkpoints are deterministic)
    return writerandomcheckpoint(NAME, str(tmp_path_factory.mktemp('amg') / 'amg.pt'), seed=5)


@pytest.fixture(scope='module')
def models(ckpt):
    """Both packages' models, built once and shared by the generators of every test (as ``model=`` allows)."""
    cfg = loadsegmentorcfg(NAME)
    cfg['ckptpath'] = ckpt
    return buildsamv2(cfg, device='cpu', apply_postprocessing=False), buildoraclemodel(NAME, ckpt,
                                                                                      apply_postprocessing=False)


def run(models, **options):
    from sam2.automatic_mask_generator import SAM2AutomaticMaskGenerator
    ours = SAMV2AutomaticMaskGenerator(model=models[0], **options).generate(IMAGE)
    theirs = SAM2AutomaticMaskGenerator(models[1], **options).generate(IMAGE)
    return ours, theirs


def _binary(segmentation):
    if isinstance(segmentation, np.ndarray):
        return segmentation
    if isinstance(segmentation['counts'], str):
        from pycocotools import mask as mask_utils
        return mask_utils.decode({'size': segmentation['size'], 'counts': segmentation['counts'].encode()})
    return rle.decode(segmentation)


def assertsamerecords(ours, theirs, minimum=5):
    assert len(ours) == len(theirs), f'{len(ours)} masks, official {len(theirs)}'
    assert len(theirs) >= minimum, f'only {len(theirs)} masks: the case does not exercise the generator'
    for i, (mine, official) in enumerate(zip(ours, theirs)):
        a, b = _binary(mine['segmentation']).astype(bool), _binary(official['segmentation']).astype(bool)
        iou = (a & b).sum() / max((a | b).sum(), 1)
        assert iou >= 0.999, f'mask {i}: IoU {iou:.5f}'
        assert mine['bbox'] == official['bbox'], f'mask {i}: bbox {mine["bbox"]} != {official["bbox"]}'
        assert mine['crop_box'] == official['crop_box']
        assert abs(mine['area'] - official['area']) <= 1e-3 * official['area'], (
            f'mask {i}: area {mine["area"]} != {official["area"]}')
        np.testing.assert_allclose(mine['point_coords'], official['point_coords'], atol=1e-4)
        for key in ('predicted_iou', 'stability_score'):
            assert abs(mine[key] - official[key]) <= 1e-3, f'mask {i}: {key} {mine[key]} != {official[key]}'


def test_plain_grid(models):
    ours, theirs = run(models, points_per_side=8, **LOOSE)
    assertsamerecords(ours, theirs)
    assert all(r['segmentation'].dtype == bool and r['segmentation'].shape == IMAGE.shape[:2] for r in ours)


def test_crops_with_downscaled_grids(models):
    # random-weight masks are blobs that touch every crop edge (and get dropped there); a high mask
    # threshold keeps their cores, so masks from the smaller crops survive too
    ours, theirs = run(models, points_per_side=6, crop_n_layers=1, crop_n_points_downscale_factor=2,
                       crop_nms_thresh=0.9, mask_threshold=12.0, **LOOSE)
    assertsamerecords(ours, theirs)
    assert len({tuple(r['crop_box']) for r in ours}) > 1  # masks from several crops survived


def test_m2m_with_small_region_removal(models, monkeypatch):
    import sam2.utils.misc
    monkeypatch.setattr(sam2.utils.misc, 'get_connected_components', _connectedcomponents)
    ours, theirs = run(models, points_per_side=6, use_m2m=True, min_mask_region_area=30, **LOOSE)
    assertsamerecords(ours, theirs)


@pytest.mark.parametrize('mode', ['coco_rle', 'uncompressed_rle'])
def test_rle_outputs(models, mode):
    ours, theirs = run(models, points_per_side=6, output_mode=mode, **LOOSE)
    assertsamerecords(ours, theirs)
    for mine, official in zip(ours, theirs):
        assert mine['segmentation']['size'] == official['segmentation']['size']
        assert type(mine['segmentation']['counts']) is type(official['segmentation']['counts'])
        assert isinstance(mine['segmentation']['counts'], str if mode == 'coco_rle' else list)


def test_stability_and_nms_filtered(models):
    # 192 candidates; the IoU, stability and NMS filters each remove some (random-weight blobs overlap a lot)
    ours, theirs = run(models, points_per_side=8, pred_iou_thresh=0.45, stability_score_thresh=0.6, box_nms_thresh=0.95)
    assertsamerecords(ours, theirs, minimum=2)
