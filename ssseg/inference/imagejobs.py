"""The ``image`` and ``amg`` sub-commands: one image or a folder of them, results written per image.

Per image ``<stem>`` (the file name without extension) in ``--outdir``:
- image: ``<stem>_mask<k>.png`` (``<stem>_obj<n>_mask<k>.png`` with several boxes), 0/255 masks at the
  image's size; ``<stem>_overlay.png``; ``<stem>.json`` with the prompts, scores and mask files.
- amg: ``<stem>_labels.png`` (16-bit label map), ``<stem>_overlay.png`` and ``<stem>.json``, a COCO file
  (RLE masks) that ``pycocotools.coco.COCO`` loads. A folder run also writes ``annotations.json``,
  one COCO file for the whole folder.
Every file appears atomically and the JSON is written last: an image whose JSON exists with the same
settings is finished and skipped on a re-run (``--overwrite`` redoes it).
"""
import argparse
import json
import os
import sys
from typing import Any, Callable, Dict, List, Optional, Tuple

import cv2
import numpy as np
from tqdm import tqdm

from ..modules.utils.fileio import writeimage, writejson
from ..modules.utils.maskio import recordstococo, recordstolabelmap
from .distributed import Ranks, mergecoco
from .promptargs import imageprompts, imagepromptsfromfile, readjson

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp')
MERGED_NAME = 'annotations.json'


def listimages(path: str) -> Tuple[Optional[str], List[str]]:
    """The images that ``--image`` names: one file, or the images of a folder.

    Args:
        path: an image file or a folder.
    Returns:
        (the folder, or None for one file; the image paths sorted by file name).
    Raises:
        FileNotFoundError: nothing at ``path``.
        ValueError: a folder without images, or two images that would write the same outputs.
    """
    if os.path.isdir(path):
        names = sorted(n for n in os.listdir(path) if n.lower().endswith(IMAGE_EXTENSIONS) and not n.startswith('.'))
        if not names:
            raise ValueError(f'--image: folder {path!r} holds no image ({", ".join(IMAGE_EXTENSIONS)})')
        stems = {}
        for name in names:
            stem = os.path.splitext(name)[0]
            if stem in stems:
                raise ValueError(f'--image: {stems[stem]!r} and {name!r} in {path!r} would write the same outputs; '
                                 'rename one of them')
            stems[stem] = name
        return path, [os.path.join(path, n) for n in names]
    if not os.path.isfile(path):
        raise FileNotFoundError(f'--image: no such file or folder: {path!r}')
    return None, [path]


def readimage(path: str) -> np.ndarray:
    """One image file decoded by OpenCV.

    Args:
        path: the image file.
    Returns:
        (H, W, 3) uint8 RGB.
    Raises:
        ValueError: OpenCV cannot decode it.
    """
    image = cv2.imread(path, cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f'--image: cannot read {path!r} as an image (missing, empty or not an image format OpenCV '
                         'reads)')
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def _finished(json_path, settings):
    """Whether ``json_path`` holds a finished result made with these settings."""
    try:
        with open(json_path, encoding='utf-8') as file:
            saved = json.load(file)
    except (OSError, ValueError):
        return False
    saved = saved.get('info', saved) if isinstance(saved, dict) else None
    return isinstance(saved, dict) and saved.get('settings') == settings


def _segmentimage(predictor, image, prompts, multimask):
    """[(object index, masks (M, H, W) bool, scores (M,))] for one image's prompts."""
    predictor.setimage(image)
    points = np.asarray(prompts['points'], np.float32).reshape(-1, 2) if prompts['points'] else None
    labels = np.asarray(prompts['labels'], np.int32) if prompts['points'] else None
    boxes = prompts['boxes']
    if len(boxes) > 1:
        masks, scores, _ = predictor.predict(box=np.asarray(boxes, np.float32), multimask_output=multimask)
        return [(n, masks[n] > 0, scores[n]) for n in range(len(boxes))]
    box = np.asarray(boxes[0], np.float32) if boxes else None
    masks, scores, _ = predictor.predict(point_coords=points, point_labels=labels, box=box, multimask_output=multimask)
    return [(0, masks > 0, scores)]


def _imageoutputs(path, image, results, prompts, settings, outdir):
    from ..modules.models.segmentors.samv2.outputs.visualization import saveoverlay
    stem = os.path.splitext(os.path.basename(path))[0]
    several = len(results) > 1
    entries, best = [], []
    for obj, masks, scores in results:
        for k, mask in enumerate(masks):
            name = f'{stem}_obj{obj}_mask{k}.png' if several else f'{stem}_mask{k}.png'
            writeimage(os.path.join(outdir, name), mask.astype(np.uint8) * 255)
            entries.append({'file': name, 'object': obj, 'index': k, 'score': float(scores[k])})
        best.append(masks[int(np.argmax(scores))])
    saveoverlay(image, np.stack(best), os.path.join(outdir, f'{stem}_overlay.png'))
    writejson(os.path.join(outdir, f'{stem}.json'), {
        'image': os.path.basename(path), 'height': image.shape[0], 'width': image.shape[1], 'settings': settings,
        'prompts': prompts, 'masks': entries, 'overlay': f'{stem}_overlay.png'}, indent=1)


def _amgoutputs(path, image, records, settings, outdir):
    from ..modules.models.segmentors.samv2.outputs.visualization import saveoverlay
    stem = os.path.splitext(os.path.basename(path))[0]
    size = image.shape[:2]
    labels = recordstolabelmap(records, size)
    writeimage(os.path.join(outdir, f'{stem}_labels.png'), labels)
    saveoverlay(image, records, os.path.join(outdir, f'{stem}_overlay.png'))
    coco = recordstococo(records, size, file_name=os.path.basename(path))
    # the settings go into the COCO file's info, which marks the image as finished
    coco['info']['settings'] = settings
    writejson(os.path.join(outdir, f'{stem}.json'), coco, indent=1)


