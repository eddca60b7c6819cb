"""Stream mode (initstream / trackframe) against Meta's offline SAM2VideoPredictor (sam2 1.1.0).

The protocol a stream promises: for each frame s in turn, Meta's predictor, which has the whole video,
propagates frame s alone (``propagate_in_video(state, start_frame_idx=s, max_frame_num_to_track=0)``, once
an object has a prompt) and then gets the prompts given on frame s; the stream is handed frame s by
``trackframe`` and then gets the same prompts. Every output of both is compared as in the offline parity
tests (logits within 1e-4 of their scale, binary masks >= 99.95 % equal). The clip has 18 frames, more than
the memory window (7) and the pointer window (16): a stream, whose length is unknown, is tracked as a video
of at least 16 frames.
"""
import os

import numpy as np
import pytest
import torch
from PIL import Image
from test_videopredictor_parity import H, W, buildpair, compare, mask, nonoverlapchecker

from helpers import temporaryattributes, writeclip

NUM_FRAMES = 18

pytestmark = pytest.mark.usefixtures('onethread')


@pytest.fixture(scope='module')
def longclip(tmp_path_factory):
    return writeclip(tmp_path_factory.mktemp('streamclip') / 'frames', num_frames=NUM_FRAMES)


class StreamSession:
    """Our stream and Meta's offline state on one clip, driven frame by frame with the protocol above."""

    def __init__(self, pair, folder, tag):
        (self.ours, self.theirs), self.tag = pair, tag
        self.stream, self.state = self.ours.initstream(), self.theirs.init_state(folder)
        self.paths = [os.path.join(folder, name) for name in sorted(os.listdir(folder))]
        self.compare, self.foreground = compare, []

    def run(self, events):
        """Every frame in turn, then its events: {frame: [(method, args, kwargs)]} with Meta's method names."""
        for s, path in enumerate(self.paths):
            frame = np.asarray(Image.open(path).convert('RGB'))
            ours = self.ours.trackframe(self.stream, frame)
            assert ours[0] == s
            if self.state['obj_ids']:
                (theirs,) = self.theirs.propagate_in_video(self.state, start_frame_idx=s, max_frame_num_to_track=0)
                self._check('trackframe', ours, theirs)
            else:
                assert ours[1] == [] and ours[2].shape == (0, 1, H, W) and ours[2].dtype == torch.float32
            for method, args, kwargs in events.get(s, ()):
                if method == 'remove_object':
                    self._remove(s, *args, **kwargs)
                else:
                    results = [getattr(predictor, method)(state, s, *args, **kwargs)
                               for predictor, state in ((self.ours, self.stream), (self.theirs, self.state))]
                    self._check(method, *results)
        assert self.stream['num_frames'] == NUM_FRAMES

    def _remove(self, s, obj_id):
        (ids_a, updated_a), (ids_b, updated_b) = (self.ours.remove_object(self.stream, obj_id),
                                                  self.theirs.remove_object(self.state, obj_id))
        assert list(ids_a) == list(ids_b)
        # a stream re-outputs only the frame it holds (Meta: every frame the object had prompts on)
        held = [(t, masks) for t, masks in updated_b if t == s]
        assert [t for t, _ in updated_a] == [t for t, _ in held]
        for (_, masks_a), (_, masks_b) in zip(updated_a, held):
            self.compare(f'{self.tag}/remove_object', masks_a, masks_b)

    def _check(self, method, ours, theirs):
        assert ours[0] == theirs[0] and list(ours[1]) == list(theirs[1]), (ours[:2], theirs[:2])
        self.compare(f'{self.tag}/{method}', ours[2], theirs[2])
        self.foreground.append((theirs[2] > 0).float().mean().item())

    def assertinformative(self):
        assert any(0.02 < share < 0.98 for share in self.foreground), self.foreground


# objects come, are corrected and go while the stream runs; coordinates follow writeclip's red disc (centre
# x = 30 + 6t, y = 50) and green block (x 100..140, y 60 + 3t .. 95 + 3t)
EVENTS = {
    0: [('add_new_points_or_box', (1,), dict(points=[[30, 50]], labels=[1]))],
    3: [('add_new_points_or_box', (2,), dict(box=[98, 67, 142, 106]))],
    5: [('add_new_points_or_box', (1,), dict(points=[[60, 50], [20, 90]], labels=[1, 0]))],
    7: [('add_new_mask', (3,), dict(mask=mask(box=(10, 15, 50, 45))))],
    9: [('add_new_points_or_box', (3,), dict(points=[[45, 30]], labels=[0], clear_old_points=False))],
    10: [('remove_object', (2,), {})],
    13: [('add_new_points_or_box', (4,), dict(points=[[120, 20]], labels=[1])), ('remove_object', (4,), {})],
    15: [('add_new_points_or_box', (1,), dict(points=[[120, 50]], labels=[1], clear_old_points=False))],
}


@pytest.mark.parametrize('name', ['samv21_hiera_tiny', 'samv2_hiera_tiny'])
def test_stream_equals_offline_protocol(makeckpt, longclip, name):
    session = StreamSession(buildpair(makeckpt, name=name), longclip, f'stream/{name}')
    session.run(EVENTS)
    assert session.stream['obj_ids'] == [1, 3]
    session.assertinformative()


def test_stream_non_overlap_masks(makeckpt, longclip, monkeypatch):
    pair = buildpair(makeckpt)
    decided, raw = nonoverlapchecker(pair, monkeypatch)
    with temporaryattributes(pair, non_overlap_masks=True):
        session = StreamSession(pair, longclip, 'stream/non_overlap')
        session.compare = decided
        session.run({0: [('add_new_points_or_box', (1,), dict(box=[10, 20, 110, 90])),
                         ('add_new_points_or_box', (2,), dict(box=[60, 40, 150, 110]))],
                     6: [('add_new_points_or_box', (3,), dict(box=[40, 30, 120, 100]))]})
        session.assertinformative()
    assert raw == ([], [])  # one constraint per output on each side
