"""Parity of the automatic-mask-generator helpers (amg.py) with Meta's sam2.utils.amg on random and edge-case inputs."""
import numpy as np
import pytest
import torch

from ssseg.modules.models.segmentors.samv2.predictors import amg

from helpers import MASK_SIZES as SIZES
from helpers import edgecasemasks, smoothmasks


@pytest.fixture(scope='module')
def meta():
    from sam2.utils import amg as meta_amg
    return meta_amg


@pytest.mark.parametrize('n', range(1, 33))
def test_pointgrid(meta, n):
    ours = amg.buildpointgrid(n)
    assert ours.shape == (n * n, 2) and ours.dtype == np.float64
    assert np.array_equal(ours, meta.build_point_grid(n))


@pytest.mark.parametrize('n, layers, scale', [(32, 0, 1), (32, 2, 2), (16, 3, 2), (24, 2, 3), (7, 1, 1), (9, 2, 2)])
def test_alllayerpointgrids(meta, n, layers, scale):
    ours, theirs = amg.buildalllayerpointgrids(n, layers, scale), meta.build_all_layer_point_grids(n, layers, scale)
    assert len(ours) == len(theirs) == layers + 1
    assert all(np.array_equal(a, b) for a, b in zip(ours, theirs))


@pytest.mark.parametrize('size', [(37, 53), (53, 37), (1500, 2250), (480, 640), (100, 100), (1, 1), (7, 3)])
@pytest.mark.parametrize('layers', [0, 1, 2, 3])
@pytest.mark.parametrize('ratio', [0.0, 512 / 1500, 0.5])
def test_cropboxes(meta, size, layers, ratio):
    assert amg.generatecropboxes(size, layers, ratio) == meta.generate_crop_boxes(size, layers, ratio)


def test_uncrop_boxes_points(meta):
    generator = torch.Generator().manual_seed(0)
    crop = [13, 7, 90, 60]
    for boxes in [torch.randint(0, 50, (6, 4), generator=generator), torch.rand(6, 4, generator=generator) * 50,
                  torch.randint(0, 50, (2, 3, 4), generator=generator)]:
        ours, theirs = amg.uncropboxes(boxes, crop), meta.uncrop_boxes_xyxy(boxes, crop)
        assert ours.dtype == theirs.dtype and torch.equal(ours, theirs)
    for points in [torch.rand(6, 2, generator=generator) * 50, torch.rand(2, 5, 2, generator=generator) * 50]:
        ours, theirs = amg.uncroppoints(points, crop), meta.uncrop_points(points, crop)
        assert ours.dtype == theirs.dtype and torch.equal(ours, theirs)


@pytest.mark.parametrize('crop', [[0, 0, 53, 37], [0, 0, 20, 37], [10, 5, 53, 37], [3, 4, 30, 20], [52, 36, 53, 37]])
def test_uncropmasks(meta, crop):
    x0, y0, x1, y1 = crop
    masks = edgecasemasks(y1 - y0, x1 - x0)
    ours, theirs = amg.uncropmasks(masks, crop, 37, 53), meta.uncrop_masks(masks, crop, 37, 53)
    assert ours.shape == (len(masks), 37, 53) and ours.dtype == torch.bool and torch.equal(ours, theirs)
    if crop == [0, 0, 53, 37]:
        assert ours is masks
    with pytest.raises(ValueError, match='crop_box'):
        amg.uncropmasks(masks, [x0, y0, x1 - 1, y1], 37, 53)


def test_boxnearcropedge(meta):
    generator = torch.Generator().manual_seed(1)
    orig = [0, 0, 200, 150]
    for crop in [[0, 0, 200, 150], [0, 0, 110, 80], [90, 70, 200, 150], [50, 40, 150, 110]]:
        w, h = crop[2] - crop[0], crop[3] - crop[1]
        corners = torch.rand(64, 2, 2, generator=generator) * torch.tensor([w, h])
        boxes = torch.cat([corners.amin(1), corners.amax(1)], dim=1).long()
        boxes[:8] = torch.tensor([0, 0, w - 1, h - 1])  # touches every crop edge
        boxes[8:12] = torch.tensor([19, 20, 21, 22])  # around the atol boundary
        for atol in (20.0, 5.0):
            ours = amg.isboxnearcropedge(boxes, crop, orig, atol=atol)
            assert torch.equal(ours, meta.is_box_near_crop_edge(boxes, crop, orig, atol=atol))


@pytest.mark.parametrize('size', SIZES)
def test_masktobox(meta, chunking, size):
    masks = edgecasemasks(*size)
    ours, theirs = amg.batchedmasktobox(masks), meta.batched_mask_to_box(masks)
    assert ours.dtype == theirs.dtype == torch.int64 and torch.equal(ours, theirs)
    # leading dims and a single (H, W) mask
    grouped = masks[:4].reshape(2, 2, *size)
    assert torch.equal(amg.batchedmasktobox(grouped), meta.batched_mask_to_box(grouped))
    assert torch.equal(amg.batchedmasktobox(masks[5]), meta.batched_mask_to_box(masks[5]))


