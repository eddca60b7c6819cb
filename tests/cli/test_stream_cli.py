"""``ssseg video --stream`` with a tiny random model: the same masks as the offline run on a file, prompts applied
when their frame arrives (as the Python stream API applies them), --max-frames, unopenable sources, a dropped
live source, and Ctrl-C (in this process and on a real subprocess) leaving complete files behind.
"""
import filecmp
import json
import os
import signal
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest
import torch
from test_inference_cli import REPO, H, W, _countframes, _readmask, _run

from ssseg.modules.models.segmentors.samv2 import SAMV2VideoPredictor
from ssseg.modules.models.segmentors.samv2.video import VideoStream
from ssseg.modules.utils.configs import loadsegmentorcfg

from helpers import fakecaptures, syntheticimage, writetinyckpt

pytestmark = pytest.mark.usefixtures('onethread')

# at least max_obj_ptrs_in_encoder (16) frames: on shorter videos the offline run scales the object pointers'
# temporal encoding by the video's length, which a stream (of no known length) cannot
FRAMES = 20
LONG_FRAMES = 1500
# random weights of this seed give masks of about 15% of the frame for PROMPTS (seed 0: no object at all)
TINY_SEED = 1
PROMPTS = ['--obj', '1', '--point', '40,40', '--point', '100,20,0', '--obj', '2', '--box', '70,10,120,60']
OFFLINE_KEYS = {'video', 'num_frames', 'frames_written', 'objects', 'prompts', 'masks', 'overlay', 'cfg', 'ckpt',
                'precision', 'compile'}


def _writemp4(path, count):
    """``count`` frames of a textured scene sliding right, as an mp4v file at 10 fps."""
    base = syntheticimage(H, W, seed=3)
    writer = cv2.VideoWriter(os.fspath(path), cv2.VideoWriter_fourcc(*'mp4v'), 10, (W, H))
    assert writer.isOpened()
    for i in range(count):
        writer.write(np.ascontiguousarray(np.roll(base, 2 * i, axis=1)[..., ::-1]))
    writer.release()
    return os.fspath(path)


@pytest.fixture(scope='module')
def tiny(tmp_path_factory):
    """{'cfg': a config .py file without ckptpath, 'ckpt': its random-weight checkpoint, 'args': the common flags}
    (as in test_inference_cli, but with weights whose masks on CLIP are not empty)."""
    folder = tmp_path_factory.mktemp('tinystream')
    cfg = writetinyckpt(folder / 'tiny.pth', seed=TINY_SEED)
    ckpt = cfg.pop('ckptpath')
    cfgfile = folder / 'tiny_samv21.py'
    cfgfile.write_text('SEGMENTOR_CFG = ' + repr(cfg) + '\n')
    return {'cfg': os.fspath(cfgfile), 'ckpt': ckpt,
            'args': ['--cfg', os.fspath(cfgfile), '--ckpt', ckpt, '--device', 'cpu']}


@pytest.fixture(scope='module')
def clip(tmp_path_factory):
    return _writemp4(tmp_path_factory.mktemp('streamclip') / 'clip.mp4', FRAMES)


def _files(folder):
    """Every file under ``folder``, as paths relative to it."""
    return sorted(os.path.relpath(os.path.join(root, name), folder) for root, _, names in os.walk(folder)
                  for name in names)


def _nohidden(folder):
    assert not [name for name in _files(folder) if os.path.basename(name).startswith('.')]


def _summary(folder):
    return json.loads((folder / 'video.json').read_text())


@pytest.mark.parametrize('indexed', [False, True])
def test_stream_equals_the_offline_run(indexed, tiny, clip, tmp_path, capsys):
    flags = ['--indexed'] * indexed
    status, err = _run(capsys, 'video', *tiny['args'], '--video', clip, *PROMPTS, *flags, '--outdir', tmp_path / 'off')
    assert status == 0, err
    status, err = _run(capsys, 'video', '--stream', *tiny['args'], '--video', clip, *PROMPTS, *flags,
                       '--outdir', tmp_path / 'on')
    assert status == 0, err
    masks = [name for name in _files(tmp_path / 'off') if name.endswith('.png')]
    assert len(masks) == FRAMES * (1 if indexed else 2)
    assert [name for name in _files(tmp_path / 'on') if name.endswith('.png')] == masks
    for name in masks:
        assert filecmp.cmp(tmp_path / 'off' / name, tmp_path / 'on' / name, shallow=False), name
    assert all(cv2.imread(os.fspath(tmp_path / 'on' / name), cv2.IMREAD_UNCHANGED).any() for name in masks)
    offline, stream = _summary(tmp_path / 'off'), _summary(tmp_path / 'on')
    assert set(stream) == OFFLINE_KEYS | {'stream', 'frames_tracked', 'ended', 'prompts_not_applied'}
    assert {key: stream[key] for key in OFFLINE_KEYS} == offline
    assert (stream['stream'], stream['frames_tracked'], stream['prompts_not_applied']) == (True, FRAMES, [])
    assert stream['ended'] == f'end of file after {FRAMES} frames'
    assert _countframes(tmp_path / 'on' / 'overlay.mp4') == FRAMES
    _nohidden(tmp_path / 'on')


