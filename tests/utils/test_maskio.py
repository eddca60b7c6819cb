"""Export of generator records (maskio.py): COCO JSON round trip through pycocotools, label maps, atomic writes."""
import json
import os

import cv2
import numpy as np
import pytest
import torch
from pycocotools.coco import COCO

from ssseg.modules.models.segmentors.samv2.predictors.amg import batchedmasktobox, boxxyxytoxywh
from ssseg.modules.utils import rle
from ssseg.modules.utils.fileio import writeatomically
from ssseg.modules.utils.maskio import recordstococo, recordstolabelmap, savecocojson, savelabelmap

H, W = 37, 53


def makemasks():
    """Nested and disjoint masks touching the borders, a single pixel, and an empty one; (N, H, W) bool."""
    masks = torch.zeros(6, H, W, dtype=torch.bool)
    masks[0, :, :30] = True  # large, touches three borders
    masks[1, 5:20, 5:20] = True  # inside mask 0
    masks[2, 8:12, 8:12] = True  # inside mask 1
    masks[3, 20:, 40:] = True  # bottom-right corner
    masks[4, 36, 52] = True  # last pixel
    return masks  # masks[5] stays empty


def makerecords(form):
    masks = makemasks()
    rles = rle.encode(masks)
    boxes = batchedmasktobox(masks).float().numpy()
    records = []
    for i, (mask, encoded) in enumerate(zip(masks, rles)):
        segmentation = {'binary_mask': mask.numpy(), 'uncompressed_rle': encoded, 'coco_rle': rle.tococo(encoded)}[form]
        records.append({'segmentation': segmentation, 'area': int(mask.sum()), 'bbox': boxxyxytoxywh(boxes[i]).tolist(),
                        'predicted_iou': 0.9 - i / 100, 'point_coords': [[10.5, 3.0 + i]], 'stability_score': 0.95,
                        'crop_box': [0.0, 0.0, float(W), float(H)]})
    return records, masks.numpy()


@pytest.mark.parametrize('form', ['binary_mask', 'uncompressed_rle', 'coco_rle'])
def test_coco_roundtrip(tmp_path, form):
    records, masks = makerecords(form)
    path = savecocojson(records, tmp_path / 'masks.json', (H, W), file_name='photo.jpg', image_id=7, category_id=3)
    assert os.fspath(path) == os.fspath(tmp_path / 'masks.json')
    assert sorted(os.listdir(tmp_path)) == ['masks.json']
    coco = COCO(os.fspath(path))
    assert coco.imgs[7] == {'id': 7, 'file_name': 'photo.jpg', 'height': H, 'width': W}
    assert list(coco.cats) == [3]
    annotations = coco.loadAnns(coco.getAnnIds(imgIds=[7]))
    assert [a['id'] for a in annotations] == list(range(1, len(masks) + 1))
    for annotation, record, mask in zip(annotations, records, masks):
        assert isinstance(annotation['segmentation']['counts'], str)
        assert np.array_equal(coco.annToMask(annotation).astype(bool), mask)
        assert annotation['area'] == record['area'] and annotation['bbox'] == record['bbox']
        assert annotation['score'] == record['predicted_iou'] and annotation['iscrowd'] == 0
        assert annotation['stability_score'] == 0.95 and annotation['point_coords'] == record['point_coords']
        assert annotation['category_id'] == 3 and annotation['image_id'] == 7


def test_coco_fills_missing_box_and_area():
    masks = makemasks().numpy()
    coco = recordstococo([{'segmentation': m} for m in masks[:4]], (H, W))
    for annotation, mask in zip(coco['annotations'], masks):
        ys, xs = np.nonzero(mask)
        assert annotation['area'] == int(mask.sum())
        # COCO boxes are XYWH with exclusive extent (the generator's are inclusive, Meta's convention)
        assert annotation['bbox'] == [xs.min(), ys.min(), xs.max() + 1 - xs.min(), ys.max() + 1 - ys.min()]
        assert 'score' not in annotation
    json.dumps(coco)


