"""Bad input at every public entry of SAMV2VideoPredictor (and VideoFrames), and recovery after a failed call.

Each bad input raises ValueError, TypeError or FileNotFoundError naming the argument, what was expected and
what was received, before the state changes: a failed call (bad argument, unknown object, a model error in the
middle of a propagation) leaves predictor and state giving exactly (torch.equal) what a fresh predictor and a
fresh state give. A hypothesis property test draws point/box prompts for addnewpointsorbox.
Tiny random model (tests/tinyconfig.py), synthetic frames (makeframes of tests/test_videopredictor.py).
"""
import math
import os

import cv2
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from ssseg.modules.models.segmentors.samv2 import SAMV2VideoPredictor
from ssseg.modules.models.segmentors.samv2.video import sources as videoio
from ssseg.modules.models.segmentors.samv2.video.frames import FrameIndexError
from ssseg.modules.models.segmentors.samv2.video.state import VideoStateError

from helpers import makeframes, snapshot, writetinyckpt

pytestmark = pytest.mark.usefixtures('onethread')

H, W, NUM_FRAMES = 60, 80, 8
DOCUMENTED = (ValueError, TypeError, FileNotFoundError)


@pytest.fixture(scope='module')
def tinycfg(tmp_path_factory):
    return writetinyckpt(tmp_path_factory.mktemp('tinyreliability') / 'tiny.pt')


@pytest.fixture(scope='module')
def predictor(tinycfg):
    """Shared by every test of the module, failed calls included: it must stay as good as a fresh one."""
    return SAMV2VideoPredictor(samv2_cfg=tinycfg, device='cpu')


@pytest.fixture(scope='module')
def frames():
    return makeframes(NUM_FRAMES, H, W)


PROMPTS = [lambda p, s: p.addnewpointsorbox(s, 0, 1, points=[[15, 20]], labels=[1]),
           lambda p, s: p.addnewpointsorbox(s, 0, 2, box=[48, 28, 72, 46])]


def validscenario(predictor, state, start=0):
    """Two objects prompted on frame 0, then one pass over the video (from prompt ``start`` on)."""
    out = [snapshot(prompt(predictor, state)) for prompt in PROMPTS[start:]]
    return out + [snapshot(r) for r in predictor.propagateinvideo(state)]


@pytest.fixture(scope='module')
def expected(tinycfg, frames):
    """The valid scenario on a fresh predictor and a fresh state."""
    fresh = SAMV2VideoPredictor(samv2_cfg=tinycfg, device='cpu')
    return validscenario(fresh, fresh.initstate(frames))


def assertsame(results, expected):
    assert [(t, ids) for t, ids, _ in results] == [(t, ids) for t, ids, _ in expected]
    for (t, _, ours), (_, _, theirs) in zip(results, expected):
        assert ours.shape == theirs.shape and ours.dtype == theirs.dtype == torch.float32
        assert torch.equal(ours, theirs), f'frame {t}: max diff {(ours - theirs).abs().max():.3g}'


def raises(error, match, call, *args, **kwargs):
    """Run ``call``, which must raise ``error`` (one of the documented classes) with a message matching ``match``."""
    with pytest.raises(error, match=match) as info:
        call(*args, **kwargs)
    assert isinstance(info.value, DOCUMENTED), type(info.value).__mro__
    return info.value


# ---------------------------------------------------------------------- initstate
def writejpegs(folder, names, size=(16, 16)):
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        cv2.imwrite(str(folder / name), np.full((*size, 3), 100, np.uint8))
    return folder


