"""The ``ssseg eval`` sub-command: evaluate a checkpoint on COCO-style images or DAVIS-style videos.

    ssseg eval --cfg samv21_hiera_tiny --ann ann.json --images images/ --outdir out
    ssseg eval --cfg samv21_hiera_tiny_coco --ckpt work/model_final.pt --ann ann.json --images images/ --outdir out
    ssseg eval --cfg samv21_hiera_tiny_davis --ckpt work/model_final.pt --videos DAVIS/ --outdir out

Images give ``miou_click`` (one click at the pixel farthest from the boundary) and ``miou_box``; videos give ``j``,
``f`` and ``jf`` (DAVIS semi-supervised). ``--outdir/report.json`` (written atomically) holds them with the
per-image or per-video values, the config, checkpoint and data paths; one summary line goes to stdout. Every input
is checked before any model runs (the flags, the config and checkpoint, the device, the output folder and every file
of the data); a bad one ends the command with one line ``ssseg eval: error: ...`` on stderr and exit status 2.
"""
import argparse
import os
import sys

import torch

PREFIX = 'ssseg eval'


def addevalparser(commands):
    """Add the ``eval`` sub-command to ``commands`` (argparse sub-parsers); values are checked by :func:`runeval`."""
    ev = commands.add_parser('eval', help='evaluate a checkpoint on COCO images or DAVIS videos',
                             description='Evaluate SAMV2: one-click and box mIoU on COCO-style images (--ann with '
                                         '--images), or J&F on DAVIS-style videos (--videos); writes '
                                         'OUTDIR/report.json.')
    ev.add_argument('--cfg', metavar='NAME_OR_FILE',
                    help='a model config (e.g. samv21_hiera_tiny), a fine-tune config (e.g. samv21_hiera_tiny_coco, '
                         'its SEGMENTOR_CFG) or a .py file; configs are executable Python: load only configs you trust')
    ev.add_argument('--ckpt', metavar='FILE',
                    help="checkpoint path or URL, e.g. a fine-tune's model_final.pt (default: the config's)")
    ev.add_argument('--ann', metavar='FILE', help='COCO instance JSON (with --images)')
    ev.add_argument('--images', metavar='DIR', help='image folder of --ann')
    ev.add_argument('--videos', metavar='DIR',
                    help='DAVIS-style folder with JPEGImages/<video>/*.jpg and Annotations/<video>/*.png')
    ev.add_argument('--outdir', metavar='DIR', help='output folder for report.json (created if missing)')
    ev.add_argument('--device', help='cpu, cuda or cuda:N (default: cuda if available, else cpu)')
    ev.add_argument('--max-images', dest='max_images', metavar='N', help='evaluate only the first N images')
    ev.add_argument('--max-videos', dest='max_videos', metavar='N', help='evaluate only the first N videos')


def _checkflags(args):
    """'images' or 'videos' and the item limit, the flags checked against each other (nothing read yet)."""
    from ..training.cli import _positive
    if not args.cfg:
        raise ValueError('--cfg is required: a model config name (e.g. samv21_hiera_tiny), a fine-tune config name '
                         '(e.g. samv21_hiera_tiny_coco) or a .py file')
    if not args.outdir:
        raise ValueError('--outdir is required: the folder for report.json')
    coco = args.ann is not None or args.images is not None
    if coco and args.videos is not None:
        raise ValueError('--videos cannot go with --ann/--images: evaluate either images (--ann FILE --images DIR) '
                         'or videos (--videos DIR)')
    if not coco and args.videos is None:
        raise ValueError('no data: give --ann FILE --images DIR (COCO images) or --videos DIR (DAVIS-style videos)')
    if coco and (args.ann is None or args.images is None):
        raise ValueError(f'{"--images" if args.ann is not None else "--ann"} is required with '
                         f'{"--ann" if args.ann is not None else "--images"}: COCO data are --ann FILE --images DIR')
    wrong, right = ('--max-videos', '--max-images') if coco else ('--max-images', '--max-videos')
    if getattr(args, wrong.lstrip('-').replace('-', '_')) is not None:
        raise ValueError(f'{wrong} does not apply to {"images" if coco else "videos"}; use {right}')
    limit = getattr(args, right.lstrip('-').replace('-', '_'))
    return ('images' if coco else 'videos'), (None if limit is None else _positive(right, limit, int))


def _checkpaths(args, kind):
    paths = [('--ann', args.ann, os.path.isfile), ('--images', args.images, os.path.isdir)] if kind == 'images' \
        else [('--videos', args.videos, os.path.isdir)]
    for flag, path, exists in paths:
        if not exists(path):
            what = 'file' if exists is os.path.isfile else 'folder'
            raise FileNotFoundError(f'{flag}: no such {what}: {path!r}')


