"""``video --stream``: track objects through frames as they arrive from a video file, a camera or a stream URL.

Frames are read in order and tracked one at a time (the predictor's stream mode), so memory stays bounded
however long the source runs. A frame's prompts are given right after it is tracked, and the masks written for
it are those after its prompts. Outputs are those of the offline ``video`` command, written as frames come:
``masks/<obj id>/<frame:05d>.png`` (or ``indexed/<frame:05d>.png``) for each frame with objects, each PNG
written atomically; ``overlay.mp4`` of every tracked frame, filled in a hidden temporary file renamed at the
end; ``video.json`` at the end, with ``"stream": true``, ``"frames_tracked"``, ``"ended"`` (why it stopped)
and ``"prompts_not_applied"`` (prompts on frames the stream never reached).

Ctrl-C stops after the frame being tracked is written (a second Ctrl-C stops at once, which may leave that
frame's masks partly written, and it is not counted); the outputs are then finalised as at the end of the
source. Exit status: 0 at the end of a file or after ``--max-frames``, 130 after Ctrl-C, 1 when a live source
drops.
"""
import argparse
import os
import signal
import threading
import uuid
from typing import Callable, Dict

import cv2
import numpy as np
import torch
from tqdm import tqdm

from ..modules.models.segmentors.samv2.video import StreamDroppedError, VideoStream
from ..modules.utils.fileio import writejson
from .videojob import _palette, _sourcefps, _writeframe, blend, promptsofargs, videosummary

DEFAULT_FPS = 24.0
INTERRUPTED = 130


def opensource(text: str) -> VideoStream:
    """The source named by ``--video``.

    Args:
        text: digits for a camera index (e.g. '0'), a stream URL, or a video file path.
    Returns:
        The opened :class:`VideoStream` (its first frame read).
    Raises:
        FileNotFoundError, ValueError: a missing file or a source OpenCV cannot open, the message naming --video.
    """
    source = int(text) if text.isascii() and text.isdigit() else text
    if isinstance(source, str) and os.path.isdir(source):
        raise ValueError(f'--video: with --stream, SOURCE is a video file, a camera index or a stream URL; {text!r} '
                         'is a folder (track a folder of JPEG frames without --stream)')
    try:
        return VideoStream(source)
    except FileNotFoundError as error:
        raise FileNotFoundError(f'--video: {error}') from None
    except (ValueError, TypeError) as error:
        raise ValueError(f'--video: {error}') from None


class _Interrupts:
    """Ctrl-C asks to stop after the current frame (``requested``); a second one raises KeyboardInterrupt.

    Installed only over Python's default handler in the main thread: a handler someone else set is left alone.
    """

    def __init__(self) -> None:
        self.requested, self._installed = False, False

    def __enter__(self) -> '_Interrupts':
        if threading.current_thread() is threading.main_thread() and \
                signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            signal.signal(signal.SIGINT, self._handle)
            self._installed = True
        return self

    def _handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc_info) -> None:
        if self._installed:
            signal.signal(signal.SIGINT, signal.default_int_handler)


