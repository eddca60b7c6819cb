"""Where a video's frames come from: a folder of numbered JPEG files, a video file, or arrays in memory.

Each source has ``len()``, ``read(idx)`` -> (H, W, 3) uint8 RGB, ``describe(idx)`` for error messages
and ``close()``. JPEG files are decoded with PIL (as Meta's loader: PIL ignores EXIF orientation,
``cv2.imread`` applies it), video files with OpenCV.

Video files are read forward with one open capture: sequential access never seeks; a jump of up to
``FORWARD_GRAB_LIMIT`` frames ahead is skipped by grabbing, a longer jump or any step backwards seeks
(``CAP_PROP_POS_FRAMES``: OpenCV decodes from the previous keyframe). A backward miss decodes the
block of ``cachesize`` frames that ends at the requested one in a single forward pass, so reverse
propagation costs one seek per ``cachesize`` frames. When a seek does not land on the asked frame,
the capture is reopened and read from the start (exact, but O(frame index)).
The header's ``CAP_PROP_FRAME_COUNT`` is trusted only when frame ``count - 1`` decodes and nothing
follows it; otherwise the frames are counted by grabbing the whole file once when it is opened.
"""
import os
from collections import Counter
from typing import Sequence, Union

import cv2
import numpy as np
from PIL import Image

JPEG_EXTENSIONS = ('.jpg', '.jpeg')
FORWARD_GRAB_LIMIT = 32
_EXPECTED = ('a folder of JPEG frames named by frame number (e.g. 00000.jpg), a video file OpenCV can decode '
             '(e.g. .mp4, .avi), or a list of (H, W, 3) uint8 RGB numpy frames (or one (T, H, W, 3) uint8 array)')


def _listing(names, limit=5):
    """A short printable list of file names for error messages."""
    names = sorted(names)
    more = f' and {len(names) - limit} more' if len(names) > limit else ''
    return f'{names[:limit]}{more}'


class _JPEGFolder:
    """Frames stored as ``<number>.jpg`` files in one folder, decoded with PIL."""

    def __init__(self, folder: str) -> None:
        try:
            names = sorted(os.listdir(folder))
        except OSError as err:  # no read permission, a folder removed meanwhile, an I/O error
            raise ValueError(f'video_path {folder!r} is a folder that could not be listed '
                             f'({type(err).__name__}: {err.strerror or err}); video_path must be {_EXPECTED}') from err
        jpegs = [n for n in names if os.path.splitext(n)[1].lower() in JPEG_EXTENSIONS]
        if not jpegs:
            found = 'it holds no files' if not names else f'it holds only {_listing(names)}'
            raise ValueError(f'video_path must be {_EXPECTED}; the folder {folder!r} has no .jpg/.jpeg frames: {found}')
        stems = {n: os.path.splitext(n)[0] for n in jpegs}
        bad = [n for n, s in stems.items() if not (s.isascii() and s.isdigit())]
        if bad:
            raise ValueError(f'video_path {folder!r}: JPEG frames must be named by frame number (e.g. 00000.jpg, '
                             f'7.jpeg) so they can be ordered; these names are not numbers: {_listing(bad)}')
        numbers = Counter(int(s) for s in stems.values())
        clashes = [n for n, s in stems.items() if numbers[int(s)] > 1]
        if clashes:
            raise ValueError(f'video_path {folder!r}: several JPEG files have the same frame number, so their order '
                             f'is ambiguous: {_listing(clashes)}')
        self.paths = [os.path.join(folder, n) for n in sorted(jpegs, key=lambda n: int(stems[n]))]

    def __len__(self):
        return len(self.paths)

    def describe(self, idx: int) -> str:
        return f'JPEG frame {self.paths[idx]!r}'

    def read(self, idx: int) -> np.ndarray:
        try:
            with Image.open(self.paths[idx]) as img:
                return np.asarray(img.convert('RGB'))
        except (OSError, SyntaxError, ValueError) as err:  # PIL reports corrupt and truncated files as these
            raise ValueError(f'video_path: {self.describe(idx)} (frame_idx {idx}) could not be decoded: {err}') from err

    def close(self) -> None:
        pass


class _ArrayFrames:
    """Frames given as a list of (H, W, 3) uint8 RGB numpy arrays of one size (or one (T, H, W, 3) array)."""

    def __init__(self, frames: Union[Sequence, np.ndarray]) -> None:
        if isinstance(frames, np.ndarray):
            if frames.dtype != np.uint8:
                raise TypeError(f'video_path as an array must have dtype uint8 (pixel values 0..255), '
                                f'got {frames.dtype}')
            if frames.ndim != 4 or frames.shape[3] != 3:
                what = ' (one frame: pass a list of frames)' if frames.ndim == 3 else ''
                raise ValueError(f'video_path as an array must be (T, H, W, 3) RGB frames, got shape {frames.shape}'
                                 f'{what}')
        if len(frames) == 0:
            raise ValueError(f'video_path must be {_EXPECTED}; got an empty {type(frames).__name__}')
        size = None
        for i, frame in enumerate(frames):
            if not isinstance(frame, np.ndarray):
                raise TypeError(f'video_path[{i}] must be an (H, W, 3) uint8 RGB numpy array, '
                                f'got {type(frame).__name__}')
            if frame.dtype != np.uint8:
                raise TypeError(f'video_path[{i}] must have dtype uint8 (pixel values 0..255), got {frame.dtype}')
            if frame.ndim != 3 or frame.shape[2] != 3 or 0 in frame.shape:
                raise ValueError(f'video_path[{i}] must be an (H, W, 3) RGB frame, got shape {frame.shape}')
            if size is not None and frame.shape != size:
                raise ValueError(f'video_path frames must all have one size: video_path[0] is {size}, '
                                 f'video_path[{i}] is {frame.shape}')
            size = frame.shape
        self.frames = list(frames)

    def __len__(self):
        return len(self.frames)

    def describe(self, idx: int) -> str:
        return f'video_path[{idx}]'

    def read(self, idx: int) -> np.ndarray:
        return self.frames[idx]

    def close(self) -> None:
        pass


