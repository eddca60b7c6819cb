"""Speed of ssseg's SAMV2 side by side with Meta's sam2 package, on one checkpoint and image, in one run.

Prints, for each measurement, the median time of ours and of the official package and their ratio
(ours / official; below 1 is faster), and checks that both gave the same outputs. Each side runs in
its own fresh processes (the packages never share allocator state or warm-up), alternating with the other.

    python scripts/benchmark.py --cfg samv21_hiera_tiny --image ../shared/data/images/truck.jpg

Without ``--ckpt`` a random-weight checkpoint in Meta's format is written by Meta's own package
(timings do not depend on the weights' values). Needs ``sam2==1.1.0`` (see README).
"""
import argparse
import datetime
import json
import subprocess
import os
import platform
import statistics
import sys
import tempfile
import time

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, 'tests'))  # random-weight checkpoints written by the oracle


def parseargs():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--cfg', default='samv21_hiera_tiny', help='config name, e.g. samv21_hiera_tiny')
    parser.add_argument('--ckpt', default=None, help="checkpoint in Meta's format (default: random weights)")
    parser.add_argument('--image', default=os.path.join(ROOT, '..', 'shared', 'data', 'images', 'truck.jpg'),
                        help='RGB image (default: the docs truck image; a synthetic 1800x1200 image if absent)')
    parser.add_argument('--repeats', type=int, default=7, help='timed runs of setimage (predict runs 4x as many)')
    parser.add_argument('--threads', type=int, default=None, help='torch threads (default: torch default)')
    parser.add_argument('--markdown', action='store_true', help='print the table as markdown')
    parser.add_argument('--tasks', default='image,amg', help='comma-separated: image (predictor), flops (encoder GFLOP/s vs matmul peak), amg (mask generator), '
                        'video (s/frame), videomemory (long video RSS)')
    parser.add_argument('--amg-image', default=os.path.join(ROOT, '..', 'shared', 'data', 'images', 'cars.jpg'),
                        help='image for the mask generator (default: the docs cars image)')
    parser.add_argument('--amg-grids', default='16,32,16all',
                        help="points_per_side values to time (32 is the default); suffix 'all' keeps every candidate")
    parser.add_argument('--flops-child', default=None, help=argparse.SUPPRESS)
    parser.add_argument('--image-child', default=None, help=argparse.SUPPRESS)
    parser.add_argument('--image-child-output', default=None, help=argparse.SUPPRESS)
    parser.add_argument('--amg-child', default=None, help=argparse.SUPPRESS)
    parser.add_argument('--video', default=os.path.join(ROOT, '..', 'shared', 'data', 'videos', 'bedroom'),
                        help='JPEG frame folder for video timing (default: the docs bedroom clip; synthetic if absent)')
    parser.add_argument('--video-frames', type=int, default=6, help='frames of the clip to propagate through')
    parser.add_argument('--video-repeats', type=int, default=2, help='runs of each side per video measurement (median)')
    parser.add_argument('--video-tuned-official', action='store_true',
                        help='also time the official predictor with glibc tuned by environment as ours tunes it')
    parser.add_argument('--video-child', default=None, help=argparse.SUPPRESS)
    parser.add_argument('--video-child-folder', default=None, help=argparse.SUPPRESS)
    parser.add_argument('--video-child-output', default=None, help=argparse.SUPPRESS)
    parser.add_argument('--video-objects', type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument('--video-memory-frames', type=int, default=600, help='length of the synthetic video for videomemory')
    parser.add_argument('--video-memory-size', type=int, default=256, help='model input size for videomemory (both sides)')
    parser.add_argument('--video-memory-child', default=None, help=argparse.SUPPRESS)
    parser.add_argument('--video-memory-child-folder', default=None, help=argparse.SUPPRESS)
    parser.add_argument('--precision', default='float32', choices=('float32', 'bfloat16'),
                        help="ours' precision for image, amg and video (official stays float32); with bfloat16 "
                             'the last column gives the mask IoU against the official float32 output')
    return parser.parse_args()


def loadimage(path):
    if os.path.isfile(path):
        import cv2
        return cv2.cvtColor(cv2.imread(path), cv2.COLOR_BGR2RGB), os.path.basename(path)
    from testimages import syntheticimage
    return syntheticimage(1200, 1800), 'synthetic 1800x1200'


def machine():
    cpu = platform.processor() or platform.machine()
    if os.path.exists('/proc/cpuinfo'):
        for line in open('/proc/cpuinfo'):
            if line.startswith('model name'):
                cpu = line.split(':', 1)[1].strip()
                break
    return f'{cpu}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads, torch {torch.__version__}'


def maskiou(ours, theirs):
    """Smallest IoU of corresponding binary masks (..., H, W); two empty masks count as 1."""
    ours, theirs = (np.asarray(m).reshape(-1, *np.shape(m)[-2:]) for m in (ours, theirs))
    ious = [1.0 if not (a | b).any() else (a & b).sum() / (a | b).sum() for a, b in zip(ours, theirs)]
    return float(min(ious))


def agreement(ours, theirs):
    """How equal two predictions are: mask pixel agreement and IoU, the max abs difference of scores and logits."""
    masks = float(np.mean((ours[0] > 0.5) == (theirs[0] > 0.5)))
    values = max(float(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64)).max())
                 for a, b in zip(ours[1:], theirs[1:]))
    iou = maskiou(ours[0] > 0.5, theirs[0] > 0.5)
    return f'masks {masks:.4%} equal (IoU >= {iou:.4f}), scores/logits max diff {values:.1e}'


