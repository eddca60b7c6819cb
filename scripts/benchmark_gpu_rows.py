"""Measurements of scripts/benchmark_gpu.py: setimage, the automatic mask generator and video propagation of ours
and of Meta's sam2, in one process on one device and one random-weight checkpoint, with the agreement of the two.

``Bench`` holds what the rows share (device, checkpoints, the synthetic clip and image, built predictors); each
``measure*`` function times one side and returns a result dict; each ``agree*`` function compares two results.
"""
import contextlib
import math
import os
import statistics
import time

import numpy as np
import torch

from ssseg.modules.utils.configs import loadsegmentorcfg
from ssseg.testing import ORACLE_CONFIGS, syntheticimage, writerandomcheckpoint

# what the tables call our config names
SHORT = {'samv21_hiera_tiny': 'tiny', 'samv21_hiera_small': 'small', 'samv21_hiera_baseplus': 'base+',
         'samv21_hiera_large': 'large'}
# AMG thresholds lowered as in tests/parity/test_amg_parity.py: random weights predict IoUs near 0.5
AMG_OPTIONS = dict(pred_iou_thresh=0.4, stability_score_thresh=0.3)


class EarlierFailure(RuntimeError):
    """A predictor whose build failed or whose run timed out before: its message is the table's text already."""


def oneline(error):
    """'failed: <type>: <message>' on one line of at most 200 characters (no table cell separators)."""
    if isinstance(error, EarlierFailure):
        return str(error)
    text = ' / '.join(line.strip() for line in str(error).strip().splitlines() if line.strip())
    return f'failed: {type(error).__name__}: {text}'[:200].replace('|', '/')


class Bench:
    """What the measurements share; predictors are built once per side and settings (a failed build is kept too)."""

    def __init__(self, args, workdir):
        self.args, self.workdir = args, workdir
        self.device = torch.device(args.device)
        self.ckpts, self.predictors, self.results = {}, {}, {}
        self.image = syntheticimage(args.height, args.width, seed=3)
        self.clip = os.path.join(workdir, 'clip')
        os.makedirs(self.clip, exist_ok=True)
        from benchmark_video import _syntheticvideo
        _syntheticvideo(self.clip, args.frames, args.height, args.width)

    def sync(self):
        if self.device.type == 'cuda':
            torch.cuda.synchronize(self.device)

    def ckpt(self, name):
        """A random checkpoint in Meta's format for ``name``, written when first needed (large takes seconds)."""
        if name not in self.ckpts:
            path = os.path.join(self.workdir, f'{name}.pt')
            self.ckpts[name] = writerandomcheckpoint(name, path, seed=0)
        return self.ckpts[name]

    def cached(self, key, build):
        """The predictor for ``key``, built by ``build()`` once; a build that failed fails again at once."""
        if key not in self.predictors:
            try:
                self.predictors[key] = build()
            except Exception as error:
                self.poison(key, oneline(error))
                raise
        value = self.predictors[key]
        if isinstance(value, EarlierFailure):
            raise value
        return value

    def poison(self, key, text):
        """Mark a predictor whose build failed or whose run timed out (mid-compilation, say): later rows fail at
        once, not after another wait."""
        self.predictors[key] = EarlierFailure(text.replace('failed:', 'failed (earlier):', 1))

    def ourcfg(self, name):
        cfg = loadsegmentorcfg(name)
        cfg['ckptpath'] = self.ckpt(name)
        if self.args.image_size:
            cfg['image_size'] = self.args.image_size
        return cfg

    def overrides(self, video, compile=False):
        """Meta's hydra overrides: hole filling off (its CPU build cannot fill holes), our image size, compilation."""
        extra = ['++model.fill_hole_area=0'] if video else []  # SAM2Base (images) has no fill_hole_area
        if self.args.image_size:
            extra.append(f'++model.image_size={self.args.image_size}')
        if compile:
            extra.append('++model.compile_image_encoder=True')
        return extra

    def metacontext(self, precision):
        """Meta's bfloat16 mode is its model run under autocast."""
        if precision == 'bfloat16':
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()


# ---------------------------------------------------------------------------------------------------- predictors
def predictorkey(kind, side, name, precision, compile, batch=True):
    """Which built predictor a measurement uses: Meta's bfloat16 is a context, so one Meta build serves both."""
    if side == 'meta':
        return (f'meta-{kind}', name, compile)
    return (f'ours-{kind}', name, precision, compile) + ((batch,) if kind == 'video' else ())


