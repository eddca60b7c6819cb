"""Command-line inference (ssseg/inference, scripts/inference.sh, scripts/dist_inference.sh) with a tiny random model.

Most runs call ``main(argv)`` in this process; a few go through ``python -m ssseg.inference``, the ``ssseg``
console script and the shell scripts (torchrun with two CPU ranks for the distributed one).
"""
import json
import os
import subprocess
import sys
import zipfile

import cv2
import numpy as np
import pytest
import torch
from pycocotools.coco import COCO

from ssseg.inference import main
from ssseg.modules.utils.configs import loadsegmentorcfg

from helpers import syntheticimage, writetinyckpt

pytestmark = pytest.mark.usefixtures('onethread')

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
H, W = 96, 128
FRAMES = 5
# random weights score low: keep every candidate so that every image has masks
AMG_FLAGS = ['--points-per-side', '4', '--pred-iou-thresh', '0', '--stability-score-thresh', '0']


@pytest.fixture(scope='module')
def tiny(tmp_path_factory):
    """{'cfg': a config .py file without ckptpath, 'ckpt': its random-weight checkpoint, 'args': the common flags}."""
    folder = tmp_path_factory.mktemp('tinymodel')
    cfg = writetinyckpt(folder / 'tiny.pth')
    ckpt = cfg.pop('ckptpath')
    cfgfile = folder / 'tiny_samv21.py'
    cfgfile.write_text('SEGMENTOR_CFG = ' + repr(cfg) + '\n')
    assert loadsegmentorcfg(os.fspath(cfgfile)) == cfg
    return {'cfg': os.fspath(cfgfile), 'ckpt': ckpt,
            'args': ['--cfg', os.fspath(cfgfile), '--ckpt', ckpt, '--device', 'cpu']}


def _writeimage(path, seed):
    assert cv2.imwrite(os.fspath(path), syntheticimage(H, W, seed=seed)[..., ::-1])


@pytest.fixture(scope='module')
def photos(tmp_path_factory):
    """A folder of three images (two JPEG, one PNG) of H x W pixels, read-only for the tests."""
    folder = tmp_path_factory.mktemp('photos')
    for seed, name in enumerate(['a.jpg', 'b.png', 'c.jpg']):
        _writeimage(folder / name, seed)
    return folder


def _framesof(seed=0):
    """FRAMES RGB frames of a scene sliding to the right."""
    base = syntheticimage(H, W, seed=seed)
    return [np.roll(base, 3 * i, axis=1) for i in range(FRAMES)]


@pytest.fixture(scope='module')
def videos(tmp_path_factory):
    """{'jpegs': a folder 00000.jpg ..., 'mp4': the same frames as an mp4v file}."""
    root = tmp_path_factory.mktemp('videos')
    jpegs = root / 'frames'
    jpegs.mkdir()
    mp4 = os.fspath(root / 'clip.mp4')
    writer = cv2.VideoWriter(mp4, cv2.VideoWriter_fourcc(*'mp4v'), 10, (W, H))
    assert writer.isOpened()
    for i, frame in enumerate(_framesof()):
        bgr = np.ascontiguousarray(frame[..., ::-1])
        assert cv2.imwrite(os.fspath(jpegs / f'{i:05d}.jpg'), bgr)
        writer.write(bgr)
    writer.release()
    assert _countframes(mp4) == FRAMES
    return {'jpegs': os.fspath(jpegs), 'mp4': mp4}


def _countframes(path):
    capture = cv2.VideoCapture(os.fspath(path))
    assert capture.isOpened(), path
    count = 0
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        assert frame.shape == (H, W, 3)
        count += 1
    capture.release()
    return count


def _run(capsys, *argv):
    """(exit status, stderr lines) of ``main(argv)`` in this process."""
    capsys.readouterr()
    status = main([os.fspath(a) for a in argv])
    return status, capsys.readouterr().err.splitlines()


def _stamps(folder, skip=('annotations.json', 'notes.txt')):
    """{file name: (inode, mtime_ns)} of our outputs: a file written again (atomically, by rename) gets a new inode."""
    return {n: (os.stat(os.path.join(folder, n)).st_ino, os.stat(os.path.join(folder, n)).st_mtime_ns)
            for n in sorted(os.listdir(folder)) if n not in skip}


def _readmask(path):
    mask = cv2.imread(os.fspath(path), cv2.IMREAD_UNCHANGED)
    assert mask is not None, path
    assert mask.shape == (H, W) and mask.dtype == np.uint8
    assert set(np.unique(mask)) <= {0, 255}
    return mask


def _subprocess(command, cwd=REPO):
    """Run ``command`` outside any torchrun job, with this interpreter as the scripts' $PYTHON."""
    env = {k: v for k, v in os.environ.items() if k not in ('RANK', 'WORLD_SIZE', 'LOCAL_RANK', 'MASTER_PORT')}
    env.update({'PYTHON': sys.executable, 'OMP_NUM_THREADS': '1'})
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


