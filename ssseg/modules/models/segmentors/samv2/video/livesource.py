"""Frames from a camera, a network stream or a video file, read strictly in order for stream mode.

:class:`VideoStream` wraps one OpenCV capture (``cv2.VideoCapture``) and yields (H, W, 3) uint8 RGB frames one
at a time, holding at most the next frame: it never seeks and never counts frames ahead, so a file of any length,
a camera or an RTSP/HTTP stream all read the same way. Files are decoded exactly as :class:`.sources.VideoFile`
decodes them (the same OpenCV call), so a stream over a file sees the frames the offline predictor sees.

How a source ends is reported, not hidden: a file ends at its last frame (``ended`` says so); a live source
(camera or URL) whose read fails raises :class:`StreamDroppedError`, since a live source has no natural end.
"""
import contextlib
import math
import operator
import os
from typing import Iterator, Union

import cv2
import numpy as np

URL_SCHEMES = ('rtsp://', 'rtsps://', 'http://', 'https://', 'rtmp://', 'udp://', 'tcp://')
# FFmpeg's own default is 30 s per open and per read: long enough to look like a hang
DEFAULT_TIMEOUT_S = 10.0
# CAP_PROP_FPS values outside (0, MAX_FPS] are placeholders (RTSP often reports its 90 kHz clock), not rates
MAX_FPS = 1000.0
_EXPECTED = (f'a camera index (an int >= 0, e.g. 0), a stream URL ({", ".join(URL_SCHEMES)}) '
             'or the path of a video file OpenCV can decode (e.g. .mp4, .avi)')


class StreamDroppedError(ConnectionError):
    """A live source (camera or URL) stopped delivering frames: disconnected, unplugged or timed out."""


@contextlib.contextmanager
def _quietopencv():
    """OpenCV's own log lines while opening repeat what the raised error already says: silence them meanwhile."""
    logging = getattr(getattr(cv2, 'utils', None), 'logging', None)
    if logging is None:
        yield
        return
    level = logging.getLogLevel()
    logging.setLogLevel(logging.LOG_LEVEL_SILENT)
    try:
        yield
    finally:
        logging.setLogLevel(level)


def _classify(source):
    """(kind, value): ('camera', index), ('url', str) or ('file', str path), checking the type of ``source``."""
    if isinstance(source, bool):  # bool is an int subclass, but True is no camera index
        raise TypeError(f'source must be {_EXPECTED}; got the bool {source!r}')
    if isinstance(source, (str, os.PathLike)):
        text = os.fsdecode(os.fspath(source))
        if isinstance(source, str) and text.lower().startswith(URL_SCHEMES):
            return 'url', text
        if not text:
            raise ValueError(f'source must be {_EXPECTED}; got an empty path')
        return 'file', text
    try:
        index = operator.index(source)  # ints and numpy integers
    except TypeError:
        raise TypeError(f'source must be {_EXPECTED}; got {type(source).__name__}') from None
    if index < 0:
        raise ValueError(f'source must be {_EXPECTED}; got the negative camera index {index}')
    return 'camera', index