BAD_VIDEOS = {
    'missing path': (lambda tmp: tmp / 'missing', FileNotFoundError, r"video_path '.*missing' does not exist"),
    'empty folder': (lambda tmp: writejpegs(tmp / 'empty', []), ValueError,
                     r'video_path must be .*no \.jpg/\.jpeg frames: it holds no files'),
    'non-numeric names': (lambda tmp: writejpegs(tmp / 'named', ['00000.jpg', 'frame_b.jpg']), ValueError,
                          r"video_path .*named by frame number.*not numbers: \['frame_b\.jpg'\]"),
    'single jpeg': (lambda tmp: writejpegs(tmp / 'one', ['0.jpg']) / '0.jpg', ValueError, 'single JPEG image'),
    'undecodable mp4': (lambda tmp: (tmp / 'x.mp4').write_bytes(b'no video here' * 50) and tmp / 'x.mp4', ValueError,
                        r"video_path '.*x\.mp4'.*(could not be opened|decoded no frame)"),
    'corrupt first jpeg': (lambda tmp: (writejpegs(tmp / 'bad', []) / '0.jpg').write_bytes(b'broken') and tmp / 'bad',
                           ValueError, r"video_path: JPEG frame .*0\.jpg.*could not be decoded"),
    'int': (lambda tmp: 3, TypeError, r'video_path must be .*got int'),
    'tensor': (lambda tmp: torch.zeros(2, 8, 8, 3, dtype=torch.uint8), TypeError, r'video_path must be .*got Tensor'),
    'empty list': (lambda tmp: [], ValueError, r'video_path must be .*got an empty list'),
    'mixed sizes': (lambda tmp: [np.zeros((8, 8, 3), np.uint8), np.zeros((8, 9, 3), np.uint8)], ValueError,
                    r'video_path frames must all have one size: video_path\[0\] is \(8, 8, 3\), video_path\[1\]'),
    'float frames': (lambda tmp: [np.zeros((8, 8, 3), np.float32)], TypeError,
                     r'video_path\[0\] must have dtype uint8.*got float32'),
    'grayscale frames': (lambda tmp: [np.zeros((8, 8), np.uint8)], ValueError,
                         r'video_path\[0\] must be an \(H, W, 3\) RGB frame, got shape \(8, 8\)'),
    'float 4-D array': (lambda tmp: np.zeros((2, 8, 8, 3), np.float64), TypeError,
                        r'video_path as an array must have dtype uint8.*got float64'),
    '3-D array': (lambda tmp: np.zeros((8, 8, 3), np.uint8), ValueError,
                  r'video_path as an array must be \(T, H, W, 3\) RGB frames, got shape \(8, 8, 3\) \(one frame'),
    'RGBA 4-D array': (lambda tmp: np.zeros((2, 8, 8, 4), np.uint8), ValueError,
                       r'video_path as an array must be \(T, H, W, 3\).*got shape \(2, 8, 8, 4\)'),
}


@pytest.mark.parametrize('name', sorted(BAD_VIDEOS))
def test_initstate_bad_video_paths(predictor, tmp_path, name):
    make, error, match = BAD_VIDEOS[name]
    raises(error, match, predictor.initstate, make(tmp_path))


def test_initstate_unreadable_folder_and_file(predictor, tmp_path, monkeypatch):
    # permissions cannot be taken away from root: the operating system's refusal is simulated
    folder = writejpegs(tmp_path / 'frames', ['0.jpg'])

    def refuse(path, *args, **kwargs):
        raise PermissionError(13, 'Permission denied', os.fspath(path))
    with monkeypatch.context() as patch:
        patch.setattr(videoio.os, 'listdir', refuse)
        raises(ValueError, r"video_path '.*frames' is a folder that could not be listed \(PermissionError: "
               r"Permission denied\)", predictor.initstate, folder)
    video = tmp_path / 'clip.mp4'
    video.write_bytes(b'\0' * 64)
    with monkeypatch.context() as patch:
        patch.setattr(videoio, 'open', refuse, raising=False)
        raises(ValueError, r"video_path '.*clip\.mp4' could not be read \(PermissionError: Permission denied\)",
               predictor.initstate, str(video))


@pytest.mark.parametrize('flag', ['offload_video_to_cpu', 'offload_state_to_cpu', 'async_loading_frames'])
def test_initstate_flags_must_be_bools(predictor, frames, flag):
    raises(TypeError, rf"{flag} must be a bool, got str 'no'", predictor.initstate, frames[:2], **{flag: 'no'})


def test_a_4d_uint8_array_is_a_list_of_frames(predictor, frames):
    results = []
    for video in (frames[:3], np.stack(frames[:3])):
        state = predictor.initstate(video)
        assert (state['num_frames'], state['video_height'], state['video_width']) == (3, H, W)
        results.append(snapshot(predictor.addnewpointsorbox(state, 1, 1, points=[[15, 20]], labels=[1])))
    assertsame(results[1:], results[:1])


