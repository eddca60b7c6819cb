"""VideoFrames (the video predictor's frame loader): parity with Meta's loader, lazy bounded decoding, errors.

All videos are synthetic and written to tmp folders: JPEG folders with PIL/OpenCV, an .mp4 with OpenCV's
'mp4v' writer and an .avi with 'MJPG'.
"""
import math
import threading
import time

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from ssseg.modules.models.segmentors.samv2.video.frames import VideoFrames

MEAN = torch.tensor((0.485, 0.456, 0.406), dtype=torch.float32).view(3, 1, 1)
STD = torch.tensor((0.229, 0.224, 0.225), dtype=torch.float32).view(3, 1, 1)
VIDEO_FRAMES, VIDEO_H, VIDEO_W, SIZE = 40, 48, 64, 32
REAL_CAPTURE = cv2.VideoCapture


def makeframes(n, h, w, seed=0):
    """n smooth, distinct (h, w, 3) uint8 RGB frames with a moving square (compresses like a real video)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    frames = []
    for i in range(n):
        frame = np.stack([(xx * 255 // w + 5 * i) % 256, (yy * 255 // h) % 256, np.full_like(xx, (37 * i) % 256)], -1)
        x0 = (3 * i) % max(1, w - 12)
        frame[h // 4:h // 4 + 10, x0:x0 + 10] = 255
        frame = frame + rng.integers(0, 24, frame.shape)
        frames.append(cv2.GaussianBlur(np.clip(frame, 0, 255).astype(np.uint8), (3, 3), 0))
    return frames


def expected(rgb, size):
    """Meta's recipe written out: PIL resize, /255 in float64, float32, (x - mean) / std."""
    resized = np.array(Image.fromarray(rgb).resize((size, size))) / 255.0
    return (torch.from_numpy(resized).permute(2, 0, 1).float() - MEAN) / STD


def decodeall(path):
    """Every frame of a video file, decoded sequentially by a fresh capture, as RGB."""
    cap, frames = REAL_CAPTURE(path), []
    while True:
        ok, bgr = cap.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    cap.release()
    return frames


def writevideo(path, frames, fourcc):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), 10, (frames[0].shape[1], frames[0].shape[0]))
    assert writer.isOpened(), f'this OpenCV cannot write {fourcc} to {path}'
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    return str(path)


@pytest.fixture(scope='module')
def mp4(tmp_path_factory):
    """(path, sequentially decoded RGB frames) of a 40-frame 64x48 mp4v video."""
    path = writevideo(tmp_path_factory.mktemp('video') / 'clip.mp4', makeframes(VIDEO_FRAMES, VIDEO_H, VIDEO_W), 'mp4v')
    frames = decodeall(path)
    assert len(frames) == VIDEO_FRAMES
    return path, frames


class FakeCapture:
    """A real cv2.VideoCapture that can lie about its frame count, refuse seeks and counts the seeks it does."""
    seeks = 0

    def __init__(self, path, claim=None, seekable=True):
        self.cap, self.claim, self.seekable = REAL_CAPTURE(path), claim, seekable

    def get(self, prop):
        if prop == cv2.CAP_PROP_FRAME_COUNT and self.claim is not None:
            return float(self.claim)
        return self.cap.get(prop)

    def set(self, prop, value):
        if prop == cv2.CAP_PROP_POS_FRAMES:
            FakeCapture.seeks += 1
            if not self.seekable:
                return False
        return self.cap.set(prop, value)

    def __getattr__(self, name):  # isOpened, grab, read, release
        return getattr(self.cap, name)


def fakecapture(monkeypatch, **kw):
    FakeCapture.seeks = 0
    monkeypatch.setattr(cv2, 'VideoCapture', lambda path: FakeCapture(path, **kw))