# ---------------------------------------------------------------------------------------------- image
def test_image_one_point(tiny, photos, tmp_path, capsys):
    status, err = _run(capsys, 'image', *tiny['args'], '--image', photos / 'a.jpg', '--point', '30,40',
                       '--outdir', tmp_path)
    assert status == 0, err
    assert sorted(os.listdir(tmp_path)) == ['a.json', 'a_mask0.png', 'a_overlay.png']
    _readmask(tmp_path / 'a_mask0.png')
    overlay = cv2.imread(os.fspath(tmp_path / 'a_overlay.png'))
    assert overlay.shape == (H, W, 3)
    result = json.loads((tmp_path / 'a.json').read_text())
    assert (result['image'], result['height'], result['width']) == ('a.jpg', H, W)
    assert result['prompts'] == {'points': [[30.0, 40.0]], 'labels': [1], 'boxes': []}
    assert [m['file'] for m in result['masks']] == ['a_mask0.png']
    assert np.isfinite(result['masks'][0]['score'])
    assert result['overlay'] == 'a_overlay.png'


def test_image_multimask_points_and_box(tiny, photos, tmp_path, capsys):
    status, err = _run(capsys, 'image', *tiny['args'], '--image', photos / 'b.png', '--point', '50,50',
                       '--point', '10,10,0', '--box', '20,20,90,80', '--multimask', '--outdir', tmp_path)
    assert status == 0, err
    result = json.loads((tmp_path / 'b.json').read_text())
    assert result['prompts'] == {'points': [[50.0, 50.0], [10.0, 10.0]], 'labels': [1, 0],
                                 'boxes': [[20.0, 20.0, 90.0, 80.0]]}
    assert [m['file'] for m in result['masks']] == [f'b_mask{k}.png' for k in range(3)]
    assert all(np.isfinite(m['score']) for m in result['masks'])
    for k in range(3):
        _readmask(tmp_path / f'b_mask{k}.png')
    assert os.path.isfile(tmp_path / 'b_overlay.png')


@pytest.mark.parametrize('multimask', [False, True])
def test_image_several_boxes(multimask, tiny, photos, tmp_path, capsys):
    status, err = _run(capsys, 'image', *tiny['args'], '--image', photos / 'c.jpg', '--box', '5,5,60,50',
                       '--box', '70,20,120,90', '--box', '10,60,40,95', *(['--multimask'] * multimask),
                       '--outdir', tmp_path)
    assert status == 0, err
    expected = [(f'c_obj{n}_mask{k}.png', n, k) for n in range(3) for k in range(3 if multimask else 1)]
    assert sorted(os.listdir(tmp_path)) == sorted(['c.json', 'c_overlay.png'] + [e[0] for e in expected])
    result = json.loads((tmp_path / 'c.json').read_text())
    assert [(m['file'], m['object'], m['index']) for m in result['masks']] == expected
    assert result['prompts']['boxes'] == [[5.0, 5.0, 60.0, 50.0], [70.0, 20.0, 120.0, 90.0], [10.0, 60.0, 40.0, 95.0]]
    for name, _, _ in expected:
        _readmask(tmp_path / name)


def test_image_folder_with_prompts_files(tiny, photos, tmp_path, capsys):
    shared = tmp_path / 'shared.json'
    shared.write_text(json.dumps({'points': [[30, 40, 1], [100, 80, 0]]}))
    out = tmp_path / 'shared'
    status, err = _run(capsys, 'image', *tiny['args'], '--image', photos, '--prompts', shared, '--outdir', out)
    assert status == 0, err
    for stem in 'abc':
        result = json.loads((out / f'{stem}.json').read_text())
        assert result['prompts'] == {'points': [[30.0, 40.0], [100.0, 80.0]], 'labels': [1, 0], 'boxes': []}
        _readmask(out / f'{stem}_mask0.png')
    assert not os.path.exists(out / 'annotations.json')  # merged COCO files are for amg

    # the same prompts again: nothing to do
    stamps = _stamps(out)
    status, err = _run(capsys, 'image', *tiny['args'], '--image', photos, '--prompts', shared, '--outdir', out)
    assert status == 0 and any('skipping 3 finished image(s)' in line for line in err), err
    assert _stamps(out) == stamps

    # one entry per image; an image whose prompts changed is redone, the others are skipped
    perimage = tmp_path / 'perimage.json'
    perimage.write_text(json.dumps({'a.jpg': {'points': [[30, 40, 1], [100, 80, 0]]},
                                    'b.png': {'boxes': [[10, 10, 50, 60], [60, 20, 120, 90]]},
                                    'c.jpg': {'points': [[64, 48]], 'boxes': [[40, 30, 90, 70]]}}))
    status, err = _run(capsys, 'image', *tiny['args'], '--image', photos, '--prompts', perimage, '--outdir', out)
    assert status == 0 and any('skipping 1 finished image(s)' in line for line in err), err
    after = _stamps(out)
    assert after['a.json'] == stamps['a.json'] and after['a_mask0.png'] == stamps['a_mask0.png']
    assert after['c.json'][0] != stamps['c.json'][0]
    b = json.loads((out / 'b.json').read_text())
    assert b['prompts']['boxes'] == [[10.0, 10.0, 50.0, 60.0], [60.0, 20.0, 120.0, 90.0]]
    assert [m['file'] for m in b['masks']] == ['b_obj0_mask0.png', 'b_obj1_mask0.png']
    c = json.loads((out / 'c.json').read_text())
    assert c['prompts'] == {'points': [[64.0, 48.0]], 'labels': [1], 'boxes': [[40.0, 30.0, 90.0, 70.0]]}


