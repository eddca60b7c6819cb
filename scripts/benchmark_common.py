"""Helpers shared by the halves of scripts/benchmark.py: the repository root and the script's own path (child
processes are always launched as ``python scripts/benchmark.py --*-child ...``), image loading, a description of the
machine, mask agreement measures, the resident memory of this process, and a wall-clock timer."""
import os
import platform
import time

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# the entry point; every child process runs this script again with one of its hidden --*-child modes
SCRIPT = os.path.join(ROOT, 'scripts', 'benchmark.py')


def loadimage(path):
    if os.path.isfile(path):
        import cv2
        return cv2.cvtColor(cv2.imread(path), cv2.COLOR_BGR2RGB), os.path.basename(path)
    from ssseg.testing import syntheticimage
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


def rsskib(field):
    """VmRSS (current) or VmHWM (peak) of this process in KiB, from /proc (Linux)."""
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith(field + ':'):
                return int(line.split()[1])
    return 0



def timed(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start