def test_prompts_apply_when_their_frame_arrives(tiny, clip, tmp_path, capsys):
    # object 1 from frame 0, refined on frame 8; object 2 from frame 5; object 3 on a frame the stream never reaches
    prompts = ['--obj', '1', '--point', '40,40', '--frame', '5', '--obj', '2', '--box', '70,10,120,60', '--frame', '8',
               '--obj', '1', '--point', '30,50', '--point', '90,30,0', '--frame', '30', '--obj', '3', '--point', '9,9']
    status, err = _run(capsys, 'video', '--stream', *tiny['args'], '--video', clip, *prompts, '--outdir', tmp_path)
    assert status == 0, err
    assert any('prompts not applied' in line and 'frame(s) 30' in line for line in err), err
    frames = {obj: sorted(os.listdir(tmp_path / 'masks' / obj)) for obj in os.listdir(tmp_path / 'masks')}
    assert frames == {'1': [f'{i:05d}.png' for i in range(FRAMES)], '2': [f'{i:05d}.png' for i in range(5, FRAMES)]}
    summary = _summary(tmp_path)
    assert (summary['objects'], summary['frames_written'], summary['frames_tracked']) == ([1, 2], [0, FRAMES - 1],
                                                                                         FRAMES)
    assert summary['prompts_not_applied'] == [{'frame': 30, 'obj': 3, 'points': [[9.0, 9.0]], 'labels': [1],
                                               'box': None}]

    # the Python API driven the same way: each frame tracked, then its prompts
    cfg = loadsegmentorcfg(tiny['cfg'])
    cfg['ckptpath'] = tiny['ckpt']
    predictor = SAMV2VideoPredictor(samv2_cfg=cfg, device='cpu')
    state = predictor.initstream()
    given = {0: [(1, [[40, 40]], [1], None)], 5: [(2, None, None, [70, 10, 120, 60])],
             8: [(1, [[30, 50], [90, 30]], [1, 0], None)]}
    nonempty = set()
    with VideoStream(clip) as stream, torch.no_grad():
        for rgb in stream:
            frame_idx, obj_ids, logits = predictor.trackframe(state, rgb)
            for obj, points, labels, box in given.get(frame_idx, []):
                frame_idx, obj_ids, logits = predictor.addnewpointsorbox(state, frame_idx, obj, points=points,
                                                                         labels=labels, box=box)
            for obj_id, mask in zip(obj_ids, (logits[:, 0] > 0).numpy()):
                written = _readmask(tmp_path / 'masks' / str(obj_id) / f'{frame_idx:05d}.png') > 127
                assert np.array_equal(written, mask), (frame_idx, obj_id)
                nonempty.add(obj_id) if mask.any() else None
    assert stream.frames_read == FRAMES and nonempty == {1, 2}


def test_max_frames(tiny, clip, tmp_path, capsys):
    status, err = _run(capsys, 'video', '--stream', *tiny['args'], '--video', clip, *PROMPTS, '--max-frames', '7',
                       '--outdir', tmp_path)
    assert status == 0, err
    for obj in ('1', '2'):
        assert sorted(os.listdir(tmp_path / 'masks' / obj)) == [f'{i:05d}.png' for i in range(7)]
    summary = _summary(tmp_path)
    assert (summary['frames_tracked'], summary['num_frames'], summary['ended']) == (7, 7, 'max frames')
    assert _countframes(tmp_path / 'overlay.mp4') == 7


@pytest.mark.parametrize('flags, words', [(['--stream', '--max-frames', '0'], ['--max-frames', '>= 1', '0']),
                                          (['--max-frames', '3'], ['--max-frames', '--stream'])])
def test_bad_max_frames(flags, words, tiny, clip, tmp_path, capsys):
    status, err = _run(capsys, 'video', *flags, *tiny['args'], '--video', clip, *PROMPTS, '--outdir', tmp_path / 'out')
    assert status == 2 and len(err) == 1 and err[0].startswith('ssseg video: error: '), err
    assert all(word in err[0] for word in words), err
    assert not os.path.exists(tmp_path / 'out')


