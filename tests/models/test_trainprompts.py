"""The training prompt sampler on its own: the plans it draws, where its clicks and boxes fall, and its seeding."""
import pytest
import torch

from ssseg.modules import BuildPromptSampler, BuildSegmentor
from ssseg.modules.models.segmentors.samv2.model.trainprompts import masktobox
from ssseg.testing.tiny import tinycfg


def _sampler(**options):
    return BuildPromptSampler(dict(type='SAMV2TrainPromptSampler', **options))


def _squares(num_objects, size=64):
    masks = torch.zeros(num_objects, 1, size, size, dtype=torch.bool)
    for i in range(num_objects):
        masks[i, 0, 5 + 3 * i:30 + 3 * i, 10 + 2 * i:40 + 2 * i] = True
    return masks


def test_plans_follow_the_options():
    sampler = _sampler()  # Meta's fine-tuning values: p(points) 0.5, 1-2 initial frames, 1-2 corrected
    sampler.startstep(0)
    plans = [sampler.plan(8) for _ in range(2000)]
    assert 0.45 < sum(p.use_pt_input for p in plans) / len(plans) < 0.55
    for plan in plans:
        assert plan.init_cond_frames[0] == 0 and 1 <= len(plan.init_cond_frames) <= 2
        assert len(set(plan.init_cond_frames)) == len(plan.init_cond_frames)
        assert set(plan.box_frames) <= set(plan.init_cond_frames)
        if plan.use_pt_input:
            assert plan.frames_to_correct[:len(plan.init_cond_frames)] == plan.init_cond_frames
            assert len(plan.init_cond_frames) <= len(plan.frames_to_correct) <= 2
            assert len(set(plan.frames_to_correct)) == len(plan.frames_to_correct)
        else:
            assert plan.frames_to_correct == [] and plan.box_frames == []
        assert sorted(plan.init_cond_frames + plan.framesnotincond(8)) == list(range(8))
    with_points = [p for p in plans if p.use_pt_input]
    boxes = sum(len(p.box_frames) for p in with_points) / sum(len(p.init_cond_frames) for p in with_points)
    assert 0.45 < boxes < 0.55


def test_an_image_is_always_prompted_by_a_click_or_box_and_corrected():
    sampler = _sampler(prob_to_use_pt_input=0.0)
    plans = [sampler.plan(1) for _ in range(50)]
    assert all(p.use_pt_input and p.init_cond_frames == [0] and p.frames_to_correct == [0] for p in plans)


def test_clicks_fall_in_the_error_region_with_its_label():
    sampler = _sampler()
    gt = _squares(6)
    pred = torch.roll(gt, shifts=9, dims=-1)
    for step in range(20):
        sampler.startstep(step)
        coords, labels = sampler.correctionclick(gt, pred)
        assert coords.shape == (6, 1, 2) and labels.dtype == torch.int32
        for obj in range(6):
            x, y = coords[obj, 0].long().tolist()
            inside, predicted = bool(gt[obj, 0, y, x]), bool(pred[obj, 0, y, x])
            assert inside != predicted  # an error pixel
            assert labels[obj, 0].item() == int(inside)  # a missed pixel is a positive click, a false one negative
    coords, labels = sampler.initialprompt(gt, use_box=False)
    assert all(gt[i, 0, int(coords[i, 0, 1]), int(coords[i, 0, 0])] for i in range(6)) and labels.eq(1).all()


def test_boxes_are_noised_within_bounds_and_clamped():
    sampler = _sampler(box_noise=0.1, box_noise_bound=2)
    gt = _squares(3)
    tight = masktobox(gt)
    coords, labels = sampler.initialprompt(gt, use_box=True)
    assert coords.shape == (3, 2, 2) and labels.tolist() == [[2, 3]] * 3
    assert (coords.reshape(3, 4) - tight).abs().max() <= 2.0 and not torch.equal(coords.reshape(3, 4), tight)
    empty = torch.zeros(1, 1, 64, 64, dtype=torch.bool)
    assert masktobox(empty).tolist() == [[64.0, 64.0, -1.0, -1.0]]
    assert _sampler(box_noise=0.0).initialprompt(empty, use_box=True)[0].tolist() == [[[63.0, 63.0], [0.0, 0.0]]]


def test_a_step_is_reproducible_and_splits_over_processes():
    gt, pred = _squares(4), torch.zeros(4, 1, 64, 64, dtype=torch.bool)
    whole = _sampler()
    whole.startstep(7)
    plan, clicks = whole.plan(8), whole.correctionclick(gt, pred)
    again = _sampler()
    again.startstep(7)
    assert again.plan(8) == plan and torch.equal(again.correctionclick(gt, pred)[0], clicks[0])
    # two processes with two objects each draw what one process with all four draws
    parts = []
    for first in (0, 2):
        rank = _sampler()
        rank.startstep(7, first_object=first)
        assert rank.plan(8) == plan
        parts.append(rank.correctionclick(gt[first:first + 2], pred[first:first + 2])[0])
    assert torch.equal(torch.cat(parts), clicks[0])
    other = _sampler()
    other.startstep(8)
    assert not torch.equal(other.correctionclick(gt, pred)[0], clicks[0])


@pytest.mark.parametrize('options, message', [
    (dict(prob_to_use_pt_input=1.5), 'prob_to_use_pt_input'), (dict(num_init_cond_frames=0), 'num_init_cond_frames'),
    (dict(num_frames_to_correct=1, num_init_cond_frames=2), 'num_frames_to_correct'),
    (dict(num_correction_pt_per_frame=-1), 'num_correction_pt_per_frame'),
])
def test_bad_options_are_named(options, message):
    with pytest.raises(ValueError, match=message):
        _sampler(**options)


@pytest.mark.parametrize('which, message', [('images', 'images'), ('masks', 'masks'), ('index', 'obj_to_frame_idx')])
def test_forwardtrain_names_a_malformed_input(which, message):
    model = BuildSegmentor(tinycfg()).train()
    images = torch.zeros(2, 1, 3, 128, 128)
    masks = torch.zeros(2, 1, 128, 128, dtype=torch.bool)
    index = torch.zeros(2, 1, 2, dtype=torch.long)
    args = {'images': images, 'masks': masks, 'index': index}
    args[which] = {'images': torch.zeros(2, 3, 128, 128), 'masks': masks.float(), 'index': index[:, :, :1]}[which]
    with pytest.raises(ValueError, match=message):
        model.forwardtrain(args['images'], args['masks'], args['index'], _sampler())
