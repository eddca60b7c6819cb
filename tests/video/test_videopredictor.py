"""SAMV2VideoPredictor on a tiny random model: outputs, video sources, memory policy, options and error paths.

Videos are synthetic (numpy frames, JPEG folders and an .mp4 written into tmp folders).
"""
import io
import sys

import cv2
import numpy as np
import pytest
import torch

from ssseg.modules.models.segmentors.samv2 import SAMV2VideoPredictor
from ssseg.modules.models.segmentors.samv2.video.memory import fillsmallholes, unfilledmasks
from ssseg.modules.models.segmentors.samv2.video.state import COND, NON_COND, VideoStateError

from helpers import NUM_FRAMES, H, W, makeframes, snapshot, writetinyckpt

LOW = 32  # low-res mask side of the 128 px tiny model


def heldmemories(state):
    """Number of stored records still holding memory features, as ``{'cond': n, 'non_cond': m}``."""
    counts = {'cond': 0, 'non_cond': 0}
    for outputs in state['output_dict_per_obj'].values():
        for key, name in ((COND, 'cond'), (NON_COND, 'non_cond')):
            counts[name] += sum(record.get('maskmem_features') is not None for record in outputs[key].values())
    return counts


pytestmark = pytest.mark.usefixtures('onethread')


@pytest.fixture(scope='module')
def tinycfg(tmp_path_factory):
    return writetinyckpt(tmp_path_factory.mktemp('tinyvideo') / 'tiny.pt')


@pytest.fixture(scope='module')
def predictor(tinycfg):
    return SAMV2VideoPredictor(samv2_cfg=tinycfg, device='cpu')


@pytest.fixture(scope='module')
def frames():
    return makeframes()


def scenario(predictor, state):
    """Two objects, a full pass, a correction click on an old frame, partial passes both ways, a later object.

    The last pass tracks objects 1 and 2 backwards from the last frame with no object pointer to attend to
    (Meta's CPU path fails there on its bfloat16 memories; ours promotes them to float32)."""
    out = [snapshot(predictor.addnewpointsorbox(state, 0, 1, points=[[15, 20]], labels=[1])),
           snapshot(predictor.addnewpointsorbox(state, 0, 2, box=[48, 28, 72, 46]))]
    out += [snapshot(r) for r in predictor.propagateinvideo(state)]
    out.append(snapshot(predictor.addnewpoints(state, 4, 1, [[22, 20]], [0], clear_old_points=False)))
    out += [snapshot(r) for r in predictor.propagateinvideo(state, start_frame_idx=12, max_frame_num_to_track=5)]
    out += [snapshot(r) for r in predictor.propagateinvideo(state, start_frame_idx=20, max_frame_num_to_track=4,
                                                             reverse=True)]
    out.append(snapshot(predictor.addnewpointsorbox(state, 25, 3, points=[[40, 20]], labels=[1])))
    out += [snapshot(r) for r in predictor.propagateinvideo(state, start_frame_idx=NUM_FRAMES - 1, reverse=True)]
    return out


def assertsame(results, expected):
    assert len(results) == len(expected)
    for (frame_a, ids_a, masks_a), (frame_b, ids_b, masks_b) in zip(results, expected):
        assert frame_a == frame_b and ids_a == ids_b
        assert torch.equal(masks_a, masks_b), f'frame {frame_a}: max diff {(masks_a - masks_b).abs().max():.3g}'


