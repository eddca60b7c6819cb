"""The evaluation loops: the tiny model's numbers equal calling the predictor by hand, and predictors answering with
the ground truth score exactly 1 (the bookkeeping of prompts, frames and objects)."""
import os
import shutil

import numpy as np
import pytest
from PIL import Image

from ssseg.evaluation.evaluate import evaluateimages, evaluatevideos, scoringplan
from ssseg.evaluation.metrics import centerclick, maskbox
from ssseg.modules.datasets import DAVISVideoDataset
from ssseg.modules.models.segmentors.samv2 import SAMV2ImagePredictor, SAMV2VideoPredictor

pytestmark = pytest.mark.usefixtures('onethread')


def _iou(a, b):
    return np.logical_and(a, b).sum() / np.logical_or(a, b).sum()


def test_evaluateimages_equals_the_predictor_called_by_hand(evalckpt, cocodataset):
    predictor = SAMV2ImagePredictor(samv2_cfg=evalckpt[0], device='cpu')
    result = evaluateimages(predictor, cocodataset)
    ious_click, ious_box = [], []
    for i, record in enumerate(result['per_image']):
        sample = cocodataset.rawsample(i)
        predictor.setimage(sample['images'][0])
        clicks, boxes = [], []
        for k, gt in enumerate(sample['masks'][0]):
            x, y = centerclick(gt)
            assert record['clicks'][k] == [x, y] and gt[y, x]
            assert record['boxes'][k] == list(maskbox(gt))
            masks, scores, _ = predictor.predict(point_coords=[[x, y]], point_labels=[1], multimask_output=True)
            clicks.append(_iou(masks[np.argmax(scores)] > 0, gt))
            masks, _, _ = predictor.predict(box=list(maskbox(gt)), multimask_output=False)
            boxes.append(_iou(masks[0] > 0, gt))
        assert record['iou_click'] == pytest.approx(clicks, abs=1e-12)
        assert record['iou_box'] == pytest.approx(boxes, abs=1e-12)
        ious_click += clicks
        ious_box += boxes
    assert result['num_images'] == len(cocodataset) == 3
    assert result['num_objects'] == len(ious_click) == sum(len(r['object_ids']) for r in result['per_image'])
    assert result['miou_click'] == pytest.approx(np.mean(ious_click), abs=1e-12)
    assert result['miou_box'] == pytest.approx(np.mean(ious_box), abs=1e-12)


def test_ground_truth_answers_score_one_on_images(cocodataset, gtimagepredictor):
    predictor = gtimagepredictor(cocodataset)
    result = evaluateimages(predictor, cocodataset)
    assert result['miou_click'] == 1.0 and result['miou_box'] == 1.0
    assert result['num_objects'] == sum(cocodataset.rawsample(i)['masks'].shape[1] for i in range(3))
    # one multimask click and one single-mask box per object
    assert [call[3] for call in predictor.calls] == [True, False] * result['num_objects']
    assert evaluateimages(gtimagepredictor(cocodataset), cocodataset, limit=2)['num_images'] == 2
    with pytest.raises(ValueError, match='limit'):
        evaluateimages(predictor, cocodataset, limit=0)


def test_scoringplan_counts_annotated_frames_after_the_first_and_before_the_last():
    masks = np.zeros((6, 3, 2, 2), bool)
    masks[0, 0] = masks[2, 1] = masks[5, 2] = True  # object 10 from frame 0, 20 from frame 2, 30 only on the last
    annotated = [True, True, True, False, True, True]  # frame 3 has no PNG
    plan = scoringplan(annotated, masks, [10, 20, 30])
    assert plan == {10: (0, [1, 2, 4]), 20: (2, [4]), 30: (5, [])}
    assert scoringplan(annotated, masks, [10, 20, 30], skip_last=False) == {10: (0, [1, 2, 4, 5]), 20: (2, [4, 5]),
                                                                            30: (5, [])}


def _expected_frames(sample):
    frames = [t for t, on in enumerate(sample['annotated']) if on]
    return {obj_id: len([t for t in frames if t > min(t for t in frames if sample['masks'][t, k].any())
                         and t != frames[-1]]) for k, obj_id in enumerate(sample['object_ids'])}


