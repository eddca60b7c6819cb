"""What the tests share: tiny random configs, parity assertions, synthetic videos, and the testing tools of ssseg.

Random-weight checkpoints in Meta's format and synthetic images come from :mod:`ssseg.testing` (the
benchmark script uses them too); the rest is only for tests.
"""
import contextlib

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from ssseg.testing import (  # noqa: F401 (shared with the tests)
    CHECKPOINT_NAMES,
    ORACLE_CONFIGS,
    buildoraclemodel,
    reachablebytes,
    syntheticimage,
    tinycfg,
    writerandomcheckpoint,
    writetinyckpt,
)

# the synthetic video of makeframes(): frames and size
NUM_FRAMES, H, W = 30, 60, 80
# (H, W) of the edge-case masks the mask helpers are tested on
MASK_SIZES = [(37, 53), (53, 37), (1, 1), (1, 9), (9, 1), (2, 2), (64, 48)]


def perturbed(module, seed, scale=0.05):
    """Add seeded noise to every float tensor of the state dict so no parameter keeps its init value."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for tensor in module.state_dict().values():
            if tensor.is_floating_point():
                tensor.add_(scale * torch.randn(tensor.shape, generator=generator))
    return module.eval()


def assertclose(ours, theirs, rtol=1e-4):
    """Max abs error within ``rtol`` of the output scale (at least 1)."""
    assert ours.shape == theirs.shape, f'shape {tuple(ours.shape)} != {tuple(theirs.shape)}'
    if theirs.numel() == 0:
        return
    error = (ours - theirs).abs().max().item()
    assert error <= rtol * max(1.0, theirs.abs().max().item()), f'max abs error {error:.3g}'


@contextlib.contextmanager
def temporaryattributes(objects, **values):
    """Set the same attributes on every object (ours and Meta's) for the duration of a block."""
    saved = [{key: getattr(obj, key) for key in values} for obj in objects]
    for obj in objects:
        for key, value in values.items():
            setattr(obj, key, value)
    try:
        yield
    finally:
        for obj, old in zip(objects, saved):
            for key, value in old.items():
                setattr(obj, key, value)


def makeframes(n=NUM_FRAMES, h=H, w=W):
    """A red square moving right and a green bar moving down on a grey gradient."""
    yy, xx = np.mgrid[0:h, 0:w]
    frames = []
    for t in range(n):
        frame = np.stack([xx * 2, yy * 3, np.full_like(xx, 90)], -1).astype(np.uint8)
        frame[10:30, 5 + t:25 + t] = (210, 40, 40)
        frame[30 + t // 2:45 + t // 2, 50:70] = (40, 200, 60)
        frames.append(frame)
    return frames


def snapshot(result):
    """A call's result with its obj_ids list and mask tensor copied (later calls must not change it)."""
    frame_idx, obj_ids, masks = result
    return frame_idx, list(obj_ids), masks.clone()


def smoothmasks(n, h, w, seed, threshold=0.0):
    """(n, h, w) bool blobs, plus (n, h, w) float logits they come from."""
    generator = torch.Generator().manual_seed(seed)
    coarse = torch.randn(n, 1, max(2, h // 8), max(2, w // 8), generator=generator) * 4
    logits = F.interpolate(coarse, (h, w), mode='bilinear', align_corners=False)[:, 0].contiguous()
    return logits > threshold, logits


def edgecasemasks(h, w, seed=0):
    """Empty, full, single pixels at the four corners and centre, border lines, random noise, smooth blobs."""
    masks = [torch.zeros(h, w, dtype=torch.bool), torch.ones(h, w, dtype=torch.bool)]
    for y, x in [(0, 0), (0, w - 1), (h - 1, 0), (h - 1, w - 1), (h // 2, w // 2)]:
        single = torch.zeros(h, w, dtype=torch.bool)
        single[y, x] = True
        masks += [single, ~single]
    for line in [(slice(None), 0), (slice(None), w - 1), (0, slice(None)), (h - 1, slice(None))]:
        border = torch.zeros(h, w, dtype=torch.bool)
        border[line] = True
        masks.append(border)
    generator = torch.Generator().manual_seed(seed)
    masks += list(torch.rand(4, h, w, generator=generator) > 0.5)
    masks += list(smoothmasks(4, h, w, seed)[0])
    return torch.stack(masks)


def writeclip(folder, num_frames=12, height=120, width=160):
    """A folder of JPEG frames (returned as a str): a textured background, a red disc moving right, a green
    block moving down."""
    folder.mkdir(parents=True, exist_ok=True)
    background = syntheticimage(height, width, seed=7)
    yy, xx = np.mgrid[0:height, 0:width]
    for t in range(num_frames):
        frame = background.copy()
        frame[(yy - 50) ** 2 + (xx - (30 + 6 * t)) ** 2 < 18 ** 2] = (220, 40, 40)
        frame[60 + 3 * t:95 + 3 * t, 100:140] = (40, 200, 60)
        cv2.imwrite(str(folder / f'{t:05d}.jpg'), np.ascontiguousarray(frame[..., ::-1]))
    return str(folder)


# the real class, kept before any test stands a fake in for it
REAL_CAPTURE = cv2.VideoCapture


class FakeCapture:
    """A real OpenCV capture of the video file ``path`` standing in for a camera or URL: every read after ``good``
    frames fails, as when a camera is unplugged or a connection drops; ``onread(n)``, when given, is called before
    the n-th read (1-based). ``reads`` counts the reads, ``released`` the releases."""

    def __init__(self, path, good=None, onread=None):
        self.cap, self.good, self.onread, self.reads, self.released = REAL_CAPTURE(path), good, onread, 0, 0

    def isOpened(self):
        return self.cap.isOpened()

    def read(self):
        self.reads += 1
        if self.onread is not None:
            self.onread(self.reads)
        if self.good is not None and self.reads > self.good:
            return False, None
        return self.cap.read()

    def get(self, prop):
        return self.cap.get(prop)

    def release(self):
        self.released += 1
        self.cap.release()


def fakecaptures(monkeypatch, path, good=None, onread=None):
    """Make every ``cv2.VideoCapture(...)`` from now on (until the test ends) a :class:`FakeCapture` of ``path``;
    returns the list of (args, capture) opened."""
    opened = []

    def make(*args):
        opened.append((args, FakeCapture(path, good, onread)))
        return opened[-1][1]
    monkeypatch.setattr(cv2, 'VideoCapture', make)
    return opened


def clifails(capsys, argv, *words):
    """``ssseg ARGV`` (in this process) exits 2 with one stderr line ``ssseg SUBCOMMAND: error: ...`` holding
    every one of ``words``; returns that line."""
    from ssseg.inference.cli import main
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith(f'ssseg {argv[0]}: error: '), err
    for word in words:
        assert word in err, err
    return err