def _rsskib(field):
    """VmRSS (current) or VmHWM (peak) of this process in KiB, from /proc (Linux)."""
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith(field + ':'):
                return int(line.split()[1])
    return 0


def amgchild(args):
    """Run one generator (ours or official) once in this process; print its time, peak memory and masks as JSON."""
    from oraclecheckpoints import buildoraclemodel
    from ssseg.modules.utils.configs import loadsegmentorcfg
    image, _ = loadimage(args.amg_image)
    # a grid size with the suffix 'all' keeps every candidate (no IoU/stability filter): our worst case
    options = dict(points_per_side=int(args.amg_grids.rstrip('al')))
    if args.amg_grids.endswith('all'):
        options.update(pred_iou_thresh=0.0, stability_score_thresh=0.0)
    if args.amg_child == 'ours':
        from ssseg.modules.models.segmentors.samv2 import SAMV2AutomaticMaskGenerator
        cfg = loadsegmentorcfg(args.cfg)
        cfg['ckptpath'] = args.ckpt
        generator = SAMV2AutomaticMaskGenerator(samv2_cfg=cfg, device='cpu', output_mode='coco_rle',
                                                precision=args.precision, **options)
    else:
        from sam2.automatic_mask_generator import SAM2AutomaticMaskGenerator
        generator = SAM2AutomaticMaskGenerator(buildoraclemodel(args.cfg, args.ckpt, apply_postprocessing=False),
                                               output_mode='coco_rle', **options)
    baseline = _rsskib('VmRSS')
    with torch.inference_mode():
        start = time.perf_counter()
        records = generator.generate(image)
        seconds = time.perf_counter() - start
    print(json.dumps({'seconds': seconds, 'peak_extra_mib': (_rsskib('VmHWM') - baseline) / 1024,
                      'masks': [[r['segmentation']['counts'], r['bbox'], round(r['predicted_iou'], 4)] for r in records]}))


def amgrows(args, ckpt):
    """Time both generators, each in a fresh process (so peak memory is its own), for each grid size."""
    rows = []
    for grid in args.amg_grids.split(','):
        results = {}
        for side in ('ours', 'official'):
            command = [sys.executable, os.path.abspath(__file__), '--amg-child', side, '--cfg', args.cfg, '--ckpt', ckpt,
                       '--amg-image', args.amg_image, '--amg-grids', grid, '--precision', args.precision]
            if args.threads:
                command += ['--threads', str(args.threads)]
            output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
            results[side] = json.loads(output.strip().splitlines()[-1])
        mine, official = results['ours'], results['official']
        same = f'identical masks ({len(mine["masks"])})' if mine['masks'] == official['masks'] else (
            f'{len(mine["masks"])} vs {len(official["masks"])} masks, not identical')
        side = grid.rstrip('al')
        name = f'generate {side}x{side} grid' + (', every candidate kept' if grid.endswith('all') else '')
        rows.append((name, mine['seconds'], official['seconds'],
                     mine['seconds'] / official['seconds'],
                     f'{same}; peak extra memory {mine["peak_extra_mib"]:.0f} vs {official["peak_extra_mib"]:.0f} MiB'))
    return rows