# ---------------------------------------------------------------------- frame indices
@pytest.mark.parametrize('bad', [NUM_FRAMES, -1, 10 ** 9, np.int64(NUM_FRAMES)])
def test_frame_index_out_of_range_is_a_valueerror_and_an_indexerror(predictor, frames, bad):
    state = predictor.initstate(frames)
    predictor.addnewpointsorbox(state, 0, 1, points=[[15, 20]], labels=[1])
    message = rf'frame_idx must be in \[0, {NUM_FRAMES - 1}\] \(the video has {NUM_FRAMES} frames\), got {int(bad)}'
    calls = [lambda: predictor.addnewpointsorbox(state, bad, 1, points=[[1, 2]], labels=[1]),
             lambda: predictor.addnewpoints(state, bad, 1, [[1, 2]], [1]),
             lambda: predictor.addnewmask(state, bad, 1, np.ones((H, W), bool)),
             lambda: predictor.clearallpromptsinframe(state, bad, 1),
             lambda: state['images'][bad],
             lambda: state['images'].rgbframe(bad)]
    for call in calls:
        err = raises(FrameIndexError, message, call)
        assert isinstance(err, ValueError) and isinstance(err, IndexError)
    err = raises(FrameIndexError, rf'start_frame_idx must be in \[0, {NUM_FRAMES - 1}\].*got {int(bad)}',
                 predictor.propagateinvideo, state, start_frame_idx=bad)
    assert isinstance(err, ValueError)


@pytest.mark.parametrize('bad', [1.0, '1', True, np.bool_(False), None, [0]])
def test_frame_index_of_another_type_is_a_typeerror(predictor, frames, bad):
    state = predictor.initstate(frames[:3])
    predictor.addnewpointsorbox(state, 0, 1, points=[[15, 20]], labels=[1])
    message = rf'frame_idx must be an int in \[0, 2\], got {type(bad).__name__}'
    raises(TypeError, message, predictor.addnewpointsorbox, state, bad, 1, points=[[1, 2]], labels=[1])
    raises(TypeError, message, predictor.addnewmask, state, bad, 1, np.ones((H, W), bool))
    raises(TypeError, message, predictor.clearallpromptsinframe, state, bad, 1)
    if bad is not None:  # None is the default: the earliest prompted frame
        raises(TypeError, 'start_frame_idx must be an int', predictor.propagateinvideo, state, start_frame_idx=bad)


# ---------------------------------------------------------------------- prompts
BAD_POINTS = [
    (dict(points=[[math.nan, 2]], labels=[1]), ValueError, 'points must be finite'),
    (dict(points=[[1, math.inf]], labels=[1]), ValueError, 'points must be finite'),
    (dict(points=[[1, 2]], labels=[math.nan]), ValueError, 'labels must be finite'),
    (dict(points=[[1, 2]], labels=[4]), ValueError, r'labels must be in \(-1, 0, 1, 2, 3\).*got \[4'),
    (dict(points=[[1, 2]], labels=[-2]), ValueError, 'labels must be in'),
    (dict(points=[[1, 2]], labels=[0.5]), ValueError, r'labels must be in.*got \[0\.5\]'),
    (dict(points=[[1, 2], [3, 4]], labels=[1]), ValueError, r'labels must have one label per point.*got \(1,\)'),
    (dict(points=np.zeros((0, 2)), labels=np.zeros(0)), ValueError, r'points must have shape \(P, 2\).*P >= 1'),
    (dict(box=[1, 2, 3]), ValueError, r'box must be one x1, y1, x2, y2 box \(4 numbers\), got shape \(3,\)'),
    (dict(box=[1, 2, 3, 4, 5]), ValueError, r'box must be one x1, y1, x2, y2 box \(4 numbers\), got shape \(5,\)'),
    (dict(box=[1, [2, 3], 4]), ValueError, r'box must be one x1, y1, x2, y2 box \(4 numbers\), got list'),
    (dict(box=[40, 2, 10, 30]), ValueError, r'box must be x1, y1, x2, y2 with x2 >= x1 and y2 >= y1, got \[40'),
    (dict(box=[1, 30, 10, 2]), ValueError, 'x2 >= x1 and y2 >= y1'),
    (dict(box=[1, 2, math.nan, 30]), ValueError, 'box must be finite'),
    (dict(box=['a', 'b', 'c', 'd']), TypeError, 'box must be a numeric array'),
    (dict(points=[[1, 2]], labels=[1], obj_id=1.5), TypeError, 'obj_id must be an int or a str object id, got float'),
    (dict(points=[[1, 2]], labels=[1], obj_id=None), TypeError, 'obj_id must be an int or a str object id, got None'),
    (dict(points=[[1, 2]], labels=[1], obj_id=True), TypeError, 'obj_id must be an int or a str object id, got bool'),
    (dict(points=[[1, 2]], labels=[1], obj_id=(1,)), TypeError, 'obj_id must be an int or a str object id, got tuple'),
    (dict(points=[[1, 2]], labels=[1], clear_old_points='no'), TypeError, "clear_old_points must be a bool, got str"),
    (dict(points=[[1, 2]], labels=[1], normalize_coords=None), TypeError, 'normalize_coords must be a bool, got None'),
    (dict(points=[[1, 2]], labels=[1], normalize_coords=2), TypeError, 'normalize_coords must be a bool, got int 2'),
]