def test_ground_truth_answers_score_one_on_videos(davisdataset, gtvideopredictor):
    predictor = gtvideopredictor(davisdataset)
    result = evaluatevideos(predictor, davisdataset)
    assert (result['j'], result['f'], result['jf']) == (1.0, 1.0, 1.0)
    assert result['num_videos'] == 2 and result['num_objects'] == 4
    for i, record in enumerate(result['per_video']):
        sample = davisdataset.rawsample(i)
        assert {obj['id']: obj['num_frames'] for obj in record['objects']} == _expected_frames(sample) == {1: 3, 2: 3}
        assert record['skipped'] == []
    assert predictor.prompts == [(f'video0{v}', 0, obj_id) for v in range(2) for obj_id in (1, 2)]
    assert predictor.starts == [('video00', 0), ('video01', 0)]


def test_first_and_last_frames_are_not_scored(davisdataset, gtvideopredictor):
    def blankends(t, obj_id, mask, sample):
        return np.zeros_like(mask) if t in (0, len(sample['images']) - 1) else mask
    assert evaluatevideos(gtvideopredictor(davisdataset, blankends), davisdataset)['jf'] == 1.0
    lastscored = evaluatevideos(gtvideopredictor(davisdataset, blankends), davisdataset, skip_last=False)
    assert lastscored['j'] < 1 and lastscored['f'] < 1
    # every object is scored on 4 frames; one blank frame of five costs a quarter of J
    assert lastscored['per_video'][0]['objects'][0]['j'] == pytest.approx(0.75)

    def blankmiddle(t, obj_id, mask, sample):
        return np.zeros_like(mask) if t == 2 and obj_id == 1 else mask
    result = evaluatevideos(gtvideopredictor(davisdataset, blankmiddle), davisdataset)
    assert [obj['j'] for obj in result['per_video'][0]['objects']] == [pytest.approx(2 / 3), 1.0]
    assert result['j'] == pytest.approx((2 / 3 + 1 + 2 / 3 + 1) / 4)


def test_overlaps_go_to_the_lower_id(davisdataset, gtvideopredictor):
    def grow(grown):
        def change(t, obj_id, mask, sample):
            union = sample['masks'][t, 0] | sample['masks'][t, 1]
            return union if obj_id == grown else mask
        return change
    # object 2 predicted over object 1 as well: object 1 keeps its pixels, so both are exact
    assert evaluatevideos(gtvideopredictor(davisdataset, grow(2)), davisdataset)['jf'] == 1.0
    # object 1 predicted over object 2: it takes object 2's pixels, leaving object 2 nothing
    objects = evaluatevideos(gtvideopredictor(davisdataset, grow(1)), davisdataset)['per_video'][0]['objects']
    assert objects[1]['j'] == 0.0 and objects[0]['j'] < 1


@pytest.fixture(scope='module')
def latedavis(evaldavis, tmp_path_factory):
    """The synthetic videos with object 2 of video00 hidden on frames 0 and 1: it first appears on frame 2."""
    folder = shutil.copytree(evaldavis, tmp_path_factory.mktemp('late') / 'davis')
    for stem in ('00000', '00001'):
        path = os.path.join(folder, 'Annotations', 'video00', f'{stem}.png')
        png = Image.open(path)
        label = np.asarray(png).copy()
        label[label == 2] = 0
        out = Image.fromarray(label, mode='P')
        out.putpalette(png.getpalette())
        out.save(path)
    return DAVISVideoDataset(folder, num_frames=1, image_size=128)


def test_an_object_appearing_later_is_prompted_and_scored_from_there(latedavis, gtvideopredictor):
    predictor = gtvideopredictor(latedavis)
    result = evaluatevideos(predictor, latedavis)
    assert result['jf'] == 1.0
    objects = {obj['id']: obj for obj in result['per_video'][0]['objects']}
    assert (objects[1]['first_frame'], objects[1]['num_frames']) == (0, 3)
    assert (objects[2]['first_frame'], objects[2]['num_frames']) == (2, 1)  # frame 3 only: 4 is the last
    assert predictor.starts[:2] == [('video00', 0), ('video00', 2)]
    assert ('video00', 2, 2) in predictor.prompts


def test_tiny_model_tracks_objects_prompted_on_different_frames(evalckpt, latedavis):
    predictor = SAMV2VideoPredictor(samv2_cfg=evalckpt[0], device='cpu', progress=False)
    result = evaluatevideos(predictor, latedavis, limit=1)
    assert result['num_videos'] == 1 and result['num_objects'] == 2
    assert 0 <= result['j'] <= 1 and 0 <= result['f'] <= 1 and result['jf'] == pytest.approx((result['j'] +
                                                                                              result['f']) / 2)