def _imagecases(width, height, repeats):
    """(name, call on a predictor, timed runs) of the image benchmark."""
    point = dict(point_coords=np.array([[width // 2, height // 2]]), point_labels=np.array([1]))
    return [
        ('setimage', None, repeats),
        ('predict 1 point (multimask)', lambda p: p.predict(**point), 4 * repeats),
        ('predict box', lambda p: p.predict(box=np.array([width // 4, height // 4, width // 2, height // 2]),
                                            multimask_output=False), 4 * repeats),
        ('predict 4 boxes', lambda p: p.predict(box=np.array([[0, 0, width // 2, height // 2]] * 4),
                                                multimask_output=False), 2 * repeats),
    ]


def imagechild(args):
    """One side's image predictor in this process: print each case's times as JSON, save its outputs."""
    from oraclecheckpoints import buildoraclemodel
    from ssseg.modules.utils.configs import loadsegmentorcfg
    if args.image_child == 'ours':
        from ssseg.modules.models.segmentors.samv2 import SAMV2ImagePredictor
        cfg = loadsegmentorcfg(args.cfg)
        cfg['ckptpath'] = args.ckpt
        predictor = SAMV2ImagePredictor(samv2_cfg=cfg, device='cpu', precision=args.precision)
    else:
        from sam2.sam2_image_predictor import SAM2ImagePredictor
        predictor = SAM2ImagePredictor(buildoraclemodel(args.cfg, args.ckpt))
    image, _ = loadimage(args.image)
    height, width = image.shape[:2]
    times, outputs = {}, {}
    with torch.inference_mode():
        for name, fn, repeats in _imagecases(width, height, args.repeats):
            call = (lambda: predictor.set_image(image)) if fn is None else (lambda: fn(predictor))
            result = call()  # warm-up
            times[name] = []
            for _ in range(repeats):
                start = time.perf_counter()
                result = call()
                times[name].append(time.perf_counter() - start)
            if fn is None:
                outputs[name] = predictor.get_image_embedding().numpy()
            else:
                for i, array in enumerate(result):
                    outputs[f'{name}/{i}'] = np.asarray(array)
    np.savez(args.image_child_output, **outputs)
    print(json.dumps(times))


def _attentionflops(counter):
    """A stand-in for F.scaled_dot_product_attention that adds its multiply-adds x 2 to counter[0]
    (torch's flop counter does not see the CPU fused kernel)."""
    import torch.nn.functional as F
    sdpa = F.scaled_dot_product_attention

    def counted(q, k, v, *args, **kwargs):
        batch = q.shape[:-2].numel()
        counter[0] += 2 * batch * q.shape[-2] * k.shape[-2] * (q.shape[-1] + v.shape[-1])
        return sdpa(q, k, v, *args, **kwargs)
    return sdpa, counted


def matmulpeak(dtype=torch.float32, sizes=(1024, 2048), repeats=5):
    """Best GFLOP/s of square matrix products on this machine; None when the dtype has no fast kernel here
    (a 256^3 probe below 10 GFLOP/s: such a build would take minutes on the large sizes)."""
    probe = torch.randn(256, 256).to(dtype)
    torch.mm(probe, probe)
    if 2 * 256 ** 3 / _timed(lambda: torch.mm(probe, probe)) / 1e9 < 10:
        return None
    best = 0.0
    for size in sizes:
        a, b = torch.randn(size, size).to(dtype), torch.randn(size, size).to(dtype)
        torch.mm(a, b)
        best = max(best, max(2 * size ** 3 / _timed(lambda: torch.mm(a, b)) / 1e9 for _ in range(repeats)))
    return best


def _timed(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def flopschild(args):
    """One side's image encoder on a 1024 x 1024 input: print its GFLOP count and median seconds as JSON."""
    import torch.nn.functional as F
    from oraclecheckpoints import buildoraclemodel
    if args.flops_child == 'ours':
        from ssseg.modules.models.segmentors.samv2 import SAMV2ImagePredictor
        from ssseg.modules.utils.configs import loadsegmentorcfg
        cfg = loadsegmentorcfg(args.cfg)
        cfg['ckptpath'] = args.ckpt
        predictor = SAMV2ImagePredictor(samv2_cfg=cfg, device='cpu')
        encoder = predictor.model.image_encoder
        size = predictor.model.image_size
    else:
        model = buildoraclemodel(args.cfg, args.ckpt)
        encoder, size = model.image_encoder, model.image_size
    x = torch.randn(1, 3, size, size)
    counter = [0]
    with torch.inference_mode():
        plain, counted = _attentionflops(counter)
        F.scaled_dot_product_attention = counted
        try:
            from torch.utils.flop_counter import FlopCounterMode
            flops = FlopCounterMode(display=False)
            with flops:
                encoder(x)
        finally:
            F.scaled_dot_product_attention = plain
        encoder(x)  # warm-up
        seconds = statistics.median(_timed(lambda: encoder(x)) for _ in range(args.repeats))
    print(json.dumps({'gflop': (flops.get_total_flops() + counter[0]) / 1e9, 'seconds': seconds}))


def flopsrows(args, ckpt):
    """Image encoder seconds and achieved GFLOP/s, ours and official (fresh processes), against the matmul peak."""
    results = {}
    for side in ('ours', 'official'):
        command = [sys.executable, os.path.abspath(__file__), '--flops-child', side, '--cfg', args.cfg, '--ckpt', ckpt,
                   '--repeats', str(args.repeats)]
        if args.threads:
            command += ['--threads', str(args.threads)]
        result = subprocess.run(command, check=True, capture_output=True, text=True)
        results[side] = json.loads(result.stdout.strip().splitlines()[-1])
    peak32, peak16 = matmulpeak(), matmulpeak(torch.bfloat16)
    mine, official = results['ours'], results['official']
    rate = lambda r: r['gflop'] / r['seconds']  # noqa: E731
    note = (f"{mine['gflop']:.0f} GFLOP per image; ours {rate(mine):.0f} GFLOP/s, official {rate(official):.0f} GFLOP/s; "
            f"matmul peak float32 {peak32:.0f} GFLOP/s, bfloat16 " + (f"{peak16:.0f}" if peak16 else 'no fast kernel in this build'))
    return [('image encoder (one 1024x1024 input)', mine['seconds'], official['seconds'],
             mine['seconds'] / official['seconds'], note)]


def imagerows(args, ckpt):
    """Time the image predictors, each side in fresh processes (no shared allocator state), ours and official
    alternating twice; medians over all timed runs of both processes of a side."""
    workdir = tempfile.mkdtemp()
    times, outputs = {'ours': {}, 'official': {}}, {}
    for _ in range(2):
        for side in ('ours', 'official'):
            output = os.path.join(workdir, f'{side}.npz')
            command = [sys.executable, os.path.abspath(__file__), '--image-child', side, '--cfg', args.cfg, '--ckpt', ckpt,
                       '--image', args.image, '--repeats', str(args.repeats), '--image-child-output', output,
                       '--precision', args.precision]
            if args.threads:
                command += ['--threads', str(args.threads)]
            result = subprocess.run(command, check=True, capture_output=True, text=True)
            for name, values in json.loads(result.stdout.strip().splitlines()[-1]).items():
                times[side].setdefault(name, []).extend(values)
            with np.load(output) as saved:
                outputs[side] = {key: saved[key] for key in saved.files}
    image, _ = loadimage(args.image)
    rows = []
    for name, _, _ in _imagecases(image.shape[1], image.shape[0], args.repeats):
        mine, official = statistics.median(times['ours'][name]), statistics.median(times['official'][name])
        if name == 'setimage':
            diff = float(np.abs(outputs['ours'][name] - outputs['official'][name]).max())
            same = f'embedding max diff {diff:.1e}'
        else:
            same = agreement(*[[outputs[side][f'{name}/{i}'] for i in range(3)] for side in ('ours', 'official')])
        rows.append((name, mine, official, mine / official, same))
    return rows


# ---------------------------------------------------------------------------------------------- video
# objects prompted on the first frame of the docs' bedroom clip: (x, y) of one positive click each
VIDEO_CLICKS = [(210, 350), (460, 60), (700, 300)]


def _videoclip(args, folder):
    """The first ``--video-frames`` JPEG frames of the bedroom clip copied to ``folder`` (or synthetic ones)."""
    import shutil
    source = args.video
    os.makedirs(folder, exist_ok=True)
    if os.path.isdir(source):
        names = sorted((n for n in os.listdir(source) if n.lower().endswith('.jpg')), key=lambda n: int(os.path.splitext(n)[0]))
        for name in names[:args.video_frames]:
            shutil.copy(os.path.join(source, name), folder)
    else:
        _syntheticvideo(folder, args.video_frames, 540, 960)


def _syntheticvideo(folder, num_frames, height, width):
    """JPEG frames of a few shapes moving over a textured background."""
    import cv2
    from testimages import syntheticimage
    base = syntheticimage(height, width)
    for i in range(num_frames):
        frame = base.copy()
        cv2.circle(frame, (100 + 2 * i % (width - 200), height // 2), 60, (250, 40, 40), -1)
        cv2.rectangle(frame, (width - 300, 80 + i % (height - 200)), (width - 180, 200 + i % (height - 200)), (40, 200, 60), -1)
        cv2.imwrite(os.path.join(folder, f'{i:05d}.jpg'), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))


def _videopredictors(args, ckpt, image_size=None, side=None):
    """(ours, official) video predictors on one checkpoint (only the ``side`` one when given, the other None),
    with hole filling off on both sides (the official CPU build cannot fill holes)."""
    from oraclecheckpoints import ORACLE_CONFIGS
    from sam2.build_sam import build_sam2_video_predictor
    from ssseg.modules.models.segmentors.samv2 import SAMV2VideoPredictor
    from ssseg.modules.utils.configs import loadsegmentorcfg
    cfg = loadsegmentorcfg(args.cfg)
    cfg['ckptpath'] = ckpt
    overrides = ['++model.fill_hole_area=0']
    if image_size:
        cfg['image_size'] = image_size
        overrides.append(f'++model.image_size={image_size}')
    ours = None
    if side in (None, 'ours'):
        ours = SAMV2VideoPredictor(samv2_cfg=cfg, device='cpu', fill_hole_area=0, precision=args.precision)
    theirs = None
    if side in (None, 'official'):
        theirs = build_sam2_video_predictor(ORACLE_CONFIGS[args.cfg], ckpt, device='cpu', hydra_overrides_extra=overrides)
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
    """Seconds per propagated frame with 1 and 3 objects. Each run is a fresh process (the two packages
    never share allocator state); ours and official alternate ``--video-repeats`` times; medians."""
    workdir = tempfile.mkdtemp()
    folder = os.path.join(workdir, 'clip')
    _videoclip(args, folder)
    sides = [('ours', {}), ('official', {})] + ([('official', TUNED_HEAP_ENV)] if args.video_tuned_official else [])
    rows = []
    for num_objects in (1, 3):
        seconds, outputs = {}, {}
        for repeat in range(args.video_repeats):
            for side, env in sides:
                key = side + (' tuned' if env else '')
                output = os.path.join(workdir, f'{key}-{num_objects}.npz')
                command = [sys.executable, os.path.abspath(__file__), '--video-child', side, '--cfg', args.cfg, '--ckpt', ckpt,
                           '--video-child-folder', folder, '--video-objects', str(num_objects),
                           '--video-child-output', output, '--precision', args.precision]
                if args.threads:
                    command += ['--threads', str(args.threads)]
                result = subprocess.run(command, check=True, capture_output=True, text=True, env={**os.environ, **env})
                seconds.setdefault(key, []).append(json.loads(result.stdout.strip().splitlines()[-1])['seconds'])
                with np.load(output) as saved:
                    outputs[key] = {int(t): saved[t] for t in saved.files}
        name = f'video s/frame, {num_objects} object{"s" if num_objects > 1 else ""}'
        mine = statistics.median(seconds['ours'])
        for key in seconds:
            if key == 'ours':
                continue
            official = statistics.median(seconds[key])
            label = name + (' (official with glibc env tuned as ours)' if key.endswith('tuned') else '')
            rows.append((label, mine, official, mine / official, _videoagreement(outputs['ours'], outputs[key])))
    return rows


def videomemorychild(args):
    """Propagate one object through a long synthetic video in this process; print RSS (MiB) every 50 frames."""
    folder = args.video_memory_child_folder
    ours, theirs = _videopredictors(args, args.ckpt, image_size=args.video_memory_size, side=args.video_memory_child)
    predictor = ours or theirs
    baseline = _rsskib('VmRSS')
    samples, elapsed = {}, {}  # at every 50th frame: extra resident MiB, seconds since propagation began
    with torch.inference_mode():
        begin = time.perf_counter()  # the total includes initstate: Meta's decodes every frame there, ours on demand
        state = predictor.init_state(folder)
        predictor.add_new_points_or_box(state, frame_idx=0, obj_id=1, points=np.array([[200, 270]], np.float32),
                                        labels=np.array([1], np.int32))
        start = time.perf_counter()
        for frame_idx, _, _ in predictor.propagate_in_video(state):
            if frame_idx % 50 == 0 or frame_idx == args.video_memory_frames - 1:
                samples[frame_idx] = (_rsskib('VmRSS') - baseline) / 1024
                elapsed[frame_idx] = time.perf_counter() - start
        seconds = time.perf_counter() - begin
    print(json.dumps({'samples': samples, 'elapsed': elapsed, 'seconds': seconds,
                      'peak_extra_mib': (_rsskib('VmHWM') - baseline) / 1024}))


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
        command = [sys.executable, os.path.abspath(__file__), '--video-memory-child', side, '--cfg', args.cfg,
                   '--ckpt', ckpt, '--video-memory-child-folder', folder, '--video-memory-size', str(args.video_memory_size),
                   '--video-memory-frames', str(args.video_memory_frames)]
        if args.threads:
            command += ['--threads', str(args.threads)]
        output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        results[side] = json.loads(output.strip().splitlines()[-1])
    frames = args.video_memory_frames
    mine, official = results['ours'], results['official']
    marks = sorted({int(k) for k in mine['samples']} & {int(k) for k in official['samples']})
    growth = '; '.join(f'frame {t}: {mine["samples"][str(t)]:.0f} vs {official["samples"][str(t)]:.0f}' for t in sorted(set(marks[::3] + marks[-1:])))
    rows.append((f'video {frames} frames at {args.video_memory_size}px, 1 object (total s, initstate included)', mine['seconds'],
                 official['seconds'], mine['seconds'] / official['seconds'],
                 f'extra resident MiB ours vs official, {growth}; peak {mine["peak_extra_mib"]:.0f} vs '
                 f'{official["peak_extra_mib"]:.0f}; s/frame per 50-frame window, ours: {_windowrates(mine)}; '
                 f'official: {_windowrates(official)}'))
    return rows


def main():
    args = parseargs()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.image_child:
        return imagechild(args)
    if args.flops_child:
        return flopschild(args)
    if args.amg_child:
        return amgchild(args)
    if args.video_memory_child:
        return videomemorychild(args)
    if args.video_child:
        return videochild(args)
    from oraclecheckpoints import writecheckpoint

    tasks = set(args.tasks.split(','))
    tmpdir = tempfile.TemporaryDirectory()
    ckpt = args.ckpt or writecheckpoint(args.cfg, os.path.join(tmpdir.name, 'random.pt'))
    rows = []
    if 'image' in tasks:
        rows += imagerows(args, ckpt)
    if 'flops' in tasks:
        rows += flopsrows(args, ckpt)
    if 'amg' in tasks:
        rows += amgrows(args, ckpt)
    if 'video' in tasks:
        rows += videorows(args, ckpt)
    if 'videomemory' in tasks:
        rows += videomemoryrows(args, ckpt)
    images = [f'{name} ({image.shape[1]}x{image.shape[0]}) for {task}' for task, path in (('image', args.image), ('amg', args.amg_image))
              if task in tasks for image, name in [loadimage(path)]]
    if 'video' in tasks:
        images.append(f'{os.path.basename(args.video)} (first {args.video_frames} frames) for video')
    print(f'# {args.cfg}, ours {args.precision} / official float32, CPU; {"; ".join(images)}; {machine()}; {datetime.date.today().isoformat()}')
    header = ('measurement', 'ours (s)', 'official (s)', 'ours/official', 'same outputs?')
    if args.markdown:
        print('| ' + ' | '.join(header) + ' |')
        print('|' + '---|' * len(header))
        for name, mine, official, ratio, same in rows:
            print(f'| {name} | {mine:.3f} | {official:.3f} | {ratio:.2f} | {same} |')
    else:
        print(f'{header[0]:<30}{header[1]:>10}{header[2]:>14}{header[3]:>15}  {header[4]}')
        for name, mine, official, ratio, same in rows:
            print(f'{name:<30}{mine:>10.3f}{official:>14.3f}{ratio:>15.2f}  {same}')


if __name__ == '__main__':
    main()
