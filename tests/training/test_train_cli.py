"""``ssseg train``'s bad inputs: each ends with one ``ssseg train: error: ...`` line naming the flag or the file, exit
status 2, before anything is trained (the work dir stays without checkpoints)."""
import json
import os
import shutil

import numpy as np
import pytest
from PIL import Image

from ssseg.training.config import availablefinetuneconfigs

from helpers import clifails

pytestmark = pytest.mark.usefixtures('onethread')


@pytest.fixture
def base(tinydavisconfig, davisdir, tmp_path):
    return ['train', '--cfg', tinydavisconfig, '--work-dir', str(tmp_path / 'work'), '--train-videos', str(davisdir),
            '--device', 'cpu']


def test_shipped_configs_resolve_by_name():
    names = availablefinetuneconfigs()
    assert {'samv21_hiera_tiny_coco', 'samv21_hiera_tiny_davis', 'samv21_hiera_bplus_davis',
            'samv2_hiera_tiny_coco'} <= set(names)
    assert not any(name.startswith('base_') for name in names)


@pytest.mark.parametrize('change, words', [
    (dict(cfg=None), ['--cfg is required']),
    (dict(cfg='samv21_hiera_nope'), ['--cfg', 'samv21_hiera_tiny_davis']),
    (dict(work_dir=None), ['--work-dir is required']),
    (dict(max_iters='0'), ['--max-iters must be a positive int', "'0'"]),
    (dict(max_iters='ten'), ['--max-iters', "'ten'"]),
    (dict(lr='-1e-4'), ['--lr must be a positive float']),
    (dict(batch_size='1.5'), ['--batch-size must be a positive int']),
    (dict(ckpt='missing.pt'), ['--ckpt: no such file', 'missing.pt']),
    (dict(device='tpu'), ['--device']),
    (dict(train_videos='nowhere'), ['--train-videos: no such file or folder', 'nowhere']),
    (dict(train_ann='ann.json'), ['--train-ann does not fit', 'DAVISVideoDataset']),
    (dict(cfg_options=['TRAIN_CFG.max_iters']), ['--cfg-options items must be KEY=VALUE']),
    (dict(cfg_options=['max_iters=3']), ['--cfg-options keys start with']),
    (dict(cfg_options=['TRAIN_CFG.freeze=[image_encoderr]']), ['freeze: unknown module names', 'image_encoderr',
                                                               'sam_mask_decoder']),
    (dict(resume=True), ['--resume: no checkpoint to resume']),
])
def test_bad_flags(capsys, base, change, words):
    argv = list(base)
    for key, value in change.items():
        flag = '--' + key.replace('_', '-')
        if flag in argv:
            index = argv.index(flag)
            del argv[index:index + 2]
        if value is True:
            argv.append(flag)
        elif isinstance(value, list):
            argv += [flag, *value]
        elif value is not None:
            argv.append(f'{flag}={value}')  # one token: argparse would read '-1e-4' as a flag
    clifails(capsys, argv, *words)


def test_work_dir_is_a_file_or_holds_another_run(capsys, base, tmp_path):
    work = tmp_path / 'work'
    work.write_text('x')
    clifails(capsys, base, '--work-dir must be a folder')
    work.unlink()
    work.mkdir()
    (work / 'iter_2.pth').write_bytes(b'')
    (work / 'last_checkpoint').write_text(str(work / 'iter_2.pth'))
    clifails(capsys, base, 'earlier run', '--resume')


def _brokendavis(davisdir, tmp_path):
    copy = tmp_path / 'davis'
    shutil.copytree(davisdir, copy)
    video = sorted(os.listdir(copy / 'Annotations'))[0]
    return copy, copy / 'Annotations' / video


def test_bad_video_data_names_the_file(capsys, base, davisdir, tmp_path):
    copy, annotations = _brokendavis(davisdir, tmp_path)
    mask = sorted(annotations.iterdir())[1]
    Image.fromarray(np.zeros((10, 10), np.uint8)).save(mask)  # not the size of its frame
    argv = base[:base.index('--train-videos')] + ['--train-videos', str(copy)] + base[base.index('--device'):]
    clifails(capsys, argv, mask.name)
    assert not os.path.exists(tmp_path / 'work' / 'last_checkpoint')


def test_bad_image_data_names_the_file(capsys, cocodata, tmp_path, tinydavisconfig):
    ann_file, img_dir = cocodata
    with open(ann_file, encoding='utf-8') as file:
        coco = json.load(file)
    coco['images'][0]['file_name'] = 'missing.jpg'
    broken = tmp_path / 'broken.json'
    broken.write_text(json.dumps(coco))
    argv = ['train', '--cfg', 'samv21_hiera_tiny_coco', '--work-dir', str(tmp_path / 'work'), '--train-ann',
            str(broken), '--train-images', str(img_dir), '--device', 'cpu']
    clifails(capsys, argv, 'missing.jpg')
