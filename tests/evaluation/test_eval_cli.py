"""``ssseg eval`` end to end on synthetic data with a random tiny checkpoint, and its bad inputs: each ends with one
``ssseg eval: error: ...`` line naming the flag or the file, exit status 2, and no report."""
import argparse
import json
import os
import shutil

import numpy as np
import pytest
from PIL import Image

from ssseg.evaluation.cli import _loadcfg
from ssseg.inference.cli import main
from ssseg.training.config import loadfinetunecfg

from helpers import clifails

pytestmark = pytest.mark.usefixtures('onethread')


@pytest.fixture
def model(tinycfgfile, evalckpt):
    return ['--cfg', tinycfgfile, '--ckpt', evalckpt[1], '--device', 'cpu']


def _report(outdir):
    with open(os.path.join(outdir, 'report.json'), encoding='utf-8') as file:
        return json.load(file)


def test_images_end_to_end(capsys, model, evalcoco, tmp_path, tinycfgfile, evalckpt):
    outdir = tmp_path / 'out'
    assert main(['eval', *model, '--ann', evalcoco[0], '--images', evalcoco[1], '--outdir', str(outdir)]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and out[0].startswith('ssseg eval: 9 objects on 3 images: mIoU one click ') and \
        'report.json' in out[0], out
    report = _report(outdir)
    assert {'task', 'cfg', 'ckpt', 'device', 'ann', 'images', 'miou_click', 'miou_box', 'num_images', 'num_objects',
            'per_image'} <= set(report)
    assert (report['task'], report['cfg'], report['ckpt']) == ('images', tinycfgfile, evalckpt[1])
    assert (report['ann'], report['images'], report['device']) == (evalcoco[0], evalcoco[1], 'cpu')
    assert (report['num_images'], report['num_objects'], len(report['per_image'])) == (3, 9, 3)
    assert 0 <= report['miou_click'] <= 1 and 0 <= report['miou_box'] <= 1
    assert all(0 <= iou <= 1 for record in report['per_image'] for iou in record['iou_click'] + record['iou_box'])
    assert os.listdir(outdir) == ['report.json']  # written atomically: no temporary file left

    assert main(['eval', *model, '--ann', evalcoco[0], '--images', evalcoco[1], '--outdir', str(outdir),
                 '--max-images', '2']) == 0
    assert _report(outdir)['num_images'] == 2


def test_videos_end_to_end(capsys, model, evaldavis, tmp_path):
    outdir = tmp_path / 'out'
    assert main(['eval', *model, '--videos', evaldavis, '--outdir', str(outdir), '--max-videos', '1']) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and out[0].startswith('ssseg eval: 2 objects in 1 videos: J '), out
    report = _report(outdir)
    assert {'task', 'cfg', 'ckpt', 'device', 'videos', 'j', 'f', 'jf', 'num_videos', 'num_objects',
            'per_video'} <= set(report)
    assert (report['task'], report['videos'], report['num_videos'], report['num_objects']) == ('videos', evaldavis,
                                                                                               1, 2)
    assert 0 <= report['j'] <= 1 and 0 <= report['f'] <= 1
    assert report['jf'] == pytest.approx((report['j'] + report['f']) / 2)
    assert [obj['num_frames'] for obj in report['per_video'][0]['objects']] == [3, 3]


def test_a_finetune_config_gives_its_model(evalckpt):
    cfg = _loadcfg(argparse.Namespace(cfg='samv21_hiera_tiny_coco', ckpt=evalckpt[1]))
    expected = loadfinetunecfg('samv21_hiera_tiny_coco')['SEGMENTOR_CFG']
    assert cfg == {**expected, 'ckptpath': evalckpt[1]}
    assert _loadcfg(argparse.Namespace(cfg='samv21_hiera_tiny', ckpt=None))['ckptpath'].endswith('sam2.1_hiera_tiny.pt')


@pytest.mark.parametrize('drop, add, words', [
    (['--outdir'], [], ['--outdir is required']),
    (['--cfg'], [], ['--cfg is required']),
    ([], ['--videos', '.'], ['--videos cannot go with --ann/--images']),
    (['--images'], [], ['--images is required with --ann']),
    (['--ann', '--images'], [], ['no data', '--videos DIR']),
    ([], ['--max-images', '0'], ['--max-images must be a positive int']),
    ([], ['--max-videos', '1'], ['--max-videos does not apply to images', '--max-images']),
    ([], ['--device', 'tpu'], ['--device']),
    ([], ['--cfg', 'no_such_config'], ['--cfg', 'samv21_hiera_tiny', 'samv21_hiera_tiny_coco']),
    ([], ['--ckpt', 'missing.pt'], ['--ckpt', 'missing.pt']),
    ([], ['--ann', 'missing.json'], ['--ann: no such file', 'missing.json']),
    ([], ['--images', 'missing_dir'], ['--images: no such folder', 'missing_dir']),
])
def test_bad_flags(capsys, model, evalcoco, tmp_path, drop, add, words):
    flags = dict(zip(model[::2], model[1::2]))
    flags.update({'--ann': evalcoco[0], '--images': evalcoco[1], '--outdir': str(tmp_path / 'out')})
    for flag in drop:
        flags.pop(flag)
    flags.update(dict(zip(add[::2], add[1::2])))
    clifails(capsys, ['eval', *[item for pair in flags.items() for item in pair]], *words)
    assert not os.path.exists(tmp_path / 'out')


def test_bad_paths_of_videos_and_outdir(capsys, model, evaldavis, tmp_path):
    clifails(capsys, ['eval', *model, '--videos', str(tmp_path / 'nothing'), '--outdir', str(tmp_path)],
             '--videos: no such folder')
    clifails(capsys, ['eval', *model, '--videos', evaldavis, '--outdir', str(tmp_path), '--max-images', '2'],
             '--max-images does not apply to videos')
    (tmp_path / 'file').write_text('x')
    clifails(capsys, ['eval', *model, '--videos', evaldavis, '--outdir', str(tmp_path / 'file')], '--outdir', 'file')
    (tmp_path / 'bad.pt').write_bytes(b'not a checkpoint')
    clifails(capsys, ['eval', model[0], model[1], '--ckpt', str(tmp_path / 'bad.pt'), '--device', 'cpu', '--videos',
                      evaldavis, '--outdir', str(tmp_path / 'out')], '--ckpt', 'bad.pt')
    assert not os.path.exists(tmp_path / 'out')


def test_bad_image_data_names_the_file(capsys, model, evalcoco, tmp_path):
    with open(evalcoco[0], encoding='utf-8') as file:
        coco = json.load(file)
    coco['annotations'][1]['segmentation'] = {'size': [10, 10], 'counts': [100]}  # another size than its image
    ann = tmp_path / 'bad.json'
    ann.write_text(json.dumps(coco))
    clifails(capsys, ['eval', *model, '--ann', str(ann), '--images', evalcoco[1], '--outdir', str(tmp_path / 'out')],
             str(ann), f'annotation {coco["annotations"][1]["id"]}')
    images = shutil.copytree(evalcoco[1], tmp_path / 'images')
    os.remove(images / coco['images'][0]['file_name'])
    clifails(capsys, ['eval', *model, '--ann', evalcoco[0], '--images', str(images), '--outdir', str(tmp_path / 'out')],
             coco['images'][0]['file_name'], 'missing')
    assert not os.path.exists(tmp_path / 'out')


def test_bad_video_data_names_the_file(capsys, model, evaldavis, tmp_path):
    folder = shutil.copytree(evaldavis, tmp_path / 'davis')
    png = folder / 'Annotations' / 'video01' / '00003.png'
    Image.fromarray(np.zeros((10, 10), np.uint8), mode='L').save(png)  # another size than its frame
    clifails(capsys, ['eval', *model, '--videos', str(folder), '--outdir', str(tmp_path / 'out')], str(png))
    assert not os.path.exists(tmp_path / 'out')