# ---------------------------------------------------------------------------------------------- JPEG folders
@pytest.mark.parametrize('size', [32, 80])
def test_jpeg_folder_matches_meta_loader(tmp_path, size):
    from sam2.utils.misc import load_video_frames
    frames = makeframes(12, 37, 53, seed=1)
    names = ['0.jpg', '1.jpeg', '2.JPG', '3.JPEG'] + [f'{i:05d}.jpg' for i in range(4, 12)]
    for i, (name, frame) in enumerate(zip(names, frames)):
        image = Image.fromarray(frame).convert('L') if i == 5 else Image.fromarray(frame)  # one grayscale JPEG
        image.save(tmp_path / name, quality=85)
    (tmp_path / 'notes.txt').write_text('not a frame')  # ignored by both loaders
    theirs, their_h, their_w = load_video_frames(str(tmp_path), size, offload_video_to_cpu=True,
                                                 compute_device=torch.device('cpu'))
    video = VideoFrames(str(tmp_path), size)
    assert (len(video), video.video_height, video.video_width) == (12, their_h, their_w) == (12, 37, 53)
    ours = torch.stack([video[i] for i in range(len(video))])
    assert ours.dtype == torch.float32 and ours.shape == theirs.shape == (12, 3, size, size)
    assert (ours - theirs).abs().max().item() == 0.0  # bit-identical, not merely close
    for i, name in enumerate(names):
        assert np.array_equal(video.rgbframe(i), np.asarray(Image.open(tmp_path / name).convert('RGB')))


def test_jpeg_folder_orders_by_frame_number(tmp_path):
    colours = {0: 10, 1: 60, 2: 110, 10: 160, 11: 210}
    for number, value in colours.items():
        Image.fromarray(np.full((16, 24, 3), value, np.uint8)).save(tmp_path / f'{number}.jpg', quality=100)
    video = VideoFrames(tmp_path, 16)  # a pathlib.Path works too
    assert len(video) == 5
    assert [int(video.rgbframe(i).mean().round()) for i in range(5)] == [10, 60, 110, 160, 210]


# ---------------------------------------------------------------------------------------------- video files
def test_mp4_random_forward_and_backward_access(mp4):
    path, decoded = mp4
    video = VideoFrames(path, SIZE, cachesize=3)
    assert (len(video), video.video_height, video.video_width) == (VIDEO_FRAMES, VIDEO_H, VIDEO_W)
    reference = [expected(frame, SIZE) for frame in decoded]
    order = [17, 3, 39, 0, 38, 5, 6, 7, 30, 29, 1] + list(range(VIDEO_FRAMES)) + list(range(VIDEO_FRAMES))[::-1]
    for idx in order:
        assert torch.equal(video[idx], reference[idx]), idx
        assert np.array_equal(video.rgbframe(idx), decoded[idx]), idx
    video.close()


def test_mp4_sequential_access_reads_forward_and_reverse_is_chunked(mp4, monkeypatch):
    path, decoded = mp4
    fakecapture(monkeypatch)
    video = VideoFrames(path, SIZE, cachesize=4)
    FakeCapture.seeks = 0
    for idx in range(VIDEO_FRAMES):
        assert torch.equal(video[idx], expected(decoded[idx], SIZE))
    assert FakeCapture.seeks == 0  # forward playback never seeks
    for idx in reversed(range(VIDEO_FRAMES)):
        assert torch.equal(video[idx], expected(decoded[idx], SIZE))
    # frames 39..36 are cached; every later backward miss decodes a 4-frame block after one seek
    assert FakeCapture.seeks == math.ceil((VIDEO_FRAMES - 4) / 4) - 1  # the block starting at frame 0 reopens instead


@pytest.mark.parametrize('claim', [VIDEO_FRAMES + 5, VIDEO_FRAMES - 7, 0, -1])
def test_mp4_wrong_header_frame_count_is_corrected(mp4, monkeypatch, claim):
    path, decoded = mp4
    fakecapture(monkeypatch, claim=claim)
    video = VideoFrames(path, SIZE)
    assert len(video) == VIDEO_FRAMES
    assert np.array_equal(video.rgbframe(VIDEO_FRAMES - 1), decoded[-1])
    with pytest.raises(IndexError):
        video[VIDEO_FRAMES]