# ---------------------------------------------------------------------- outputs
def test_outputs_shapes_and_order(predictor, frames):
    state = predictor.initstate(frames)
    assert (state['num_frames'], state['video_height'], state['video_width']) == (NUM_FRAMES, H, W)
    frame_idx, obj_ids, masks = predictor.addnewpointsorbox(state, 0, 'a', points=[[15, 20]], labels=[1])
    assert (frame_idx, obj_ids, masks.shape, masks.dtype) == (0, ['a'], (1, 1, H, W), torch.float32)
    frame_idx, obj_ids, masks = predictor.addnewpointsorbox(state, 3, 'b', box=[48, 28, 72, 46],
                                                           points=[[60, 40]], labels=[1])
    # 'a' has no output on frame 3 yet: the "no object" logit everywhere
    assert (frame_idx, obj_ids, masks.shape) == (3, ['a', 'b'], (2, 1, H, W)) and (masks[0] == -1024).all()
    results = list(predictor.propagateinvideo(state))
    assert [r[0] for r in results] == list(range(NUM_FRAMES))
    for frame_idx, obj_ids, masks in results:
        assert obj_ids == ['a', 'b'] and masks.shape == (2, 1, H, W) and masks.dtype == torch.float32
        assert masks.device == predictor.device
    records = state['output_dict_per_obj'][0]
    assert list(records[COND]) == [0] and sorted(records[NON_COND]) == list(range(1, NUM_FRAMES))
    assert state['point_inputs_per_obj'][1][3]['point_coords'].shape == (1, 3, 2)  # box corners, then the click
    reverse = list(predictor.propagateinvideo(state, start_frame_idx=5, reverse=True))
    assert [r[0] for r in reverse] == [5, 4, 3, 2, 1, 0]
    assert list(predictor.propagateinvideo(state, start_frame_idx=0, reverse=True)) == []  # as Meta's
    assert [r[0] for r in predictor.propagateinvideo(state, start_frame_idx=7, max_frame_num_to_track=0)] == [7]


def test_stored_records_match_metas_layout(predictor, frames):
    state = predictor.initstate(frames[:8])  # no longer than the memory window: nothing is released
    predictor.addnewpointsorbox(state, 0, 1, points=[[15, 20]], labels=[1])
    predictor.addnewpointsorbox(state, 0, 2, points=[[60, 40]], labels=[1])
    for _ in predictor.propagateinvideo(state):
        pass
    shared = state['constants']['maskmem_pos_enc']
    for obj_idx in (0, 1):
        for key in (COND, NON_COND):
            for record in state['output_dict_per_obj'][obj_idx][key].values():
                assert record['maskmem_features'].dtype == torch.bfloat16
                assert record['maskmem_features'].shape == (1, 16, 8, 8)
                assert record['pred_masks'].shape == (1, 1, LOW, LOW) and record['pred_masks'].dtype == torch.float32
                assert record['obj_ptr'].shape == (1, 32) and record['object_score_logits'].shape == (1, 1)
                # one position encoding for the whole video, shared by reference
                assert record['maskmem_pos_enc'][0].data_ptr() == shared[0].data_ptr()
    assert len(state['cached_features']) == 1  # only the last frame's image features are kept


def test_jpeg_folder_and_mp4_sources(predictor, frames, tmp_path):
    folder = tmp_path / 'jpegs'
    folder.mkdir()
    for t, frame in enumerate(frames[:6]):
        cv2.imwrite(str(folder / f'{t:05d}.jpg'), frame[..., ::-1])
    video = tmp_path / 'clip.mp4'
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*'mp4v'), 10, (W, H))
    assert writer.isOpened()
    for frame in frames[:6]:
        writer.write(np.ascontiguousarray(frame[..., ::-1]))
    writer.release()
    for source in (str(folder), folder, str(video)):
        state = predictor.initstate(source, async_loading_frames=source == str(video))
        assert (state['num_frames'], state['video_height'], state['video_width']) == (6, H, W)
        predictor.addnewpointsorbox(state, 2, 1, points=[[15, 20]], labels=[1])
        results = list(predictor.propagateinvideo(state, start_frame_idx=2, reverse=True))
        assert [r[0] for r in results] == [2, 1, 0] and results[-1][2].shape == (1, 1, H, W)


