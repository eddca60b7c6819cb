"""Lazy, bounded-memory access to the frames of a video as SAMV2 inputs.

A video is one of: a folder of JPEG frames named by frame number (``00000.jpg``, ``7.jpeg``; frame
``i`` is the ``i``-th file in numeric order, gaps allowed), a video file that OpenCV's
``cv2.VideoCapture`` decodes (.mp4, .avi, ...), or a list/tuple of (H, W, 3) uint8 RGB frames of
one size (a (T, H, W, 3) uint8 array counts as a list of T frames). ``VideoFrames(...)[i]`` is the
model input of frame ``i``: a float32 (3, S, S) tensor made the way Meta's ``load_video_frames``
makes it (PIL resize of the RGB frame to S x S with PIL's default filter, /255 in float64, rounded
to float32, minus mean, divided by std), so for a JPEG folder the values are bit-identical to
Meta's loader. JPEG files are decoded with PIL for that reason (PIL ignores EXIF orientation,
``cv2.imread`` applies it); video files with OpenCV.

Frames are decoded on demand and kept in a small LRU cache of ``cachesize`` frames (the normalized
tensor and the original RGB frame), so memory does not grow with the video's length.

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
import threading
import weakref
from collections import Counter, OrderedDict

import cv2
import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from .transforms import IMAGENET_MEAN, IMAGENET_STD

JPEG_EXTENSIONS = ('.jpg', '.jpeg')
FORWARD_GRAB_LIMIT = 32
_EXPECTED = ('a folder of JPEG frames named by frame number (e.g. 00000.jpg), a video file OpenCV can decode '
             '(e.g. .mp4, .avi), or a list of (H, W, 3) uint8 RGB numpy frames (or one (T, H, W, 3) uint8 array)')


class FrameIndexError(IndexError, ValueError):
    """A frame index outside [0, num_frames - 1]: a ValueError, and an IndexError for code written before."""


def checkframeindex(frame_idx, num_frames, argname='frame_idx'):
    """``frame_idx`` as an int in [0, num_frames - 1]; TypeError for a non-int (bool included), FrameIndexError
    (an IndexError and a ValueError) naming ``argname``, the valid range and the value otherwise."""
    if isinstance(frame_idx, (bool, np.bool_)) or not isinstance(frame_idx, (int, np.integer)):
        raise TypeError(f'{argname} must be an int in [0, {num_frames - 1}], got {type(frame_idx).__name__} '
                        f'{frame_idx!r}')
    if not 0 <= frame_idx < num_frames:
        raise FrameIndexError(f'{argname} must be in [0, {num_frames - 1}] (the video has {num_frames} frames), '
                              f'got {int(frame_idx)}')
    return int(frame_idx)


def _listing(names, limit=5):
    """A short printable list of file names for error messages."""
    names = sorted(names)
    more = f' and {len(names) - limit} more' if len(names) > limit else ''
    return f'{names[:limit]}{more}'


class _JPEGFolder:
    """Frames stored as ``<number>.jpg`` files in one folder, decoded with PIL."""

    def __init__(self, folder):
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

    def describe(self, idx):
        return f'JPEG frame {self.paths[idx]!r}'

    def read(self, idx):
        """(H, W, 3) uint8 RGB of frame ``idx``."""
        try:
            with Image.open(self.paths[idx]) as img:
                return np.asarray(img.convert('RGB'))
        except (OSError, SyntaxError, ValueError) as err:  # PIL reports corrupt and truncated files as these
            raise ValueError(f'video_path: {self.describe(idx)} (frame_idx {idx}) could not be decoded: {err}') from err

    def close(self):
        pass


class _ArrayFrames:
    """Frames given as a list of (H, W, 3) uint8 RGB numpy arrays of one size (or one (T, H, W, 3) array)."""

    def __init__(self, frames):
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

    def describe(self, idx):
        return f'video_path[{idx}]'

    def read(self, idx):
        return self.frames[idx]

    def close(self):
        pass


class _VideoFile:
    """Frames of a video file decoded with one OpenCV capture, read forward; see the module docstring."""

    def __init__(self, path):
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

    def describe(self, idx):
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

    def read(self, idx):
        """(H, W, 3) uint8 RGB of frame ``idx``, seeking only for a backward step or a long jump."""
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

    def close(self):
        if self.cap is not None:
            self.cap.release()
            self.cap = None


def _opensource(video_path):
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
    return _VideoFile(path)


class _PrefetchState:
    """What the background loader shares with its owner; holds no reference to the owner itself."""

    def __init__(self):
        self.cond = threading.Condition()
        self.last = 0
        self.step = 1
        self.pending = False
        self.closed = False


def _prefetchloop(ref, state):
    # a weak reference, so an abandoned VideoFrames is collected and its thread ends
    while True:
        with state.cond:
            while not (state.pending or state.closed):
                state.cond.wait()
            if state.closed:
                return
            state.pending = False
        frames = ref()
        if frames is None:
            return
        frames._prefetch()
        del frames


class VideoFrames:
    """The frames of one video as SAMV2 inputs, decoded lazily with a bounded cache.

    ``video_path``: a JPEG folder, a video file or a list/tuple of RGB frames (see the module docstring).
    Errors name ``video_path``: FileNotFoundError for a missing path, TypeError for a wrong type or dtype,
    ValueError for an empty, unlistable or unreadable source, bad frame names or frame shapes.
    ``imagesize``: the model's input side S. ``frames[i]`` -> float32 (3, S, S) tensor on ``device``
    (a copy, free to modify); ``rgbframe(i)`` -> the original (H, W, 3) uint8 RGB frame (a copy).
    ``len(frames)`` is the frame count, ``video_height`` / ``video_width`` the original frame size.

    ``offload_video_to_cpu``: cached tensors stay on the CPU and are moved to ``device`` on access;
    otherwise they are cached on ``device`` (at most ``cachesize`` of them). ``async_loading_frames``:
    a background thread decodes up to ``cachesize - 1`` frames ahead of the last access, in its
    direction (forward or backward); the tensors are the same as without it. ``device`` defaults to
    the CPU. ``cachesize`` (>= 1) bounds the frames held; ``preload()`` lifts it to the whole video.
    Frame 0 is decoded on construction (most prompts start there, and it proves the source decodes).
    """

    def __init__(self, video_path, imagesize, offload_video_to_cpu=False, async_loading_frames=False, device=None,
                 cachesize=4, imgmean=IMAGENET_MEAN, imgstd=IMAGENET_STD):
        for name, value in (('imagesize', imagesize), ('cachesize', cachesize)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f'{name} must be a positive int, got {type(value).__name__} {value!r}')
            if value < 1:
                raise ValueError(f'{name} must be a positive int, got {value}')
        try:
            self.device = torch.device('cpu' if device is None else device)
        except (RuntimeError, TypeError) as err:
            raise ValueError(f'device must be like "cpu", "cuda" or "cuda:0", got {device!r}') from err
        self.imagesize = imagesize
        self.cachesize = cachesize
        self.offload_video_to_cpu = bool(offload_video_to_cpu)
        self.storagedevice = torch.device('cpu') if self.offload_video_to_cpu else self.device
        self.imgmean = torch.tensor(imgmean, dtype=torch.float32).view(3, 1, 1)
        self.imgstd = torch.tensor(imgstd, dtype=torch.float32).view(3, 1, 1)
        # Meta's per-pixel ops (float64 /255, float32 rounding, - mean, / std) tabulated for the 256 levels of
        # each channel: the same float32 operations, hence the same bits, at a fraction of the cost per frame
        levels = torch.from_numpy(np.arange(256) / 255.0).to(torch.float32).view(1, 256)
        self._lut = ((levels - self.imgmean.view(3, 1)) / self.imgstd.view(3, 1)).numpy()
        self._cache = OrderedDict()  # frame index -> (normalized tensor, RGB frame), least recent first
        self._cachelock = threading.Lock()
        self._decodelock = threading.Lock()  # one decoder user at a time; held for a whole block
        self._state = _PrefetchState()
        self._failed = set()  # frames the background loader could not decode: left to the caller to raise
        self._thread = None
        self._source = _opensource(video_path)
        try:
            first = self._load(0)[1]
        except Exception:
            self._source.close()
            raise
        self.video_height, self.video_width = first.shape[:2]
        if async_loading_frames:
            self._thread = threading.Thread(target=_prefetchloop, args=(weakref.ref(self), self._state),
                                            name='samv2-frame-prefetch', daemon=True)
            self._thread.start()
            self._notify(0)

    def __len__(self):
        return len(self._source)

    def __getitem__(self, frame_idx):
        """float32 (3, imagesize, imagesize) normalized input of frame ``frame_idx``, on ``device``.

        FrameIndexError (an IndexError and a ValueError) outside [0, len - 1]; TypeError for a non-int."""
        idx = self._checkindex(frame_idx)
        tensor = self._entry(idx)[0]
        self._notify(idx)
        return tensor.to(self.device, copy=True)

    def rgbframe(self, frame_idx):
        """(video_height, video_width, 3) uint8 RGB frame ``frame_idx`` at its original resolution."""
        return self._entry(self._checkindex(frame_idx))[1].copy()

    @property
    def cachedindices(self):
        """Frame indices held decoded now, least recently used first."""
        with self._cachelock:
            return tuple(self._cache)

    def preload(self, progress=True):
        """Decode every frame once, in order, and keep them all (memory: len x 3 x S x S x 4 bytes + RGB)."""
        self.cachesize = max(self.cachesize, len(self))
        for idx in tqdm(range(len(self)), desc='frame loading', disable=not progress):
            self._entry(idx)
        return self

    def close(self):
        """Stop the background loader and release the video file; cached frames stay readable."""
        with self._state.cond:
            self._state.closed = True
            self._state.cond.notify_all()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()
        with self._decodelock:
            self._source.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        if '_source' in self.__dict__:
            try:
                self.close()
            except Exception:  # interpreter shutdown may have torn down threading already
                pass

    # ------------------------------------------------------------------ internals
    def _checkindex(self, frame_idx):
        return checkframeindex(frame_idx, len(self))

    def _entry(self, idx):
        with self._cachelock:
            entry = self._cache.get(idx)
            if entry is not None:
                self._cache.move_to_end(idx)
                return entry
        return self._load(idx)

    def _load(self, idx):
        """Decode frame ``idx`` (for a video going backwards: the block ending at it) into the cache."""
        with self._decodelock:
            with self._cachelock:
                if idx in self._cache:  # the other thread decoded it while this one waited
                    self._cache.move_to_end(idx)
                    return self._cache[idx]
            if self._state.closed and isinstance(self._source, _VideoFile):
                raise RuntimeError(f'frame_idx {idx} is not cached and this VideoFrames is closed')
            start = idx
            if isinstance(self._source, _VideoFile) and idx < self._source.pos:
                start = max(0, idx - self.cachesize + 1)  # one seek serves the next cachesize - 1 backward steps
            for k in range(start, idx + 1):
                entry = self._decode(k)
                self._put(k, entry)
            return entry

    def _decode(self, idx):
        rgb = self._source.read(idx)
        if 'video_height' in self.__dict__ and rgb.shape[:2] != (self.video_height, self.video_width):
            raise ValueError(f'video_path: {self._source.describe(idx)} is {rgb.shape[1]}x{rgb.shape[0]} (WxH) but '
                             f'frame 0 is {self.video_width}x{self.video_height}: all frames must have one size')
        return self._normalize(rgb), rgb

    def _normalize(self, rgb):
        """(3, S, S) float32 equal bit for bit to Meta's JPEG loader: PIL resize, then the tabulated ops."""
        resized = np.asarray(Image.fromarray(np.ascontiguousarray(rgb)).resize((self.imagesize, self.imagesize)))
        out = np.empty((3, self.imagesize, self.imagesize), np.float32)
        for channel in range(3):
            np.take(self._lut[channel], resized[..., channel], out=out[channel])
        return torch.from_numpy(out).to(self.storagedevice)

    def _put(self, idx, entry):
        with self._cachelock:
            self._cache[idx] = entry
            self._cache.move_to_end(idx)
            while len(self._cache) > self.cachesize:
                self._cache.popitem(last=False)

    def _notify(self, idx):
        if self._thread is None:
            return
        with self._state.cond:
            if idx != self._state.last:
                self._state.step = 1 if idx > self._state.last else -1
            self._state.last = idx
            self._state.pending = True
            self._state.cond.notify_all()

    def _prefetch(self):
        """Background: decode the uncached frames among the next ``cachesize - 1`` in the current direction."""
        while True:
            with self._state.cond:
                if self._state.closed:
                    return
                last, step = self._state.last, self._state.step
            target = None
            for k in range(1, self.cachesize):
                candidate = last + step * k
                if not 0 <= candidate < len(self):
                    break
                with self._cachelock:
                    cached = candidate in self._cache
                if not cached and candidate not in self._failed:
                    target = candidate
                    break
            if target is None:
                return
            try:
                self._load(target)
            except Exception:  # the caller gets the error when it asks for this frame itself
                self._failed.add(target)