# ---------------------------------------------------------------------------------------------- amg
def _checkamg(out, names):
    """Per-image outputs of an amg run over ``names``; returns the annotation count per image."""
    counts = []
    for name in names:
        stem = os.path.splitext(name)[0]
        coco = COCO(os.fspath(out / f'{stem}.json'))
        assert list(coco.imgs.values()) == [{'id': 1, 'file_name': name, 'height': H, 'width': W}]
        annotations = coco.loadAnns(coco.getAnnIds())
        assert annotations, f'no masks for {name}: the flags should keep every candidate'
        labels = cv2.imread(os.fspath(out / f'{stem}_labels.png'), cv2.IMREAD_UNCHANGED)
        assert labels.dtype == np.uint16 and labels.shape == (H, W)
        assert labels.max() >= 1 and set(np.unique(labels)) <= set(range(len(annotations) + 1))
        assert cv2.imread(os.fspath(out / f'{stem}_overlay.png')).shape == (H, W, 3)
        counts.append(len(annotations))
    return counts


def _checkmerged(path, names, counts):
    merged = json.loads(open(path, encoding='utf-8').read())
    assert [(i['id'], i['file_name']) for i in merged['images']] == list(enumerate(names, start=1))
    ids = [a['id'] for a in merged['annotations']]
    assert len(ids) == sum(counts) and len(set(ids)) == len(ids)
    per_image = [sum(a['image_id'] == i for a in merged['annotations']) for i in range(1, len(names) + 1)]
    assert per_image == counts
    coco = COCO(os.fspath(path))
    assert sorted(coco.imgs) == list(range(1, len(names) + 1))


def test_amg_folder_resume_overwrite_and_changed_options(tiny, photos, tmp_path, capsys):
    names = ['a.jpg', 'b.png', 'c.jpg']
    (tmp_path / 'notes.txt').write_text('the user\'s own file')  # an existing folder is never emptied
    status, err = _run(capsys, 'amg', *tiny['args'], '--image', photos, *AMG_FLAGS, '--outdir', tmp_path)
    assert status == 0, err
    counts = _checkamg(tmp_path, names)
    _checkmerged(tmp_path / 'annotations.json', names, counts)
    settings = json.loads((tmp_path / 'a.json').read_text())['info']['settings']
    assert settings['generator'] == {'points_per_side': 4, 'pred_iou_thresh': 0.0, 'stability_score_thresh': 0.0}

    stamps = _stamps(tmp_path)
    assert len(stamps) == 9
    status, err = _run(capsys, 'amg', *tiny['args'], '--image', photos, *AMG_FLAGS, '--outdir', tmp_path)
    assert status == 0 and any('skipping 3 finished image(s)' in line for line in err), err
    assert _stamps(tmp_path) == stamps
    _checkmerged(tmp_path / 'annotations.json', names, counts)

    status, err = _run(capsys, 'amg', *tiny['args'], '--image', photos, *AMG_FLAGS, '--overwrite', '--outdir', tmp_path)
    assert status == 0 and not any('skipping' in line for line in err), err
    redone = _stamps(tmp_path)
    assert all(redone[name][0] != stamps[name][0] for name in stamps)
    assert _checkamg(tmp_path, names) == counts  # same settings, same model: same masks

    flags = ['--points-per-side', '3'] + AMG_FLAGS[2:]
    status, err = _run(capsys, 'amg', *tiny['args'], '--image', photos, *flags, '--outdir', tmp_path)
    assert status == 0 and not any('skipping' in line for line in err), err
    assert all(_stamps(tmp_path)[name][0] != redone[name][0] for name in stamps)
    assert json.loads((tmp_path / 'b.json').read_text())['info']['settings']['generator']['points_per_side'] == 3
    _checkmerged(tmp_path / 'annotations.json', names, _checkamg(tmp_path, names))
    assert (tmp_path / 'notes.txt').read_text() == 'the user\'s own file'


def test_amg_single_image_with_the_configs_checkpoint(tiny, photos, tmp_path, capsys):
    cfg = loadsegmentorcfg(tiny['cfg'])
    cfg['ckptpath'] = tiny['ckpt']
    cfgfile = tmp_path / 'withckpt.py'
    cfgfile.write_text('SEGMENTOR_CFG = ' + repr(cfg) + '\n')
    out = tmp_path / 'out'
    status, err = _run(capsys, 'amg', '--cfg', cfgfile, '--device', 'cpu', '--image', photos / 'b.png', *AMG_FLAGS,
                       '--outdir', out)
    assert status == 0, err
    assert sorted(os.listdir(out)) == ['b.json', 'b_labels.png', 'b_overlay.png']  # no merged file for one image
    _checkamg(out, ['b.png'])
    assert json.loads((out / 'b.json').read_text())['info']['settings']['ckpt'] == tiny['ckpt']