def metafeatsizes(predictor, size):
    """Meta's image predictor hard-codes the feature sizes of a 1024 px input: set those of ``size``."""
    predictor._bb_feat_sizes = [(size // 4, size // 4), (size // 8, size // 8), (size // 16, size // 16)]
    return predictor


def imagepredictor(bench, side, name, precision, compile):
    if side == 'ours':
        from ssseg.modules.models.segmentors.samv2 import SAMV2ImagePredictor
        return bench.cached(predictorkey('image', side, name, precision, compile), lambda: SAMV2ImagePredictor(
            samv2_cfg=bench.ourcfg(name), device=bench.device, precision=precision, compile=compile or None))

    def build():
        from sam2.build_sam import build_sam2
        from sam2.sam2_image_predictor import SAM2ImagePredictor
        model = build_sam2(ORACLE_CONFIGS[name], bench.ckpt(name), device=bench.device,
                           hydra_overrides_extra=bench.overrides(False, compile))
        return metafeatsizes(SAM2ImagePredictor(model), model.image_size)
    return bench.cached(predictorkey('image', side, name, precision, compile), build)


def videopredictor(bench, side, name, precision, compile, batch=True):
    if side == 'ours':
        from ssseg.modules.models.segmentors.samv2 import SAMV2VideoPredictor
        return bench.cached(predictorkey('video', side, name, precision, compile, batch), lambda: SAMV2VideoPredictor(
            samv2_cfg=bench.ourcfg(name), device=bench.device, precision=precision, compile=compile or None,
            batch_objects=batch, fill_hole_area=0, progress=False))

    def build():
        from sam2.build_sam import build_sam2_video_predictor
        predictor = build_sam2_video_predictor(ORACLE_CONFIGS[name], bench.ckpt(name), device=bench.device,
                                               hydra_overrides_extra=bench.overrides(True), vos_optimized=compile)
        predictor.fill_hole_area = 0  # the builder appends fill_hole_area=8 after our overrides
        return predictor
    return bench.cached(predictorkey('video', side, name, precision, compile), build)


# ---------------------------------------------------------------------------------------------------- measurements
def measuresetimage(bench, side, name, precision, compile):
    """Median seconds of ``set_image`` (after one warm-up call, which is reported as the first call)."""
    predictor = imagepredictor(bench, side, name, precision, compile)
    context = bench.metacontext(precision) if side == 'meta' else contextlib.nullcontext()
    times = []
    with torch.inference_mode(), context:
        for _ in range(1 + bench.args.repeats):
            bench.sync()
            start = time.perf_counter()
            predictor.set_image(bench.image)
            bench.sync()
            times.append(time.perf_counter() - start)
        embedding = predictor.get_image_embedding().float()
    return {'seconds': statistics.median(times[1:]), 'first': times[0], 'output': embedding}


def measureamg(bench, side, name, precision):
    """Median seconds per image of ``generate`` at ``--amg-points`` points per side (after one warm-up image)."""
    model = imagepredictor(bench, side, name, precision, False).model
    options = dict(points_per_side=bench.args.amg_points, **AMG_OPTIONS)
    if side == 'ours':
        from ssseg.modules.models.segmentors.samv2 import SAMV2AutomaticMaskGenerator
        generator, context = SAMV2AutomaticMaskGenerator(model=model, **options), contextlib.nullcontext()
    else:
        from sam2.automatic_mask_generator import SAM2AutomaticMaskGenerator
        generator, context = SAM2AutomaticMaskGenerator(model, **options), bench.metacontext(precision)
        metafeatsizes(generator.predictor, model.image_size)
    times = []
    with torch.inference_mode(), context:
        for _ in range(1 + bench.args.amg_repeats):
            bench.sync()
            start = time.perf_counter()
            records = generator.generate(bench.image)
            bench.sync()
            times.append(time.perf_counter() - start)
    masks = [np.asarray(record['segmentation'], bool) for record in records]
    return {'seconds': statistics.median(times[1:]), 'first': times[0], 'output': masks}


def clicks(count, height, width):
    """One positive click per object, at the centres of a near-square grid of cells over the frame."""
    columns = math.ceil(math.sqrt(count))
    rows = math.ceil(count / columns)
    return [((i % columns + 0.5) * width / columns, (i // columns + 0.5) * height / rows) for i in range(count)]


def _videopass(bench, predictor, count, keep):
    """init_state, one click per object on frame 0, propagate: (seconds in all, seconds propagating, outputs)."""
    bench.sync()
    start = time.perf_counter()
    state = predictor.init_state(bench.clip)
    for obj_id, (x, y) in enumerate(clicks(count, bench.args.height, bench.args.width), start=1):
        predictor.add_new_points_or_box(state, frame_idx=0, obj_id=obj_id, points=np.array([[x, y]], np.float32),
                                        labels=np.array([1], np.int32))
    bench.sync()
    begin = time.perf_counter()
    outputs = {}
    for frame_idx, _, logits in predictor.propagate_in_video(state):
        if keep:
            outputs[frame_idx] = logits.clone()  # a copy on the device: no transfer inside the timed loop
    bench.sync()
    end = time.perf_counter()
    return end - start, end - begin, outputs


def measurevideo(bench, side, name, precision, compile, count, batch=True):
    """Frames per second of ``propagate_in_video`` after a warm-up pass (its seconds, compilation included, are
    the first-pass seconds); the median of ``--video-repeats`` timed passes."""
    predictor = videopredictor(bench, side, name, precision, compile, batch)
    context = bench.metacontext(precision) if side == 'meta' else contextlib.nullcontext()
    with torch.inference_mode(), context:
        first, _, _ = _videopass(bench, predictor, count, keep=False)
        runs = [_videopass(bench, predictor, count, keep=True) for _ in range(bench.args.video_repeats)]
    propagate = statistics.median(run[1] for run in runs)
    return {'fps': len(runs[-1][2]) / propagate, 'first': first, 'output': runs[-1][2]}


# ---------------------------------------------------------------------------------------------------- agreement
def agreesetimage(ours, theirs):
    a, b = ours['output'], theirs['output'].to(ours['output'].device)
    diff = (a - b).abs().max().item() / max(1.0, b.abs().max().item())
    return f'embedding max diff {diff:.1e} of scale'


def agreeamg(ours, theirs, device):
    """Each Meta mask's best IoU among ours (the two sets may be in another order or differ in size)."""
    mine, official = ours['output'], theirs['output']
    if not mine or not official:
        return f'{len(mine)} vs {len(official)} masks'
    a = torch.from_numpy(np.stack(mine)[:, ::2, ::2].copy()).to(device).flatten(1).float()
    b = torch.from_numpy(np.stack(official)[:, ::2, ::2].copy()).to(device).flatten(1).float()
    inter = b @ a.T
    union = b.sum(1, keepdim=True) + a.sum(1)[None] - inter
    best = (inter / union.clamp(min=1)).max(1).values
    matched = int((best >= 0.99).sum())
    return (f'{len(mine)} vs {len(official)} masks; best-match IoU min {best.min().item():.4f}, mean '
            f'{best.mean().item():.4f}; {matched}/{len(official)} at IoU >= 0.99 (masks at half resolution)')


def agreevideo(ours, theirs):
    """Pixel agreement of the binary masks, the smallest per-object per-frame IoU and the logits' max difference."""
    equal, total, worst, diff, scale = 0, 0, 1.0, 0.0, 1.0
    frames = sorted(set(ours['output']) & set(theirs['output']))
    for t in frames:
        a, b = ours['output'][t].float(), theirs['output'][t].float().to(ours['output'][t].device)
        if a.shape != b.shape:
            return f'frame {t}: shape {tuple(a.shape)} vs {tuple(b.shape)}'
        ma, mb = a > 0, b > 0
        equal += (ma == mb).sum().item()
        total += ma.numel()
        union = (ma | mb).flatten(1).sum(1)
        iou = torch.where(union > 0, (ma & mb).flatten(1).sum(1) / union.clamp(min=1), torch.ones_like(union * 1.0))
        worst = min(worst, iou.min().item())
        diff, scale = max(diff, (a - b).abs().max().item()), max(scale, b.abs().max().item())
    if not total:
        return 'no common frames'
    return (f'masks {equal / total:.4%} equal, IoU >= {worst:.4f}, logits max diff {diff / scale:.1e} of scale '
            f'({len(frames)} frames)')