@pytest.mark.parametrize('kwargs, error, match', BAD_POINTS)
def test_addnewpointsorbox_bad_prompts(predictor, frames, kwargs, error, match):
    state = predictor.initstate(frames[:3])
    predictor.addnewpointsorbox(state, 0, 1, points=[[15, 20]], labels=[1])
    before = {k: dict(state[k][0]) for k in ('point_inputs_per_obj', 'temp_output_dict_per_obj')}
    raises(error, match, predictor.addnewpointsorbox, state, **{'frame_idx': 0, 'obj_id': 2, **kwargs})
    raises(error, match, predictor.addnewpointsorbox, state, **{'frame_idx': 0, 'obj_id': 1, **kwargs})
    assert state['obj_ids'] == [1]
    assert {k: dict(state[k][0]) for k in ('point_inputs_per_obj', 'temp_output_dict_per_obj')} == before


def test_object_ids(predictor, frames):
    state = predictor.initstate(frames[:3])
    _, obj_ids, _ = predictor.addnewpointsorbox(state, 0, np.int64(4), points=[[15, 20]], labels=[1])
    assert obj_ids == [4] and type(obj_ids[0]) is int  # numpy ints are stored as ints
    _, obj_ids, masks = predictor.addnewpointsorbox(state, 0, 'car', points=[[60, 40]], labels=[1])
    assert obj_ids == [4, 'car'] and masks.shape == (2, 1, H, W)
    assert predictor.addnewpointsorbox(state, 0, 4, points=[[16, 20]], labels=[1])[1] == [4, 'car']


BAD_MASKS = [
    (np.full((H, W), np.nan), ValueError, r'mask must be finite'),
    (np.where(np.eye(H, W, dtype=bool), np.inf, 0.0), ValueError, r'mask must be finite'),
    (torch.full((H, W), math.nan), ValueError, r'mask must be finite'),
    (torch.full((H, W), 255, dtype=torch.uint8), ValueError, r'mask as a tensor must hold values in \[0, 1\].*255'),
    (torch.full((H, W), -0.5), ValueError, r'mask as a tensor must hold values in \[0, 1\]'),
    (np.zeros((1, H, W), bool), ValueError, r"mask must be one object's \(H, W\) mask \(2-D, non-empty\), got shape "
                                            r'\(1, 60, 80\)'),
    (np.zeros(W, bool), ValueError, r'mask must be one object.*got shape \(80,\)'),
    (np.zeros((H, 0), bool), ValueError, r'non-empty.*got shape \(60, 0\)'),
    (np.array([['a', 'b']]), TypeError, r'mask must be an \(H, W\) bool or 0/1 array, got ndarray'),
    ('mask', TypeError, r'mask must be an \(H, W\) bool or 0/1 array, got str'),
    (torch.zeros(H, W, dtype=torch.complex64), TypeError, 'mask must be an .* tensor, got dtype torch.complex64'),
]


@pytest.mark.parametrize('mask, error, match', BAD_MASKS)
def test_addnewmask_bad_masks(predictor, frames, mask, error, match):
    state = predictor.initstate(frames[:3])
    raises(error, match, predictor.addnewmask, state, 0, 1, mask)
    raises(TypeError, 'obj_id must be an int or a str', predictor.addnewmask, state, 0, 1.0, np.ones((H, W), bool))
    assert state['obj_ids'] == []


def test_addnewmask_sizes(predictor, frames, recwarn):
    state = predictor.initstate(frames[:3])
    mask = np.zeros((H, W), bool)
    mask[10:30, 5:25] = True
    at_video = predictor.addnewmask(state, 0, 1, mask)[2]
    soft = predictor.addnewmask(state, 0, 1, torch.from_numpy(mask).float())[2]  # a [0, 1] tensor of the video's size
    predictor.addnewmask(state, 0, 2, np.zeros((128, 128), np.uint8))  # the model's input size: used as it is
    assert not [w for w in recwarn.list if 'mask has shape' in str(w.message)]
    assert torch.equal(at_video, soft)
    with pytest.warns(UserWarning, match=r'mask has shape \(80, 60\) but the video\'s frames are \(60, 80\) \(H, W\): '
                                         'it is resized'):
        _, obj_ids, masks = predictor.addnewmask(state, 0, 3, mask.T)  # transposed: resized, with a warning
    assert obj_ids == [1, 2, 3] and masks.shape == (3, 1, H, W)


