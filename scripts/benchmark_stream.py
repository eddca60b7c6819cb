"""Stream measurements of scripts/benchmark.py.

``stream``: seconds per frame of ``trackframe`` on the bedroom clip with 1 and 3 objects, beside Meta's offline
predictor driven by the protocol a stream equals (for each frame: propagate that frame alone, then its prompts),
outputs compared frame by frame. Meta's state holds 16 frames (a stream is tracked as a video of at least
``max_obj_ptrs_in_encoder`` frames), of which the first ``--video-frames`` are run.

``streammemory``: one long synthetic stream (``--stream-frames``, default 10,000, made in memory as it runs) with the
reduced config of the tests (``ssseg.testing.tinycfg``: the SAM 2.1 tiny architecture shrunk, 128 px input, random
weights), ours only (Meta's predictor cannot stream): resident memory, the bytes the stream state holds and seconds
per frame, sampled every ``--stream-window`` frames, while objects come and go.
"""
import functools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch
from benchmark_common import SCRIPT, rsskib
from benchmark_video import VIDEO_CLICKS, _videoagreement, _videoclip, _videopredictors

META_MIN_FRAMES = 16  # Meta scales pointer encodings by the video length below this many frames


def _clicks(num_objects):
    return {obj_id: (np.array([[x, y]], np.float32), np.array([1], np.int32))
            for obj_id, (x, y) in enumerate(VIDEO_CLICKS[:num_objects], start=1)}


def _streamours(predictor, folder, num_frames, num_objects):
    """trackframe over the clip's first frames, prompts on frame 0: (seconds per tracked frame, {frame: logits})."""
    from PIL import Image
    names = sorted(os.listdir(folder))[:num_frames]
    state, outputs, seconds = predictor.initstream(), {}, 0.0
    for frame_idx, name in enumerate(names):
        frame = np.asarray(Image.open(os.path.join(folder, name)).convert('RGB'))
        start = time.perf_counter()
        _, _, logits = predictor.trackframe(state, frame)
        seconds += time.perf_counter() - start if frame_idx else 0.0
        if frame_idx == 0:
            for obj_id, (points, labels) in _clicks(num_objects).items():
                _, _, logits = predictor.addnewpoints(state, 0, obj_id, points=points, labels=labels)
        outputs[frame_idx] = logits.float().numpy()
    return seconds / (num_frames - 1), outputs


def _streamofficial(predictor, folder, num_frames, num_objects):
    """Meta's predictor under the same protocol: propagate frame s alone, then frame s's prompts."""
    state = predictor.init_state(folder)
    outputs, seconds = {}, 0.0
    for obj_id, (points, labels) in _clicks(num_objects).items():
        _, _, logits = predictor.add_new_points_or_box(state, frame_idx=0, obj_id=obj_id, points=points,
                                                       labels=labels)
    outputs[0] = logits.float().numpy()
    for frame_idx in range(1, num_frames):
        start = time.perf_counter()
        (_, _, logits), = predictor.propagate_in_video(state, start_frame_idx=frame_idx, max_frame_num_to_track=0)
        seconds += time.perf_counter() - start
        outputs[frame_idx] = logits.float().numpy()
    return seconds / (num_frames - 1), outputs


def streamchild(args):
    """One side of the ``stream`` measurement in this process; print seconds per frame, save the logits."""
    ours, theirs = _videopredictors(args, args.ckpt, side=args.stream_child)
    run = _streamours if ours is not None else _streamofficial
    with torch.inference_mode():
        seconds, outputs = run(ours or theirs, args.video_child_folder, args.video_frames, args.video_objects)
    np.savez(args.video_child_output, **{str(t): logits for t, logits in outputs.items()})
    print(json.dumps({'seconds': seconds}))