class _Overlay:
    """overlay.mp4 written frame by frame into a hidden temporary file beside it, renamed over it by ``finish``."""

    def __init__(self, path: str, fps: float, colors: Dict[int, np.ndarray]) -> None:
        self.path, self.fps, self.colors, self.video, self.frames = path, fps, colors, None, 0
        self.temp = os.path.join(os.path.dirname(path), f'.overlay.{uuid.uuid4().hex}.tmp.mp4')

    def add(self, rgb: np.ndarray, masks: Dict[int, np.ndarray]) -> None:
        """Append one frame, (H, W, 3) uint8 RGB, with {obj id: (H, W) bool} masks blended in."""
        if self.video is None:  # the first frame fixes the size
            self.video = cv2.VideoWriter(self.temp, cv2.VideoWriter_fourcc(*'mp4v'), self.fps, rgb.shape[1::-1])
            if not self.video.isOpened():
                self.discard()
                raise OSError(f'could not open an mp4v video writer for {self.path!r}')
        self.video.write(blend(rgb, masks, self.colors))
        self.frames += 1

    def finish(self) -> bool:
        """Close the file and move it into place; False (and no file) when no frame was added."""
        if self.video is None:
            return False
        self.video.release()
        descriptor = os.open(self.temp, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
        os.replace(self.temp, self.path)
        self.video = None
        return True

    def discard(self) -> None:
        """Drop the temporary file if it is still there (after ``finish`` there is nothing to drop)."""
        if self.video is not None:
            self.video.release()
            self.video = None
        if os.path.exists(self.temp):
            os.remove(self.temp)


class _Run:
    """What one stream run did: frames tracked and written, the prompts still waiting, how it ended."""

    def __init__(self, groups: list) -> None:
        self.pending = {}
        for group in groups:
            self.pending.setdefault(group['frame'], []).append(group)
        self.tracked, self.written, self.ended, self.status, self.error = 0, None, None, 0, None


def _trackone(predictor, state, rgb, run, args, overlay):
    """Track one frame, give it its prompts, write its masks and add it to the overlay."""
    frame_idx, obj_ids, logits = predictor.trackframe(state, rgb)
    for group in run.pending.pop(frame_idx, []):
        points = np.asarray(group['points'], np.float32).reshape(-1, 2) if group['points'] else None
        labels = np.asarray(group['labels'], np.int32) if group['points'] else None
        frame_idx, obj_ids, logits = predictor.addnewpointsorbox(state, frame_idx, group['obj'], points=points,
                                                                 labels=labels, box=group['box'])
    masks = {}
    if obj_ids:
        masks = _writeframe(args.outdir, args.indexed, frame_idx, obj_ids, logits)
        run.written = [frame_idx if run.written is None else run.written[0], frame_idx]
    overlay.add(rgb, masks)
    run.tracked += 1


def _track(predictor, stream, run, args, overlay, interrupts):
    """Track frames until the source ends, --max-frames, Ctrl-C, a drop or an error; records how in ``run``."""
    state = predictor.initstream()
    progress = tqdm(desc='tracking', unit='frame', disable=None)
    try:
        while True:
            if interrupts.requested:
                raise KeyboardInterrupt
            if args.max_frames is not None and run.tracked >= args.max_frames:
                run.ended = 'max frames'
                return
            rgb = next(stream, None)
            if rgb is None:
                run.ended = stream.ended
                return
            _trackone(predictor, state, rgb, run, args, overlay)
            progress.update()
    except KeyboardInterrupt:
        run.ended, run.status = 'interrupted', INTERRUPTED
    except StreamDroppedError as error:
        run.ended, run.status = str(error), 1
    except Exception as error:  # finalise what was written first; runstream raises it afterwards
        run.ended, run.error = f'error: {" ".join(str(error).split())}', error
    finally:
        progress.close()


def runstream(args: argparse.Namespace, cfg: dict, device: torch.device, log: Callable[[str], None]) -> int:
    """The ``video --stream`` sub-command (see the module docstring).

    Args:
        args, cfg, device, log: as for :func:`.videojob.runvideo` (the parsed command line, the SAMV2 config
            with its ``ckptpath`` resolved, the model's device, a writer of one message line).
    Returns:
        The exit status: 0 at the end of a file or after --max-frames, 130 after Ctrl-C, 1 when a live source
        dropped (its message logged as an error line).
    Raises:
        ValueError, FileNotFoundError, OSError: bad prompts or options, a source that cannot be opened (before
            anything is written), or an error while tracking (raised after the outputs so far are finalised).
    """
    from ..modules.models.segmentors.samv2 import SAMV2VideoPredictor
    if args.max_frames is not None and args.max_frames < 1:
        raise ValueError(f'--max-frames must be an int >= 1, got {args.max_frames}')
    groups, obj_ids = promptsofargs(args)
    fps = _sourcefps(args.video, args.fps) if args.fps is not None else None
    run = _Run(groups)
    with opensource(args.video) as stream:
        predictor = SAMV2VideoPredictor(samv2_cfg=cfg, device=device, precision=args.precision,
                                        compile=args.compile or None)
        os.makedirs(args.outdir, exist_ok=True)
        overlay = _Overlay(os.path.join(args.outdir, 'overlay.mp4'), fps or stream.fps or DEFAULT_FPS,
                           _palette(obj_ids))
        with _Interrupts() as interrupts:  # from here on Ctrl-C ends the run cleanly, the outputs finalised
            try:
                _track(predictor, stream, run, args, overlay, interrupts)
                wrote = overlay.finish()
            finally:
                overlay.discard()
            _finish(args, cfg, run, groups, wrote, log)
    if run.error is not None:
        raise run.error
    return run.status


def _finish(args, cfg, run, groups, wrote_overlay, log):
    """video.json, and the log lines: what was written, prompts never applied, a dropped source."""
    applied = {(g['frame'], g['obj']) for g in groups if g['frame'] < run.tracked}
    missed = [g for g in groups if (g['frame'], g['obj']) not in applied]
    tracked_ids = sorted({obj for _, obj in applied})
    summary = videosummary(args, cfg, run.tracked, run.written, tracked_ids, groups)
    summary.update({'overlay': 'overlay.mp4' if wrote_overlay else None, 'stream': True,
                    'frames_tracked': run.tracked, 'ended': run.ended, 'prompts_not_applied': missed})
    writejson(os.path.join(args.outdir, 'video.json'), summary, indent=1)
    if missed:
        frames = sorted({g['frame'] for g in missed})
        log(f'prompts not applied: the stream ended after {run.tracked} frame(s), before frame(s) '
            f'{", ".join(map(str, frames))} (objects {", ".join(str(g["obj"]) for g in missed)})')
    count = 0 if run.written is None else run.written[1] - run.written[0] + 1
    log(f'{run.ended}: tracked {run.tracked} frame(s); wrote masks of {len(tracked_ids)} object(s) on {count} '
        f'frame(s)' + (f' and {os.path.join(args.outdir, "overlay.mp4")}' if wrote_overlay else ''))
    if run.status == 1:
        log(f'error: --video: {run.ended}')

