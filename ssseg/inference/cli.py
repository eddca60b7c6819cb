"""Argument parsing and the entry point of ``python -m ssseg.inference`` / ``ssseg``.

    ssseg image --cfg samv21_hiera_tiny --image truck.jpg --point 500,375 --outdir out
    ssseg amg   --cfg samv21_hiera_tiny --image photos/ --points-per-side 32 --outdir out
    ssseg video --cfg samv21_hiera_tiny --video bedroom.mp4 --frame 0 --obj 1 --point 210,350 --outdir out
    ssseg video --cfg samv21_hiera_tiny --stream --video 0 --obj 1 --box 100,80,300,260 --outdir out

Bad input ends the command with a one-line ``ssseg <command>: error: ...`` on stderr and exit status 2;
a folder run where some images failed exits with 1 after finishing the others. ``video --stream`` exits
with 130 after Ctrl-C and with 1 when a live source drops, its outputs finalised either way.
"""
import argparse
import os
import sys
from typing import Optional, Sequence

import torch
from tqdm import tqdm

from ..evaluation.cli import addevalparser, runeval
from ..modules.utils.checkpoints import CheckpointError, CheckpointNotFoundError
from ..training.cli import addtrainparser, runtrain
from .distributed import Ranks
from .imagejobs import AMG_OPTIONS, runimages
from .streamjob import runstream
from .videojob import runvideo


class _Ordered(argparse.Action):
    """Record --frame/--obj/--point/--box in command-line order (a point belongs to the latest --obj)."""

    def __call__(self, parser, namespace, values, option_string=None):
        events = getattr(namespace, 'events', None) or []
        events.append((self.dest, values))
        namespace.events = events


def _commonoptions():
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument('--cfg', required=True,
                        help='config: a .py file (e.g. under ssseg/configs/samv2/) or a shipped bare name, e.g. '
                             'samv21_hiera_tiny. Configs are executable Python: load only configs you trust.')
    common.add_argument('--ckpt', default=None, help="checkpoint path or URL (default: the config's)")
    common.add_argument('--device', default=None, help='cpu, cuda or cuda:N (default: cuda if available, else cpu)')
    common.add_argument('--precision', default='float32', choices=('float32', 'bfloat16'),
                        help='float32 (default, matches Meta) or the opt-in bfloat16 (faster on GPUs and '
                             'AVX512-BF16/AMX CPUs)')
    common.add_argument('--compile', action='store_true',
                        help='torch.compile the model (opt-in; the first image or frames take longer while it '
                             'compiles, later ones run faster, mostly on GPUs)')
    common.add_argument('--outdir', required=True, help='output folder (created if missing; nothing in it is removed)')
    return common


def buildparser() -> argparse.ArgumentParser:
    """The ``ssseg`` parser with its ``image``, ``amg`` and ``video`` sub-commands.

    Returns:
        The parser; ``parse_args`` exits with status 2 and a one-line error on a malformed flag.
    """
    parser = argparse.ArgumentParser(prog='ssseg', description='SAM 2 inference from the command line: masks on disk.')
    commands = parser.add_subparsers(dest='command', required=True, metavar='{image,amg,video,train,eval}')
    common = _commonoptions()

    image = commands.add_parser('image', parents=[common], help='segment objects from points and boxes')
    image.add_argument('--image', required=True, help='an image file, or a folder of images')
    image.add_argument('--point', action='append', default=[], metavar='X,Y[,LABEL]',
                       help='a click in pixels; LABEL 1 (default) foreground, 0 background; repeatable')
    image.add_argument('--box', action='append', default=[], metavar='X1,Y1,X2,Y2', help='a box in pixels; repeatable')
    image.add_argument('--multimask', action='store_true', help='three candidate masks per object instead of one')
    image.add_argument('--prompts', default=None, metavar='FILE',
                       help='JSON {"points": [[x, y, label]...], "boxes": [[x1, y1, x2, y2]...]}, or such an entry '
                            'per image file name')
    image.add_argument('--overwrite', action='store_true', help='redo images that already have results')

    amg = commands.add_parser('amg', parents=[common], help='automatic masks of everything in the image(s)')
    amg.add_argument('--image', required=True, help='an image file, or a folder of images')
    for name, kind in AMG_OPTIONS:
        flag = '--' + name.replace('_', '-')
        if kind is bool:
            amg.add_argument(flag, dest=name, action='store_const', const=True, default=None, help='generator option')
        else:
            amg.add_argument(flag, dest=name, type=kind, default=None, help=f'generator option ({kind.__name__})')
    amg.add_argument('--overwrite', action='store_true', help='redo images that already have results')

    video = commands.add_parser('video', parents=[common], help='track objects prompted on frames through a video')
    video.add_argument('--video', required=True, metavar='SOURCE',
                       help='a video file (mp4, ...) or a folder of numbered JPEG frames; with --stream a video file, '
                            'a camera index (digits, e.g. 0) or a stream URL (rtsp://, rtsps://, http://, https://, '
                            'rtmp://, udp://, tcp://)')
    video.add_argument('--stream', action='store_true',
                       help='read the frames in order and track each as it arrives, in bounded memory (no backward '
                            'pass: an object has masks from its first prompted frame on); prompts apply when their '
                            'frame arrives; Ctrl-C stops cleanly (exit 130), a dropped live source exits 1')
    video.add_argument('--max-frames', type=int, default=None, metavar='N',
                       help='with --stream: stop after N frames (default: at the end of the source, or Ctrl-C)')
    video.add_argument('--frame', dest='frame', action=_Ordered, metavar='N', help='frame of the prompts that '
                                                                                   'follow (default 0)')
    video.add_argument('--obj', dest='obj', action=_Ordered, metavar='ID', help='object id of the prompts that follow')
    video.add_argument('--point', dest='point', action=_Ordered, metavar='X,Y[,LABEL]', help='a click on the '
                                                                                             'current frame and object')
    video.add_argument('--box', dest='box', action=_Ordered, metavar='X1,Y1,X2,Y2', help='a box on the current '
                                                                                         'frame and object')
    video.add_argument('--prompts', default=None, metavar='FILE',
                       help='JSON list of {"frame": N, "obj": ID, "points": [[x, y, label]...], "box": [x1, y1, x2, '
                            'y2]}')
    video.add_argument('--indexed', action='store_true', help='one PNG per frame whose values are object ids')
    video.add_argument('--fps', type=float, default=None,
                       help="overlay frame rate (default: the video's or stream's, or 24)")
    video.set_defaults(events=[])
    addtrainparser(commands)
    addevalparser(commands)
    return parser