# ---------------------------------------------------------------------- memory policy
def test_memory_is_released_behind_tracking_and_rebuilt_exactly(tinycfg, frames, monkeypatch):
    keeping = SAMV2VideoPredictor(samv2_cfg=tinycfg, device='cpu', release_memory=False)
    expected = scenario(keeping, keeping.initstate(frames))
    releasing = SAMV2VideoPredictor(samv2_cfg=tinycfg, device='cpu')
    window = releasing.memorywindow
    assert window == 7
    rebuilt = []
    encode = releasing._encodememory
    monkeypatch.setattr(releasing, '_encodememory',
                        lambda state, t, record, cache=True: rebuilt.append(t) or encode(state, t, record, cache))
    state = releasing.initstate(frames)
    results = []
    releasing.addnewpointsorbox(state, 0, 1, points=[[15, 20]], labels=[1])
    for result in releasing.propagateinvideo(state):
        results.append(result)
        # while tracking: the conditioning frame and at most window + 1 recent frames hold memory
        assert heldmemories(state) == {'cond': 1, 'non_cond': min(result[0], window + 1)}
    held = [t for t, r in state['output_dict_per_obj'][0][NON_COND].items() if r['maskmem_features'] is not None]
    assert held == list(range(NUM_FRAMES - window - 1, NUM_FRAMES))
    # what is never released: every frame's logits, pointer and score
    assert all(r['pred_masks'] is not None and r['obj_ptr'] is not None
               for r in state['output_dict_per_obj'][0][NON_COND].values())
    # the same outputs as keeping everything, also where released memories are read again (and rebuilt)
    releasing.resetstate(state)
    rebuilt.clear()
    assertsame(scenario(releasing, state), expected)
    assert rebuilt, 'the scenario should read released memories'
    assert heldmemories(state)['non_cond'] <= 3 * (window + 1)


def test_offload_state_to_cpu(tinycfg, frames):
    device = 'cuda' if torch.cuda.is_available() else 'cpu'
    predictor = SAMV2VideoPredictor(samv2_cfg=tinycfg, device=device)
    state = predictor.initstate(frames[:8], offload_video_to_cpu=True, offload_state_to_cpu=True)
    assert state['storage_device'] == torch.device('cpu') and state['images'].storagedevice == torch.device('cpu')
    predictor.addnewpointsorbox(state, 0, 1, points=[[15, 20]], labels=[1])
    results = list(predictor.propagateinvideo(state))
    assert results[-1][2].device.type == torch.device(device).type  # outputs on the compute device
    for key in (COND, NON_COND):
        for record in state['output_dict_per_obj'][0][key].values():
            assert record['maskmem_features'].device.type == record['pred_masks'].device.type == 'cpu'


# ---------------------------------------------------------------------- options
def test_hole_filling_matches_an_opencv_computation():
    generator = torch.Generator().manual_seed(0)
    logits = torch.rand(2, 1, LOW, LOW, generator=generator) * 5 + 0.5
    # image 0: background specks and clusters of every size; image 1: shapes placed by hand
    specks = torch.rand(LOW, LOW, generator=generator) < 0.2
    logits[0, 0][specks] = -torch.rand(int(specks.sum()), generator=generator) * 5
    logits[0, 0, 3, 3] = 0.0  # exactly 0 is background, as in Meta's
    logits[1, 0, 5:9, 5:9] = -4  # a 16-pixel hole
    logits[1, 0, 20, 20] = logits[1, 0, 21, 21] = -4  # diagonal neighbours: one 8-connected hole of 2
    expected = logits.clone()
    for b in range(2):
        background = (logits[b, 0] <= 0).numpy().astype(np.uint8)
        count, labels, stats, _ = cv2.connectedComponentsWithStats(background, connectivity=8)
        for label in range(1, count):
            if stats[label, cv2.CC_STAT_AREA] <= 8:
                expected[b, 0][torch.from_numpy(labels == label)] = 0.1
    filled, holes = fillsmallholes(logits, 8)
    assert torch.equal(filled, expected) and holes is not None
    assert filled[1, 0, 20, 20] == 0.1 and (filled[1, 0, 5:9, 5:9] == -4).all()
    assert torch.equal(unfilledmasks({'pred_masks': filled, '_holes': holes}), logits)  # what memory is rebuilt from
    assert fillsmallholes(logits, 0) == (logits, None)