# ---------------------------------------------------------------------- objects, flags, states
def test_object_calls(predictor, frames):
    state = predictor.initstate(frames[:3])
    predictor.addnewpointsorbox(state, 0, 1, points=[[15, 20]], labels=[1])
    assert predictor.removeobject(state, 7) == ([1], [])  # unknown id without strict: ignored, as Meta's
    assert predictor.removeobject(state, 'x') == ([1], [])
    err = raises(VideoStateError, r'obj_id 7 is not an object of this state; known ids: \[1\]',
                 predictor.removeobject, state, 7, strict=True)
    assert isinstance(err, ValueError)
    for call in (lambda: predictor.removeobject(state, 1.0), lambda: predictor.removeobject(state, None, strict=True),
                 lambda: predictor.clearallpromptsinframe(state, 0, [1])):
        raises(TypeError, 'obj_id must be an int or a str object id', call)
    raises(VideoStateError, r'obj_id 7 is not an object of this state; known ids: \[1\]',
           predictor.clearallpromptsinframe, state, 0, 7)
    raises(TypeError, "strict must be a bool, got str 'yes'", predictor.removeobject, state, 7, strict='yes')
    raises(TypeError, 'need_output must be a bool, got None', predictor.removeobject, state, 1, need_output=None)
    raises(TypeError, 'need_output must be a bool, got float 0.0', predictor.clearallpromptsinframe, state, 0, 1,
           need_output=0.0)
    assert state['obj_ids'] == [1] and list(state['point_inputs_per_obj'][0]) == [0]
    assert predictor.removeobject(state, 1, strict=np.bool_(True), need_output=0) == ([], [])  # numpy bool, 0/1 ok


BAD_PROPAGATION = [
    (dict(max_frame_num_to_track=-1), ValueError, 'max_frame_num_to_track must be None or an int >= 0, got -1'),
    (dict(max_frame_num_to_track=2.0), TypeError, 'max_frame_num_to_track must be None or an int >= 0, got float'),
    (dict(max_frame_num_to_track='all'), TypeError, 'max_frame_num_to_track must be .*got str'),
    (dict(max_frame_num_to_track=True), TypeError, 'max_frame_num_to_track must be .*got bool'),
    (dict(reverse='yes'), TypeError, "reverse must be a bool, got str 'yes'"),
    (dict(reverse=None), TypeError, 'reverse must be a bool, got None'),
    (dict(start_frame_idx=NUM_FRAMES), FrameIndexError, r'start_frame_idx must be in \[0, 7\]'),
]


@pytest.mark.parametrize('kwargs, error, match', BAD_PROPAGATION)
def test_propagateinvideo_bad_arguments_fail_before_iterating(predictor, frames, kwargs, error, match):
    state = predictor.initstate(frames)
    raises(VideoStateError, 'propagateinvideo needs prompts', predictor.propagateinvideo, state)
    predictor.addnewpointsorbox(state, 0, 1, points=[[15, 20]], labels=[1])
    raises(error, match, predictor.propagateinvideo, state, **kwargs)
    assert not state['output_dict_per_obj'][0]['cond_frame_outputs']  # nothing consolidated yet


NOT_STATES = [
    (None, r'inference_state must be the dict returned by initstate\(video_path\), got NoneType'),
    ([], 'inference_state must be the dict returned by initstate.*got list'),
    ({}, r"got a dict missing the keys \['images', 'num_frames', .*'frames_tracked_per_obj'\]"),
    ({'images': None, 'num_frames': 3}, r"missing the keys \['image_size', 'obj_ids'"),
]


@pytest.mark.parametrize('state, match', NOT_STATES)
def test_something_that_is_not_a_state(predictor, state, match):
    raises(TypeError, match, predictor.resetstate, state)
    raises(TypeError, match, predictor.propagateinvideo, state)
    raises(TypeError, match, predictor.addnewpointsorbox, state, 0, 1, points=[[1, 2]], labels=[1])
    raises(TypeError, match, predictor.addnewmask, state, 0, 1, np.ones((4, 4), bool))
    raises(TypeError, match, predictor.removeobject, state, 1)
    raises(TypeError, match, predictor.clearallpromptsinframe, state, 0, 1)