@pytest.mark.parametrize('kind', ['camera', 'url', 'missing file', 'text file', 'jpeg folder'])
def test_unopenable_source_exits_2_with_one_line(kind, tiny, tmp_path, capsys):
    (tmp_path / 'notes.mp4').write_text('not a video')
    (tmp_path / 'frames').mkdir()
    source, words = {'camera': ('97', ['camera 97']), 'url': ('rtsp://127.0.0.1:9/none', ['rtsp://127.0.0.1:9/none']),
                     'missing file': (os.fspath(tmp_path / 'nope.mp4'), ['nope.mp4', 'no such file']),
                     'text file': (os.fspath(tmp_path / 'notes.mp4'), ['notes.mp4']),
                     'jpeg folder': (os.fspath(tmp_path / 'frames'), ['is a folder', 'without --stream'])}[kind]
    start = time.perf_counter()
    status, err = _run(capsys, 'video', '--stream', *tiny['args'], '--video', source, *PROMPTS,
                       '--outdir', tmp_path / 'out')
    assert time.perf_counter() - start < 10
    assert status == 2 and len(err) == 1, err
    assert err[0].startswith('ssseg video: error: --video: '), err
    assert all(word in err[0] for word in words), err
    assert not os.path.exists(tmp_path / 'out')


def test_dropped_live_source_exits_1(tiny, clip, tmp_path, monkeypatch, capsys):
    fakecaptures(monkeypatch, clip, good=6)  # camera 0 is the clip, unplugged after 6 frames
    status, err = _run(capsys, 'video', '--stream', *tiny['args'], '--video', '0', *PROMPTS, '--outdir', tmp_path)
    assert status == 1, err
    assert err[-1].startswith('ssseg video: error: --video: the live source camera 0 stopped delivering frames '
                              'after 6 frame(s)'), err
    summary = _summary(tmp_path)
    assert (summary['frames_tracked'], summary['video']) == (6, '0')
    assert summary['ended'] == err[-1].split('--video: ', 1)[1]
    assert sorted(os.listdir(tmp_path / 'masks' / '1')) == [f'{i:05d}.png' for i in range(6)]
    monkeypatch.undo()
    assert _countframes(tmp_path / 'overlay.mp4') == 6


def _checkinterrupted(out):
    """The outputs of an interrupted run are complete; returns the frames tracked."""
    _nohidden(out)
    summary = _summary(out)
    assert summary['ended'] == 'interrupted'
    names = sorted(os.listdir(out / 'masks' / '1'))
    assert names == [f'{i:05d}.png' for i in range(summary['frames_tracked'])]
    for name in names:
        _readmask(out / 'masks' / '1' / name)
    assert summary['frames_written'] == [0, summary['frames_tracked'] - 1]
    assert _countframes(out / 'overlay.mp4') == summary['frames_tracked']
    return summary['frames_tracked']


def test_ctrl_c_in_this_process_stops_after_the_frame(tiny, clip, tmp_path, monkeypatch, capsys):
    def interrupt(count):
        if count == 5:  # while frame 4 is read: frame 4 is still tracked and written, then the run stops
            os.kill(os.getpid(), signal.SIGINT)
    fakecaptures(monkeypatch, clip, onread=interrupt)
    # Python's own SIGINT handler, as in a terminal, even when this run was started with SIGINT ignored
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        status, err = _run(capsys, 'video', '--stream', *tiny['args'], '--video', '0', '--obj', '1', '--point',
                           '40,40', '--outdir', tmp_path)
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the run's handler is gone
    finally:
        signal.signal(signal.SIGINT, previous)
    assert status == 130, err
    monkeypatch.undo()
    assert _checkinterrupted(tmp_path) == 5


def test_sigint_to_a_subprocess(tiny, tmp_path):
    longclip = _writemp4(tmp_path / 'long.mp4', LONG_FRAMES)
    out = tmp_path / 'out'
    env = {k: v for k, v in os.environ.items() if k not in ('RANK', 'WORLD_SIZE', 'LOCAL_RANK', 'MASTER_PORT')}
    env['OMP_NUM_THREADS'] = '1'
    # SIGINT at its default in the child, even when this run ignores it (a background job)
    process = subprocess.Popen([sys.executable, '-m', 'ssseg.inference', 'video', '--stream', *tiny['args'],
                                '--video', longclip, '--obj', '1', '--point', '40,40', '--outdir', os.fspath(out)],
                               cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 120
        while not (out / 'masks' / '1' / '00000.png').exists():
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, 'no masks after 120 s'
            time.sleep(0.02)
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 130, stderr
    assert 0 < _checkinterrupted(out) < LONG_FRAMES
    assert 'interrupted: tracked' in stderr, stderr


def test_help_names_the_stream_flags(capsys):
    from ssseg.inference import main
    with pytest.raises(SystemExit):
        main(['video', '--help'])
    text = ' '.join(capsys.readouterr().out.split())
    assert '--stream' in text and '--max-frames N' in text and 'camera index' in text and 'rtsp://' in text
