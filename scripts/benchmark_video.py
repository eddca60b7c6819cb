"""Video measurements of scripts/benchmark.py: seconds per propagated frame with 1 and 3 (``--video-object-counts``)
objects on a short clip (``video``; ours batched and, with several objects, one at a time; optionally also the
official predictor with glibc tuned as ours tunes it), and resident memory and speed while one object is tracked
through a long synthetic video (``videomemory``). Each ``*rows`` function runs both sides, ours and Meta's sam2, in
fresh child processes of the script (the matching ``*child`` function is what such a child runs) and returns rows."""
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch
from benchmark_common import SCRIPT, maskiou, rsskib

# objects prompted on the first frame of the docs' bedroom clip: (x, y) of one positive click each
VIDEO_CLICKS = [(210, 350), (460, 60), (700, 300), (100, 100), (850, 450), (300, 480), (600, 150), (800, 80)]


def _videoclip(args, folder):
    """The first ``--video-frames`` JPEG frames of the bedroom clip copied to ``folder`` (or synthetic ones)."""
    import shutil
    source = args.video
    os.makedirs(folder, exist_ok=True)
    if os.path.isdir(source):
        names = sorted((n for n in os.listdir(source) if n.lower().endswith('.jpg')),
                       key=lambda n: int(os.path.splitext(n)[0]))
        for name in names[:args.video_frames]:
            shutil.copy(os.path.join(source, name), folder)
    else:
        _syntheticvideo(folder, args.video_frames, 540, 960)