@pytest.mark.parametrize('command', ['image', 'amg'])
def test_folder_with_an_unreadable_image_finishes_the_others(command, tiny, tmp_path, capsys):
    folder = tmp_path / 'in'
    folder.mkdir()
    _writeimage(folder / 'a.jpg', 0)
    (folder / 'b.jpg').write_text('not a JPEG')
    _writeimage(folder / 'c.png', 2)
    out = tmp_path / 'out'
    flags = ['--point', '30,40'] if command == 'image' else AMG_FLAGS
    status, err = _run(capsys, command, *tiny['args'], '--image', folder, *flags, '--outdir', out)
    assert status == 1, err
    assert any(line.startswith(f'ssseg {command}: failed on') and 'b.jpg' in line for line in err), err
    assert os.path.isfile(out / 'a.json') and os.path.isfile(out / 'c.json') and not os.path.exists(out / 'b.json')
    assert not os.path.exists(out / 'annotations.json')

    # once the bad file is gone, a re-run only merges
    os.remove(folder / 'b.jpg')
    stamps = _stamps(out)
    status, err = _run(capsys, command, *tiny['args'], '--image', folder, *flags, '--outdir', out)
    assert status == 0 and any('skipping 2 finished image(s)' in line for line in err), err
    assert _stamps(out) == stamps
    if command == 'amg':
        _checkmerged(out / 'annotations.json', ['a.jpg', 'c.png'], _checkamg(out, ['a.jpg', 'c.png']))


# ---------------------------------------------------------------------------------------------- video
def _checkvideo(out, obj_ids, indexed=False):
    if indexed:
        assert sorted(os.listdir(out / 'indexed')) == [f'{i:05d}.png' for i in range(FRAMES)]
        for i in range(FRAMES):
            labels = cv2.imread(os.fspath(out / 'indexed' / f'{i:05d}.png'), cv2.IMREAD_UNCHANGED)
            assert labels.shape == (H, W) and labels.dtype == np.uint8
            assert set(np.unique(labels)) <= {0, *obj_ids}
        assert not os.path.exists(out / 'masks')
    else:
        assert sorted(os.listdir(out / 'masks')) == sorted(str(i) for i in obj_ids)
        for obj_id in obj_ids:
            assert sorted(os.listdir(out / 'masks' / str(obj_id))) == [f'{i:05d}.png' for i in range(FRAMES)]
            for i in range(FRAMES):
                _readmask(out / 'masks' / str(obj_id) / f'{i:05d}.png')
    assert _countframes(out / 'overlay.mp4') == FRAMES
    capture = cv2.VideoCapture(os.fspath(out / 'overlay.mp4'))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == FRAMES
    capture.release()
    summary = json.loads((out / 'video.json').read_text())
    assert summary['objects'] == sorted(obj_ids) and summary['num_frames'] == FRAMES
    assert summary['frames_written'] == [0, FRAMES - 1]
    assert not [n for n in os.listdir(out) if n.startswith('.')]  # no temporary files left behind
    return summary


def test_video_jpeg_folder_two_objects(tiny, videos, tmp_path, capsys):
    status, err = _run(capsys, 'video', *tiny['args'], '--video', videos['jpegs'], '--frame', '0', '--obj', '1',
                       '--point', '30,40', '--point', '5,5,0', '--obj', '2', '--box', '60,20,110,80',
                       '--outdir', tmp_path)
    assert status == 0, err
    summary = _checkvideo(tmp_path, [1, 2])
    assert summary['prompts'] == [
        {'frame': 0, 'obj': 1, 'points': [[30.0, 40.0], [5.0, 5.0]], 'labels': [1, 0], 'box': None},
        {'frame': 0, 'obj': 2, 'points': [], 'labels': [], 'box': [60.0, 20.0, 110.0, 80.0]}]


def test_video_mp4_indexed(tiny, videos, tmp_path, capsys):
    status, err = _run(capsys, 'video', *tiny['args'], '--video', videos['mp4'], '--obj', '3', '--point', '40,40',
                       '--obj', '7', '--box', '70,10,120,60', '--indexed', '--outdir', tmp_path)
    assert status == 0, err
    _checkvideo(tmp_path, [3, 7], indexed=True)


def test_video_prompts_on_a_later_frame_track_backwards(tiny, videos, tmp_path, capsys):
    # --frame may also come between an --obj and its prompts
    status, err = _run(capsys, 'video', *tiny['args'], '--video', videos['jpegs'], '--obj', '1', '--frame', '3',
                       '--point', '64,48', '--outdir', tmp_path)
    assert status == 0, err
    summary = _checkvideo(tmp_path, [1])
    assert [p['frame'] for p in summary['prompts']] == [3]


def test_video_prompts_file(tiny, videos, tmp_path, capsys):
    prompts = tmp_path / 'prompts.json'
    prompts.write_text(json.dumps([{'frame': 1, 'obj': 4, 'points': [[30, 40, 1], [90, 70, 0]]},
                                   {'obj': 5, 'box': [60, 20, 110, 80]},
                                   {'frame': 2, 'obj': 5, 'points': [[80, 50, 1]]}]))
    out = tmp_path / 'out'
    status, err = _run(capsys, 'video', *tiny['args'], '--video', videos['mp4'], '--prompts', prompts, '--outdir', out)
    assert status == 0, err
    summary = _checkvideo(out, [4, 5])
    assert [(p['frame'], p['obj']) for p in summary['prompts']] == [(0, 5), (1, 4), (2, 5)]
    assert summary['prompts'][1]['labels'] == [1, 0]