def runimages(args: argparse.Namespace, ranks: Ranks, cfg: dict, log: Callable[[str], None]) -> int:
    """The ``image`` or ``amg`` sub-command over ``args.image``, this rank's share of it.

    Args:
        args: the parsed command line.
        ranks: this process's place in the job.
        cfg: the SAMV2 config dict, its ``ckptpath`` resolved.
        log: writes one message line for the user.
    Returns:
        The exit status: 0, or 1 when some images of a folder failed (the others are written).
    Raises:
        ValueError, OSError: bad prompts or options, or a single image that cannot be read or written.
    """
    folder, paths = listimages(args.image)
    names = [os.path.basename(p) for p in paths]
    settings, perimage = _settingsandprompts(args, cfg, names)
    os.makedirs(args.outdir, exist_ok=True)
    jsons = {name: os.path.join(args.outdir, os.path.splitext(name)[0] + '.json') for name in names}
    todo = [p for p in ranks.shard(paths) if args.overwrite or not _finished(jsons[os.path.basename(p)],
                                                                             _withprompts(settings, perimage, p, args))]
    skipped = len(ranks.shard(paths)) - len(todo)
    if skipped:
        log(f'skipping {skipped} finished image(s) (--overwrite to redo them)')
    failures = 0
    if todo:
        worker = _buildworker(args, cfg, ranks.device)
        for path in tqdm(todo, desc=f'{args.command} (rank {ranks.rank})' if ranks.world > 1 else args.command,
                         disable=len(todo) < 2 or not sys.stderr.isatty() and ranks.world > 1):
            try:
                image = readimage(path)
                item_settings = _withprompts(settings, perimage, path, args)
                if args.command == 'image':
                    prompts = perimage[os.path.basename(path)]
                    _imageoutputs(path, image, _segmentimage(worker, image, prompts, args.multimask), prompts,
                                  item_settings, args.outdir)
                else:
                    _amgoutputs(path, image, worker.generate(image), item_settings, args.outdir)
            except (ValueError, OSError) as error:
                if folder is None:
                    raise
                failures += 1
                log(f'failed on {path!r}: {error}')
    failures = ranks.sum(failures)
    if folder is not None and args.command == 'amg' and ranks.rank == 0:
        if failures:
            log(f'{failures} image(s) failed; {MERGED_NAME} is written once every image succeeded (re-run to finish)')
        else:
            mergecoco([jsons[n] for n in names], os.path.join(args.outdir, MERGED_NAME), names)
            log(f'wrote {os.path.join(args.outdir, MERGED_NAME)} ({len(names)} images)')
    return 1 if failures else 0


def _settingsandprompts(args, cfg, names):
    """(the settings recorded with every result, {image name: checked prompts} or None for amg)."""
    settings = {'command': args.command, 'cfg': args.cfg, 'ckpt': cfg['ckptpath'], 'precision': args.precision,
                'compile': args.compile}
    if args.command != 'image':
        return {**settings, 'generator': amgoptions(args)}, None
    if args.prompts is not None:
        if args.point or args.box:
            raise ValueError('give prompts either as --point/--box flags or as a --prompts file, not both')
        perimage = imagepromptsfromfile(readjson(args.prompts), names, args.prompts)
    else:
        shared = imageprompts(args.point, args.box, '--point/--box')
        perimage = {name: shared for name in names}
    return {**settings, 'multimask': bool(args.multimask)}, perimage


def _withprompts(settings, perimage, path, args):
    if args.command != 'image':
        return settings
    return {**settings, 'prompts': perimage[os.path.basename(path)]}


AMG_OPTIONS = (('points_per_side', int), ('points_per_batch', int), ('pred_iou_thresh', float),
               ('stability_score_thresh', float), ('stability_score_offset', float), ('box_nms_thresh', float),
               ('crop_n_layers', int), ('crop_nms_thresh', float), ('crop_overlap_ratio', float),
               ('crop_n_points_downscale_factor', int), ('min_mask_region_area', int), ('use_m2m', bool))


def amgoptions(args: argparse.Namespace) -> Dict[str, Any]:
    """The generator options given on the command line; the others keep the generator's defaults.

    Args:
        args: the parsed ``amg`` command line.
    Returns:
        {generator keyword argument: value}.
    """
    return {name: getattr(args, name) for name, _ in AMG_OPTIONS if getattr(args, name) is not None}


def _buildworker(args, cfg, device):
    from ..modules.models.segmentors.samv2 import SAMV2AutomaticMaskGenerator, SAMV2ImagePredictor
    if args.command == 'image':
        return SAMV2ImagePredictor(samv2_cfg=cfg, device=device, precision=args.precision, compile=args.compile or None)
    options = amgoptions(args)
    try:
        return SAMV2AutomaticMaskGenerator(samv2_cfg=cfg, device=device, output_mode='coco_rle', progress=False,
                                           precision=args.precision, compile=args.compile or None, **options)
    except (ValueError, TypeError) as error:
        # name the flags the user typed, not the generator's keyword arguments
        message = str(error)
        for name in sorted(options, key=len, reverse=True):
            message = message.replace(name, '--' + name.replace('_', '-'))
        if message == str(error):
            raise  # not about an option (e.g. the checkpoint): keep the error as it is
        raise type(error)(message) from error