def test_state_from_another_device(predictor, frames):
    state = predictor.initstate(frames[:2])
    moved = dict(state, device=torch.device('meta'))
    raises(ValueError, r'inference_state was made on device meta, this predictor runs on cpu',
           predictor.addnewpointsorbox, moved, 0, 1, points=[[1, 2]], labels=[1])


@pytest.mark.parametrize('flag', ['apply_postprocessing', 'non_overlap_masks', 'release_memory', 'progress',
                                  'clear_non_cond_mem_around_input', 'add_all_frames_to_correct_as_cond'])
def test_constructor_flags_must_be_bools(tinycfg, flag):
    raises(TypeError, rf"{flag} must be a bool, got str 'False'", SAMV2VideoPredictor, samv2_cfg=tinycfg,
           device='cpu', **{flag: 'False'})


# ---------------------------------------------------------------------- a failed call, then fresh results
def _bad(error, call):
    return error, call


FAILURES = {
    'bad label': _bad(ValueError, lambda p, s: p.addnewpointsorbox(s, 0, 1, points=[[15, 20]], labels=[7])),
    'NaN click': _bad(ValueError, lambda p, s: p.addnewpointsorbox(s, 0, 2, points=[[math.nan, 1]], labels=[1])),
    'flipped box': _bad(ValueError, lambda p, s: p.addnewpointsorbox(s, 0, 2, box=[72, 28, 48, 46])),
    'frame out of range': _bad(FrameIndexError, lambda p, s: p.addnewpointsorbox(s, NUM_FRAMES, 1, points=[[1, 2]],
                                                                                 labels=[1])),
    'negative mask frame': _bad(FrameIndexError, lambda p, s: p.addnewmask(s, -1, 1, np.ones((H, W), bool))),
    'NaN mask': _bad(ValueError, lambda p, s: p.addnewmask(s, 0, 1, np.full((H, W), np.nan))),
    'float obj_id': _bad(TypeError, lambda p, s: p.addnewpointsorbox(s, 0, 1.0, points=[[15, 20]], labels=[1])),
    'flag not a bool': _bad(TypeError, lambda p, s: p.addnewpointsorbox(s, 0, 1, points=[[15, 20]], labels=[1],
                                                                        clear_old_points='False')),
    'unknown object, strict': _bad(VideoStateError, lambda p, s: p.removeobject(s, 9, strict=True)),
    'unknown object, clear prompts': _bad(VideoStateError, lambda p, s: p.clearallpromptsinframe(s, 0, 9)),
    'propagation start out of range': _bad(ValueError, lambda p, s: p.propagateinvideo(s, start_frame_idx=-1)),
    'bad video path': _bad(FileNotFoundError, lambda p, s: p.initstate('/nonexistent/video/folder')),
    'not a state': _bad(TypeError, lambda p, s: p.resetstate({'num_frames': 3})),
    'model error on a new object': _bad(RuntimeError, None),
}


@pytest.mark.parametrize('name', sorted(FAILURES))
def test_failed_call_then_valid_calls_give_fresh_results(predictor, frames, expected, monkeypatch, name):
    """The failure comes before the first prompt, between the prompts and before the propagation."""
    error, call = FAILURES[name]
    if call is None:
        def broken(*args, **kwargs):
            raise RuntimeError('simulated failure inside the model')

        def call(p, s):
            with monkeypatch.context() as patch:
                patch.setattr(p.model, 'trackstep', broken)
                p.addnewpointsorbox(s, 0, 5, points=[[30, 30]], labels=[1])
    for position in range(len(PROMPTS) + 1):
        state = predictor.initstate(frames)
        done = [snapshot(prompt(predictor, state)) for prompt in PROMPTS[:position]]
        with pytest.raises(error):
            call(predictor, state)
        assertsame(done + validscenario(predictor, state, start=position), expected)


def test_propagation_failing_midway_then_a_full_pass_gives_fresh_results(predictor, frames, expected, monkeypatch):
    state = predictor.initstate(frames)
    assertsame([snapshot(prompt(predictor, state)) for prompt in PROMPTS], expected[:2])
    original, failed = predictor.model.trackstep, []

    def flaky(frame_idx, *args, **kwargs):
        if frame_idx == 3 and not failed:  # once, on the 3rd tracked frame
            failed.append(frame_idx)
            raise RuntimeError('simulated failure on frame 3')
        return original(frame_idx, *args, **kwargs)
    monkeypatch.setattr(predictor.model, 'trackstep', flaky)
    partial = []
    with pytest.raises(RuntimeError, match='simulated failure on frame 3'):
        for result in predictor.propagateinvideo(state):
            partial.append(snapshot(result))
    assert failed == [3]
    assertsame(partial, expected[2:5])  # frames 0..2 came out right
    assertsame([snapshot(r) for r in predictor.propagateinvideo(state)], expected[2:])
    # and the predictor serves a fresh state as a fresh predictor would
    assertsame(validscenario(predictor, predictor.initstate(frames)), expected)