# ---------------------------------------------------------------------------------------------- errors
@pytest.fixture(scope='module')
def bad(tiny, photos, videos, tmp_path_factory):
    """Names for the error cases' command lines: {common}, {photos}, {jpegs}, {mp4}, {tmp} and bad inputs in {tmp}."""
    tmp = tmp_path_factory.mktemp('bad')
    (tmp / 'text.jpg').write_text('hello')
    (tmp / 'empty').mkdir()
    (tmp / 'empty' / 'notes.txt').write_text('no images here')
    (tmp / 'named').mkdir()
    for seed, name in enumerate(['first.jpg', 'second.jpg']):
        _writeimage(tmp / 'named' / name, seed)
    (tmp / 'bad.json').write_text('{"points": [[1, 2, 1]')
    (tmp / 'oneentry.json').write_text(json.dumps({'a.jpg': {'points': [[1, 1]]}}))
    (tmp / 'notalist.json').write_text(json.dumps({'obj': 1, 'points': [[1, 1]]}))
    (tmp / 'afile').write_text('')
    names = {'common': ' '.join(tiny['args']), 'cfg': tiny['cfg'], 'ckpt': tiny['ckpt'], 'photos': os.fspath(photos),
             'jpegs': videos['jpegs'], 'mp4': videos['mp4'], 'tmp': os.fspath(tmp)}
    assert not any(' ' in value for key, value in names.items() if key != 'common')
    return names


# (id, command line after the command, words the error line must hold); --outdir is added when missing
ERROR_CASES = {
    'image': [
        ('missing image', '{common} --image {tmp}/nope.jpg --point 1,1', ['--image', 'nope.jpg']),
        ('empty folder', '{common} --image {tmp}/empty --point 1,1', ['--image', 'empty']),
        ('unreadable image', '{common} --image {tmp}/text.jpg --point 1,1', ['--image', 'text.jpg']),
        ('bad point', '{common} --image {photos}/a.jpg --point 1;2', ['--point', "'1;2'"]),
        ('label 2', '{common} --image {photos}/a.jpg --point 1,2,2', ['--point', 'LABEL', "'1,2,2'"]),
        ('box x2 < x1', '{common} --image {photos}/a.jpg --box 50,10,20,40', ['--box', 'X2 > X1', "'50,10,20,40'"]),
        ('points with boxes', '{common} --image {photos}/a.jpg --point 5,5 --box 1,1,9,9 --box 2,2,8,8',
         ['--point', '--box', 'at most one box']),
        ('no prompts', '{common} --image {photos}/a.jpg', ['--point', '--box']),
        ('flags and prompts file', '{common} --image {photos}/a.jpg --point 1,1 --prompts {tmp}/oneentry.json',
         ['--prompts']),
        ('bad prompts json', '{common} --image {photos}/a.jpg --prompts {tmp}/bad.json',
         ['--prompts', 'bad.json', 'not valid JSON']),
        ('prompts entry missing', '{common} --image {photos} --prompts {tmp}/oneentry.json', ['--prompts', "'b.png'"]),
        ('outdir is a file', '{common} --image {photos}/a.jpg --point 1,1 --outdir {tmp}/afile', ['--outdir', 'afile']),
    ],
    'amg': [
        ('unknown cfg', '--cfg samv21_hiera_nope --ckpt {ckpt} --image {photos}', ['--cfg', 'samv21_hiera_nope']),
        ('missing ckpt', '--cfg {cfg} --ckpt {tmp}/none.pth --image {photos}', ['--ckpt', 'none.pth']),
        ('cfg without ckpt', '--cfg {cfg} --image {photos}', ['--ckpt']),
        ('cuda without cuda', '--cfg {cfg} --ckpt {ckpt} --device cuda --image {photos}', ['--device', 'CUDA']),
        ('bad device', '--cfg {cfg} --ckpt {ckpt} --device gpu0 --image {photos}', ['--device', 'gpu0']),
        ('amg empty folder', '{common} --image {tmp}/empty', ['--image', 'empty']),
    ],
    'video': [
        ('missing video', '{common} --video {tmp}/nope.mp4 --obj 1 --point 1,1', ['--video', 'nope.mp4']),
        ('point before obj', '{common} --video {jpegs} --point 1,1 --obj 1', ['--point', '--obj']),
        ('frame out of range', '{common} --video {jpegs} --frame %d --obj 1 --point 1,1' % FRAMES,
         ['--frame', str(FRAMES), 'out of range']),
        ('negative frame', '{common} --video {jpegs} --frame -1 --obj 1 --point 1,1', ['--frame', '-1']),
        ('frame names', '{common} --video {tmp}/named --obj 1 --point 1,1', ['--video', 'first.jpg']),
        ('video bad prompts json', '{common} --video {mp4} --prompts {tmp}/bad.json', ['--prompts', 'not valid JSON']),
        ('video prompts not a list', '{common} --video {mp4} --prompts {tmp}/notalist.json', ['--prompts', 'list']),
        ('video no prompts', '{common} --video {mp4}', ['--point', '--box']),
        ('object without prompts', '{common} --video {mp4} --obj 1', ['--obj 1', '--point', '--box']),
        ('object without prompts before another', '{common} --video {mp4} --obj 1 --frame 2 --obj 2 --point 1,1',
         ['--obj 1', '--point', '--box']),
        ('video two boxes', '{common} --video {mp4} --obj 1 --box 1,1,9,9 --box 2,2,8,8', ['--obj', 'two boxes']),
        ('indexed object 0', '{common} --video {mp4} --obj 0 --point 1,1 --indexed', ['--indexed', '1..255', '0']),
        ('indexed object 256', '{common} --video {mp4} --obj 2 --point 1,1 --obj 256 --point 2,2 --indexed',
         ['--indexed', '256']),
        ('video bad box', '{common} --video {mp4} --obj 1 --box 1,1,9', ['--box', "'1,1,9'"]),
    ],
}