def test_coco_badinputs():
    records, _ = makerecords('binary_mask')
    with pytest.raises(ValueError, match=r'must be a binary \(37, 52\) array'):
        recordstococo(records, (H, W - 1))
    with pytest.raises(ValueError, match='image_size'):
        recordstococo(records, (H, 0))
    with pytest.raises(ValueError, match=r'records\[1\] must be a dict with a "segmentation" key'):
        recordstococo([records[0], {'area': 3}], (H, W))
    with pytest.raises(ValueError, match='must be a list of dicts'):
        recordstococo(records[0], (H, W))
    with pytest.raises(ValueError, match='size \\[37, 53\\]'):
        recordstococo([{'segmentation': {'size': [H, W + 1], 'counts': [H * (W + 1)]}}], (H, W))
    with pytest.raises(ValueError, match='sum to'):
        recordstococo([{'segmentation': {'size': [H, W], 'counts': [5, 3]}}], (H, W))


@pytest.mark.parametrize('form', ['binary_mask', 'uncompressed_rle', 'coco_rle'])
def test_labelmap(tmp_path, form):
    records, masks = makerecords(form)
    labels = recordstolabelmap(records, (H, W))
    assert labels.dtype == np.uint16 and labels.shape == (H, W)
    # nested masks 1 and 2 lie inside the larger mask 0, painted after it: each keeps its own label
    assert labels[10, 10] == 3 and labels[15, 15] == 2 and labels[30, 2] == 1
    assert labels[36, 52] == 5 and labels[25, 45] == 4 and labels[0, 35] == 0
    assert 6 not in labels  # the empty mask
    # the input order does not matter for who is on top: a small mask listed first is still visible
    reordered = recordstolabelmap(records[::-1], (H, W))
    assert reordered[10, 10] == len(records) - 2 and reordered[30, 2] == len(records)
    path = savelabelmap(records, tmp_path / 'labels.png', (H, W))
    read = cv2.imread(os.fspath(path), cv2.IMREAD_UNCHANGED)
    assert read.dtype == np.uint16 and np.array_equal(read, labels)
    assert sorted(os.listdir(tmp_path)) == ['labels.png']


def test_labelmap_badinputs(tmp_path):
    records, _ = makerecords('binary_mask')
    with pytest.raises(ValueError, match='.png'):
        savelabelmap(records, tmp_path / 'labels.jpg', (H, W))
    with pytest.raises(ValueError, match='at most 65535'):
        recordstolabelmap([{'segmentation': np.zeros((1, 1), bool)}] * 65536, (1, 1))
    assert recordstolabelmap([], (4, 5)).tolist() == np.zeros((4, 5), np.uint16).tolist()


def test_writeatomically_keeps_old_file(tmp_path):
    target = tmp_path / 'out.json'
    target.write_text('old')
    (tmp_path / 'other.txt').write_text('untouched')

    def failing(temp):
        with open(temp, 'w') as file:
            file.write('partial')
        raise RuntimeError('disk on fire')
    with pytest.raises(RuntimeError, match='disk on fire'):
        writeatomically(target, failing)
    with pytest.raises(OSError, match='reported failure'):
        writeatomically(target, lambda temp: False)
    assert target.read_text() == 'old'
    assert sorted(os.listdir(tmp_path)) == ['other.txt', 'out.json']
    with pytest.raises(ValueError):
        savecocojson([{'segmentation': np.zeros((2, 2))}], target, (H, W))
    assert target.read_text() == 'old' and sorted(os.listdir(tmp_path)) == ['other.txt', 'out.json']
    # a successful write replaces the file and keeps the temporary file's extension for the writer
    seen = []

    def writer(temp):
        seen.append(temp)
        with open(temp, 'w') as file:
            file.write('new')
    writeatomically(target, writer)
    assert target.read_text() == 'new' and seen[0].endswith('.json') and os.path.dirname(seen[0]) == os.fspath(tmp_path)
    assert sorted(os.listdir(tmp_path)) == ['other.txt', 'out.json']
    with pytest.raises(FileNotFoundError):
        writeatomically(tmp_path / 'missing' / 'out.json', writer)