def test_hole_filling_is_applied_to_prompted_and_tracked_outputs(tinycfg):
    # a mask prompt is used as the output: its 4 x 4 low-res hole (16 px) is filled only when fill_hole_area >= 16
    frames = [np.full((64, 64, 3), 100 + 10 * t, np.uint8) for t in range(3)]
    mask = np.zeros((64, 64), bool)
    mask[8:56, 8:56] = True
    mask[24:32, 24:32] = False
    outputs = {}
    for area in (0, 15, 16):
        predictor = SAMV2VideoPredictor(samv2_cfg=tinycfg, device='cpu', fill_hole_area=area)
        state = predictor.initstate(frames)
        outputs[area] = predictor.addnewmask(state, 0, 1, mask)[2]
        record = state['temp_output_dict_per_obj'][0][COND][0]
        assert torch.equal(record['pred_masks'], fillsmallholes(unfilledmasks(record), area)[0])
    assert torch.equal(outputs[0], outputs[15]) and (outputs[0][0, 0, 25:31, 25:31] < 0).all()
    assert (outputs[16][0, 0, 24:32, 24:32] > 0).all()
    changed = (outputs[16] != outputs[0])[0, 0].nonzero()
    assert changed.min() >= 22 and changed.max() <= 33  # only around the hole


def test_apply_postprocessing_defaults(tinycfg):
    on = SAMV2VideoPredictor(samv2_cfg=tinycfg, device='cpu')
    off = SAMV2VideoPredictor(samv2_cfg=tinycfg, device='cpu', apply_postprocessing=False)
    assert on.fill_hole_area == 8 and on.model.binarize_mask_from_pts_for_mem_enc
    assert on.model.sam_mask_decoder.dynamic_multimask_via_stability
    assert off.fill_hole_area == 0 and not off.model.binarize_mask_from_pts_for_mem_enc
    assert not off.model.sam_mask_decoder.dynamic_multimask_via_stability
    assert SAMV2VideoPredictor(samv2_cfg=tinycfg, device='cpu', fill_hole_area=3).fill_hole_area == 3
    assert (on.non_overlap_masks, on.clear_non_cond_mem_around_input, on.clear_non_cond_mem_for_multi_obj) == (
        False, False, False)


def test_non_overlap_masks_keep_one_object_per_pixel(tinycfg, frames):
    predictor = SAMV2VideoPredictor(samv2_cfg=tinycfg, device='cpu', non_overlap_masks=True)
    state = predictor.initstate(frames[:4])
    predictor.addnewpointsorbox(state, 0, 1, box=[0, 0, 60, 50])
    _, _, masks = predictor.addnewpointsorbox(state, 0, 2, box=[20, 10, 79, 59])
    for _, _, masks in [(0, None, masks)] + list(predictor.propagateinvideo(state)):
        assert not ((masks[0] > 0) & (masks[1] > 0)).any()


def test_clear_non_cond_mem_around_input(tinycfg, frames):
    def trackedafter(objects=1, **options):
        """Frames with tracked outputs of object 1 once a correction on frame 12 is consolidated."""
        predictor = SAMV2VideoPredictor(samv2_cfg=tinycfg, device='cpu', **options)
        state = predictor.initstate(frames[:24])
        for obj_id in range(1, objects + 1):
            predictor.addnewpointsorbox(state, 0, obj_id, points=[[15 * obj_id, 20]], labels=[1])
        for _ in predictor.propagateinvideo(state):
            pass
        predictor.addnewpointsorbox(state, 12, 1, points=[[30, 20]], labels=[0], clear_old_points=False)
        next(predictor.propagateinvideo(state, start_frame_idx=20))  # prompts are consolidated when tracking starts
        return [sorted(state['output_dict_per_obj'][i][NON_COND]) for i in range(objects)]
    everything = list(range(1, 24))
    assert trackedafter() == [everything]
    # the correction's frame and its 7 neighbours each side are forgotten; frame 20 was tracked again since
    assert trackedafter(clear_non_cond_mem_around_input=True) == [[1, 2, 3, 4, 20, 21, 22, 23]]
    # with several objects only when asked for, and then only for the corrected object
    assert trackedafter(2, clear_non_cond_mem_around_input=True) == [everything, everything]
    assert trackedafter(2, clear_non_cond_mem_around_input=True, clear_non_cond_mem_for_multi_obj=True) == [
        [1, 2, 3, 4, 20, 21, 22, 23], everything]


def test_add_all_frames_to_correct_as_cond(tinycfg, frames):
    predictor = SAMV2VideoPredictor(samv2_cfg=tinycfg, device='cpu', add_all_frames_to_correct_as_cond=True)
    state = predictor.initstate(frames[:8])
    predictor.addnewpointsorbox(state, 0, 1, points=[[15, 20]], labels=[1])
    for _ in predictor.propagateinvideo(state):
        pass
    predictor.addnewpointsorbox(state, 5, 1, points=[[30, 20]], labels=[0], clear_old_points=False)
    for _ in predictor.propagateinvideo(state):
        pass
    assert sorted(state['output_dict_per_obj'][0][COND]) == [0, 5]