def test_mp4_unseekable_capture_falls_back_to_reading_from_start(mp4, monkeypatch):
    path, decoded = mp4
    fakecapture(monkeypatch, seekable=False)
    video = VideoFrames(path, SIZE, cachesize=2)
    assert len(video) == VIDEO_FRAMES  # the header check needs a seek, so frames were counted
    for idx in [30, 2, 39, 38, 0, 21]:
        assert np.array_equal(video.rgbframe(idx), decoded[idx]), idx


def test_avi_mjpg(tmp_path):
    frames = makeframes(9, 40, 56, seed=2)
    path = writevideo(tmp_path / 'clip.avi', frames, 'MJPG')
    decoded = decodeall(path)
    video = VideoFrames(path, 24)
    assert (len(video), video.video_height, video.video_width) == (9, 40, 56)
    for idx in [8, 0, 4, 3, 2, 7]:
        assert torch.equal(video[idx], expected(decoded[idx], 24))


# ---------------------------------------------------------------------------------------------- frame lists
@pytest.mark.parametrize('container', [list, tuple])
def test_list_of_numpy_frames(container):
    frames = makeframes(6, 30, 44, seed=3)
    video = VideoFrames(container(frames), 40)
    assert (len(video), video.video_height, video.video_width) == (6, 30, 44)
    for idx in [5, 0, 3]:
        assert torch.equal(video[idx], expected(frames[idx], 40))
    rgb = video.rgbframe(2)
    rgb[:] = 0  # a copy: drawing on it changes neither the input nor the cache
    assert np.array_equal(video.rgbframe(2), frames[2]) and frames[2].any()
    tensor = video[2]
    tensor.zero_()
    assert torch.equal(video[2], expected(frames[2], 40))


# ---------------------------------------------------------------------------------------------- memory and options
def test_cache_never_exceeds_its_size(mp4):
    rng = np.random.default_rng(4)
    lists = VideoFrames(makeframes(20, 16, 16), 16, cachesize=3)
    files = VideoFrames(mp4[0], SIZE, cachesize=3)
    for video in (lists, files):
        for idx in list(rng.integers(0, len(video), 30)) + list(range(len(video)))[::-1]:
            video[idx] if idx % 2 else video.rgbframe(idx)
            assert len(video.cachedindices) <= 3
            assert video.cachedindices[-1] == idx  # the frame just used is the most recent
    assert len(VideoFrames(mp4[0], SIZE).cachedindices) == 1  # default: only frame 0 after opening


def test_preload_keeps_every_frame(mp4):
    path, decoded = mp4
    video = VideoFrames(path, SIZE, cachesize=2).preload(progress=True)
    assert video.cachesize == VIDEO_FRAMES and sorted(video.cachedindices) == list(range(VIDEO_FRAMES))
    assert torch.equal(video[25], expected(decoded[25], SIZE))


