"""Objects tracked as one batch (``batch_objects=True``, the default on CUDA) against one at a time and Meta.

Three predictors share one random-weight checkpoint: ours batched, ours one object at a time
(``batch_objects=False``, the CPU default, which the offline parity tests keep equal to Meta) and Meta's
sam2 1.1.0.
Every call runs on all three; the batched outputs are compared with both others (logits within 1e-4 of
their scale, binary masks >= 99.95 % equal). Objects join on different frames and one is removed, so their
memory banks differ in length and the batched memory is padded and masked: the test counts that it was.
"""
import os

import numpy as np
import pytest
import torch
from PIL import Image
from test_videopredictor_parity import NUM_FRAMES, H, Session, W, buildpair, compare, mask

from ssseg.modules.models.segmentors.samv2 import SAMV2VideoPredictor

from helpers import writeclip

pytestmark = pytest.mark.usefixtures('onethread')

# (x, y) clicks spread over the 160 x 120 clip, one object each
CLICKS = [(30, 50), (120, 70), (60, 20), (140, 20), (20, 100), (80, 100), (100, 40), (150, 110)]


@pytest.fixture(scope='module')
def clip(tmp_path_factory):
    return writeclip(tmp_path_factory.mktemp('batchclip') / 'frames')


@pytest.fixture(scope='module')
def trio(makeckpt):
    one_at_a_time, theirs = buildpair(makeckpt)
    batched = SAMV2VideoPredictor(model=one_at_a_time.model, fill_hole_area=0, batch_objects=True)
    # on a CPU the default is one object at a time, batching is asked for
    assert batched.batch_objects and not one_at_a_time.batch_objects
    return batched, one_at_a_time, theirs


class TrioSession(Session):
    """A :class:`Session` over three predictors; the first (batched) is compared with each of the others."""

    def call(self, method, *args, **kwargs):
        results = [getattr(p, method)(state, *args, **kwargs) for p, state in zip(self.pair, self.states)]
        for other, tag in zip(results[1:], ('one_at_a_time', 'meta')):
            self._check(f'{self.tag}/{tag}/{method}', results[0], other)
        return results[0]

    def propagate(self, **kwargs):
        generators = [p.propagate_in_video(state, **kwargs) for p, state in zip(self.pair, self.states)]
        frames = []
        for outputs in zip(*generators, strict=True):
            for other, tag in zip(outputs[1:], ('one_at_a_time', 'meta')):
                self._check(f'{self.tag}/{tag}/propagate', outputs[0], other)
            frames.append(outputs[0][0])
        return frames

    def remove(self, obj_id, **kwargs):
        results = [p.remove_object(state, obj_id, **kwargs) for p, state in zip(self.pair, self.states)]
        for ids, updated in results[1:]:
            assert list(ids) == list(results[0][0]) and [t for t, _ in updated] == [t for t, _ in results[0][1]]
            for (_, ours), (_, other) in zip(results[0][1], updated):
                compare(f'{self.tag}/remove_object', ours, other)
        return list(results[0][0])


@pytest.fixture
def batches(trio, monkeypatch):
    """Counts, for the batched predictor's model: batch sizes of tracking steps, and steps with padded memory."""
    model, seen = trio[0].model, {'sizes': [], 'padded': 0}
    trackstep, gather = model.trackstep, model._gatherobjectsmemory

    def countingstep(frame_idx, is_init_cond_frame, feats, *args, **kwargs):
        seen['sizes'].append(feats[-1].shape[1])
        return trackstep(frame_idx, is_init_cond_frame, feats, *args, **kwargs)

    def countinggather(*args, **kwargs):
        result = gather(*args, **kwargs)
        seen['padded'] += result[3] is not None
        return result
    monkeypatch.setattr(model, 'trackstep', countingstep)
    monkeypatch.setattr(model, '_gatherobjectsmemory', countinggather)
    return seen