@pytest.mark.parametrize('command,line,words', [(command, line, words) for command, cases in ERROR_CASES.items()
                                                for _, line, words in cases],
                         ids=[name for cases in ERROR_CASES.values() for name, _, _ in cases])
def test_bad_input_exits_with_one_error_line(command, line, words, bad, tmp_path, capsys):
    if '--device cuda' in line and torch.cuda.is_available():
        pytest.skip('this machine has CUDA')
    argv = [command] + line.format(**bad).split()
    if '--outdir' not in argv:
        argv += ['--outdir', os.fspath(tmp_path / 'out')]
    status, err = _run(capsys, *argv)
    assert status == 2, err
    assert len(err) == 1, err
    assert err[0].startswith(f'ssseg {command}: error: '), err
    for word in words:
        assert word in err[0], err
    # bad input is found before any result is written (the folder itself may have been created)
    assert not os.path.exists(tmp_path / 'out') or os.listdir(tmp_path / 'out') == []


def test_argparse_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(['image', '--image', 'x.jpg', '--outdir', 'out'])  # --cfg missing
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert 'ssseg image: error:' in err and '--cfg' in err


# ---------------------------------------------------------------------------------------------- processes
def test_python_m_and_console_script(tiny, photos, tmp_path):
    result = _subprocess([sys.executable, '-m', 'ssseg.inference', 'image', *tiny['args'], '--image',
                          os.fspath(photos / 'a.jpg'), '--point', '30,40', '--outdir', os.fspath(tmp_path / 'm')])
    assert result.returncode == 0, result.stderr
    assert sorted(os.listdir(tmp_path / 'm')) == ['a.json', 'a_mask0.png', 'a_overlay.png']

    script = os.path.join(os.path.dirname(sys.executable), 'ssseg')
    assert os.path.isfile(script), 'the ssseg console script is not installed (pip install -e .)'
    result = _subprocess([script, 'video', *tiny['args'], '--video', os.fspath(tmp_path / 'nope.mp4'), '--obj', '1',
                          '--point', '1,1', '--outdir', os.fspath(tmp_path / 'v')], cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    [line] = result.stderr.splitlines()
    assert line.startswith('ssseg video: error: --video') and 'nope.mp4' in line


def test_inference_script(tiny, videos, tmp_path):
    result = _subprocess(['bash', 'scripts/inference.sh', 'video', *tiny['args'], '--video', videos['jpegs'],
                          '--obj', '1', '--point', '30,40', '--outdir', os.fspath(tmp_path)])
    assert result.returncode == 0, result.stderr
    _checkvideo(tmp_path, [1])


def test_dist_inference_two_cpu_ranks(tiny, tmp_path):
    folder = tmp_path / 'in'
    folder.mkdir()
    names = ['p0.jpg', 'p1.png', 'p2.jpg', 'p3.jpg']
    for seed, name in enumerate(names):
        _writeimage(folder / name, seed)
    out = tmp_path / 'out'
    command = ['bash', 'scripts/dist_inference.sh', '2', 'amg', *tiny['args'], '--image', os.fspath(folder),
               *AMG_FLAGS, '--outdir', os.fspath(out)]
    result = _subprocess(command)
    assert result.returncode == 0, result.stderr
    assert f'wrote {os.fspath(out / "annotations.json")} (4 images)' in result.stderr
    counts = _checkamg(out, names)
    _checkmerged(out / 'annotations.json', names, counts)
    stamps = _stamps(out)
    assert len(stamps) == 12

    result = _subprocess(command)
    assert result.returncode == 0, result.stderr
    assert result.stderr.count('skipping 2 finished image(s)') == 2, result.stderr  # each rank skipped its share
    assert _stamps(out) == stamps
    _checkmerged(out / 'annotations.json', names, counts)


@pytest.mark.parametrize('args,message', [(['0', 'amg', '--outdir', 'x'], 'NPROC must be a positive integer'),
                                          (['two', 'amg', '--outdir', 'x'], 'NPROC must be a positive integer'),
                                          (['-1', 'amg', '--outdir', 'x'], 'NPROC must be a positive integer'),
                                          (['2'], 'usage:')])
def test_dist_inference_usage_errors(args, message):
    result = _subprocess(['bash', 'scripts/dist_inference.sh', *args])
    assert result.returncode == 2
    assert len(result.stderr.splitlines()) == 1 and message in result.stderr, result.stderr


# ---------------------------------------------------------------------------------------------- more errors
@pytest.fixture(scope='module')
def worse(bad, tiny, tmp_path_factory):
    """``bad`` plus broken config and checkpoint files in {x}."""
    x = tmp_path_factory.mktemp('worse')
    (x / 'syntax.py').write_text('SEGMENTOR_CFG = dict(type=\n')
    (x / 'raising.py').write_text('raise RuntimeError("config boom")\n')
    (x / 'nocfg.py').write_text('OTHER = 1\n')
    (x / 'notadict.py').write_text('SEGMENTOR_CFG = [1, 2]\n')
    data = open(tiny['ckpt'], 'rb').read()
    (x / 'truncated.pth').write_bytes(data[: len(data) // 2])
    (x / 'text.pth').write_text('not a checkpoint')
    with zipfile.ZipFile(x / 'archive.pth', 'w') as archive:
        archive.writestr('readme.txt', 'a zip archive, not a torch file')
    state = torch.load(tiny['ckpt'], weights_only=True)['model']
    state['no_mem_embed'] = torch.zeros(1, 1, 64)  # as if made for another model width
    torch.save({'model': state}, x / 'othersize.pth')
    (x / 'hugeobj.json').write_text('[{"obj": 1%s, "points": [[1, 1, 1]]}]' % ('0' * 400))
    (x / 'hugepoint.json').write_text('{"points": [[1%s, 1, 1]]}' % ('0' * 400))
    return {**bad, 'x': os.fspath(x)}


MORE_ERROR_CASES = {
    'image': [
        ('cfg syntax error', '--cfg {x}/syntax.py --ckpt {ckpt} --device cpu --image {photos}/a.jpg --point 1,1',
         ['--cfg', 'syntax.py', 'SyntaxError']),
        ('cfg raises', '--cfg {x}/raising.py --ckpt {ckpt} --device cpu --image {photos}/a.jpg --point 1,1',
         ['--cfg', 'raising.py', 'RuntimeError: config boom']),
        ('cfg without SEGMENTOR_CFG', '--cfg {x}/nocfg.py --ckpt {ckpt} --device cpu --image {photos}/a.jpg '
         '--point 1,1', ['--cfg', 'nocfg.py', 'SEGMENTOR_CFG']),
        ('cfg SEGMENTOR_CFG not a dict', '--cfg {x}/notadict.py --ckpt {ckpt} --device cpu --image {photos}/a.jpg '
         '--point 1,1', ['--cfg', 'notadict.py', 'must be a dict', 'list']),
        ('cfg not a py file', '--cfg {tmp}/text.jpg --ckpt {ckpt} --device cpu --image {photos}/a.jpg --point 1,1',
         ['--cfg', 'text.jpg', '.py']),
        ('truncated ckpt', '--cfg {cfg} --ckpt {x}/truncated.pth --device cpu --image {photos}/a.jpg --point 1,1',
         ['--ckpt', 'truncated.pth', 'not a readable PyTorch checkpoint']),
        ('text ckpt', '--cfg {cfg} --ckpt {x}/text.pth --device cpu --image {photos}/a.jpg --point 1,1',
         ['--ckpt', 'text.pth', 'not a readable PyTorch checkpoint']),
        ('zip ckpt', '--cfg {cfg} --ckpt {x}/archive.pth --device cpu --image {photos}/a.jpg --point 1,1',
         ['--ckpt', 'archive.pth', 'not a readable PyTorch checkpoint']),
        ('ckpt of another size', '--cfg {cfg} --ckpt {x}/othersize.pth --device cpu --image {photos}/a.jpg --point 1,1',
         ['--ckpt', 'othersize.pth', 'does not fit', 'no_mem_embed (checkpoint (1, 1, 64), model (1, 1, 32))']),
        ('huge point in prompts file', '{common} --image {photos}/a.jpg --prompts {x}/hugepoint.json',
         ['--prompts', 'finite numbers']),
    ],
    'amg': [
        ('crop downscale 0', '{common} --image {photos}/a.jpg --crop-n-layers 1 --crop-n-points-downscale-factor 0',
         ['--crop-n-points-downscale-factor', '0']),
        ('pred iou nan', '{common} --image {photos}/a.jpg --pred-iou-thresh nan', ['--pred-iou-thresh', 'nan']),
        ('amg truncated ckpt', '--cfg {cfg} --ckpt {x}/truncated.pth --device cpu --image {photos}',
         ['--ckpt', 'truncated.pth']),
    ],
    'video': [
        ('frame 1e400', '{common} --video {jpegs} --frame 1e400 --obj 1 --point 1,1', ['--frame', '1e400']),
        ('obj 1e400', '{common} --video {jpegs} --obj 1e400 --point 1,1', ['--obj', '1e400']),
        ('obj too large', '{common} --video {jpegs} --obj 2147483648 --point 1,1',
         ['--obj', '2147483647', '2147483648']),
        ('huge obj in prompts file', '{common} --video {jpegs} --prompts {x}/hugeobj.json',
         ['--prompts', 'obj', '0..']),
        ('video cfg syntax error', '--cfg {x}/syntax.py --ckpt {ckpt} --device cpu --video {jpegs} --obj 1 --point 1,1',
         ['--cfg', 'syntax.py', 'SyntaxError']),
        ('video ckpt of another size', '--cfg {cfg} --ckpt {x}/othersize.pth --device cpu --video {jpegs} --obj 1 '
         '--point 1,1', ['--ckpt', 'othersize.pth', 'no_mem_embed']),
    ],
}


def _onelineerror(capsys, command, argv, words, out):
    status, err = _run(capsys, command, *argv, '--outdir', out)
    assert status == 2, err
    assert len(err) == 1, err
    assert err[0].startswith(f'ssseg {command}: error: '), err
    for word in words:
        assert word in err[0], err
    assert not os.path.exists(out) or os.listdir(out) == []
    return err[0]


@pytest.mark.parametrize('command,line,words', [(command, line, words) for command, cases in MORE_ERROR_CASES.items()
                                                for _, line, words in cases],
                         ids=[name for cases in MORE_ERROR_CASES.values() for name, _, _ in cases])
def test_more_bad_input_exits_with_one_error_line(command, line, words, worse, tmp_path, capsys):
    _onelineerror(capsys, command, line.format(**worse).split(), words, tmp_path / 'out')


def test_cfg_help_warns_that_configs_are_code(capsys):
    with pytest.raises(SystemExit):
        main(['image', '--help'])
    assert 'Configs are executable Python: load only configs you trust.' in ' '.join(capsys.readouterr().out.split())


def test_unreachable_ckpt_url_without_cache(tiny, photos, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv('TORCH_HOME', os.fspath(tmp_path / 'torchhome'))

    def offline(url, dst, *args, **kwargs):
        raise OSError('[Errno 101] Network is unreachable')
    monkeypatch.setattr(torch.hub, 'download_url_to_file', offline)
    url = 'https://example.invalid/sam2.1_hiera_tiny.pt'
    cached = os.path.join(os.fspath(tmp_path / 'torchhome'), 'hub', 'checkpoints', 'sam2.1_hiera_tiny.pt')
    for command, flags in (('image', ['--image', photos / 'a.jpg', '--point', '1,1']),
                           ('amg', ['--image', photos / 'a.jpg']),):
        line = _onelineerror(capsys, command, ['--cfg', tiny['cfg'], '--ckpt', url, '--device', 'cpu', *flags],
                             ['--ckpt', url, cached, 'Network is unreachable'], tmp_path / command)
        assert line.startswith(f'ssseg {command}: error: --ckpt: could not download the checkpoint {url}')


@pytest.mark.parametrize('device, available, count, words', [
    ('cuda', False, 0, ['--device', 'cuda', 'CUDA is not available']),
    ('cuda:1', False, 0, ['--device', 'cuda:1', 'CUDA is not available']),
    ('cuda:3', True, 2, ['--device', 'cuda:3', '2 CUDA device(s)', '[0, 1]']),
    ('mps', False, 0, ['--device', "'mps'"]),
])
def test_unusable_device(device, available, count, words, tiny, photos, videos, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: available)
    monkeypatch.setattr(torch.cuda, 'device_count', lambda: count)
    _onelineerror(capsys, 'image', ['--cfg', tiny['cfg'], '--ckpt', tiny['ckpt'], '--device', device, '--image',
                                    photos / 'a.jpg', '--point', '1,1'], words, tmp_path / 'image')
    _onelineerror(capsys, 'video', ['--cfg', tiny['cfg'], '--ckpt', tiny['ckpt'], '--device', device, '--video',
                                    videos['jpegs'], '--obj', '1', '--point', '1,1'], words, tmp_path / 'video')


def test_large_object_ids_get_colours_without_a_huge_palette():
    from ssseg.inference.videojob import _palette
    small = _palette([1, 2, 255])
    colours = _palette([1, 2, 255, 2 ** 31 - 1])
    assert all(np.array_equal(small[i], colours[i]) for i in small)  # the small ids keep their colours
    assert all(len(c) == 3 and 40 <= min(c) and max(c) < 256 for c in colours.values())
    assert np.array_equal(colours[2 ** 31 - 1], _palette([2 ** 31 - 1])[2 ** 31 - 1])


def test_outdir_without_write_permission(tiny, photos, tmp_path, monkeypatch, capsys):
    # the tests may run as root, for whom no folder is read-only: stand in for the permission check
    import ssseg.inference.cli as cli
    locked = os.fspath(tmp_path / 'locked')
    os.mkdir(locked)
    real = os.access
    monkeypatch.setattr(cli.os, 'access', lambda path, mode: False if os.fspath(path) == locked else real(path, mode))
    outdir = os.path.join(locked, 'new', 'out')
    status, err = _run(capsys, 'image', *tiny['args'], '--image', photos / 'a.jpg', '--point', '1,1',
                       '--outdir', outdir)
    assert status == 2 and len(err) == 1 and '--outdir' in err[0] and 'no permission' in err[0], err
    assert os.listdir(locked) == []
