"""The ``ssseg train`` sub-command: fine-tune SAMV2 with mmengine's Runner.

    ssseg train --cfg samv21_hiera_tiny_coco --work-dir work/coco --train-ann ann.json --train-images images/
    ssseg train --cfg samv21_hiera_tiny_davis --work-dir work/davis --train-videos DAVIS/ --max-iters 2000
    torchrun --nproc_per_node 2 -m ssseg.inference train ...  (scripts/dist_train.sh 2 ...)

Every input is checked before training starts (the config and its overrides, the checkpoint, the work dir, the
device, and every file of the dataset); a bad one ends the command with one line ``ssseg train: error: ...`` on
stderr and exit status 2.
"""
import os
import sys

import torch

_DATA_FLAGS = {  # dataset type -> ((flag, its config key), ...)
    'COCOInstanceDataset': (('train_ann', 'ann_file'), ('train_images', 'img_dir')),
    'DAVISVideoDataset': (('train_videos', 'videos_dir'),),
}
PREFIX = 'ssseg train'


def addtrainparser(commands):
    """Add the ``train`` sub-command to ``commands`` (argparse sub-parsers); values are checked by :func:`runtrain`."""
    train = commands.add_parser('train', help='fine-tune SAMV2 on COCO images or DAVIS videos',
                                description='Fine-tune SAMV2 (mmengine Runner). The work dir receives resumable '
                                            'checkpoints (iter_N.pth), losses.jsonl and model_final.pt.')
    train.add_argument('--cfg', help='fine-tune config: a shipped name (e.g. samv21_hiera_tiny_davis, under '
                                     'ssseg/configs/samv2/finetune/) or a .py file; configs are executable Python')
    train.add_argument('--work-dir', dest='work_dir', help='output folder (created if missing)')
    train.add_argument('--train-ann', dest='train_ann', help='COCO instance JSON (image configs)')
    train.add_argument('--train-images', dest='train_images', help='image folder of --train-ann (image configs)')
    train.add_argument('--train-videos', dest='train_videos',
                       help='DAVIS-style folder with JPEGImages/<video>/*.jpg and Annotations/<video>/*.png '
                            '(video configs)')
    train.add_argument('--ckpt', help="checkpoint to start from (default: the config's ckptpath, Meta's release)")
    train.add_argument('--max-iters', dest='max_iters', help='iterations (batches) to train (default: the config\'s)')
    train.add_argument('--lr', help='base learning rate; the vision rate keeps its ratio to it')
    train.add_argument('--batch-size', dest='batch_size', help='clips or images per process and iteration')
    train.add_argument('--cfg-options', dest='cfg_options', nargs='+', default=[], metavar='KEY=VALUE',
                       help='config overrides, e.g. TRAIN_CFG.freeze=[image_encoder] TRAIN_CFG.num_workers=4')
    train.add_argument('--resume', action='store_true', help='continue from the latest checkpoint of --work-dir')
    train.add_argument('--device', help='cpu, cuda or cuda:N (default: cuda if available, else cpu)')


def _positive(flag, text, kind):
    try:
        value = kind(text)
    except (TypeError, ValueError):
        value = None
    if value is None or value <= 0 or (kind is float and value != value):
        raise ValueError(f'{flag} must be a positive {kind.__name__}, got {text!r}')
    return value


def _loadcfg(args):
    from .config import loadfinetunecfg, parsecfgoptions
    if not args.cfg:
        raise ValueError('--cfg is required: a fine-tune config name (e.g. samv21_hiera_tiny_davis) or a .py file')
    options = parsecfgoptions(args.cfg_options)
    try:
        cfg = loadfinetunecfg(args.cfg, options)
    except (ValueError, TypeError, OSError) as error:
        message = str(error)  # the loader's messages start with "cfg" or "cfg-options" (the argument)
        raise ValueError(f'--{message}' if message.startswith('cfg') else f'--cfg: {message}') from error
    train = cfg['TRAIN_CFG']
    if args.max_iters is not None:
        train['max_iters'] = _positive('--max-iters', args.max_iters, int)
    if args.batch_size is not None:
        train['batch_size'] = _positive('--batch-size', args.batch_size, int)
    if args.lr is not None:
        _setlr(train, _positive('--lr', args.lr, float))
    if args.ckpt is not None:
        if not os.path.isfile(args.ckpt):
            raise FileNotFoundError(f'--ckpt: no such file: {args.ckpt!r}')
        cfg['SEGMENTOR_CFG']['ckptpath'] = args.ckpt
    _setdata(args, train)
    return cfg


