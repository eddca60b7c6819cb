"""GPU speed of ssseg's SAMV2 side by side with Meta's sam2 (1.1.0), in one process, on one device and one
random-weight checkpoint per config, with how equal the two sides' outputs are.

Measures setimage (median seconds), the automatic mask generator (seconds per image at the default 32 x 32
grid) and video propagation (frames per second of ``propagate_in_video`` after a warm-up pass, whose seconds,
compilation included, are reported as the first pass) with 1, 4 and 16 objects, for the tiny and large
configs, eager and compiled (ours ``compile=True``, Meta ``vos_optimized=True``), float32 and bfloat16 (Meta's
bfloat16 is its model under ``torch.autocast``). Rows run most important first; each one that fails says so in
the table, and rows past ``--budget-s`` are marked skipped. The table is rewritten (atomically) after every row.

    python scripts/benchmark_gpu.py --out gpu_table.md          # on a CUDA machine
    python scripts/benchmark_gpu.py --dry-run --out /tmp/t.md   # the same code, CPU-sized (minutes)
"""
import argparse
import datetime
import os
import signal
import sys
import tempfile
import time
import traceback

import benchmark_gpu_rows as gpurows
import torch

SKIPPED = 'skipped (time budget)'


class Deadline(BaseException):
    """Raised by the row alarm; a BaseException, so no ``except Exception`` in the measured code swallows it."""


class Clock:
    """The global time budget, a per-row time limit (SIGALRM) and SIGTERM (from ``timeout``): skip what is left."""

    def __init__(self, budget, rowlimit):
        self.start, self.budget, self.rowlimit = time.monotonic(), budget, rowlimit
        self.killed = self.active = False
        signal.signal(signal.SIGTERM, self._terminate)

    def elapsed(self):
        return time.monotonic() - self.start

    def _terminate(self, signum, frame):
        self.killed = True
        if self.active:  # outside a measurement the loop just skips the rest and writes the table
            raise Deadline('skipped (killed by SIGTERM)')

    def call(self, fn):
        """``fn()`` under an alarm at the row limit or the budget's end, whichever comes first."""
        left = self.budget - self.elapsed()
        if self.killed:
            raise Deadline('skipped (killed by SIGTERM)')
        if left <= 0:
            raise Deadline(SKIPPED)
        limit = min(self.rowlimit, left)
        text = (f'skipped (time budget; stopped after {limit:.0f} s)' if left <= self.rowlimit
                else f'failed: timed out after {limit:.0f} s (--row-timeout-s)')

        def alarm(signum, frame):
            raise Deadline(text)
        signal.signal(signal.SIGALRM, alarm)
        signal.setitimer(signal.ITIMER_REAL, limit)
        self.active = True
        try:
            return fn()
        finally:
            self.active = False
            signal.setitimer(signal.ITIMER_REAL, 0)


class Step:
    """One measurement on both sides: kind 'setimage', 'amg' or 'video' (with ``objects``, ``batch``)."""

    def __init__(self, kind, name, precision, compile, objects=None, batch=True):
        self.kind, self.name, self.precision, self.compile = kind, name, precision, compile
        self.objects, self.batch = objects, batch

    def prefix(self):
        precision = {'float32': 'fp32', 'bfloat16': 'bf16'}[self.precision]
        return f'{gpurows.SHORT.get(self.name, self.name)} {precision} {"compiled" if self.compile else "eager"}'

    def key(self, side):
        """What identifies a side's result (Meta has no batch_objects: its result serves both of ours)."""
        return (side, self.kind, self.name, self.precision, self.compile, self.objects,
                self.batch if side == 'ours' else None)

    def predictor(self, side):
        kind = 'video' if self.kind == 'video' else 'image'
        compile = self.compile and self.kind != 'amg'
        return gpurows.predictorkey(kind, side, self.name, self.precision, compile, self.batch)

    def measure(self, bench, side):
        if self.kind == 'setimage':
            return gpurows.measuresetimage(bench, side, self.name, self.precision, self.compile)
        if self.kind == 'amg':
            return gpurows.measureamg(bench, side, self.name, self.precision)
        return gpurows.measurevideo(bench, side, self.name, self.precision, self.compile, self.objects, self.batch)


