"""The ``video`` sub-command: prompt objects on frames of a video, track them, write masks and an overlay.

Outputs in ``--outdir``: ``masks/<obj id>/<frame:05d>.png`` (0/255 at the video's size) per frame and
object, or with ``--indexed`` one ``indexed/<frame:05d>.png`` per frame whose pixel values are object ids
(0 is background; later ids win where objects overlap); ``overlay.mp4`` (all objects over the frames);
``video.json`` with the prompts and the frames written. Files are written as frames are tracked and each
appears atomically, so memory stays bounded on long videos. ``--stream`` runs :mod:`.streamjob` instead.
"""
import argparse
import os
from typing import Any, Callable, Dict, List, Tuple

import cv2
import numpy as np
import torch
from tqdm import tqdm

from ..modules.utils.fileio import writeatomically, writeimage, writejson
from .promptargs import readjson, videoprompts

PALETTE_SEED = 0


def _palette(obj_ids):
    """{obj id: RGB colour}; ids 0..255 share one seeded table, larger ids get a colour seeded by the id
    (so memory does not grow with the largest id)."""
    table = np.random.default_rng(PALETTE_SEED).integers(40, 256, size=(256, 3))
    return {obj_id: table[obj_id] if obj_id < len(table)
            else np.random.default_rng([PALETTE_SEED, obj_id]).integers(40, 256, size=3) for obj_id in obj_ids}


def _sourcefps(video, fps):
    """The frame rate for the overlay: ``--fps``, else the video file's, else 24."""
    if fps is not None:
        if not fps > 0:
            raise ValueError(f'--fps must be > 0, got {fps}')
        return float(fps)
    if os.path.isfile(video):
        capture = cv2.VideoCapture(video)
        rate = capture.get(cv2.CAP_PROP_FPS)
        capture.release()
        if rate and rate > 0:
            return float(rate)
    return 24.0


def _maskpath(outdir, indexed, frame_idx, obj_id=None):
    if indexed:
        return os.path.join(outdir, 'indexed', f'{frame_idx:05d}.png')
    return os.path.join(outdir, 'masks', str(obj_id), f'{frame_idx:05d}.png')


def _writeframe(outdir, indexed, frame_idx, obj_ids, logits):
    """Write one frame's masks from (N, 1, H, W) logits; returns {obj id: (H, W) bool} as written (with
    ``indexed``, where an object lost an overlap to a later id, the label image shows the later one)."""
    masks = (logits[:, 0] > 0).cpu().numpy()
    if indexed:
        labels = np.zeros(masks.shape[1:], np.uint8)
        for obj_id, mask in zip(obj_ids, masks):
            labels[mask] = obj_id
        path = _maskpath(outdir, True, frame_idx)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        writeimage(path, labels)
        return {obj_id: labels == obj_id for obj_id in obj_ids}
    for obj_id, mask in zip(obj_ids, masks):
        path = _maskpath(outdir, False, frame_idx, obj_id)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        writeimage(path, mask.astype(np.uint8) * 255)
    return dict(zip(obj_ids, masks))


def _readmasks(outdir, indexed, frame_idx, obj_ids):
    """{obj id: (H, W) bool} written for one frame (objects without a file are left out)."""
    if indexed:
        labels = cv2.imread(_maskpath(outdir, True, frame_idx), cv2.IMREAD_UNCHANGED)
        return {} if labels is None else {obj_id: labels == obj_id for obj_id in obj_ids}
    masks = {}
    for obj_id in obj_ids:
        mask = cv2.imread(_maskpath(outdir, False, frame_idx, obj_id), cv2.IMREAD_GRAYSCALE)
        if mask is not None:
            masks[obj_id] = mask > 127
    return masks


def blend(rgb: np.ndarray, masks: Dict[int, np.ndarray], colors: Dict[int, np.ndarray]) -> np.ndarray:
    """One overlay frame: each object's colour blended half into its mask.

    Args:
        rgb: (H, W, 3) uint8 RGB frame.
        masks: {obj id: (H, W) bool}, blended in this order.
        colors: {obj id: RGB colour} from the palette.
    Returns:
        (H, W, 3) uint8 BGR, contiguous (what cv2.VideoWriter takes).
    """
    canvas = rgb.astype(np.float32)
    for obj_id, mask in masks.items():
        canvas[mask] = 0.5 * canvas[mask] + 0.5 * colors[obj_id]
    return np.ascontiguousarray(np.clip(canvas, 0, 255).astype(np.uint8)[..., ::-1])


def _writeoverlay(path, frames, frame_range, outdir, indexed, obj_ids, fps):
    """overlay.mp4: every frame in ``frame_range`` with its objects blended in (mp4v, OpenCV only)."""
    colors = _palette(obj_ids)
    height, width = frames.video_height, frames.video_width

    def writer(temp):
        video = cv2.VideoWriter(temp, cv2.VideoWriter_fourcc(*'mp4v'), fps, (width, height))
        if not video.isOpened():
            return False
        try:
            for frame_idx in tqdm(frame_range, desc='overlay video', disable=len(frame_range) < 10):
                video.write(blend(frames.rgbframe(frame_idx), _readmasks(outdir, indexed, frame_idx, obj_ids), colors))
        finally:
            video.release()
        return True
    writeatomically(path, writer)


