"""Speed of ssseg's SAMV2 side by side with Meta's sam2 package, on one checkpoint and image, in one run.

Prints, for each measurement, the median time of ours and of the official package and their ratio
(ours / official; below 1 is faster), and checks that both gave the same outputs.

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
    parser.add_argument('--tasks', default='image,amg', help='comma-separated: image (predictor), amg (mask generator)')
    parser.add_argument('--amg-image', default=os.path.join(ROOT, '..', 'shared', 'data', 'images', 'cars.jpg'),
                        help='image for the mask generator (default: the docs cars image)')
    parser.add_argument('--amg-grids', default='16,32,16all',
                        help="points_per_side values to time (32 is the default); suffix 'all' keeps every candidate")
    parser.add_argument('--amg-child', default=None, help=argparse.SUPPRESS)
    return parser.parse_args()


def loadimage(path):
    if os.path.isfile(path):
        import cv2
        return cv2.cvtColor(cv2.imread(path), cv2.COLOR_BGR2RGB), os.path.basename(path)
    from testimages import syntheticimage
    return syntheticimage(1200, 1800), 'synthetic 1800x1200'


def timeboth(ours, theirs, repeats):
    """Median seconds of ``repeats`` calls of each function, alternating them so drifts in machine load hit
    both alike, after one warm-up call each; returns (ours median, theirs median, ours result, theirs result)."""
    results = [ours(), theirs()]
    times = ([], [])
    for _ in range(repeats):
        for i, fn in enumerate((ours, theirs)):
            start = time.perf_counter()
            results[i] = fn()
            times[i].append(time.perf_counter() - start)
    return statistics.median(times[0]), statistics.median(times[1]), results[0], results[1]


def machine():
    cpu = platform.processor() or platform.machine()
    if os.path.exists('/proc/cpuinfo'):
        for line in open('/proc/cpuinfo'):
            if line.startswith('model name'):
                cpu = line.split(':', 1)[1].strip()
                break
    return f'{cpu}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads, torch {torch.__version__}'


def agreement(ours, theirs):
    """How equal two predictions are: mask pixel agreement and the max abs difference of scores and logits."""
    masks = float(np.mean((ours[0] > 0.5) == (theirs[0] > 0.5)))
    values = max(float(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64)).max())
                 for a, b in zip(ours[1:], theirs[1:]))
    return f'masks {masks:.4%} equal, scores/logits max diff {values:.1e}'


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
        generator = SAMV2AutomaticMaskGenerator(samv2_cfg=cfg, device='cpu', output_mode='coco_rle', **options)
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
                       '--amg-image', args.amg_image, '--amg-grids', grid]
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


def imagerows(args, ckpt):
    """Time the image predictors (ours and official) on the same image, alternating runs."""
    from oraclecheckpoints import buildoraclemodel
    from sam2.sam2_image_predictor import SAM2ImagePredictor
    from ssseg.modules.models.segmentors.samv2 import SAMV2ImagePredictor
    from ssseg.modules.utils.configs import loadsegmentorcfg

    cfg = loadsegmentorcfg(args.cfg)
    cfg['ckptpath'] = ckpt
    ours = SAMV2ImagePredictor(samv2_cfg=cfg, device='cpu')
    theirs = SAM2ImagePredictor(buildoraclemodel(args.cfg, ckpt))
    image, _ = loadimage(args.image)
    height, width = image.shape[:2]
    point = dict(point_coords=np.array([[width // 2, height // 2]]), point_labels=np.array([1]))
    cases = [
        ('setimage', lambda p: p.set_image(image), args.repeats),
        ('predict 1 point (multimask)', lambda p: p.predict(**point), 4 * args.repeats),
        ('predict box', lambda p: p.predict(box=np.array([width // 4, height // 4, width // 2, height // 2]),
                                            multimask_output=False), 4 * args.repeats),
        ('predict 4 boxes', lambda p: p.predict(box=np.array([[0, 0, width // 2, height // 2]] * 4),
                                                multimask_output=False), 2 * args.repeats),
    ]
    rows = []
    with torch.inference_mode():
        for name, fn, repeats in cases:
            mine, official, mine_out, official_out = timeboth(lambda: fn(ours), lambda: fn(theirs), repeats)
            if name == 'setimage':
                diff = (ours.getimageembedding() - theirs.get_image_embedding()).abs().max().item()
                same = f'embedding max diff {diff:.1e}'
            else:
                same = agreement(mine_out, official_out)
            rows.append((name, mine, official, mine / official, same))
    return rows


def main():
    args = parseargs()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.amg_child:
        return amgchild(args)
    from oraclecheckpoints import writecheckpoint

    tasks = set(args.tasks.split(','))
    tmpdir = tempfile.TemporaryDirectory()
    ckpt = args.ckpt or writecheckpoint(args.cfg, os.path.join(tmpdir.name, 'random.pt'))
    rows = []
    if 'image' in tasks:
        rows += imagerows(args, ckpt)
    if 'amg' in tasks:
        rows += amgrows(args, ckpt)
    images = [f'{name} ({image.shape[1]}x{image.shape[0]}) for {task}' for task, path in (('image', args.image), ('amg', args.amg_image))
              if task in tasks for image, name in [loadimage(path)]]
    print(f'# {args.cfg}, float32 CPU; {"; ".join(images)}; {machine()}; {datetime.date.today().isoformat()}')
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
