"""The opt-in compiled path (``compile=True``): the same outputs as eager, and no recompilation for new counts.

Both sides run the tiny random model (ssseg.testing.tiny) on the CPU, where torch.compile uses inductor.
After a warm-up that meets each kind of call once (one object or prompt and several, one point and several,
single- and multi-mask decoding), calls with other numbers of objects, points and memory frames run under
``torch.compiler.set_stance('fail_on_recompile')``, which raises on any recompilation, and the count of
compiled graphs must not move. Outputs are compared with the eager predictor on the same weights (logits
within 1e-4 of their scale, binary masks >= 99.95 % equal).
"""
import numpy as np
import pytest
import torch
from torch._dynamo.utils import counters

from ssseg.modules.models.segmentors.samv2 import SAMV2ImagePredictor, SAMV2VideoPredictor
from ssseg.modules.models.segmentors.samv2.model.compiled import COMPILED_MODULES
from ssseg.testing import syntheticimage
from ssseg.testing.tiny import writetinyckpt

from helpers import assertclose, writeclip

CLICKS = [(30, 50), (120, 70), (60, 20), (140, 20), (20, 100), (80, 100)]


@pytest.fixture(scope='module')
def videos(tmp_path_factory):
    folder = tmp_path_factory.mktemp('compiled')
    # seed 1: random weights whose masks cover part of the clip (seed 0 finds no object at all)
    cfg = writetinyckpt(folder / 'tiny.pt', seed=1)
    # objects batched, as on a GPU, so that their number is a shape of the compiled code
    eager = SAMV2VideoPredictor(samv2_cfg=dict(cfg), device='cpu', batch_objects=True)
    compiled = SAMV2VideoPredictor(samv2_cfg=dict(cfg), device='cpu', compile=True, batch_objects=True)
    return eager, compiled, writeclip(folder / 'frames', num_frames=6)


def agree(ours, eager):
    assertclose(ours, eager)
    assert ((ours > 0) == (eager > 0)).float().mean().item() >= 0.9995


def track(predictor, clip, joins, points):
    """Objects joining on the frames in ``joins`` with ``points`` clicks each, tracked: the masks of every call."""
    state = predictor.init_state(clip)
    outputs = []
    for obj_id, frame_idx in enumerate(joins, start=1):
        x, y = CLICKS[obj_id - 1]
        clicks = [[x + 4 * k, y + 3 * k] for k in range(points)]
        outputs.append(predictor.add_new_points_or_box(state, frame_idx, obj_id, points=clicks, labels=[1] * points)[2])
        outputs += [masks for _, _, masks in predictor.propagate_in_video(state, start_frame_idx=frame_idx)]
    if len(joins) > 2:
        predictor.remove_object(state, 2)
        outputs += [masks for _, _, masks in predictor.propagate_in_video(state)]
    return outputs


def runboth(videos, joins, points):
    eager, compiled, clip = videos
    with torch.inference_mode():
        expected, got = track(eager, clip, joins, points), track(compiled, clip, joins, points)
    assert len(got) == len(expected)
    for ours, theirs in zip(got, expected):
        agree(ours, theirs)
    return got


def test_the_four_modules_are_compiled_in_place(videos):
    model = videos[1].model
    for name, _ in COMPILED_MODULES:
        assert getattr(model, name)._compiled_call_impl is not None, name
    assert getattr(videos[0].model.image_encoder, '_compiled_call_impl', None) is None
    # compiling in place keeps the checkpoint's names
    assert list(model.state_dict()) == list(videos[0].model.state_dict())


def test_video_matches_eager_and_new_counts_do_not_recompile(videos):
    # warm-up: one object, then two joining on different frames; one click and two
    runboth(videos, joins=[0], points=1)
    runboth(videos, joins=[0, 1], points=2)
    graphs = counters['stats']['unique_graphs']
    with torch.compiler.set_stance('fail_on_recompile'):
        outputs = runboth(videos, joins=[0, 0, 2], points=3)
        outputs += runboth(videos, joins=[0, 1, 1, 3, 4], points=2)
    assert counters['stats']['unique_graphs'] == graphs
    assert any(0.01 < (masks > 0).float().mean().item() < 0.99 for masks in outputs)


def test_image_predictor_new_point_and_prompt_counts_do_not_recompile(videos):
    eager = SAMV2ImagePredictor(model=videos[0].model)
    compiled = SAMV2ImagePredictor(model=videos[1].model)
    image = syntheticimage(120, 160, seed=3)
    for predictor in (eager, compiled):
        predictor.setimage(image)

    def predict(**prompts):
        with torch.inference_mode():
            (masks, scores, logits), expected = compiled.predict(**prompts), eager.predict(**prompts)
        for ours, theirs in zip((masks, scores, logits), expected):
            agree(torch.as_tensor(ours).float(), torch.as_tensor(theirs).float())

    # warm-up: multimask on one click, a single mask on two, two boxes at once
    predict(point_coords=np.array([[30, 50]]), point_labels=np.array([1]))
    predict(point_coords=np.array([[30, 50], [40, 60]]), point_labels=np.array([1, 0]), multimask_output=False)
    predict(box=np.array([[10, 10, 80, 90], [90, 40, 150, 110]]), multimask_output=False)
    graphs = counters['stats']['unique_graphs']
    with torch.compiler.set_stance('fail_on_recompile'):
        predict(point_coords=np.array([[30, 50], [40, 60], [50, 20]]), point_labels=np.array([1, 0, 1]),
                multimask_output=False)
        predict(point_coords=np.array([[30, 50]] * 4), point_labels=np.array([1, 1, 0, 1]),
                box=np.array([10, 10, 80, 90]), multimask_output=False)
        predict(box=np.array([[10, 10, 80, 90], [90, 40, 150, 110], [5, 5, 50, 50]]), multimask_output=False)
    assert counters['stats']['unique_graphs'] == graphs


@pytest.mark.parametrize('value, error, match', [
    ('yes', TypeError, r'compile must be a bool.*got str'),
    (2, TypeError, r'compile must be a bool.*got int'),
])
def test_bad_compile_flag(videos, value, error, match):
    # refused before anything is built or loaded
    with pytest.raises(error, match=match):
        SAMV2VideoPredictor(samv2_cfg={'type': 'SAMV2', 'ckptpath': 'missing.pt'}, compile=value)


def test_compile_with_a_built_model_is_refused(videos):
    with pytest.raises(ValueError, match='compile are options of building the model'):
        SAMV2ImagePredictor(model=videos[0].model, compile=True)