def promptsofargs(args: argparse.Namespace) -> Tuple[List[Dict[str, Any]], List[int]]:
    """The video prompts of the command line (flags and ``--prompts`` file), checked for ``--indexed``.

    Args:
        args: the parsed command line.
    Returns:
        (groups, obj_ids): the prompts per (frame, object) as from ``videoprompts``, and the sorted object ids.
    Raises:
        ValueError, FileNotFoundError: bad prompts, or ids outside 1..255 with ``--indexed``.
    """
    data = readjson(args.prompts) if args.prompts is not None else None
    groups = videoprompts(args.events, data, args.prompts)
    obj_ids = sorted({g['obj'] for g in groups})
    if args.indexed and not 1 <= min(obj_ids) <= max(obj_ids) <= 255:
        bad = min(obj_ids) if min(obj_ids) < 1 else max(obj_ids)
        raise ValueError(f'--indexed writes 8-bit PNGs with 0 for background: object ids must be 1..255, got {bad}')
    return groups, obj_ids


def videosummary(args: argparse.Namespace, cfg: dict, num_frames: int, frames_written: Any, obj_ids: List[int],
                 groups: List[Dict[str, Any]]) -> Dict[str, Any]:
    """The contents of ``video.json``.

    Args:
        args: the parsed command line.
        cfg: the SAMV2 config dict, its ``ckptpath`` resolved.
        num_frames: frames in the video.
        frames_written: [first, last] frame with masks written (None for none).
        obj_ids: the objects tracked.
        groups: the prompts.
    Returns:
        The summary dict.
    """
    return {'video': args.video, 'num_frames': num_frames, 'frames_written': frames_written, 'objects': obj_ids,
            'prompts': groups, 'masks': 'indexed/<frame>.png' if args.indexed else 'masks/<obj id>/<frame>.png',
            'overlay': 'overlay.mp4', 'cfg': args.cfg, 'ckpt': cfg['ckptpath'], 'precision': args.precision,
            'compile': args.compile}


def runvideo(args: argparse.Namespace, cfg: dict, device: torch.device, log: Callable[[str], None]) -> int:
    """The ``video`` sub-command: prompt, propagate (forward, and backward when the first prompt is after
    frame 0) and write the masks, the overlay and ``video.json``.

    Args:
        args: the parsed command line.
        cfg: the SAMV2 config dict, its ``ckptpath`` resolved.
        device: where the model runs.
        log: writes one message line for the user.
    Returns:
        The exit status, 0.
    Raises:
        ValueError, FileNotFoundError: bad prompts or options (--max-frames without --stream), a missing or
            unreadable video, or a frame out of range.
    """
    from ..modules.models.segmentors.samv2 import SAMV2VideoPredictor
    if getattr(args, 'max_frames', None) is not None:
        raise ValueError('--max-frames needs --stream (without it the whole video is tracked)')
    groups, obj_ids = promptsofargs(args)
    if not os.path.exists(args.video):
        raise FileNotFoundError(f'--video: no such file or folder: {args.video!r}')
    predictor = SAMV2VideoPredictor(samv2_cfg=cfg, device=device, precision=args.precision,
                                    compile=args.compile or None)
    try:
        state = predictor.initstate(args.video)
    except ValueError as error:
        raise ValueError(f'--video: {error}') from None
    num_frames = state['num_frames']
    for group in groups:
        if group['frame'] >= num_frames:
            raise ValueError(f'--frame {group["frame"]} is out of range: the video has {num_frames} frames '
                             f'(0..{num_frames - 1})')
        points = np.asarray(group['points'], np.float32).reshape(-1, 2) if group['points'] else None
        labels = np.asarray(group['labels'], np.int32) if group['points'] else None
        predictor.addnewpointsorbox(state, group['frame'], group['obj'], points=points, labels=labels, box=group['box'])
    os.makedirs(args.outdir, exist_ok=True)
    first = min(g['frame'] for g in groups)
    passes = [predictor.propagateinvideo(state, start_frame_idx=first)]
    if first > 0:
        passes.append(predictor.propagateinvideo(state, start_frame_idx=first, reverse=True))
    written = set()
    for frames in passes:
        for frame_idx, ids, logits in frames:
            _writeframe(args.outdir, args.indexed, frame_idx, ids, logits)
            written.add(frame_idx)
    frame_range = sorted(written)
    overlay = os.path.join(args.outdir, 'overlay.mp4')
    _writeoverlay(overlay, state['images'], frame_range, args.outdir, args.indexed, obj_ids,
                  _sourcefps(args.video, args.fps))
    summary = videosummary(args, cfg, num_frames, [frame_range[0], frame_range[-1]], obj_ids, groups)
    writejson(os.path.join(args.outdir, 'video.json'), summary, indent=1)
    log(f'wrote masks of {len(obj_ids)} object(s) on {len(frame_range)} frame(s) and {overlay}')
    return 0
