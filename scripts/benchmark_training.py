"""Fine-tuning measurements of scripts/benchmark.py (``training``): iterations per second and peak resident memory of
one training iteration, ours (``SAMV2.forwardtrain`` + ``SAMV2MultiStepLoss``) against Meta's training package
(``training.model.sam2.SAM2Train`` + ``MultiStepMultiMasksAndIous`` of sam2 1.1.0) on one random-weight checkpoint.

An iteration is zero_grad, the training forward on a batch, the loss, backward and an AdamW step, with the image
encoder trained or frozen (``requires_grad_(False)`` on both sides). The scenarios are a batch of two images with two
objects each and one short clip with two objects, on random frames and moving synthetic shapes. Prompts follow the
fine-tune recipe's sampler (``TRAIN_CFG.prompt_sampler`` of ``configs/samv2/finetune/base_finetune.py``): ours draws
them through a :class:`RecordingSampler` (the sampler is seeded per iteration) and saves them; Meta's child replays
the same plans and clicks (``ssseg.testing.metatraining.metatrainforward``). Dropout is seeded alike per iteration, so
both sides compute the same losses, which are compared iteration by iteration. Each side runs in its own process
(the matching ``trainingchild`` is what such a child runs); ``trainingrows`` runs them and returns the rows.
"""
import gc
import importlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import types

import torch
from benchmark_common import SCRIPT, rsskib

# name -> (frames per clip, the clip of each object); a one-frame clip is an image
SCENARIOS = {'image': (1, [0, 0, 1, 1]), 'video': (None, [0, 0])}
LR, WEIGHT_DECAY = 5e-6, 0.1  # the recipe's base rate and weight decay, one parameter group on both sides
DROPOUT_SEED = 1000  # torch's generator is reset to DROPOUT_SEED + iteration before every forward, on both sides


def _trainrecipe():
    """(prompt sampler config, loss config) of the fine-tune recipe."""
    recipe = importlib.import_module('ssseg.configs.samv2.finetune.base_finetune').TRAIN_CFG
    return dict(recipe['prompt_sampler']), dict(recipe['loss'])