def test_masktobox_noelements(meta):
    for shape in [(0, 5, 6), (3, 0, 4)]:
        masks = torch.zeros(shape, dtype=torch.bool)
        ours, theirs = amg.batchedmasktobox(masks), meta.batched_mask_to_box(masks)
        assert ours.dtype == theirs.dtype and torch.equal(ours, theirs)
    with pytest.raises(ValueError, match='bool'):
        amg.batchedmasktobox(torch.zeros(2, 5, 5))


def test_boxxyxytoxywh(meta):
    box = torch.tensor([3, 4, 10, 20])
    assert torch.equal(amg.boxxyxytoxywh(box), meta.box_xyxy_to_xywh(box)) and box.tolist() == [3, 4, 10, 20]
    row = np.array([3.5, 4.0, 10.0, 20.25], dtype=np.float32)
    ours, theirs = amg.boxxyxytoxywh(row), meta.box_xyxy_to_xywh(row)
    assert ours.dtype == theirs.dtype and ours.tolist() == theirs.tolist()
    boxes = torch.tensor([[3, 4, 10, 20], [0, 0, 5, 6]])
    assert torch.equal(amg.boxxyxytoxywh(boxes), torch.stack([meta.box_xyxy_to_xywh(b) for b in boxes]))


@pytest.mark.parametrize('threshold, offset', [(0.0, 1.0), (0.3, 0.5), (-1.0, 0.25), (0.0, 0.0)])
def test_stabilityscore(meta, chunking, threshold, offset):
    _, logits = smoothmasks(6, 37, 53, seed=2)
    extremes = torch.stack([torch.full((37, 53), 50.0), torch.full((37, 53), -50.0), torch.randn(37, 53)])
    logits = torch.cat([logits, extremes])
    ours = amg.stabilityscore(logits, threshold, offset)
    theirs = meta.calculate_stability_score(logits, threshold, offset)
    assert ours.dtype == theirs.dtype == torch.float32
    assert torch.equal(ours.isnan(), theirs.isnan()) and torch.equal(ours.nan_to_num(), theirs.nan_to_num())
    grouped = amg.stabilityscore(logits[:8].reshape(2, 4, 37, 53), threshold, offset)
    assert grouped.shape == (2, 4) and torch.equal(grouped.nan_to_num(), theirs[:8].reshape(2, 4).nan_to_num())
    assert amg.stabilityscore(logits[:0], threshold, offset).shape == (0,)


def test_maskrecords(meta):
    def columns(seed, n):
        generator = torch.Generator().manual_seed(seed)
        return dict(boxes=torch.randint(0, 9, (n, 4), generator=generator), scores=torch.rand(n, generator=generator),
                    rles=[{'counts': [i]} for i in range(n)], extra=np.arange(n) + seed)
    ours, theirs = amg.MaskRecords(), meta.MaskData()
    for seed, n in [(0, 5), (1, 0), (2, 4)]:
        ours.cat(amg.MaskRecords(**columns(seed, n)))
        theirs.cat(meta.MaskData(**columns(seed, n)))
    assert len(ours) == 9
    for keep in [ours['scores'] > 0.4, torch.tensor([7, 0, 3, 2])]:
        ours_copy, theirs_copy = amg.MaskRecords(**dict(ours.items())), meta.MaskData(**dict(theirs.items()))
        ours_copy.filter(keep)
        theirs_copy.filter(keep)
        ours_copy.tonumpy()
        theirs_copy.to_numpy()
        for key, value in theirs_copy.items():
            mine = ours_copy[key]
            assert type(mine) is type(value)
            if isinstance(value, list):
                assert mine == value
            else:
                assert mine.dtype == value.dtype and np.array_equal(mine, value)
    assert 'boxes' in ours and 'missing' not in ours
    with pytest.raises(ValueError, match='columns'):
        ours.cat(amg.MaskRecords(boxes=torch.zeros(1, 4)))
    # a side without rows gives way, whatever its columns (a crop or batch whose masks were all filtered out)
    ours.cat(amg.MaskRecords(boxes=torch.zeros(0, 4)))
    assert len(ours) == 9 and sorted(ours.keys()) == ['boxes', 'extra', 'rles', 'scores']
    empty = amg.MaskRecords(boxes=torch.zeros(0, 4), rles=[])
    empty.cat(amg.MaskRecords(**columns(3, 2)))
    assert len(empty) == 2 and sorted(empty.keys()) == ['boxes', 'extra', 'rles', 'scores']
    with pytest.raises(ValueError, match='must be a list, numpy array or torch tensor'):
        amg.MaskRecords(value=3)