def _loadcfg(args):
    from ..modules.utils.configs import loadsegmentorcfg
    try:
        cfg = loadsegmentorcfg(args.cfg)
    except (ValueError, TypeError, OSError) as error:
        # the loader's messages start with "cfg" (the argument): make that the flag
        message = str(error)
        raise ValueError(f'--{message}' if message.startswith('cfg') else f'--cfg: {message}') from error
    if args.ckpt is not None:
        if '://' not in args.ckpt and not os.path.isfile(args.ckpt):
            raise FileNotFoundError(f'--ckpt: no such file: {args.ckpt!r}')
        cfg['ckptpath'] = args.ckpt
    if not cfg.get('ckptpath'):
        raise ValueError(f'--ckpt: the config {args.cfg!r} names no checkpoint (ckptpath); give --ckpt PATH_OR_URL')
    return cfg


def checkdevice(device):
    """``--device`` checked by the predictors' own rule before any work, the message naming the flag."""
    if device is None:
        return None
    from ..modules.models.segmentors.samv2.predictors.modelchoice import defaultdevice
    try:
        defaultdevice(device)
    except (ValueError, TypeError) as error:
        raise ValueError(f'--{error}') from None  # its messages start with "device"
    return device


def checkoutputfolder(path, flag='--outdir'):
    """Refuse an output folder (``flag``) that is a file, or that could not be written in, before any work is done.

    Raises:
        NotADirectoryError: ``path`` is a file; PermissionError: the folder (or the nearest existing parent, where
            it will be created) is not writable.
    """
    if os.path.exists(path) and not os.path.isdir(path):
        raise NotADirectoryError(f'{flag} must be a folder (created if missing), got the file {path!r}')
    existing = os.path.abspath(path)
    while not os.path.exists(existing):  # the nearest folder that exists is where it will be created
        existing = os.path.dirname(existing)
    if not os.access(existing, os.W_OK | os.X_OK):
        raise PermissionError(f'{flag} {path!r}: no permission to write in {existing!r}')


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run one sub-command; bad input is reported as one ``ssseg <command>: error: ...`` line on stderr.

    Args:
        argv: the arguments after ``ssseg``; None reads ``sys.argv``.
    Returns:
        The exit status: 0 done, 1 some images of a folder failed or a ``video --stream`` live source dropped,
        2 bad input, 130 a ``video --stream`` run stopped by Ctrl-C.
    Raises:
        SystemExit: from argparse, for a malformed command line (status 2) or ``--help`` (status 0).
    """
    parser = buildparser()
    args = parser.parse_args(argv)
    if args.command in ('train', 'eval'):  # their own options and errors (exit 2, one line) live with them
        return (runtrain if args.command == 'train' else runeval)(args)
    prefix = f'ssseg {args.command}'

    def log(message):
        # through tqdm, so that a message does not land in the middle of a progress bar's line
        tqdm.write(f'{prefix}: {message}', file=sys.stderr)
    try:
        device = checkdevice(args.device)
        cfg = _loadcfg(args)
        checkoutputfolder(args.outdir)
        with Ranks(device) as ranks:
            if ranks.world > 1 and ranks.device.type == 'cpu' and 'OMP_NUM_THREADS' not in os.environ:
                torch.set_num_threads(max(1, (os.cpu_count() or 1) // ranks.world))
            with torch.no_grad():
                if args.command == 'video':
                    if ranks.world > 1:
                        raise ValueError('video runs in one process; use torchrun only for image and amg folders')
                    return (runstream if args.stream else runvideo)(args, cfg, ranks.device, log)
                return runimages(args, ranks, cfg, log)
    except (ValueError, TypeError, OSError) as error:
        message = ' '.join(str(error).split())
        if isinstance(error, (CheckpointError, CheckpointNotFoundError)) and not message.startswith('--ckpt'):
            flag = '--ckpt' if args.ckpt is not None else "--ckpt (default: the config's checkpoint)"
            message = f'{flag}: {message}'
        print(f'{prefix}: error: {message}', file=sys.stderr, flush=True)
        return 2