def test_progress_bar_only_on_a_terminal(tinycfg, frames, capsys, monkeypatch):
    predictor = SAMV2VideoPredictor(samv2_cfg=tinycfg, device='cpu')
    state = predictor.initstate(frames[:3])
    predictor.addnewpointsorbox(state, 0, 1, points=[[15, 20]], labels=[1])
    capsys.readouterr()
    list(predictor.propagateinvideo(state))  # pytest's captured stderr is not a terminal
    assert capsys.readouterr().err == ''
    predictor.progress = True
    list(predictor.propagateinvideo(state))
    assert 'propagate in video' in capsys.readouterr().err
    predictor.progress = None
    terminal = io.StringIO()
    terminal.isatty = lambda: True
    monkeypatch.setattr(sys, 'stderr', terminal)
    list(predictor.propagateinvideo(state))
    assert 'propagate in video' in terminal.getvalue()


def test_snake_case_aliases_are_the_same_methods():
    for official, ours in [('init_state', 'initstate'), ('reset_state', 'resetstate'),
                           ('add_new_points', 'addnewpoints'),
                           ('add_new_points_or_box', 'addnewpointsorbox'), ('add_new_mask', 'addnewmask'),
                           ('propagate_in_video', 'propagateinvideo'), ('remove_object', 'removeobject'),
                           ('clear_all_prompts_in_frame', 'clearallpromptsinframe')]:
        assert getattr(SAMV2VideoPredictor, official) is getattr(SAMV2VideoPredictor, ours)


# ---------------------------------------------------------------------- state handling
def test_resetstate_and_objects(predictor, frames):
    fresh = predictor.initstate(frames[:10])
    expected = [snapshot(predictor.addnewpointsorbox(fresh, 0, 2, points=[[60, 40]], labels=[1]))]
    expected += [snapshot(r) for r in predictor.propagateinvideo(fresh)]
    state = predictor.initstate(frames[:10])
    predictor.addnewpointsorbox(state, 0, 1, points=[[15, 20]], labels=[1])
    list(predictor.propagateinvideo(state))
    predictor.resetstate(state)
    assert state['obj_ids'] == [] and not state['output_dict_per_obj']
    with pytest.raises(VideoStateError, match='needs prompts'):
        predictor.propagateinvideo(state)
    # after a reset the state works like a fresh one
    results = [snapshot(predictor.addnewpointsorbox(state, 0, 2, points=[[60, 40]], labels=[1]))]
    results += [snapshot(r) for r in predictor.propagateinvideo(state)]
    assertsame(results, expected)
    # objects are tracked independently: removing one leaves the other's results as if it never existed
    state = predictor.initstate(frames[:10])
    predictor.addnewpointsorbox(state, 0, 1, points=[[15, 20]], labels=[1])
    predictor.addnewpointsorbox(state, 0, 2, points=[[60, 40]], labels=[1])
    assert predictor.removeobject(state, 7) == ([1, 2], [])
    obj_ids, updated = predictor.removeobject(state, 1)
    assert obj_ids == [2] and [(t, m.shape) for t, m in updated] == [(0, (1, 1, H, W))]
    assert torch.equal(updated[0][1], expected[0][2])
    assertsame([snapshot(r) for r in predictor.propagateinvideo(state)], expected[1:])
    assert predictor.removeobject(state, 2) == ([], [])
    assert state['obj_ids'] == []