def _loadcfg(args):
    """The SAMV2 config of ``--cfg`` (a fine-tune config gives its SEGMENTOR_CFG) with ``--ckpt`` applied."""
    from ..inference.cli import _loadcfg as loadmodelcfg  # here: ssseg.inference.cli imports this module
    from ..modules.utils.configs import resolveconfigpath
    from ..training.config import FAMILY, availablefinetuneconfigs
    name = args.cfg
    if name in availablefinetuneconfigs():
        name = resolveconfigpath(name, FAMILY)  # the file's SEGMENTOR_CFG inherits the model config
    try:
        return loadmodelcfg(argparse.Namespace(cfg=name, ckpt=args.ckpt))
    except ValueError as error:
        if 'known names' not in str(error):
            raise
        raise ValueError(f'{error}; fine-tune configs: {", ".join(availablefinetuneconfigs())}') from None


def _builddataset(args, kind, image_size):
    from ..modules.datasets import COCOInstanceDataset, DAVISVideoDataset, checkdataset
    if kind == 'images':
        dataset = COCOInstanceDataset(args.ann, args.images, image_size=image_size)
    else:  # num_frames=1: evaluation needs no training window of consecutive annotated frames
        dataset = DAVISVideoDataset(args.videos, num_frames=1, image_size=image_size)
    checkdataset(dataset)
    return dataset


def _buildpredictor(args, kind, cfg, device):
    from ..modules.models.segmentors.samv2 import SAMV2ImagePredictor, SAMV2VideoPredictor
    from ..modules.utils.checkpoints import CheckpointError, CheckpointNotFoundError
    try:
        if kind == 'images':
            return SAMV2ImagePredictor(samv2_cfg=cfg, device=device)
        return SAMV2VideoPredictor(samv2_cfg=cfg, device=device, progress=False)
    except (CheckpointError, CheckpointNotFoundError) as error:
        flag = '--ckpt' if args.ckpt is not None else "--ckpt (default: the config's checkpoint)"
        raise ValueError(f'{flag}: {error}') from error


def _prepare(args):
    """(kind, limit, cfg, dataset, predictor), every input checked; raises ValueError/OSError naming the flag or
    DatasetError naming the file."""
    from ..inference.cli import checkdevice, checkoutputfolder
    kind, limit = _checkflags(args)
    _checkpaths(args, kind)
    checkoutputfolder(args.outdir)
    device = checkdevice(args.device)
    cfg = _loadcfg(args)
    dataset = _builddataset(args, kind, cfg['image_size'])
    return kind, limit, cfg, dataset, _buildpredictor(args, kind, cfg, device)


def _summary(kind, result):
    def number(value):
        return 'n/a' if value is None else f'{value:.4f}'
    if kind == 'images':
        return (f'{result["num_objects"]} objects on {result["num_images"]} images: mIoU one click '
                f'{number(result["miou_click"])}, box {number(result["miou_box"])}')
    return (f'{result["num_objects"]} objects in {result["num_videos"]} videos: J {number(result["j"])}, '
            f'F {number(result["f"])}, J&F {number(result["jf"])}')


def runeval(args) -> int:
    """Run ``ssseg eval``.

    Args:
        args: the parsed ``eval`` arguments (see :func:`addevalparser`).
    Returns:
        0 when ``report.json`` was written; 2 for bad input (one line on stderr, nothing evaluated).
    """
    from ..modules.datasets import DatasetError
    from ..modules.utils.fileio import writejson
    from .evaluate import evaluateimages, evaluatevideos
    try:
        kind, limit, cfg, dataset, predictor = _prepare(args)
    except (DatasetError, ValueError, TypeError, OSError) as error:
        print(f'{PREFIX}: error: {" ".join(str(error).split())}', file=sys.stderr, flush=True)
        return 2
    with torch.inference_mode():
        if kind == 'images':
            result = evaluateimages(predictor, dataset, progress=True, limit=limit)
            data = dict(ann=args.ann, images=args.images)
        else:
            result = evaluatevideos(predictor, dataset, progress=True, limit=limit)
            data = dict(videos=args.videos)
    report = dict(task=kind, cfg=args.cfg, ckpt=cfg['ckptpath'], device=str(predictor.device), **data, **result)
    os.makedirs(args.outdir, exist_ok=True)
    path = writejson(os.path.join(args.outdir, 'report.json'), report, indent=1)
    print(f'{PREFIX}: {_summary(kind, result)}; wrote {path}', flush=True)
    return 0