class VideoFile:
    """Frames of a video file decoded with one OpenCV capture, read forward (see the module docstring).

    The frames are counted when the file is opened; ``len()`` is their number.

    Args:
        path: the video file (a str path).
    Raises:
        ValueError: a file that cannot be read or opened by OpenCV, or one in which OpenCV decodes no frame.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.cap = None
        try:  # OpenCV reports an unreadable file only as "not opened": find the reason first
            with open(path, 'rb'):
                pass
        except OSError as err:
            raise ValueError(f'video_path {path!r} could not be read ({type(err).__name__}: {err.strerror or err}); '
                             f'video_path must be {_EXPECTED}') from err
        self._reopen()
        self.numframes = self._countframes()
        if self.numframes == 0:
            self.close()
            raise ValueError(f'video_path {path!r}: OpenCV (cv2.VideoCapture) opened the file but decoded no frame; '
                             f'video_path must be {_EXPECTED}')

    def __len__(self):
        return self.numframes

    def describe(self, idx: int) -> str:
        """Frame ``idx`` in error messages.

        Args:
            idx: a frame index.
        Returns:
            E.g. "frame 3 of video '<path>'".
        """
        return f'frame {idx} of video {self.path!r}'

    def _reopen(self):
        if self.cap is not None:
            self.cap.release()
        self.cap = cv2.VideoCapture(self.path)
        self.pos = 0  # index of the frame the next read returns
        if not self.cap.isOpened():
            raise ValueError(f'video_path {self.path!r} could not be opened by OpenCV (cv2.VideoCapture): not a '
                             f'readable video; video_path must be {_EXPECTED}')

    def _countframes(self):
        claimed = int(self.cap.get(cv2.CAP_PROP_FRAME_COUNT))
        # the header is right when its last frame decodes and is the last one
        if claimed > 0 and self._trysettle(claimed - 1) and self.cap.grab() and not self.cap.grab():
            self._reopen()
            return claimed
        self._reopen()
        count = 0
        while self.cap.grab():
            count += 1
        self._reopen()
        return count

    def _trysettle(self, idx):
        """Seek so that the next read returns frame ``idx``; False when OpenCV cannot land exactly there."""
        if not self.cap.set(cv2.CAP_PROP_POS_FRAMES, idx):
            return False
        if round(self.cap.get(cv2.CAP_PROP_POS_FRAMES)) != idx:
            return False
        self.pos = idx
        return True

    def _skipto(self, idx):
        while self.pos < idx:
            if not self.cap.grab():
                raise ValueError(f'video_path: OpenCV could not decode {self.describe(self.pos)} '
                                 f'(the file holds {self.numframes} frames)')
            self.pos += 1

    def read(self, idx: int) -> np.ndarray:
        """Decode frame ``idx``, seeking only for a backward step or a long jump.

        Args:
            idx: a frame index in [0, len - 1].
        Returns:
            (H, W, 3) uint8 RGB of frame ``idx``.
        Raises:
            ValueError: OpenCV could not decode the frame (or one before it while skipping forward).
        """
        if idx < self.pos or idx - self.pos > FORWARD_GRAB_LIMIT:
            if idx == 0 or not self._trysettle(idx):
                self._reopen()  # exact fallback: read from the first frame
        self._skipto(idx)
        ok, bgr = self.cap.read()
        if not ok:
            raise ValueError(f'video_path: OpenCV could not decode {self.describe(idx)} '
                             f'(the file holds {self.numframes} frames)')
        self.pos = idx + 1
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)

    def close(self) -> None:
        """Release the OpenCV capture (idempotent).

        Returns:
            None.
        """
        if self.cap is not None:
            self.cap.release()
            self.cap = None


def opensource(video_path: Union[str, os.PathLike, Sequence, np.ndarray]) -> Union[_JPEGFolder, _ArrayFrames,
                                                                                 VideoFile]:
    """The frame source of a video.

    Args:
        video_path: a folder of numbered JPEG frames, a video file (a str or os.PathLike path), a list/tuple of
            (H, W, 3) uint8 RGB frames of one size, or one (T, H, W, 3) uint8 array.
    Returns:
        A source with ``len()``, ``read(idx)`` -> (H, W, 3) uint8 RGB, ``describe(idx)`` and ``close()``.
    Raises:
        TypeError: another type, or frames of another dtype or type.
        FileNotFoundError: a path that does not exist.
        ValueError: a single JPEG image, an empty or unlistable folder, JPEG names that are not unique frame
            numbers, an unreadable or undecodable video file, or frames of the wrong shape or of several sizes.
    """
    if isinstance(video_path, (list, tuple, np.ndarray)):
        return _ArrayFrames(video_path)
    if not isinstance(video_path, (str, os.PathLike)):
        raise TypeError(f'video_path must be {_EXPECTED}; got {type(video_path).__name__}')
    path = os.fspath(video_path)
    if not os.path.exists(path):
        raise FileNotFoundError(f'video_path {path!r} does not exist; video_path must be {_EXPECTED}')
    if os.path.isdir(path):
        return _JPEGFolder(path)
    if os.path.splitext(path)[1].lower() in JPEG_EXTENSIONS:
        raise ValueError(f'video_path {path!r} is a single JPEG image; video_path must be {_EXPECTED} '
                         '(put the frames in a folder and pass the folder)')
    return VideoFile(path)