def test_clearallpromptsinframe(predictor, frames):
    state = predictor.initstate(frames[:6])
    predictor.addnewpointsorbox(state, 0, 1, points=[[15, 20]], labels=[1])
    predictor.addnewpointsorbox(state, 3, 1, points=[[18, 20]], labels=[1])
    frame_idx, obj_ids, masks = predictor.clearallpromptsinframe(state, 3, 1)
    assert (frame_idx, obj_ids) == (3, [1]) and (masks == -1024).all()
    assert predictor.clearallpromptsinframe(state, 3, 1, need_output=False) is None
    predictor.addnewpointsorbox(state, 3, 1, points=[[18, 20]], labels=[1])
    list(predictor.propagateinvideo(state))
    assert sorted(state['output_dict_per_obj'][0][COND]) == [0, 3]
    # a cleared conditioning frame is kept as a tracked output, and counts as never tracked
    predictor.clearallpromptsinframe(state, 3, 1)
    assert 3 in state['output_dict_per_obj'][0][NON_COND] and 3 not in state['frames_tracked_per_obj'][0]
    predictor.clearallpromptsinframe(state, 0, 1)
    with pytest.raises(VideoStateError, match='object 1 has no prompted frame'):
        predictor.propagateinvideo(state)


def test_objects_may_join_after_tracking_started(predictor, frames):
    state = predictor.initstate(frames[:6])
    predictor.addnewpointsorbox(state, 0, 1, points=[[15, 20]], labels=[1])
    list(predictor.propagateinvideo(state))
    frame_idx, obj_ids, masks = predictor.addnewpointsorbox(state, 3, 2, points=[[60, 40]], labels=[1])
    assert obj_ids == [1, 2] and masks.shape == (2, 1, H, W)
    results = list(predictor.propagateinvideo(state))
    assert [r[0] for r in results] == [0, 1, 2, 3, 4, 5] and (results[0][2][1] == -1024).all()


# ---------------------------------------------------------------------- errors
BAD_PROMPTS = [
    (dict(points=[[1, 2]]), ValueError, 'points was given without labels'),
    (dict(labels=[1]), ValueError, 'labels was given without points'),
    (dict(points=[[1, 2], [3, 4]], labels=[1]), ValueError, 'labels must have one label per point'),
    (dict(points=[1, 2, 3], labels=[1]), ValueError, r'points must have shape \(P, 2\)'),
    (dict(points=[[[1, 2]], [[3, 4]]], labels=[[1], [1]]), ValueError, r'one object'),
    (dict(points=[[1, 2]], labels=[5]), ValueError, 'labels must be in'),
    (dict(points=[['a', 'b']], labels=[1]), TypeError, 'points must be a numeric array'),
    (dict(), ValueError, 'give points with labels, a box, or both'),
    (dict(box=[1, 2, 3]), ValueError, r'box must be one x1, y1, x2, y2 box \(4 numbers\)'),
    (dict(box=[[1, 2, 3, 4], [1, 2, 3, 4]]), ValueError, r'box must be one'),
    (dict(box=[30, 2, 10, 40]), ValueError, 'x2 >= x1'),
    (dict(box=[1, 2, 30, 40], clear_old_points=False), ValueError, 'box needs clear_old_points=True'),
    (dict(points=[[1, 2]], labels=[1], frame_idx=NUM_FRAMES), IndexError, r'frame_idx must be in \[0, 29\]'),
    (dict(points=[[1, 2]], labels=[1], frame_idx=-1), IndexError, r'frame_idx must be in \[0, 29\]'),
    (dict(points=[[1, 2]], labels=[1], frame_idx=1.0), TypeError, 'frame_idx must be an int'),
    (dict(points=[[1, 2]], labels=[1], obj_id=[1]), TypeError, 'obj_id must be an int or a str'),
]


@pytest.mark.parametrize('kwargs, error, match', BAD_PROMPTS)
def test_bad_point_and_box_prompts(predictor, frames, kwargs, error, match):
    state = predictor.initstate(frames)
    predictor.addnewpointsorbox(state, 0, 1, points=[[15, 20]], labels=[1])
    kwargs = {'frame_idx': 0, 'obj_id': 2, **kwargs}
    with pytest.raises(error, match=match):
        predictor.addnewpointsorbox(state, **kwargs)
    assert state['obj_ids'] == [1] and list(state['point_inputs_per_obj']) == [0]  # nothing half-added


