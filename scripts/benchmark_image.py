"""Image measurements of scripts/benchmark.py: the automatic mask generator (``amg``), the image predictor
(``image``: setimage and predict) and the image encoder's achieved GFLOP/s against this machine's matmul peak
(``flops``). Each ``*rows`` function runs both sides, ours and Meta's sam2, in fresh child processes of the script
(the matching ``*child`` function is what such a child runs) and returns table rows."""
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch
from benchmark_common import SCRIPT, agreement, loadimage, rsskib, timed


def amgchild(args):
    """Run one generator (ours or official) once in this process; print its time, peak memory and masks as JSON."""
    from ssseg.modules.utils.configs import loadsegmentorcfg
    from ssseg.testing import buildoraclemodel
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
    baseline = rsskib('VmRSS')
    with torch.inference_mode():
        start = time.perf_counter()
        records = generator.generate(image)
        seconds = time.perf_counter() - start
    print(json.dumps({'seconds': seconds, 'peak_extra_mib': (rsskib('VmHWM') - baseline) / 1024,
                      'masks': [[r['segmentation']['counts'], r['bbox'], round(r['predicted_iou'], 4)]
                                for r in records]}))


def amgrows(args, ckpt):
    """Time both generators, each in a fresh process (so peak memory is its own), for each grid size."""
    rows = []
    for grid in args.amg_grids.split(','):
        results = {}
        for side in ('ours', 'official'):
            command = [sys.executable, SCRIPT, '--amg-child', side, '--cfg', args.cfg,
                       '--ckpt', ckpt, '--amg-image', args.amg_image, '--amg-grids', grid,
                       '--precision', args.precision]
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
    from ssseg.modules.utils.configs import loadsegmentorcfg
    from ssseg.testing import buildoraclemodel
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
    if 2 * 256 ** 3 / timed(lambda: torch.mm(probe, probe)) / 1e9 < 10:
        return None
    best = 0.0
    for size in sizes:
        a, b = torch.randn(size, size).to(dtype), torch.randn(size, size).to(dtype)
        torch.mm(a, b)
        best = max(best, max(2 * size ** 3 / timed(lambda: torch.mm(a, b)) / 1e9 for _ in range(repeats)))
    return best



def flopschild(args):
    """One side's image encoder on a 1024 x 1024 input: print its GFLOP count and median seconds as JSON."""
    import torch.nn.functional as F

    from ssseg.testing import buildoraclemodel
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
        seconds = statistics.median(timed(lambda: encoder(x)) for _ in range(args.repeats))
    print(json.dumps({'gflop': (flops.get_total_flops() + counter[0]) / 1e9, 'seconds': seconds}))


def flopsrows(args, ckpt):
    """Image encoder seconds and achieved GFLOP/s, ours and official (fresh processes), against the matmul peak."""
    results = {}
    for side in ('ours', 'official'):
        command = [sys.executable, SCRIPT, '--flops-child', side, '--cfg', args.cfg, '--ckpt', ckpt,
                   '--repeats', str(args.repeats)]
        if args.threads:
            command += ['--threads', str(args.threads)]
        result = subprocess.run(command, check=True, capture_output=True, text=True)
        results[side] = json.loads(result.stdout.strip().splitlines()[-1])
    peak32, peak16 = matmulpeak(), matmulpeak(torch.bfloat16)
    mine, official = results['ours'], results['official']
    rate = lambda r: r['gflop'] / r['seconds']  # noqa: E731
    note = (f"{mine['gflop']:.0f} GFLOP per image; ours {rate(mine):.0f} GFLOP/s, "
            f"official {rate(official):.0f} GFLOP/s; "
            f"matmul peak float32 {f'{peak32:.0f}' if peak32 else 'not measurable (machine busy?)'} GFLOP/s, bfloat16 "
            + (f"{peak16:.0f}" if peak16 else 'no fast kernel in this build'))
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
            command = [sys.executable, SCRIPT, '--image-child', side, '--cfg', args.cfg,
                       '--ckpt', ckpt, '--image', args.image, '--repeats', str(args.repeats),
                       '--image-child-output', output, '--precision', args.precision]
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