def test_three_objects_joining_late_and_one_removed(trio, clip, batches):
    # each object joins where tracking has reached (Meta's CPU build cannot track an object before its prompt)
    session = TrioSession(trio, clip, 'three')
    session.call('add_new_points_or_box', 0, 1, points=[CLICKS[0]], labels=[1])
    assert session.propagate(max_frame_num_to_track=2) == [0, 1, 2]
    session.call('add_new_points_or_box', 2, 2, box=[98, 58, 142, 97])
    assert session.propagate(start_frame_idx=2, max_frame_num_to_track=2) == [2, 3, 4]
    session.call('add_new_mask', 4, 3, mask(box=(40, 10, 80, 35)))
    assert session.propagate(start_frame_idx=4) == list(range(4, NUM_FRAMES))
    session.call('add_new_points_or_box', 7, 2, points=[[120, 100]], labels=[0], clear_old_points=False)
    assert session.propagate(start_frame_idx=7, reverse=True) == list(range(7, -1, -1))
    assert session.remove(1) == [2, 3]
    assert session.propagate(start_frame_idx=4) == list(range(4, NUM_FRAMES))
    assert max(batches['sizes']) == 3 and 2 in batches['sizes']
    assert batches['padded'] > 0, 'no step batched objects whose memories differ in length'
    session.assertinformative()


def test_eight_objects(trio, clip, batches):
    session = TrioSession(trio, clip, 'eight')
    for obj_id, (x, y) in enumerate(CLICKS[:4], start=1):
        session.call('add_new_points_or_box', 0, obj_id, points=[[x, y]], labels=[1])
    assert session.propagate(max_frame_num_to_track=4) == [0, 1, 2, 3, 4]
    for obj_id, (x, y) in enumerate(CLICKS[4:], start=5):
        # the others join on frames 1 to 4, one with a box
        box = [x - 15, y - 15, x + 15, y + 15] if obj_id == 6 else None
        session.call('add_new_points_or_box', obj_id - 4, obj_id, points=[[x, y]], labels=[1], box=box)
    assert session.propagate(start_frame_idx=4) == list(range(4, NUM_FRAMES))
    assert session.remove(3) == [1, 2, 4, 5, 6, 7, 8]
    session.call('add_new_points_or_box', 9, 5, points=[[25, 90]], labels=[1], clear_old_points=False)
    assert session.propagate(start_frame_idx=5) == list(range(5, NUM_FRAMES))
    assert 8 in batches['sizes'] and 7 in batches['sizes'] and batches['padded'] > 0
    session.assertinformative()


def test_objects_tracked_before_their_prompt(trio, clip, batches):
    # frames before an object's first prompt (no pointer to attend to): only ours tracks them, both ways alike
    session = Session(trio[:2], clip, 'before_prompt')
    session.call('add_new_points_or_box', 0, 1, points=[CLICKS[0]], labels=[1])
    session.call('add_new_points_or_box', 3, 2, points=[CLICKS[1]], labels=[1])
    session.call('add_new_points_or_box', 6, 3, box=[50, 5, 90, 40])
    assert session.propagate() == list(range(NUM_FRAMES))
    assert session.propagate(start_frame_idx=NUM_FRAMES - 1, reverse=True) == list(range(NUM_FRAMES - 1, -1, -1))
    assert 3 in batches['sizes'] and batches['padded'] > 0
    session.assertinformative()


def test_stream_batches_objects_too(trio, clip, batches):
    batched, one_at_a_time, _ = trio
    streams = [batched.initstream(), one_at_a_time.initstream()]
    for s, name in enumerate(sorted(os.listdir(clip))):
        frame = np.asarray(Image.open(os.path.join(clip, name)).convert('RGB'))
        outputs = [p.trackframe(stream, frame) for p, stream in zip((batched, one_at_a_time), streams)]
        assert outputs[0][:2] == outputs[1][:2]
        if outputs[0][1]:
            compare('stream/trackframe', outputs[0][2], outputs[1][2])
        if s in (0, 3):
            for p, stream in zip((batched, one_at_a_time), streams):
                p.addnewpoints(stream, s, 10 + s, points=[CLICKS[s]], labels=[1])
                p.addnewpoints(stream, s, 20 + s, points=[CLICKS[s + 1]], labels=[1])
    assert 4 in batches['sizes'] and batches['padded'] > 0
    assert outputs[0][2].shape == (4, 1, H, W) and (outputs[0][2] > 0).any()


def test_trackstep_rejects_banks_of_another_count(trio, clip):
    model = trio[0].model
    state = trio[0].init_state(clip)
    trio[0].add_new_points_or_box(state, 0, 1, points=[CLICKS[0]], labels=[1])
    list(trio[0].propagate_in_video(state, max_frame_num_to_track=1))
    feats, poses, sizes = trio[0]._framefeatures(state, 1, batch_size=2)
    bank = state['output_dict_per_obj'][0]
    with pytest.raises(ValueError, match=r'one memory bank per object \(B=2\), got 3'), torch.inference_mode():
        model.trackstep(2, False, feats, poses, sizes, None, None, [bank] * 3, NUM_FRAMES)