def _shapes(num_frames, num_objects, size, generator):
    """(T, O, S, S) bool masks: rectangles and discs of a fifth to a tenth of the image, moving frame by frame."""
    ys, xs = torch.meshgrid(torch.arange(size), torch.arange(size), indexing='ij')
    masks = torch.zeros(num_frames, num_objects, size, size, dtype=torch.bool)
    for obj in range(num_objects):
        cx, cy = (torch.randint(size // 4, 3 * size // 4, (2,), generator=generator)).tolist()
        r = int(torch.randint(size // 20, size // 10, (1,), generator=generator))
        for t in range(num_frames):
            x, y = cx + t * size // 32, cy + t * size // 64
            if obj % 2:
                masks[t, obj] = (xs - x) ** 2 + (ys - y) ** 2 <= r * r
            else:
                masks[t, obj] = ((xs - x).abs() <= r) & ((ys - y).abs() <= r // 2)
    return masks


def _batch(num_frames, clip_of_object, size):
    """(images (T, B, 3, S, S), masks (T, O, S, S), obj_to_frame_idx (T, O, 2)), the same on both sides."""
    generator = torch.Generator().manual_seed(num_frames * 100 + len(clip_of_object))
    images = torch.randn(num_frames, max(clip_of_object) + 1, 3, size, size, generator=generator)
    masks = _shapes(num_frames, len(clip_of_object), size, generator)
    obj_to_frame_idx = torch.tensor([[[t, b] for b in clip_of_object] for t in range(num_frames)], dtype=torch.int32)
    return images, masks, obj_to_frame_idx


def _models(args, side, frozen, sampler_cfg, loss_cfg):
    """(model in train mode, loss) of one side on ``args.ckpt`` at ``--train-image-size``, encoder frozen or not."""
    size = args.train_image_size
    if side == 'ours':
        from ssseg.modules import BuildLoss, BuildSegmentor
        from ssseg.modules.utils.configs import loadsegmentorcfg
        cfg = loadsegmentorcfg(args.cfg)
        cfg['ckptpath'], cfg['image_size'] = args.ckpt, size
        model, loss = BuildSegmentor(cfg).loadckpt().train(), BuildLoss(loss_cfg)
    else:
        from training.loss_fns import MultiStepMultiMasksAndIous

        from ssseg.testing.metatraining import buildmetatrainmodel
        model = buildmetatrainmodel(args.cfg, args.ckpt, size,
                                    num_correction_pt_per_frame=sampler_cfg['num_correction_pt_per_frame'],
                                    add_all_frames_to_correct_as_cond=sampler_cfg['add_all_frames_to_correct_as_cond'])
        loss = MultiStepMultiMasksAndIous(**{k: v for k, v in loss_cfg.items() if k != 'type'})
    if frozen:
        model.image_encoder.requires_grad_(False)
    return model, loss


def _plandict(plan):
    return {key: getattr(plan, key) for key in ('use_pt_input', 'init_cond_frames', 'frames_to_correct', 'box_frames')}


def _iterations(args, side, model, loss, batch, sampler_cfg):
    """Run the warm-up and timed iterations; returns (seconds, losses, prompts) per iteration."""
    from ssseg.modules.models.segmentors.samv2.model import PromptPlan
    from ssseg.testing.metatraining import RecordingSampler, metatrainforward
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=LR,
                                  weight_decay=WEIGHT_DECAY)
    recorder = RecordingSampler(sampler_cfg)
    replay = torch.load(args.training_prompts) if side == 'official' else []
    seconds, losses, prompts = [], [], []
    for iteration in range(1 + args.train_repeats):
        if side == 'ours':
            recorder.startstep(iteration)
            plan = recorder.plan(batch[0].shape[0])
        else:
            plan = PromptPlan(**replay[iteration]['plan'])
            recorder = types.SimpleNamespace(**{k: replay[iteration][k] for k in ('initial', 'corrections')})
        start = time.perf_counter()
        optimizer.zero_grad()
        torch.manual_seed(DROPOUT_SEED + iteration)
        if side == 'ours':
            total = loss(model.forwardtrain(*batch, recorder, plan=plan), batch[1])['loss']
        else:
            total = loss(metatrainforward(model, *batch, plan, recorder), batch[1])['core_loss']
        total.backward()
        optimizer.step()
        seconds.append(time.perf_counter() - start)
        losses.append(float(total.detach()))
        prompts.append({'plan': _plandict(plan), 'initial': recorder.initial, 'corrections': recorder.corrections})
    return seconds, losses, prompts


def trainingchild(args):
    """Train one side (``--training-child``) for 1 + ``--train-repeats`` iterations in this process; print seconds,
    losses, plans and the peak resident memory above the level before the first iteration (MiB) as JSON. Ours saves
    the prompts it drew to ``--training-prompts``, Meta's replays them from there."""
    side, scenario, frozen = args.training_child, args.training_scenario, args.training_frozen
    sampler_cfg, loss_cfg = _trainrecipe()
    num_frames, clip_of_object = SCENARIOS[scenario]
    batch = _batch(num_frames or args.train_frames, clip_of_object, args.train_image_size)
    model, loss = _models(args, side, frozen, sampler_cfg, loss_cfg)
    gc.collect()
    _resetpeak()
    baseline = rsskib('VmRSS')
    seconds, losses, prompts = _iterations(args, side, model, loss, batch, sampler_cfg)
    peak = (rsskib('VmHWM') - baseline) / 1024
    if side == 'ours':
        torch.save(prompts, args.training_prompts)
    print(json.dumps({'seconds': seconds, 'losses': losses, 'peak_extra_mib': peak, 'baseline_mib': baseline / 1024,
                      'plans': [p['plan'] for p in prompts]}))


def _resetpeak():
    """Reset VmHWM to the current resident size (Linux >= 4.0), so the peak is the iterations' own."""
    try:
        with open('/proc/self/clear_refs', 'w') as f:
            f.write('5')
    except OSError:
        pass  # the peak then also covers model loading, which is far below a training iteration's


def _runchild(args, ckpt, side, scenario, frozen, prompts):
    command = [sys.executable, SCRIPT, '--training-child', side, '--training-scenario', scenario,
               '--cfg', args.cfg, '--ckpt', ckpt, '--training-prompts', prompts,
               '--train-image-size', str(args.train_image_size), '--train-repeats', str(args.train_repeats),
               '--train-frames', str(args.train_frames)] + (['--training-frozen'] if frozen else [])
    if args.threads:
        command += ['--threads', str(args.threads)]
    load = os.getloadavg()[0]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode:
        raise RuntimeError(f'{side} {scenario} training child failed:\n{result.stderr[-4000:]}')
    # the 1-minute load average before and after: other work on the cores shows up here
    return {**json.loads(result.stdout.strip().splitlines()[-1]), 'load': (load, os.getloadavg()[0])}


def _describe(plans):
    """The prompting of the timed iterations, e.g. '2 x masks on [0]; 1 x clicks/boxes on [0, 3], corrections ...'."""
    kinds = [f'clicks/boxes on {plan["init_cond_frames"]}, corrections on {plan["frames_to_correct"]}'
             if plan['use_pt_input'] else f'masks on {plan["init_cond_frames"]}' for plan in plans]
    return '; '.join(f'{kinds.count(kind)} x {kind}' for kind in dict.fromkeys(kinds))


def _load(result):
    return '/'.join(f'{value:.1f}' for value in result['load'])


def trainingrows(args, ckpt):
    """Two rows (it/s, peak extra MiB) for each scenario with the encoder trained and frozen; ours runs first (it
    draws the prompts), then Meta's on the same prompts, each in a fresh process."""
    workdir = tempfile.mkdtemp()
    rows = []
    for scenario in ('image', 'video'):
        num_frames, clip_of_object = SCENARIOS[scenario]
        num_frames = num_frames or args.train_frames
        clips = max(clip_of_object) + 1
        what = (f'{clips} images, {len(clip_of_object)} objects' if num_frames == 1 else
                f'{clips} clip of {num_frames} frames, {len(clip_of_object)} objects')
        for frozen in (False, True):
            prompts = os.path.join(workdir, f'{scenario}-{frozen}.pt')
            results = {side: _runchild(args, ckpt, side, scenario, frozen, prompts) for side in ('ours', 'official')}
            rate = {side: len(r['seconds'][1:]) / sum(r['seconds'][1:]) for side, r in results.items()}
            mine, theirs = results['ours'], results['official']
            pairs = list(zip(mine['losses'], theirs['losses']))
            lossdiff = max(abs(a - b) / max(abs(b), 1e-12) for a, b in pairs)
            paired = statistics.median(b / a for a, b in zip(mine['seconds'][1:], theirs['seconds'][1:]))
            name = f'{scenario} fine-tuning ({what}), encoder {"frozen" if frozen else "trained"}'
            rows.append((f'{name}: it/s (higher is faster)', rate['ours'], rate['official'],
                         rate['ours'] / rate['official'],
                         f'losses max rel diff {lossdiff:.1e} over {len(pairs)} iterations; median paired '
                         f'it/s ratio {paired:.2f}; timed: {_describe(mine["plans"][1:])}'))
            rows.append((f'{name}: peak extra RSS MiB', mine['peak_extra_mib'], theirs['peak_extra_mib'],
                         mine['peak_extra_mib'] / theirs['peak_extra_mib'],
                         f'RSS before the first iteration {mine["baseline_mib"]:.0f} vs {theirs["baseline_mib"]:.0f} '
                         f'MiB; load average before/after ours {_load(mine)}, official {_load(theirs)}'))
    return rows