def _setlr(train, lr):
    optimizer = train['optim_wrapper']['optimizer']
    paramwise = train['optim_wrapper'].get('paramwise_cfg') or {}
    if paramwise.get('vision_lr') is not None:
        paramwise['vision_lr'] = paramwise['vision_lr'] * lr / optimizer['lr']
    optimizer['lr'] = lr


def _setdata(args, train):
    """Put the data flags into TRAIN_CFG['dataset'], refusing flags of the other kind of dataset."""
    dataset = train['dataset']
    kind = dataset.get('type')
    wanted = _DATA_FLAGS.get(kind, ())
    given = [flag for flags in _DATA_FLAGS.values() for flag, _ in flags if getattr(args, flag)]
    others = [flag for flag in given if flag not in dict(wanted)]
    names = ' '.join(f'--{flag.replace("_", "-")}' for flag, _ in wanted)
    if others:
        raise ValueError(f'--{others[0].replace("_", "-")} does not fit the config\'s dataset {kind} (it takes '
                         f'{names or "its paths from the config"}); choose a config for that data')
    for flag, key in wanted:
        value = getattr(args, flag)
        if value is not None:
            if not os.path.exists(value):
                raise FileNotFoundError(f'--{flag.replace("_", "-")}: no such file or folder: {value!r}')
            dataset[key] = value
        elif not dataset.get(key):
            raise ValueError(f'{names} required: the config\'s dataset {kind} has no {key}')


def _checkworkdir(work_dir, resume):
    """Refuse a work dir that is a file, unwritable, or whose checkpoints do not fit --resume."""
    from ssseg.inference.cli import checkoutputfolder
    if not work_dir:
        raise ValueError('--work-dir is required: the folder for checkpoints, losses.jsonl and model_final.pt')
    checkoutputfolder(work_dir, '--work-dir')
    last = os.path.join(work_dir, 'last_checkpoint')
    if resume:
        saved = open(last, encoding='utf-8').read().strip() if os.path.isfile(last) else None
        if not saved or not os.path.isfile(saved):
            raise FileNotFoundError(f'--resume: no checkpoint to resume in {work_dir!r} ({last} '
                                    f'{"names the missing file " + repr(saved) if saved else "is missing"}); '
                                    'run without --resume to start')
    elif os.path.isfile(last):
        raise FileExistsError(f'--work-dir {work_dir!r} holds the checkpoints of an earlier run: pass --resume to '
                              'continue it, or choose another folder')


def _prepare(args):
    """(cfg, device, dataset, model) with every input checked; raises ValueError/TypeError/OSError naming the flag."""
    from ssseg.modules.models.segmentors.samv2.predictors.modelchoice import defaultdevice
    from ssseg.modules.utils.checkpoints import CheckpointError, CheckpointNotFoundError

    from .runner import builddataset, buildmodel, traindevice
    cfg = _loadcfg(args)
    _checkworkdir(args.work_dir, args.resume)
    try:
        device = traindevice(defaultdevice(args.device))
    except (ValueError, TypeError) as error:
        raise ValueError(f'--{error}') from None  # its messages start with "device"
    dataset = builddataset(cfg['TRAIN_CFG']['dataset'], cfg['SEGMENTOR_CFG']['image_size'])
    try:
        model = buildmodel(cfg)
    except (CheckpointError, CheckpointNotFoundError) as error:
        flag = '--ckpt' if args.ckpt is not None else "--ckpt (default: the config's checkpoint)"
        raise ValueError(f'{flag}: {error}') from error
    except (ValueError, TypeError) as error:
        raise ValueError(f'--cfg: {error}') from error
    return cfg, device, dataset, model


def runtrain(args) -> int:
    """Run ``ssseg train``.

    Args:
        args: the parsed ``train`` arguments (see :func:`addtrainparser`).
    Returns:
        0 when training finished; 2 for bad input (one line on stderr, nothing trained).
    """
    from ssseg.modules.datasets import DatasetError

    from .runner import buildrunner, processgroup, worldsize
    try:
        cfg, device, dataset, model = _prepare(args)
    except (DatasetError, ValueError, TypeError, OSError) as error:
        print(f'{PREFIX}: error: {" ".join(str(error).split())}', file=sys.stderr, flush=True)
        return 2
    if worldsize() > 1 and device.type == 'cpu' and 'OMP_NUM_THREADS' not in os.environ:
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // worldsize()))
    with processgroup(device):
        buildrunner(cfg, args.work_dir, dataset=dataset, model=model, device=device, resume=args.resume).train()
    return 0