def plan(args):
    """Steps in order of importance: per precision and config, the fewest and most objects eager then compiled,
    then setimage, AMG, the other object counts and ours one object at a time."""
    objects = sorted(set(args.objects))
    first = sorted({objects[0], objects[-1]})
    rest = [n for n in objects if n not in first]
    modes = [mode == 'compiled' for mode in args.modes]
    steps = []
    for precision in args.precisions:
        for name in args.configs:
            steps += [Step('video', name, precision, compile, n) for compile in modes for n in first]
            if False in modes:
                steps += [Step('setimage', name, precision, False), Step('amg', name, precision, False)]
                steps += [Step('video', name, precision, False, n) for n in rest]
                if objects[-1] > 1:
                    steps.append(Step('video', name, precision, False, objects[-1], batch=False))
            if True in modes:
                steps += [Step('video', name, precision, True, n) for n in rest]
                steps.append(Step('setimage', name, precision, True))
    return steps


def runstep(step, bench, clock):
    """Both sides' results (a dict, or the text of a failure or skip), the Meta side reused when already measured."""
    results = {}
    for side in ('ours', 'meta'):
        key = step.key(side)
        if key not in bench.results:
            try:
                bench.results[key] = clock.call(lambda: step.measure(bench, side))
            except Deadline as deadline:
                bench.results[key] = str(deadline)
                if str(deadline).startswith('failed'):
                    bench.poison(step.predictor(side), str(deadline))
            except Exception as error:
                if not isinstance(error, gpurows.EarlierFailure):
                    traceback.print_exc()  # the whole story goes to the log, one line to the table
                bench.results[key] = gpurows.oneline(error)
        results[side] = bench.results[key]
    return results


def number(result, field, unit):
    return f'{result[field]:.3g} {unit}' if isinstance(result, dict) else result


def ratio(ours, theirs, field, higher):
    """The speed-up of ours (> 1: ours faster): FPS ours / Meta, or seconds Meta / ours."""
    if not (isinstance(ours, dict) and isinstance(theirs, dict)):
        return ''
    value = ours[field] / theirs[field] if higher else theirs[field] / ours[field]
    return f'{value:.2f}x ({"ours FPS / Meta FPS" if higher else "Meta s / ours s"})'


def agreement(step, ours, theirs, bench):
    if not (isinstance(ours, dict) and isinstance(theirs, dict)):
        return ''
    try:
        if step.kind == 'setimage':
            text = gpurows.agreesetimage(ours, theirs)
        elif step.kind == 'amg':
            text = gpurows.agreeamg(ours, theirs, bench.device)
        else:
            text = gpurows.agreevideo(ours, theirs)
    except Exception as error:
        text = gpurows.oneline(error)
    if step.kind != 'video':
        text += f'; first call ours {ours["first"]:.3g} s, Meta {theirs["first"]:.3g} s'
    return text