def test_propagation_stopped_early_then_a_full_pass_gives_fresh_results(predictor, frames, expected):
    state = predictor.initstate(frames)
    for prompt in PROMPTS:
        prompt(predictor, state)
    generator = predictor.propagateinvideo(state)
    assertsame([snapshot(next(generator)) for _ in range(4)], expected[2:6])
    generator.close()  # the caller breaks out of the loop
    assertsame([snapshot(r) for r in predictor.propagateinvideo(state)], expected[2:])


# ---------------------------------------------------------------------- property test: addnewpointsorbox
VALID_LABELS = (-1, 0, 1, 2, 3)
SHORT = 3  # frames of the property test's video
NONFINITE = (math.nan, math.inf, -math.inf)


FINITE = st.floats(-150, 250, allow_nan=False, allow_infinity=False, width=32)  # out of the frame is accepted


@st.composite
def validcalls(draw):
    """Keyword arguments of a valid addnewpointsorbox call: clicks (0 to 5), a box, or both."""
    count = draw(st.integers(0, 5))
    points = [[draw(FINITE), draw(FINITE)] for _ in range(count)] or None
    labels = [draw(st.sampled_from(VALID_LABELS)) for _ in range(count)] or None
    box = None
    if count == 0 or draw(st.booleans()):
        x1, y1 = draw(FINITE), draw(FINITE)
        box = [x1, y1, x1 + draw(st.floats(0, 60, width=32)), y1 + draw(st.floats(0, 50, width=32))]
    return dict(frame_idx=draw(st.integers(0, SHORT - 1)), obj_id=draw(st.sampled_from([1, 2, 3])), points=points,
                labels=labels, box=box, clear_old_points=box is not None or draw(st.booleans()),
                normalize_coords=draw(st.booleans()))


def _setpoint(kwargs, value, draw):
    if kwargs['points'] is None:
        kwargs['points'], kwargs['labels'] = [[1.0, 2.0]], [1]
    points = [list(p) for p in kwargs['points']]
    i = draw(st.integers(0, len(points) - 1))
    points[i][draw(st.integers(0, 1))] = value
    kwargs['points'] = points


def _setlabel(kwargs, value, draw):
    if kwargs['points'] is None:
        kwargs['points'], kwargs['labels'] = [[1.0, 2.0]], [1]
    labels = list(kwargs['labels'])
    if not labels:  # an earlier mutation removed the only label
        labels = [value]
    labels[draw(st.integers(0, len(labels) - 1))] = value
    kwargs['labels'] = labels


def _box(kwargs, draw):
    box = kwargs['box'] or [10.0, 10.0, 30.0, 40.0]
    kwargs['clear_old_points'] = True
    return list(box)


MUTATIONS = {
    'NaN or inf coordinate': lambda kw, draw: _setpoint(kw, draw(st.sampled_from(NONFINITE)), draw),
    'label outside the set': lambda kw, draw: _setlabel(kw, draw(st.sampled_from([4, -2, 7, 0.5, 1e9])), draw),
    'one label too many': lambda kw, draw: (_setlabel(kw, 1, draw), kw.update(labels=kw['labels'] + [1])),
    'one label too few': lambda kw, draw: (_setlabel(kw, 1, draw), kw.update(labels=kw['labels'][:-1])),
    'flipped box': lambda kw, draw: kw.update(box=(lambda b: [b[2] + 1, b[1], b[0], b[3]])(_box(kw, draw))),
    'box of 3 numbers': lambda kw, draw: kw.update(box=_box(kw, draw)[:3]),
    'box of 5 numbers': lambda kw, draw: kw.update(box=_box(kw, draw) + [1.0]),
    'NaN or inf in the box': lambda kw, draw: kw.update(
        box=(lambda b: b[:2] + [draw(st.sampled_from(NONFINITE))] + b[3:])(_box(kw, draw))),
    'box with clear_old_points=False': lambda kw, draw: kw.update(box=_box(kw, draw), clear_old_points=False),
    'no prompt at all': lambda kw, draw: kw.update(points=None, labels=None, box=None),
    'frame_idx out of range': lambda kw, draw: kw.update(frame_idx=draw(st.sampled_from([-1, SHORT, 100]))),
    'frame_idx not an int': lambda kw, draw: kw.update(frame_idx=draw(st.sampled_from([0.0, '0', True]))),
    'obj_id not an id': lambda kw, draw: kw.update(obj_id=draw(st.sampled_from([1.0, None, True, [1]]))),
    'normalize_coords not a bool': lambda kw, draw: kw.update(normalize_coords=draw(st.sampled_from(['yes', None, 2]))),
}