def streamrows(args, ckpt):
    """trackframe against Meta's protocol with 1 and 3 objects; each run a fresh process, ours and official
    alternating ``--video-repeats`` times; medians."""
    workdir = tempfile.mkdtemp()
    folder = os.path.join(workdir, 'clip')
    frames = args.video_frames
    args.video_frames = max(frames, META_MIN_FRAMES)
    _videoclip(args, folder)
    args.video_frames = frames
    rows = []
    for num_objects in (1, 3):
        seconds, outputs = {}, {}
        for side in ('ours', 'official') * args.video_repeats:
            output = os.path.join(workdir, f'{side}-{num_objects}.npz')
            command = [sys.executable, SCRIPT, '--stream-child', side, '--cfg', args.cfg, '--ckpt', ckpt,
                       '--video-child-folder', folder, '--video-objects', str(num_objects), '--video-frames',
                       str(frames), '--video-child-output', output, '--precision', args.precision]
            if args.threads:
                command += ['--threads', str(args.threads)]
            result = subprocess.run(command, check=True, capture_output=True, text=True)
            seconds.setdefault(side, []).append(json.loads(result.stdout.strip().splitlines()[-1])['seconds'])
            with np.load(output) as saved:
                outputs[side] = {int(t): saved[t] for t in saved.files}
        name = f'stream trackframe s/frame, {num_objects} object{"s" if num_objects > 1 else ""} (official: protocol)'
        mine, official = statistics.median(seconds['ours']), statistics.median(seconds['official'])
        rows.append((name, mine, official, mine / official, _videoagreement(outputs['ours'], outputs['official'])))
    return rows


@functools.lru_cache(maxsize=1)
def _background(height, width):
    from ssseg.testing import syntheticimage
    return syntheticimage(height, width)


def _streamframe(t, height=480, width=854):
    """Frame t of an endless synthetic video: two shapes moving over a fixed textured background."""
    import cv2
    frame = _background(height, width).copy()
    cv2.circle(frame, (100 + 3 * t % (width - 200), height // 2), 60, (250, 40, 40), -1)
    top = 80 + t % (height - 200)
    cv2.rectangle(frame, (width - 300, top), (width - 180, top + 120), (40, 200, 60), -1)
    return frame


def _streamevents(num_frames):
    """{frame: [(action, obj_id, click)]}: objects 1 and 2 early, 2 removed mid-stream, 3 joining after that."""
    click = {1: (100, 240), 2: (614, 140), 3: (100, 240)}
    return {0: [('add', 1, click[1])], 10: [('add', 2, click[2])], num_frames // 2: [('remove', 2, None)],
            num_frames // 2 + 10: [('add', 3, click[3])]}


def streammemorychild(args):
    """The long stream in this process; print samples of resident MiB, state bytes and seconds per frame."""
    from ssseg.modules.models.segmentors.samv2 import SAMV2VideoPredictor
    from ssseg.testing import reachablebytes, writetinyckpt
    cfg = writetinyckpt(os.path.join(tempfile.mkdtemp(), 'tiny.pt'))
    ours = SAMV2VideoPredictor(samv2_cfg=cfg, device='cpu')
    baseline, events = rsskib('VmRSS'), _streamevents(args.stream_frames)
    samples = {}
    with torch.inference_mode():
        state, start = ours.initstream(), time.perf_counter()
        for t in range(args.stream_frames):
            ours.trackframe(state, _streamframe(t))
            for action, obj_id, click in events.get(t, ()):
                if action == 'add':
                    ours.addnewpoints(state, t, obj_id, points=np.array([click], np.float32),
                                      labels=np.array([1], np.int32))
                else:
                    ours.removeobject(state, obj_id)
            if t % args.stream_window == 0 or t == args.stream_frames - 1:
                samples[t] = {'rss_mib': (rsskib('VmRSS') - baseline) / 1024, 'elapsed': time.perf_counter() - start,
                              'state_mib': reachablebytes(state) / 2 ** 20}
    print(json.dumps({'samples': samples, 'peak_extra_mib': (rsskib('VmHWM') - baseline) / 1024}))


def streammemoryrows(args):
    """Ours only: one row whose last column lists the samples of the long stream."""
    command = [sys.executable, SCRIPT, '--stream-memory-child', '--stream-frames', str(args.stream_frames),
               '--stream-window', str(args.stream_window)]
    if args.threads:
        command += ['--threads', str(args.threads)]
    result = json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout.splitlines()[-1])
    marks = sorted((int(t), sample) for t, sample in result['samples'].items())
    rates = ', '.join(f'{(b["elapsed"] - a["elapsed"]) / (t1 - t0):.3f}' for (t0, a), (t1, b) in zip(marks, marks[1:]))
    rss = ', '.join(f'{sample["rss_mib"]:.0f}' for _, sample in marks)
    held = ', '.join(f'{sample["state_mib"]:.2f}' for _, sample in marks)
    total = marks[-1][1]['elapsed']
    return [(f'stream {args.stream_frames} frames, tiny reduced config (ours only; total s)', total,
             float('nan'), float('nan'),
             f'every {args.stream_window} frames: extra resident MiB {rss}; state MiB {held}; s/frame per window '
             f'{rates}; peak extra resident {result["peak_extra_mib"]:.0f} MiB')]
