"""Bad training data ends ``ssseg train`` before anything is built or trained: exit status 2 and one line naming the
file and what is wrong (a mask of another size than its image, an annotation without pixels, a missing file, an
unknown category, ...), for COCO images and DAVIS-style videos alike."""
import json
import os
import shutil

import numpy as np
import pytest
from PIL import Image

from ssseg.modules.datasets import COCOInstanceDataset, DatasetError, checkdataset
from ssseg.modules.utils.rle import frommask
from ssseg.testing.shapes import writecocoshapes, writedavisshapes

from helpers import clifails

H, W = 48, 80


@pytest.fixture(scope='module')
def coco(tmp_path_factory):
    return writecocoshapes(tmp_path_factory.mktemp('coco'), n_images=2, size=(H, W), n_objects=2, seed=2)


@pytest.fixture(scope='module')
def davis(tmp_path_factory):
    return writedavisshapes(tmp_path_factory.mktemp('davis'), n_videos=2, n_frames=4, n_objects=2, size=(H, W),
                            seed=2)


def _train(tmp_path, **data):
    flags = [f'--{k.replace("_", "-")}={v}' for k, v in data.items()]
    cfg = 'samv21_hiera_tiny_coco' if 'train_ann' in data else 'samv21_hiera_tiny_davis'
    return ['train', '--cfg', cfg, '--work-dir', str(tmp_path / 'work'), *flags, '--device', 'cpu']


def _edit_annotation(coco, change):
    def edit(data):
        annotation = data['annotations'][1]
        change(annotation)
        return annotation['id']
    return edit


def _wrongsize(annotation):
    annotation['segmentation'] = frommask(np.ones((H + 2, W), bool))


def _nopixels(annotation):
    annotation['segmentation'] = frommask(np.zeros((H, W), bool))


COCO_CASES = {
    'mask of another size': (lambda d: _edit_annotation(d, _wrongsize)(d), ['annotation 2', f'{W}x{H}']),
    'mask without pixels': (lambda d: _edit_annotation(d, _nopixels)(d), ['annotation 2', 'no pixels']),
    'unknown category': (lambda d: d['annotations'][0].update(category_id=7), ['annotation 1',
                                                                               'unknown category_id 7']),
    'missing image file': (lambda d: d['images'][1].update(file_name='gone.jpg'), ['gone.jpg', 'missing']),
    'image of another size': (lambda d: d['images'][0].update(height=H + 1), ['shapes_000.jpg', f'{W}x{H}']),
    'bad polygon': (lambda d: d['annotations'][0].update(segmentation=[[1, 2, 3]]), ['annotation 1',
                                                                                     'list of polygons']),
    'unknown image id': (lambda d: d['annotations'][0].update(image_id=99), ['image_id 99']),
}


@pytest.mark.parametrize('case', sorted(COCO_CASES))
def test_bad_coco_data(capsys, tmp_path, coco, case):
    ann_file, img_dir = coco
    with open(ann_file, encoding='utf-8') as file:
        data = json.load(file)
    edit, words = COCO_CASES[case]
    edit(data)
    broken = tmp_path / 'broken.json'
    broken.write_text(json.dumps(data))
    clifails(capsys, _train(tmp_path, train_ann=broken, train_images=img_dir), str(broken) if 'annotation' in
             ' '.join(words) else img_dir, *words)
    assert not os.path.exists(tmp_path / 'work' / 'last_checkpoint')


def test_unreadable_json_and_polygons(capsys, tmp_path, coco):
    ann_file, img_dir = coco
    (tmp_path / 'bad.json').write_text('{"images": [')
    clifails(capsys, _train(tmp_path, train_ann=tmp_path / 'bad.json', train_images=img_dir), 'bad.json',
             'not a readable JSON')
    with open(ann_file, encoding='utf-8') as file:
        data = json.load(file)
    data['annotations'][0]['segmentation'] = [[10, 10, 30, 10, 30, 20, 10, 20]]  # polygons are fine
    (tmp_path / 'poly.json').write_text(json.dumps(data))
    dataset = COCOInstanceDataset(tmp_path / 'poly.json', img_dir, image_size=32)
    checkdataset(dataset)
    assert dataset.rawsample(0)['masks'][0, 0].sum() == 20 * 10  # pycocotools: the polygon's area


def _copy(davis, tmp_path):
    copy = tmp_path / 'davis'
    shutil.copytree(davis, copy)
    return copy, copy / 'Annotations' / 'video01', copy / 'JPEGImages' / 'video01'


def _palette(path, label):
    image = Image.fromarray(label, mode='P')
    image.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0] + [128] * (253 * 3))
    image.save(path)


DAVIS_CASES = {
    'mask of another size': (lambda a, f: _palette(a / '00002.png', np.ones((H, W + 4), np.uint8)),
                             ['00002.png', f'{W + 4}x{H}', f'{W}x{H}']),
    'missing frame': (lambda a, f: os.remove(f / '00001.jpg'), ['00001.png', 'no frame 00001.jpg']),
    'no object at all': (lambda a, f: [_palette(p, np.zeros((H, W), np.uint8)) for p in a.iterdir()],
                         ['video01', 'no object in any annotation']),
    'RGB annotation': (lambda a, f: Image.new('RGB', (W, H)).save(a / '00000.png'), ['00000.png', 'mode RGB']),
    'unreadable PNG': (lambda a, f: (a / '00003.png').write_bytes(b'not a png'), ['00003.png', 'readable']),
    'missing frame folder': (lambda a, f: shutil.rmtree(f), ['JPEGImages/video01', 'missing']),
    'too few frames': (lambda a, f: [os.remove(a / n) for n in ('00001.png', '00002.png', '00003.png')],
                       ['video01', 'num_frames=2']),
}


@pytest.mark.parametrize('case', sorted(DAVIS_CASES))
def test_bad_davis_data(capsys, tmp_path, davis, case):
    copy, annotations, frames = _copy(davis, tmp_path)
    edit, words = DAVIS_CASES[case]
    edit(annotations, frames)
    argv = _train(tmp_path, train_videos=copy) + ['--cfg-options', 'TRAIN_CFG.dataset.num_frames=2']
    clifails(capsys, argv, *words)
    assert not os.path.exists(tmp_path / 'work' / 'last_checkpoint')


def test_not_a_davis_folder(capsys, tmp_path):
    (tmp_path / 'videos').mkdir()
    clifails(capsys, _train(tmp_path, train_videos=tmp_path / 'videos'), 'JPEGImages', 'missing')
    with pytest.raises(DatasetError, match='Annotations'):
        (tmp_path / 'videos' / 'JPEGImages').mkdir()
        from ssseg.modules.datasets import DAVISVideoDataset
        DAVISVideoDataset(tmp_path / 'videos')
