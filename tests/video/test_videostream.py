"""VideoStream (stream mode's frame source): frames as the offline reader decodes them, read lazily in order; clear
errors for sources that cannot be opened; the end of a file and a dropped live source reported.

Live sources are stood in for by a fake ``cv2.VideoCapture`` wrapping a real capture of a synthetic mp4
(helpers.FakeCapture).
"""
import os
import pathlib
import time

import cv2
import numpy as np
import pytest

from ssseg.modules.models.segmentors.samv2.video import StreamDroppedError, VideoStream
from ssseg.modules.models.segmentors.samv2.video.livesource import DEFAULT_TIMEOUT_S
from ssseg.modules.models.segmentors.samv2.video.sources import VideoFile

from helpers import NUM_FRAMES, H, W, fakecaptures, makeframes

FPS = 10
# opening a source that is not there must fail at once, not after a network or device timeout
QUICK_S = 3.0


@pytest.fixture(scope='module')
def mp4(tmp_path_factory):
    """A NUM_FRAMES-frame mp4v file of makeframes() at FPS."""
    path = os.fspath(tmp_path_factory.mktemp('streamclip') / 'clip.mp4')
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*'mp4v'), FPS, (W, H))
    assert writer.isOpened()
    for frame in makeframes():
        writer.write(np.ascontiguousarray(frame[..., ::-1]))
    writer.release()
    return path


@pytest.fixture
def fakecapture(mp4, monkeypatch):
    """fakecapture(good) -> the list of (args, FakeCapture) opened from then on through cv2.VideoCapture."""
    return lambda good=None: fakecaptures(monkeypatch, mp4, good)


def test_file_frames_equal_the_offline_readers(mp4):
    reader = VideoFile(mp4)
    assert len(reader) == NUM_FRAMES
    stream = VideoStream(mp4)
    assert (stream.islive, stream.fps, stream.frames_read, stream.ended) == (False, float(FPS), 0, None)
    count = 0
    for frame in stream:
        assert frame.dtype == np.uint8 and frame.shape == (H, W, 3)
        assert np.array_equal(frame, reader.read(count)), count
        count += 1
        assert stream.frames_read == count and stream.ended is None
    reader.close()
    assert count == NUM_FRAMES
    assert stream.ended == f'end of file after {NUM_FRAMES} frames'
    assert stream.cap is None  # released at the end
    with pytest.raises(StopIteration):
        next(stream)


def test_frames_are_read_one_at_a_time(fakecapture):
    opened = fakecapture()
    stream = VideoStream(0)
    [(args, capture)] = opened
    assert args == (0,) and stream.islive
    assert capture.reads == 1  # the first frame, read to check the source delivers frames
    next(stream)
    assert capture.reads == 1
    next(stream)
    next(stream)
    assert capture.reads == 3 and stream.frames_read == 3
    stream.close()
    assert capture.released == 1


def test_pathlike_and_context_manager(mp4):
    with VideoStream(pathlib.Path(mp4)) as stream:
        first = next(stream)
        assert first.shape == (H, W, 3)
    assert stream.cap is None and stream.ended == 'closed after 1 frames'
    stream.close()  # idempotent
    assert stream.ended == 'closed after 1 frames'
    with pytest.raises(StopIteration):
        next(stream)


def test_missing_file(tmp_path):
    path = os.fspath(tmp_path / 'nope.mp4')
    with pytest.raises(FileNotFoundError, match='nope.mp4'):
        VideoStream(path)


@pytest.mark.parametrize('name, content', [('notes.mp4', b'not a video at all'), ('empty.avi', b'')])
def test_not_a_video(name, content, tmp_path):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ValueError) as info:
        VideoStream(os.fspath(path))
    message = str(info.value)
    assert message.startswith('source ') and name in message and 'camera index' in message and 'URL' in message


def test_a_folder_is_not_a_video(tmp_path):
    with pytest.raises(ValueError, match='is a folder'):
        VideoStream(os.fspath(tmp_path))


def _quickly(source):
    start = time.perf_counter()
    with pytest.raises(ValueError) as info:
        VideoStream(source)
    assert time.perf_counter() - start < QUICK_S
    return str(info.value)


def test_missing_camera_fails_quickly():
    message = _quickly(97)
    assert 'camera 97' in message and 'could not be opened' in message and 'URL' in message
    assert 'camera 97' in _quickly(np.int64(97))  # numpy integers are indices too


@pytest.mark.parametrize('url', ['rtsp://127.0.0.1:9/none', 'http://127.0.0.1:9/none.mp4'])
def test_unreachable_url_fails_quickly(url):
    message = _quickly(url)
    assert url in message and 'could not be opened' in message


def test_urls_get_a_timeout(fakecapture):
    opened = fakecapture()
    with VideoStream('RTSP://camera.local/live', timeout_s=2.5) as stream:
        assert stream.islive and next(stream).shape == (H, W, 3)
    [(args, _)] = opened
    assert args == ('RTSP://camera.local/live', cv2.CAP_FFMPEG, [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, 2500,
                                                                cv2.CAP_PROP_READ_TIMEOUT_MSEC, 2500])
    assert DEFAULT_TIMEOUT_S > 0


@pytest.mark.parametrize('source, error', [(True, TypeError), (False, TypeError), (1.5, TypeError), (None, TypeError),
                                           (b'clip.mp4', TypeError), ([0], TypeError), (-1, ValueError),
                                           ('', ValueError)])
def test_bad_sources(source, error):
    with pytest.raises(error, match='source'):
        VideoStream(source)


@pytest.mark.parametrize('timeout, error', [(0, ValueError), (-1, ValueError), (float('nan'), ValueError),
                                            (float('inf'), ValueError), ('5', TypeError), (True, TypeError)])
def test_bad_timeout(timeout, error, mp4):
    with pytest.raises(error, match='timeout_s'):
        VideoStream(mp4, timeout_s=timeout)


@pytest.mark.parametrize('source, name', [(0, 'camera 0'), ('udp://127.0.0.1:5000', "'udp://127.0.0.1:5000'")])
def test_dropped_live_source(source, name, fakecapture):
    opened = fakecapture(good=3)
    stream = VideoStream(source)
    frames = []
    with pytest.raises(StreamDroppedError) as info:
        for frame in stream:
            frames.append(frame)
    assert isinstance(info.value, ConnectionError)
    assert len(frames) == 3 and stream.frames_read == 3
    message = str(info.value)
    assert name in message and 'after 3 frame(s)' in message
    assert stream.ended == message
    assert opened[0][1].released == 1 and stream.cap is None
    with pytest.raises(StopIteration):  # reported once; the stream stays ended
        next(stream)


def test_live_source_that_delivers_nothing(fakecapture):
    fakecapture(good=0)
    with pytest.raises(ValueError, match='read no frame'):
        VideoStream(0)