class VideoStream:
    """Frames of a camera, URL or video file, read in order; iterate to get (H, W, 3) uint8 RGB frames.

    The first frame is read when the source is opened (a source that opens but delivers nothing is an error
    then, not an empty stream). Iteration ends at the end of a file; on a live source a failed read raises
    :class:`StreamDroppedError`. Either way ``ended`` then holds the reason and the capture is released.

    Attributes:
        source: what was given (the camera index, URL or path).
        islive: True for a camera or URL, False for a file.
        fps: the source's frame rate from ``CAP_PROP_FPS``, or None when it reports none (or a placeholder).
        frames_read: frames yielded so far.
        ended: None while frames may still come, else why they stopped ('end of file after N frames',
            the dropped-connection message, or 'closed after N frames').

    Args:
        source: a camera index (int >= 0), a URL starting with one of ``URL_SCHEMES``, or a video file path
            (str or os.PathLike).
        timeout_s: for URLs, the longest wait in seconds to connect and for each frame (FFmpeg backend).
    Raises:
        TypeError: ``source`` is of another type (a bool is not a camera index), or ``timeout_s`` is not a number.
        FileNotFoundError: a file path that does not exist.
        ValueError: a negative index, ``timeout_s`` not > 0, or a source OpenCV cannot open or reads no frame from
            (no such camera, an unreachable URL, a folder, a file that is not a video); the message names ``source``.
    """

    def __init__(self, source: Union[int, str, os.PathLike], timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self.source, self.cap, self.ended, self.frames_read, self.fps = source, None, None, 0, None
        self._next = None
        kind, value = _classify(source)
        if not isinstance(timeout_s, (int, float)) or isinstance(timeout_s, bool):
            raise TypeError(f'timeout_s must be a number of seconds, got {type(timeout_s).__name__}')
        if not timeout_s > 0 or not math.isfinite(timeout_s):
            raise ValueError(f'timeout_s must be a finite number of seconds > 0, got {timeout_s!r}')
        self.islive, self._what = kind != 'file', f'{kind} {value!r}' if kind != 'camera' else f'camera {value}'
        if kind == 'file':
            self._checkfile(value)
        with _quietopencv():
            if kind == 'url':
                milliseconds = int(timeout_s * 1000)
                self.cap = cv2.VideoCapture(value, cv2.CAP_FFMPEG, [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, milliseconds,
                                                                    cv2.CAP_PROP_READ_TIMEOUT_MSEC, milliseconds])
            else:
                self.cap = cv2.VideoCapture(value)
            if not self.cap.isOpened():
                self.close()
                raise ValueError(f'source {self._what} could not be opened by OpenCV ({self._why(kind)}); '
                                 f'source must be {_EXPECTED}')
            self._next = self._read()
        if self._next is None:
            self.close()
            raise ValueError(f'source {self._what}: OpenCV opened it but read no frame from it; '
                             f'source must be {_EXPECTED}')
        rate = self.cap.get(cv2.CAP_PROP_FPS)
        self.fps = float(rate) if math.isfinite(rate) and 0 < rate <= MAX_FPS else None

    def _checkfile(self, path):
        """The reasons OpenCV reports only as "not opened", found first: missing, a folder, unreadable."""
        if not os.path.exists(path):
            raise FileNotFoundError(f'source {path!r}: no such file; source must be {_EXPECTED}')
        if os.path.isdir(path):
            raise ValueError(f'source {path!r} is a folder; source must be {_EXPECTED}')
        try:
            with open(path, 'rb'):
                pass
        except OSError as err:
            raise ValueError(f'source {path!r} could not be read ({type(err).__name__}: {err.strerror or err}); '
                             f'source must be {_EXPECTED}') from err

    @staticmethod
    def _why(kind):
        return {'camera': 'no camera with that index, or it is in use',
                'url': 'unreachable, refused, timed out, or not a video stream',
                'file': 'not a video it can decode'}[kind]

    def _read(self):
        """The next frame as RGB, or None when the capture delivers none."""
        ok, frame = self.cap.read()
        if not ok or frame is None:
            return None
        if frame.ndim == 2:  # some cameras deliver grey frames
            return cv2.cvtColor(frame, cv2.COLOR_GRAY2RGB)
        return cv2.cvtColor(frame, cv2.COLOR_BGRA2RGB if frame.shape[2] == 4 else cv2.COLOR_BGR2RGB)

    def __iter__(self) -> Iterator[np.ndarray]:
        return self

    def __next__(self) -> np.ndarray:
        """The next frame.

        Returns:
            (H, W, 3) uint8 RGB.
        Raises:
            StopIteration: the end of a file, or a stream that already ended or was closed.
            StreamDroppedError: a live source delivered no frame (``ended`` then says why).
        """
        if self.ended is not None or self.cap is None:
            raise StopIteration
        frame = self._next if self._next is not None else self._read()
        self._next = None
        if frame is None:
            return self._finish()
        self.frames_read += 1
        return frame

    def _finish(self):
        """Record why the frames stopped, release the capture, then stop (a file) or raise (a live source)."""
        if not self.islive:
            claimed = int(self.cap.get(cv2.CAP_PROP_FRAME_COUNT))
            note = f' (its header claims {claimed})' if claimed > 0 and claimed != self.frames_read else ''
            self.ended = f'end of file after {self.frames_read} frames{note}'
            self._release()
            raise StopIteration
        self.ended = (f'the live source {self._what} stopped delivering frames after {self.frames_read} frame(s) '
                      '(disconnected, unplugged or timed out)')
        self._release()
        raise StreamDroppedError(self.ended)

    def _release(self):
        if self.cap is not None:
            self.cap.release()
            self.cap = None
        self._next = None

    def close(self) -> None:
        """Release the capture (idempotent); a stream closed before its end gets ``ended`` 'closed after N frames'.

        Returns:
            None.
        """
        if self.cap is not None and self.ended is None:
            self.ended = f'closed after {self.frames_read} frames'
        self._release()

    def __enter__(self) -> 'VideoStream':
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def __del__(self) -> None:
        if getattr(self, 'cap', None) is not None:
            self.close()

    def __repr__(self) -> str:
        state = 'running' if self.ended is None else f'ended: {self.ended}'
        return f'VideoStream({self.source!r}, {state}, frames_read={self.frames_read})'