@st.composite
def invalidcalls(draw):
    """A valid call with one or two mutations that make it invalid."""
    kwargs = draw(validcalls())
    names = draw(st.lists(st.sampled_from(sorted(MUTATIONS)), min_size=1, max_size=2, unique=True))
    for name in names:
        MUTATIONS[name](kwargs, draw)
    return kwargs, names


def promptcalls():
    """``(kwargs, mutations)``: about half valid calls (no mutation), half invalid ones."""
    return st.one_of(validcalls().map(lambda kwargs: (kwargs, [])), invalidcalls())


@pytest.fixture(scope='module')
def shortstate(predictor, frames):
    return predictor.initstate(frames[:SHORT])


def _call(mutation=None, **kwargs):
    base = dict(frame_idx=1, obj_id=2, points=[[15.0, 20.0], [-5.0, 300.0]], labels=[1, 0], box=None,
                clear_old_points=True, normalize_coords=True)
    return {**base, **kwargs}, [mutation] if mutation else []


@settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(call=promptcalls())
# every mutation at least once, whatever the generator draws
@example(call=_call('label outside the set', labels=[1, 4]))
@example(call=_call('one label too many', labels=[1, 0, 1]))
@example(call=_call('one label too few', labels=[1]))
@example(call=_call('no prompt at all', points=None, labels=None))
@example(call=_call('flipped box', box=[40.0, 10.0, 20.0, 30.0]))
@example(call=_call('NaN or inf in the box', box=[10.0, 10.0, math.inf, 30.0]))
@example(call=_call('NaN or inf coordinate', points=[[15.0, math.nan], [1.0, 2.0]]))
@example(call=_call('box of 3 numbers', box=[1.0, 2.0, 3.0]))
@example(call=_call('box of 5 numbers', box=[1.0, 2.0, 3.0, 4.0, 5.0]))
@example(call=_call('box with clear_old_points=False', box=[1.0, 2.0, 3.0, 4.0], clear_old_points=False))
@example(call=_call('frame_idx out of range', frame_idx=SHORT))
@example(call=_call('frame_idx not an int', frame_idx=1.0))
@example(call=_call('obj_id not an id', obj_id=1.0))
@example(call=_call('obj_id not an id', obj_id=None))
@example(call=_call('normalize_coords not a bool', normalize_coords='yes'))
@example(call=_call(box=[10.0, 10.0, 10.0, 30.0], points=[[1.0, 2.0]] * 5, labels=[-1, 0, 1, 2, 3],
                    normalize_coords=False, obj_id=1))  # valid: a box of width 0, every label, an existing object
def test_addnewpointsorbox_property(predictor, shortstate, call):
    kwargs, mutations = call
    valid = not mutations
    event('valid prompt' if valid else 'invalid prompt')
    for name in mutations:
        event(f'mutation: {name}')
    state = shortstate
    predictor.resetstate(state)
    predictor.addnewpointsorbox(state, 0, 1, points=[[15, 20]], labels=[1])  # object 1 exists, 2 and 3 are new
    before = (list(state['obj_ids']), [dict(p) for p in state['point_inputs_per_obj'].values()])
    try:
        frame_idx, obj_ids, masks = predictor.addnewpointsorbox(state, **kwargs)
    except (ValueError, TypeError) as err:
        assert not valid, f'valid input refused: {kwargs}: {err}'
        after = (list(state['obj_ids']), [dict(p) for p in state['point_inputs_per_obj'].values()])
        assert after == before  # nothing changed
        return
    assert valid, f'invalid input accepted: {kwargs}'
    expected_ids = [1] if kwargs['obj_id'] == 1 else [1, kwargs['obj_id']]
    assert type(frame_idx) is int and frame_idx == kwargs['frame_idx'] and obj_ids == expected_ids
    assert isinstance(masks, torch.Tensor) and masks.dtype == torch.float32
    assert masks.shape == (len(expected_ids), 1, H, W) and bool(torch.isfinite(masks).all())