def waitfor(condition, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, 'background loader did not get there'
        time.sleep(0.005)


@pytest.mark.parametrize('source', ['mp4', 'jpeg', 'list'])
def test_async_loading_prefetches_and_gives_identical_tensors(mp4, tmp_path, source):
    frames = mp4[1]
    if source == 'mp4':
        path = mp4[0]
    elif source == 'jpeg':
        for i, frame in enumerate(frames):
            Image.fromarray(frame).save(tmp_path / f'{i:05d}.jpg')
        path = str(tmp_path)
    else:
        path = frames
    sync = VideoFrames(path, SIZE, cachesize=4)
    video = VideoFrames(path, SIZE, cachesize=4, async_loading_frames=True)
    waitfor(lambda: set(video.cachedindices) == {0, 1, 2, 3})  # decoded ahead of any request
    video[20]
    waitfor(lambda: {21, 22, 23} <= set(video.cachedindices))
    video[19]  # now going backwards
    waitfor(lambda: {16, 17, 18} <= set(video.cachedindices))
    order = [5, 9, 0] + list(range(VIDEO_FRAMES)) + list(range(VIDEO_FRAMES))[::-1]
    for idx in order:
        assert torch.equal(video[idx], sync[idx]), idx
        assert len(video.cachedindices) <= 4
    video.close()
    assert not video._thread.is_alive()


def test_async_loading_is_thread_safe(mp4):
    path, decoded = mp4
    reference = [expected(frame, SIZE) for frame in decoded]
    video = VideoFrames(path, SIZE, cachesize=3, async_loading_frames=True)
    failures = []

    def reader(seed):
        rng = np.random.default_rng(seed)
        for idx in rng.integers(0, VIDEO_FRAMES, 40):
            if not torch.equal(video[int(idx)], reference[idx]):
                failures.append(int(idx))

    threads = [threading.Thread(target=reader, args=(seed,)) for seed in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == [] and len(video.cachedindices) <= 3
    video.close()


def test_offload_video_to_cpu_keeps_cache_on_cpu():
    frames = makeframes(3, 20, 20)
    video = VideoFrames(frames, 16, offload_video_to_cpu=True, device='cpu')
    assert video.storagedevice == torch.device('cpu') and video[1].device == torch.device('cpu')
    assert torch.equal(video[1], VideoFrames(frames, 16)[1])


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA device')
@pytest.mark.parametrize('offload', [True, False])
def test_cuda_device(offload):
    frames = makeframes(3, 20, 20)
    video = VideoFrames(frames, 16, offload_video_to_cpu=offload, device='cuda')
    out = video[2]
    assert out.device.type == 'cuda' and torch.equal(out.cpu(), expected(frames[2], 16))
    assert video._cache[2][0].device.type == ('cpu' if offload else 'cuda')


# ---------------------------------------------------------------------------------------------- errors
def writejpegs(folder, names, size=(16, 16)):
    for name in names:
        Image.fromarray(np.full((*size, 3), 100, np.uint8)).save(folder / name)


def test_errors_for_paths(tmp_path):
    with pytest.raises(FileNotFoundError, match=r'video_path .*missing.* does not exist.*folder of JPEG frames'):
        VideoFrames(str(tmp_path / 'missing'), SIZE)
    with pytest.raises(TypeError, match=r'video_path must be .*got int'):
        VideoFrames(123, SIZE)
    empty = tmp_path / 'empty'
    empty.mkdir()
    with pytest.raises(ValueError, match=r'video_path .*no \.jpg/\.jpeg frames: it holds no files'):
        VideoFrames(str(empty), SIZE)
    pngs = tmp_path / 'pngs'
    pngs.mkdir()
    cv2.imwrite(str(pngs / '00000.png'), np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(ValueError, match=r"no \.jpg/\.jpeg frames: it holds only \['00000\.png'\]"):
        VideoFrames(str(pngs), SIZE)
    named = tmp_path / 'named'
    named.mkdir()
    writejpegs(named, ['00000.jpg', 'frame_a.jpg', '._00001.jpg', '-2.jpg'])
    with pytest.raises(ValueError, match=r"not numbers: \['-2\.jpg', '\._00001\.jpg', 'frame_a\.jpg'\]"):
        VideoFrames(str(named), SIZE)
    clash = tmp_path / 'clash'
    clash.mkdir()
    writejpegs(clash, ['1.jpg', '01.jpeg', '2.jpg'])
    with pytest.raises(ValueError, match=r"same frame number.*\['01\.jpeg', '1\.jpg'\]"):
        VideoFrames(str(clash), SIZE)
    single = tmp_path / 'one.jpg'
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(single)
    with pytest.raises(ValueError, match='single JPEG image'):
        VideoFrames(str(single), SIZE)
    garbage = tmp_path / 'broken.mp4'
    garbage.write_bytes(b'this is not a video' * 100)
    with pytest.raises(ValueError, match=r"video_path .*broken\.mp4.*(could not be opened|decoded no frame)"):
        VideoFrames(str(garbage), SIZE)


def test_errors_for_bad_jpegs(tmp_path):
    writejpegs(tmp_path, ['00000.jpg', '00002.jpg'])
    writejpegs(tmp_path, ['00003.jpg'], size=(16, 20))
    good = (tmp_path / '00000.jpg').read_bytes()
    (tmp_path / '00001.jpg').write_bytes(good[:len(good) // 2])  # truncated
    (tmp_path / '00004.jpg').write_bytes(b'not a jpeg at all')
    video = VideoFrames(str(tmp_path), SIZE)  # lazy: the bad files are met only when read
    assert video[2].shape == (3, SIZE, SIZE)
    with pytest.raises(ValueError, match=r"video_path: JPEG frame .*00001\.jpg.*\(frame_idx 1\) could not be decoded"):
        video[1]
    with pytest.raises(ValueError, match=r"00003\.jpg.* is 20x16 \(WxH\) but frame 0 is 16x16"):
        video[3]
    with pytest.raises(ValueError, match=r"00004\.jpg.*could not be decoded"):
        video.rgbframe(4)
    (tmp_path / '00000.jpg').write_bytes(b'broken')
    with pytest.raises(ValueError, match=r"00000\.jpg.*could not be decoded"):
        VideoFrames(str(tmp_path), SIZE)


def test_errors_for_frame_lists():
    good = np.zeros((8, 10, 3), np.uint8)
    with pytest.raises(ValueError, match='video_path must be .*got an empty list'):
        VideoFrames([], SIZE)
    with pytest.raises(TypeError, match=r'video_path\[1\] must be an \(H, W, 3\) uint8 RGB numpy array, got Tensor'):
        VideoFrames([good, torch.zeros(8, 10, 3)], SIZE)
    with pytest.raises(TypeError, match=r'video_path\[1\] must have dtype uint8.*got float32'):
        VideoFrames([good, good.astype(np.float32)], SIZE)
    with pytest.raises(ValueError, match=r'video_path\[0\] must be an \(H, W, 3\) RGB frame, got shape \(8, 10\)'):
        VideoFrames([good[..., 0]], SIZE)
    with pytest.raises(ValueError, match=r'video_path\[1\] must be .*got shape \(8, 10, 4\)'):
        VideoFrames([good, np.zeros((8, 10, 4), np.uint8)], SIZE)
    with pytest.raises(ValueError, match=r'one size: video_path\[0\] is \(8, 10, 3\), video_path\[2\] is \(8, 12, 3\)'):
        VideoFrames([good, good, np.zeros((8, 12, 3), np.uint8)], SIZE)


def test_errors_for_indices_and_options(mp4):
    video = VideoFrames(mp4[1][:5], SIZE)
    for bad in (5, -1, 100):
        with pytest.raises(IndexError, match=rf'frame_idx must be in \[0, 4\] \(the video has 5 frames\), got {bad}'):
            video[bad]
    with pytest.raises(IndexError, match='frame_idx'):
        video.rgbframe(5)
    for bad in (1.0, '1', True, None):
        with pytest.raises(TypeError, match=r'frame_idx must be an int in \[0, 4\]'):
            video[bad]
    assert torch.equal(video[np.int64(3)], video[3])
    for kw, error in [({'imagesize': 0}, ValueError), ({'imagesize': 32.0}, TypeError), ({'cachesize': 0}, ValueError),
                      ({'cachesize': None}, TypeError), ({'device': 'gpu0'}, ValueError)]:
        with pytest.raises(error, match=next(iter(kw))):
            VideoFrames(mp4[1][:2], **{'imagesize': SIZE, **kw})