@pytest.mark.parametrize('mask, error, match', [
    (np.zeros((2, 4, 4), bool), ValueError, r'mask must be one object\'s \(H, W\) mask'),
    (np.zeros((0, 4), bool), ValueError, 'non-empty'),
    (np.array([None, object()]), TypeError, 'mask must be an'),
])
def test_bad_masks(predictor, frames, mask, error, match):
    state = predictor.initstate(frames[:3])
    with pytest.raises(error, match=match):
        predictor.addnewmask(state, 0, 1, mask)
    with pytest.raises(IndexError, match='frame_idx'):
        predictor.addnewmask(state, 3, 1, np.ones((H, W), bool))
    assert state['obj_ids'] == []


def test_bad_state_and_propagation_arguments(tinycfg, predictor, frames):
    state = predictor.initstate(frames[:5])
    with pytest.raises(VideoStateError, match='needs prompts'):
        predictor.propagateinvideo(state)
    predictor.addnewpointsorbox(state, 0, 1, points=[[15, 20]], labels=[1])
    with pytest.raises(IndexError, match=r'start_frame_idx must be in \[0, 4\]'):
        predictor.propagateinvideo(state, start_frame_idx=5)
    with pytest.raises(ValueError, match='max_frame_num_to_track must be None or an int >= 0'):
        predictor.propagateinvideo(state, max_frame_num_to_track=-1)
    with pytest.raises(TypeError, match='inference_state must be the dict returned by initstate'):
        predictor.addnewpointsorbox({'images': []}, 0, 1, points=[[1, 2]], labels=[1])
    with pytest.raises(VideoStateError, match=r'obj_id 9 is not an object of this state; known ids: \[1\]'):
        predictor.removeobject(state, 9, strict=True)
    with pytest.raises(VideoStateError, match='obj_id 9 is not an object'):
        predictor.clearallpromptsinframe(state, 0, 9)
    cfg = dict(tinycfg, image_size=64)
    other = SAMV2VideoPredictor(samv2_cfg=cfg, device='cpu', load_ckpt_strict=False)
    with pytest.raises(ValueError, match='image_size 128, this predictor\'s model has image_size 64'):
        other.addnewpointsorbox(state, 0, 1, points=[[1, 2]], labels=[1])
    assert len(list(predictor.propagateinvideo(state))) == 5  # still usable after every failure above


def test_bad_video_paths_and_options(predictor, tinycfg, tmp_path):
    with pytest.raises(FileNotFoundError, match='video_path'):
        predictor.initstate(tmp_path / 'missing')
    with pytest.raises(ValueError, match='no .jpg/.jpeg frames'):
        predictor.initstate(tmp_path)
    cv2.imwrite(str(tmp_path / 'first.jpg'), np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(ValueError, match='named by frame number'):
        predictor.initstate(tmp_path)
    with pytest.raises(ValueError, match='fill_hole_area must be a number >= 0'):
        SAMV2VideoPredictor(samv2_cfg=tinycfg, device='cpu', fill_hole_area=-1)
    with pytest.raises(ValueError, match='choose exactly one model'):
        SAMV2VideoPredictor(device='cpu')


def test_failed_call_leaves_the_state_usable(predictor, frames, monkeypatch):
    fresh = predictor.initstate(frames[:8])
    expected = [snapshot(predictor.addnewpointsorbox(fresh, 0, 1, points=[[15, 20]], labels=[1]))]
    expected += [snapshot(r) for r in predictor.propagateinvideo(fresh)]
    state = predictor.initstate(frames[:8])
    predictor.addnewpointsorbox(state, 0, 1, points=[[15, 20]], labels=[1])

    def broken(*args, **kwargs):
        raise RuntimeError('simulated failure inside the model')
    with monkeypatch.context() as patch:
        patch.setattr(predictor.model, 'trackstep', broken)
        with pytest.raises(RuntimeError, match='simulated'):
            predictor.addnewpointsorbox(state, 2, 5, points=[[60, 40]], labels=[1])
        with pytest.raises(RuntimeError, match='simulated'):
            predictor.addnewpointsorbox(state, 0, 1, points=[[30, 20]], labels=[0], clear_old_points=False)
    with pytest.raises(ValueError):
        predictor.addnewpointsorbox(state, 0, 6, points=[[1, 2]], labels=[7])
    assert state['obj_ids'] == [1] and list(state['point_inputs_per_obj'][0]) == [0]
    results = [snapshot(r) for r in predictor.propagateinvideo(state)]
    assertsame(results, expected[1:])