def formatrows(step, results, bench):
    """The table rows of a step: (measurement, ours, Meta, speed-up, agreement)."""
    ours, theirs = results['ours'], results['meta']
    agree = agreement(step, ours, theirs, bench)
    prefix = step.prefix()
    if step.kind == 'setimage':
        return [(f'{prefix} · setimage s (median of {bench.args.repeats})', number(ours, 'seconds', 's'),
                 number(theirs, 'seconds', 's'), ratio(ours, theirs, 'seconds', False), agree)]
    if step.kind == 'amg':
        grid = bench.args.amg_points
        return [(f'{prefix} · AMG s/image, {grid}x{grid} grid', number(ours, 'seconds', 's'),
                 number(theirs, 'seconds', 's'), ratio(ours, theirs, 'seconds', False), agree)]
    objects = f'{step.objects} object{"s" if step.objects > 1 else ""}'
    if not step.batch:
        batched = bench.results.get(step.key('ours')[:-1] + (True,))
        if isinstance(batched, dict) and isinstance(ours, dict):
            agree += f'; ours batched {batched["fps"]:.3g} FPS = {batched["fps"] / ours["fps"]:.2f}x this'
        return [(f'{prefix} · video FPS, {objects}, ours batch_objects=False', number(ours, 'fps', 'FPS'),
                 number(theirs, 'fps', 'FPS'), ratio(ours, theirs, 'fps', True), agree)]
    return [(f'{prefix} · video FPS, {objects}', number(ours, 'fps', 'FPS'), number(theirs, 'fps', 'FPS'),
             ratio(ours, theirs, 'fps', True), agree),
            (f'{prefix} · video first-pass s, {objects} (compilation included)', number(ours, 'first', 's'),
             number(theirs, 'first', 's'), ratio(ours, theirs, 'first', False), '')]


def pendingrows(step, bench, text):
    return formatrows(step, {'ours': text, 'meta': text}, bench)


def header(args, clock=None):
    """What ran where: versions, the GPU, the settings that change timings."""
    from importlib.metadata import version
    cuda = torch.cuda.is_available()
    gpu = torch.cuda.get_device_name(0) if cuda else 'no CUDA device'
    lines = [f'# SAMV2: ssseg vs Meta sam2 {version("sam2")} on {args.device} ({gpu})', '',
             f'- {datetime.datetime.now().isoformat(timespec="seconds")}; torch {torch.__version__}, CUDA '
             f'{torch.version.cuda}, cuDNN {torch.backends.cudnn.version() if cuda else None}, GPU: {gpu}; '
             f'{torch.get_num_threads()} torch threads; Python {sys.version.split()[0]}',
             f'- random-weight checkpoints (seed 0) in Meta\'s format, the same file for both sides; model input '
             f'{args.image_size or "of each config (1024)"} px; synthetic {args.width}x{args.height} image and '
             f'{args.frames}-frame video; hole filling off on both sides; AMG thresholds lowered for random weights',
             f'- TF32: matmul {torch.backends.cuda.matmul.allow_tf32}, cuDNN {torch.backends.cudnn.allow_tf32} '
             f'(torch defaults, both sides); dynamo recompile limit {torch._dynamo.config.cache_size_limit}',
             '- speed-up > 1 means ours is faster (FPS: ours / Meta; seconds: Meta / ours); agreement compares '
             'ours with Meta on the same run; video FPS times propagate_in_video only (Meta decodes every frame in '
             'init_state, ours while propagating); first pass = init_state + clicks + propagate, compilation included']
    if args.dry_run:
        lines.append('- DRY RUN: CPU-sized settings, the numbers mean nothing')
    if clock is not None:
        lines.append(f'- {clock.elapsed():.0f} s of a {args.budget_s:.0f} s budget, rows limited to '
                     f'{args.row_timeout_s:.0f} s each')
    return lines


def table(args, rows, clock):
    lines = header(args, clock) + ['', '| measurement | ours | Meta | ours/Meta speed-up (>1: ours faster) | '
                                       'agreement (ours vs Meta) |', '| --- | --- | --- | --- | --- |']
    lines += ['| ' + ' | '.join(str(cell) for cell in row) + ' |' for row in rows]
    return '\n'.join(lines) + '\n'


def writeatomically(path, text):
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=folder, prefix='.gpu_table.', suffix='.tmp')
    with os.fdopen(handle, 'w') as f:
        f.write(text)
    os.chmod(tmp, 0o644)  # mkstemp makes it private; the table is for everyone
    os.replace(tmp, path)


