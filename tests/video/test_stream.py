"""Stream mode on a tiny random model: the memory a stream holds stops growing, frames may be arrays or PIL
images, and every kind of bad input is a clear error after which the stream goes on as if it had not happened.

Equality with Meta's offline predictor is in tests/parity/test_stream_parity.py.
"""
import numpy as np
import pytest
import torch
from PIL import Image

from ssseg.modules.models.segmentors.samv2 import SAMV2VideoPredictor
from ssseg.modules.models.segmentors.samv2.video import FrameIndexError, VideoStateError
from ssseg.modules.models.segmentors.samv2.video.state import COND, NON_COND

from helpers import makeframes, reachablebytes, snapshot, writetinyckpt

H, W = 60, 80
PRESENT_BIAS = 3.0

pytestmark = pytest.mark.usefixtures('onethread')


@pytest.fixture(scope='module')
def predictor(tmp_path_factory):
    predictor = SAMV2VideoPredictor(samv2_cfg=writetinyckpt(tmp_path_factory.mktemp('tinystream') / 'tiny.pt'),
                                    device='cpu')
    with torch.no_grad():  # random weights put every object at the edge of absent: make masks worth comparing
        predictor.model.sam_mask_decoder.pred_obj_score_head.layers[-1].bias.add_(PRESENT_BIAS)
    return predictor


def frameat(t):
    """Frame t of an endless synthetic video: a red square and a green bar moving in 50-frame cycles."""
    return makeframes(t % 50 + 1, H, W)[-1]


# objects added late, corrected and given by a mask while the stream runs; by frame 40 every window is full
EVENTS = {
    10: lambda p, s: p.addnewpointsorbox(s, 10, 1, points=[[20, 20]], labels=[1]),
    20: lambda p, s: p.addnewpointsorbox(s, 20, 2, box=[48, 35, 72, 52]),
    25: lambda p, s: p.addnewpoints(s, 25, 1, points=[[12, 12]], labels=[0], clear_old_points=False),
    22: lambda p, s: p.addnewmask(s, 22, 3, np.pad(np.ones((10, 10), bool), ((40, 10), (5, 65)))),
}


def runstream(predictor, state, frames, events=EVENTS, start=0):
    results = []
    for t in range(start, start + frames):
        results.append(snapshot(predictor.trackframe(state, frameat(t))))
        if t in events:
            results.append(snapshot(events[t](predictor, state)))
    return results


def test_held_bytes_stop_growing(predictor):
    state = predictor.initstream()
    runstream(predictor, state, 41)
    at40 = reachablebytes(state)
    counts40 = [len(outputs[NON_COND]) for outputs in state['output_dict_per_obj'].values()]
    runstream(predictor, state, 160, start=41)
    assert state['num_frames'] == 201
    assert reachablebytes(state) == at40
    counts = [len(outputs[NON_COND]) for outputs in state['output_dict_per_obj'].values()]
    assert counts == counts40 == [predictor.streamwindow] * 3
    # memories of the memory window only; the prompted frames keep theirs
    held = [t for outputs in state['output_dict_per_obj'].values() for t, record in outputs[NON_COND].items()
            if record['maskmem_features'] is not None]
    assert min(held) == 200 + 1 - predictor.memorywindow
    assert sorted(t for outputs in state['output_dict_per_obj'].values() for t in outputs[COND]) == [10, 20, 22]
    with pytest.raises(FrameIndexError, match='holds only frame 200'):
        state['images'][199]


def test_outputs_and_objects_coming_and_going(predictor):
    state = predictor.initstream()
    frame_idx, obj_ids, logits = predictor.trackframe(state, frameat(0))
    assert (frame_idx, obj_ids, logits.shape, logits.dtype) == (0, [], (0, 1, H, W), torch.float32)
    results = runstream(predictor, state, 35, start=1)
    frame_idx, obj_ids, logits = results[-1]
    assert (frame_idx, obj_ids, logits.shape) == (35, [1, 2, 3], (3, 1, H, W))
    shares = [(masks > 0).float().mean().item() for _, ids, masks in results if ids]
    assert any(0.02 < share < 0.98 for share in shares), shares
    ids, updated = predictor.removeobject(state, 2)
    assert ids == [1, 3] and updated == []  # object 2's prompted frame (20) is no longer held
    predictor.addnewpointsorbox(state, 35, 4, points=[[60, 40]], labels=[1])
    ids, updated = predictor.removeobject(state, 4)
    assert ids == [1, 3] and [t for t, _ in updated] == [35] and updated[0][1].shape == (2, 1, H, W)
    assert predictor.trackframe(state, frameat(36))[1] == [1, 3]
    predictor.removeobject(state, 1)
    predictor.removeobject(state, 3)
    frame_idx, obj_ids, logits = predictor.trackframe(state, frameat(37))
    assert (frame_idx, obj_ids, logits.shape) == (37, [], (0, 1, H, W))  # every object gone: tracking nothing