def _syntheticvideo(folder, num_frames, height, width):
    """JPEG frames of a few shapes moving over a textured background."""
    import cv2

    from ssseg.testing import syntheticimage
    base = syntheticimage(height, width)
    for i in range(num_frames):
        frame = base.copy()
        cv2.circle(frame, (100 + 2 * i % (width - 200), height // 2), 60, (250, 40, 40), -1)
        cv2.rectangle(frame, (width - 300, 80 + i % (height - 200)), (width - 180, 200 + i % (height - 200)),
                      (40, 200, 60), -1)
        cv2.imwrite(os.path.join(folder, f'{i:05d}.jpg'), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))


def _videopredictors(args, ckpt, image_size=None, side=None):
    """(ours, official) video predictors on one checkpoint (only the ``side`` one when given, the other None),
    with hole filling off on both sides (the official CPU build cannot fill holes)."""
    from sam2.build_sam import build_sam2_video_predictor

    from ssseg.modules.models.segmentors.samv2 import SAMV2VideoPredictor
    from ssseg.modules.utils.configs import loadsegmentorcfg
    from ssseg.testing import ORACLE_CONFIGS
    cfg = loadsegmentorcfg(args.cfg)
    cfg['ckptpath'] = ckpt
    overrides = ['++model.fill_hole_area=0']
    if image_size:
        cfg['image_size'] = image_size
        overrides.append(f'++model.image_size={image_size}')
    ours = None
    if side in (None, 'ours'):
        ours = SAMV2VideoPredictor(samv2_cfg=cfg, device='cpu', fill_hole_area=0, precision=args.precision,
                                   batch_objects=not getattr(args, 'video_child_one_at_a_time', False))
    theirs = None
    if side in (None, 'official'):
        theirs = build_sam2_video_predictor(ORACLE_CONFIGS[args.cfg], ckpt, device='cpu',
                                            hydra_overrides_extra=overrides)
    return ours, theirs


def _track(predictor, folder, num_objects):
    """Prompt ``num_objects`` objects on frame 0, propagate; returns (seconds per frame, {frame: logits})."""
    state = predictor.init_state(folder)
    for obj_id, (x, y) in enumerate(VIDEO_CLICKS[:num_objects], start=1):
        predictor.add_new_points_or_box(state, frame_idx=0, obj_id=obj_id, points=np.array([[x, y]], np.float32),
                                        labels=np.array([1], np.int32))
    outputs = {}
    start = time.perf_counter()
    for frame_idx, _, logits in predictor.propagate_in_video(state):
        outputs[frame_idx] = logits.float().numpy()
    seconds = (time.perf_counter() - start) / len(outputs)
    return seconds, outputs


def videochild(args):
    """Track ``--video-objects`` objects with one side in this process; print seconds per frame, save the logits."""
    ours, theirs = _videopredictors(args, args.ckpt, side=args.video_child)
    with torch.inference_mode():
        seconds, outputs = _track(ours or theirs, args.video_child_folder, args.video_objects)
    np.savez(args.video_child_output, **{str(t): logits for t, logits in outputs.items()})
    print(json.dumps({'seconds': seconds}))


def _videoagreement(ours, theirs):
    diff = max(float(np.abs(ours[t] - theirs[t]).max()) for t in theirs)
    scale = max(1.0, max(float(np.abs(theirs[t]).max()) for t in theirs))
    equal = np.mean([np.mean((ours[t] > 0) == (theirs[t] > 0)) for t in theirs])
    iou = min(maskiou(ours[t] > 0, theirs[t] > 0) for t in theirs)
    return f'masks {equal:.4%} equal (IoU >= {iou:.4f}), logits max diff {diff / scale:.1e} of scale'


# glibc settings that make Meta's package reuse freed memory as ssseg's predictors do (ssseg/modules/utils/heap.py)
TUNED_HEAP_ENV = {'MALLOC_MMAP_MAX_': '0', 'MALLOC_TRIM_THRESHOLD_': str(2 ** 31 - 1)}


def videorows(args, ckpt):
    """Seconds per propagated frame for each of ``--video-object-counts`` objects (with several, ours also one
    object at a time). Each run is a fresh process (the packages never share allocator state); the sides
    alternate ``--video-repeats`` times; medians."""
    workdir = tempfile.mkdtemp()
    folder = os.path.join(workdir, 'clip')
    _videoclip(args, folder)
    rows = []
    for num_objects in map(int, args.video_object_counts.split(',')):
        # (key, side, environment, extra flags); with several objects ours also tracks them one at a time
        sides = [('ours', 'ours', {}, []), ('official', 'official', {}, [])]
        sides += [('official tuned', 'official', TUNED_HEAP_ENV, [])] if args.video_tuned_official else []
        sides += [('ours one at a time', 'ours', {}, ['--video-child-one-at-a-time'])] if num_objects > 1 else []
        seconds, outputs = {}, {}
        for repeat in range(args.video_repeats):
            for key, side, env, flags in sides:
                output = os.path.join(workdir, f'{key}-{num_objects}.npz')
                command = [sys.executable, SCRIPT, '--video-child', side, '--cfg', args.cfg,
                           '--ckpt', ckpt, '--video-child-folder', folder, '--video-objects', str(num_objects),
                           '--video-child-output', output, '--precision', args.precision] + flags
                if args.threads:
                    command += ['--threads', str(args.threads)]
                result = subprocess.run(command, check=True, capture_output=True, text=True, env={**os.environ, **env})
                seconds.setdefault(key, []).append(json.loads(result.stdout.strip().splitlines()[-1])['seconds'])
                with np.load(output) as saved:
                    outputs[key] = {int(t): saved[t] for t in saved.files}
        name = f'video s/frame, {num_objects} object{"s" if num_objects > 1 else ""}'
        official = statistics.median(seconds['official'])
        for key in seconds:
            if key == 'official':
                continue
            mine = statistics.median(seconds[key])
            if key == 'official tuned':
                mine, official = statistics.median(seconds['ours']), statistics.median(seconds[key])
            label = name + {'official tuned': ' (official with glibc env tuned as ours)',
                            'ours one at a time': ' (ours one object at a time)'}.get(key, '')
            reference = 'ours' if key == 'official tuned' else 'official'
            rows.append((label, mine, official, mine / official, _videoagreement(outputs[key], outputs[reference])))
    return rows


def videomemorychild(args):
    """Propagate one object through a long synthetic video in this process; print RSS (MiB) every 50 frames."""
    folder = args.video_memory_child_folder
    ours, theirs = _videopredictors(args, args.ckpt, image_size=args.video_memory_size, side=args.video_memory_child)
    predictor = ours or theirs
    baseline = rsskib('VmRSS')
    samples, elapsed = {}, {}  # at every 50th frame: extra resident MiB, seconds since propagation began
    with torch.inference_mode():
        begin = time.perf_counter()  # the total includes initstate: Meta's decodes every frame there, ours on demand
        state = predictor.init_state(folder)
        predictor.add_new_points_or_box(state, frame_idx=0, obj_id=1, points=np.array([[200, 270]], np.float32),
                                        labels=np.array([1], np.int32))
        start = time.perf_counter()
        for frame_idx, _, _ in predictor.propagate_in_video(state):
            if frame_idx % 50 == 0 or frame_idx == args.video_memory_frames - 1:
                samples[frame_idx] = (rsskib('VmRSS') - baseline) / 1024
                elapsed[frame_idx] = time.perf_counter() - start
        seconds = time.perf_counter() - begin
    print(json.dumps({'samples': samples, 'elapsed': elapsed, 'seconds': seconds,
                      'peak_extra_mib': (rsskib('VmHWM') - baseline) / 1024}))


def _windowrates(result):
    """Seconds per frame in each window between two samples of a videomemory run, as 'a, b, ...'."""
    marks = sorted((int(t), seconds) for t, seconds in result['elapsed'].items())
    return ', '.join(f'{(s1 - s0) / (t1 - t0):.3f}' for (t0, s0), (t1, s1) in zip(marks, marks[1:]))


def videomemoryrows(args, ckpt):
    """Resident memory while one object is tracked through a long synthetic video, each side in its own process,
    at a reduced input size (both sides) so that hundreds of frames take minutes."""
    folder = os.path.join(tempfile.mkdtemp(), 'long')
    os.makedirs(folder)
    _syntheticvideo(folder, args.video_memory_frames, 480, 854)
    rows = []
    results = {}
    for side in ('ours', 'official'):
        command = [sys.executable, SCRIPT, '--video-memory-child', side, '--cfg', args.cfg,
                   '--ckpt', ckpt, '--video-memory-child-folder', folder,
                   '--video-memory-size', str(args.video_memory_size),
                   '--video-memory-frames', str(args.video_memory_frames)]
        if args.threads:
            command += ['--threads', str(args.threads)]
        output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        results[side] = json.loads(output.strip().splitlines()[-1])
    frames = args.video_memory_frames
    mine, official = results['ours'], results['official']
    marks = sorted({int(k) for k in mine['samples']} & {int(k) for k in official['samples']})
    growth = '; '.join(f'frame {t}: {mine["samples"][str(t)]:.0f} vs {official["samples"][str(t)]:.0f}'
                       for t in sorted(set(marks[::3] + marks[-1:])))
    rows.append((f'video {frames} frames at {args.video_memory_size}px, 1 object (total s, initstate included)',
                 mine['seconds'], official['seconds'], mine['seconds'] / official['seconds'],
                 f'extra resident MiB ours vs official, {growth}; peak {mine["peak_extra_mib"]:.0f} vs '
                 f'{official["peak_extra_mib"]:.0f}; s/frame per 50-frame window, ours: {_windowrates(mine)}; '
                 f'official: {_windowrates(official)}'))
    return rows