# option defaults: a GPU run, and the CPU-sized dry run (the shipped tiny config at 256 px on both sides, since Meta
# cannot build ssseg.testing's 8-channel tiny model; one thread, since a second one mostly waits on a shared CPU)
DEFAULTS = dict(device='cuda', configs='samv21_hiera_tiny,samv21_hiera_large', objects='1,4,16', frames=40,
                height=480, width=640, image_size=0, repeats=5, amg_points=32, amg_repeats=2, budget_s=420,
                row_timeout_s=180, threads=0)
DRY_RUN = dict(DEFAULTS, device='cpu', configs='samv21_hiera_tiny', objects='1,4', frames=3, height=240, width=320,
               image_size=256, repeats=2, amg_points=16, amg_repeats=1, budget_s=240, row_timeout_s=30, threads=1)


def parseargs(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=f'defaults: {DEFAULTS}; with --dry-run: {DRY_RUN}')
    parser.add_argument('--device')
    parser.add_argument('--configs', help='comma-separated config names')
    parser.add_argument('--objects', help='comma-separated object counts of the video rows')
    parser.add_argument('--precisions', default='float32,bfloat16')
    parser.add_argument('--modes', default='eager,compiled')
    parser.add_argument('--frames', type=int, help='frames of the synthetic video')
    parser.add_argument('--height', type=int, help='of the synthetic image and video')
    parser.add_argument('--width', type=int, help='of the synthetic image and video')
    parser.add_argument('--image-size', type=int, help="model input size (0: the config's, 1024)")
    parser.add_argument('--repeats', type=int, help='timed setimage calls (median)')
    parser.add_argument('--amg-points', type=int, help='AMG points_per_side (32 is the default)')
    parser.add_argument('--amg-repeats', type=int, help='timed AMG images (median)')
    parser.add_argument('--video-repeats', type=int, default=1, help='timed passes after the warm-up (median)')
    parser.add_argument('--budget-s', type=float, help='seconds from the start; rows starting later are skipped')
    parser.add_argument('--row-timeout-s', type=float, help='seconds one side of one row may take')
    parser.add_argument('--threads', type=int, help='torch threads (0: torch default)')
    parser.add_argument('--out', default=None, help='markdown file, rewritten after every row')
    parser.add_argument('--dry-run', action='store_true', help='CPU-sized defaults (below); finishes in minutes')
    args = parser.parse_args(argv)
    for key, value in (DRY_RUN if args.dry_run else DEFAULTS).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    args.configs = args.configs.split(',')
    args.objects = [int(n) for n in args.objects.split(',')]
    args.precisions, args.modes = args.precisions.split(','), args.modes.split(',')
    return args


def main(argv=None):
    args = parseargs(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    # each config, precision and batch of objects is a new module instance: room for all their graphs
    torch._dynamo.config.cache_size_limit = max(torch._dynamo.config.cache_size_limit, 64)
    clock = Clock(args.budget_s, args.row_timeout_s)
    steps = plan(args)
    with tempfile.TemporaryDirectory(prefix='benchmark_gpu_') as workdir:
        bench = gpurows.Bench(args, workdir)
        done = []
        # Meta's results that a later batch_objects=False row compares with keep their outputs
        keep = {step.key('meta') for step in steps if not step.batch}
        for index, step in enumerate(steps):
            results = runstep(step, bench, clock)
            new = formatrows(step, results, bench)
            done += new
            for side in ('ours', 'meta'):
                result = bench.results[step.key(side)]
                if isinstance(result, dict) and (step.key(side) not in keep or not step.batch):
                    result.pop('output', None)
            for row in new:
                print(f'[{clock.elapsed():.0f} s] ' + ' | '.join(map(str, row)), file=sys.stderr, flush=True)
            rows = done + [row for later in steps[index + 1:] for row in pendingrows(later, bench, 'not run yet')]
            if args.out:
                writeatomically(args.out, table(args, rows, clock))
    text = table(args, done, clock)
    if args.out:
        writeatomically(args.out, text)
    print(text)
    return 0


if __name__ == '__main__':
    sys.exit(main())