def test_pil_frames_and_offloaded_state_give_the_same_outputs(predictor):
    arrays = runstream(predictor, predictor.initstream(), 32)
    state = predictor.initstream(offload_state_to_cpu=True)
    pil = [snapshot(predictor.track_frame(state, Image.fromarray(frameat(0))))]
    pil += runstream(predictor, state, 31, start=1)
    for (t_a, ids_a, masks_a), (t_b, ids_b, masks_b) in zip(arrays, pil, strict=True):
        assert (t_a, ids_a) == (t_b, ids_b)
        assert torch.equal(masks_a, masks_b)


def badcalls():
    good = frameat(12)
    return {
        'frame of another size': (ValueError, 'is 40x60 .* are 80x60', lambda p, s: p.trackframe(s, good[:, :40])),
        'frame of another dtype': (TypeError, 'dtype uint8', lambda p, s: p.trackframe(s, good.astype(np.float32))),
        'grey frame': (ValueError, r'\(H, W, 3\)', lambda p, s: p.trackframe(s, good[..., 0])),
        'four channels': (ValueError, r'\(H, W, 3\)', lambda p, s: p.trackframe(s, np.dstack([good, good[..., :1]]))),
        'not a frame': (TypeError, 'numpy array or a PIL image', lambda p, s: p.trackframe(s, good.tolist())),
        'prompt on a frame no longer held': (FrameIndexError, 'holds only frame 11',
                                             lambda p, s: p.addnewpointsorbox(s, 10, 5, points=[[5, 5]], labels=[1])),
        'prompt on a future frame': (FrameIndexError, 'holds only frame 11',
                                     lambda p, s: p.addnewmask(s, 12, 5, np.ones((H, W), bool))),
        'clearing prompts of an old frame': (FrameIndexError, 'holds only frame 11',
                                             lambda p, s: p.clearallpromptsinframe(s, 10, 1)),
        'propagateinvideo on a stream': (VideoStateError, 'trackframe', lambda p, s: p.propagateinvideo(s)),
        'a bad prompt': (ValueError, 'labels', lambda p, s: p.addnewpointsorbox(s, 11, 5, points=[[5, 5]],
                                                                                 labels=[7])),
    }


@pytest.mark.parametrize('name', list(badcalls()))
def test_bad_input_is_a_clear_error_and_the_stream_goes_on(predictor, name):
    error, match, call = badcalls()[name]
    expected = runstream(predictor, predictor.initstream(), 16)
    state = predictor.initstream()
    results = runstream(predictor, state, 12)
    with pytest.raises(error, match=match):
        call(predictor, state)
    results += runstream(predictor, state, 4, start=12)
    for ours, theirs in zip(results, expected, strict=True):
        assert ours[:2] == theirs[:2] and torch.equal(ours[2], theirs[2])


def test_the_two_kinds_of_state_refuse_each_other(predictor):
    video = predictor.initstate(makeframes(3, H, W))
    with pytest.raises(VideoStateError, match='needs a stream from initstream'):
        predictor.trackframe(video, frameat(0))
    stream = predictor.initstream()
    with pytest.raises(VideoStateError, match='holds no frame yet'):
        predictor.addnewpointsorbox(stream, 0, 1, points=[[5, 5]], labels=[1])
    with pytest.raises(TypeError, match='initstream|initstate'):
        predictor.trackframe({'images': None}, frameat(0))
    predictor.trackframe(stream, frameat(0))
    predictor.addnewpointsorbox(stream, 0, 1, points=[[5, 5]], labels=[1])
    predictor.clearallpromptsinframe(stream, 0, 1)
    with pytest.raises(VideoStateError, match='object 1 has no prompted frame'):
        predictor.trackframe(stream, frameat(1))
    assert stream['num_frames'] == 1  # refused before anything changed
    with pytest.raises(TypeError, match='offload_state_to_cpu'):
        predictor.initstream(offload_state_to_cpu='yes')
