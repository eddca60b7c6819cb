"""SAMV2.trackstep on the tiny random model: shapes, dtypes, memory selection, edge cases and bad input."""
import pytest
import torch

from ssseg.modules import BuildSegmentor
from ssseg.modules.models.segmentors.samv2.model.memorybank import _closestcondframes

from helpers import tinycfg

SIZE = 128  # tiny model: image 128, features 32 channels at 8 x 8, memories 16 channels


def _model(version='2.1', **options):
    torch.manual_seed(0)
    cfg = tinycfg(version)
    cfg.update(options)
    return BuildSegmentor(cfg).eval()


pytestmark = pytest.mark.usefixtures('onethread')


@pytest.fixture(scope='module')
def model():
    return _model()


def _features(model, batch_size, seed=0):
    images = torch.randn(1, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        feats, poses, sizes = model.preparebackbonefeatures(model.forwardimage(images))
    # every object of a frame shares the frame's features
    return [x.expand(-1, batch_size, -1) for x in feats], [x.expand(-1, batch_size, -1) for x in poses], sizes


def _points(batch_size, num_points=1):
    coords = torch.rand(batch_size, num_points, 2, generator=torch.Generator().manual_seed(1)) * SIZE
    return {'point_coords': coords, 'point_labels': torch.ones(batch_size, num_points, dtype=torch.int32)}


def _emptydict():
    return {'cond_frame_outputs': {}, 'non_cond_frame_outputs': {}}


def _compact(out):
    """What the video predictor keeps of a frame: bfloat16 memories."""
    return {'maskmem_features': out['maskmem_features'].to(torch.bfloat16), 'maskmem_pos_enc': out['maskmem_pos_enc'],
            'pred_masks': out['pred_masks'], 'obj_ptr': out['obj_ptr'],
            'object_score_logits': out['object_score_logits']}


class _Capture:
    """Record what the memory attention is given."""

    def __init__(self, model):
        self.calls = []
        self.handle = model.memory_attention.register_forward_pre_hook(
            lambda mod, args, kwargs: self.calls.append(kwargs), with_kwargs=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.handle.remove()


@pytest.mark.parametrize('version', ['2.1', '2.0'])
def test_trackstep_shapes_and_dtypes(version):
    model = _model(version)
    feats, poses, sizes = _features(model, 2)
    points = _points(2)
    output_dict = _emptydict()
    with torch.no_grad():
        out = model.trackstep(0, True, feats, poses, sizes, points, None, output_dict, 10)
        assert set(out) == {'point_inputs', 'mask_inputs', 'pred_masks', 'pred_masks_high_res', 'obj_ptr',
                            'object_score_logits', 'maskmem_features', 'maskmem_pos_enc'}
        assert out['point_inputs'] is points and out['mask_inputs'] is None
        assert out['pred_masks'].shape == (2, 1, 32, 32) and out['pred_masks_high_res'].shape == (2, 1, SIZE, SIZE)
        assert out['obj_ptr'].shape == (2, 32) and out['object_score_logits'].shape == (2, 1)
        assert out['maskmem_features'].shape == (2, 16, 8, 8)
        assert [tuple(p.shape) for p in out['maskmem_pos_enc']] == [(2, 16, 8, 8)]
        for key in ('pred_masks', 'pred_masks_high_res', 'obj_ptr', 'object_score_logits', 'maskmem_features'):
            assert out[key].dtype == torch.float32, key
        output_dict['cond_frame_outputs'][0] = _compact(out)
        # more tracked frames than memory slots (num_maskmem = 7), memories kept as bfloat16
        with _Capture(model) as capture:
            for frame_idx in range(1, 10):
                feats, poses, sizes = _features(model, 2, seed=frame_idx)
                out = model.trackstep(frame_idx, False, feats, poses, sizes, None, None, output_dict, 10)
                assert out['pred_masks'].dtype == out['maskmem_features'].dtype == torch.float32
                assert torch.isfinite(out['pred_masks_high_res']).all()
                output_dict['non_cond_frame_outputs'][frame_idx] = _compact(out)
        last = capture.calls[-1]
        # promoted by the float32 pointers, exactly as the bfloat16 values were stored
        assert last['memory'].dtype == torch.float32
        assert last['memory'].shape[0] == 7 * 64 + last['num_obj_ptr_tokens']


def test_run_mem_encoder_false(model):
    feats, poses, sizes = _features(model, 1)
    with torch.no_grad():
        out = model.trackstep(0, True, feats, poses, sizes, _points(1), None, _emptydict(), 1, run_mem_encoder=False)
    assert out['maskmem_features'] is None and out['maskmem_pos_enc'] is None


def test_without_memory_bank():
    model = _model(num_maskmem=0)
    feats, poses, sizes = _features(model, 1)
    output_dict = _emptydict()
    with torch.no_grad(), _Capture(model) as capture:
        first = model.trackstep(0, True, feats, poses, sizes, _points(1), None, output_dict, 2)
        output_dict['cond_frame_outputs'][0] = first
        second = model.trackstep(1, False, feats, poses, sizes, None, None, output_dict, 2)
    assert capture.calls == []
    assert first['maskmem_features'] is None and second['maskmem_features'] is None
    assert second['pred_masks'].shape == (1, 1, 32, 32)


def test_mask_input_is_the_output(model):
    feats, poses, sizes = _features(model, 2)
    masks = torch.zeros(2, 1, SIZE, SIZE, dtype=torch.bool)
    masks[0, 0, 10:60, 20:90] = True
    with torch.no_grad():
        out = model.trackstep(0, True, feats, poses, sizes, None, masks, _emptydict(), 1)
    assert torch.equal(out['pred_masks_high_res'], masks.float() * 20 - 10)
    assert out['pred_masks'].shape == (2, 1, 32, 32)
    assert out['object_score_logits'].tolist() == [[10.0], [-10.0]]
    # the empty object gets exactly the learned "no object" pointer
    assert torch.equal(out['obj_ptr'][1], model.no_obj_ptr[0])


def test_encodenewmemory(model):
    feats, _, sizes = _features(model, 2)
    masks = torch.randn(1, 1, SIZE, SIZE, generator=torch.Generator().manual_seed(2)).mul(10).expand(2, -1, -1, -1)
    with torch.no_grad():
        memory, pos = model.encodenewmemory(feats, sizes, masks, torch.tensor([[1.0], [-1.0]]), False)
        assert memory.shape == (2, 16, 8, 8) and pos[0].shape == (2, 16, 8, 8)
        # an absent object's memory carries the spatial no-object embedding everywhere
        offset = memory[1] - memory[0]
        torch.testing.assert_close(offset, model.no_obj_embed_spatial[0, :, None, None].expand_as(offset),
                                   rtol=0, atol=1e-5)
        # masks from clicks are binarized: the same as saturated logits
        model.binarize_mask_from_pts_for_mem_enc = True
        try:
            binarized = model.encodenewmemory(feats, sizes, masks, torch.ones(2, 1), True)[0]
        finally:
            model.binarize_mask_from_pts_for_mem_enc = False
        saturated = model.encodenewmemory(feats, sizes, torch.where(masks > 0, 1e4, -1e4), torch.ones(2, 1), False)[0]
    assert torch.equal(binarized, saturated)


def test_applynonoverlappingconstraints(model):
    single = torch.randn(1, 1, 4, 4)
    assert model.applynonoverlappingconstraints(single) is single
    masks = torch.tensor([[3.0, -20.0, 1.0], [5.0, -30.0, 1.0], [-1.0, -25.0, 0.5]]).view(3, 1, 1, 3)
    result = model.applynonoverlappingconstraints(masks).view(3, 3)
    # column 0: object 1 wins; column 1: object 0 wins and the losers are already below -10;
    # column 2: a tie goes to the first object
    expected = torch.tensor([[-10.0, -20.0, 1.0], [5.0, -30.0, -10.0], [-10.0, -25.0, -10.0]])
    assert torch.equal(result, expected)
    with pytest.raises(ValueError, match=r'pred_masks must be \(B, 1, H, W\)'):
        model.applynonoverlappingconstraints(torch.zeros(2, 4, 4))


def _markeddict(model, cond, non_cond):
    """Stored outputs whose memory values and pointers spell their own frame index (B = 1)."""
    def out(frame_idx):
        return {'maskmem_features': torch.full((1, model.mem_dim, 8, 8), float(frame_idx), dtype=torch.bfloat16),
                'maskmem_pos_enc': [torch.zeros(1, model.mem_dim, 8, 8)],
                'obj_ptr': torch.full((1, model.hidden_dim), 100.0 + frame_idx)}
    return {'cond_frame_outputs': {t: out(t) for t in cond}, 'non_cond_frame_outputs': {t: out(t) for t in non_cond}}


@pytest.mark.parametrize('frame_idx, reverse, stride, max_cond, cond, non_cond, num_frames, frames, ptrs', [
    # the last frame, then every 2nd frame back; pointers: conditioning frames, then every recent frame
    (10, False, 2, -1, [0], range(1, 10), 12, [0, 2, 4, 6, 8, 9], [0, 9, 8, 7, 6, 5, 4, 3, 2, 1]),
    (3, True, 2, -1, [13], range(4, 13), 14, [13, 12, 10, 8, 6, 4], [13, 4, 5, 6, 7, 8, 9, 10, 11, 12]),
    (10, False, 1, -1, [0], range(1, 10), 12, [0, 4, 5, 6, 7, 8, 9], [0, 9, 8, 7, 6, 5, 4, 3, 2, 1]),
    # two of four conditioning frames attended (nearest before and after); the others serve as recent
    # frames when they fall in the window; pointers only from conditioning frames in the past
    (6, False, 1, 2, [0, 2, 5, 8], [1, 3, 4], 10, [5, 8, 0, 1, 2, 3, 4], [5, 4, 3, 2, 1, 0]),
])
def test_memory_selection(model, frame_idx, reverse, stride, max_cond, cond, non_cond, num_frames, frames, ptrs):
    feats, poses, sizes = _features(model, 1)
    saved = model.memory_temporal_stride_for_eval, model.max_cond_frames_in_attn
    model.memory_temporal_stride_for_eval, model.max_cond_frames_in_attn = stride, max_cond
    try:
        with torch.no_grad(), _Capture(model) as capture:
            model.trackstep(frame_idx, False, feats, poses, sizes, None, None, _markeddict(model, cond, non_cond),
                            num_frames, track_in_reverse=reverse, run_mem_encoder=False)
    finally:
        model.memory_temporal_stride_for_eval, model.max_cond_frames_in_attn = saved
    memory, num_ptr_tokens = capture.calls[0]['memory'][:, 0, 0], capture.calls[0]['num_obj_ptr_tokens']
    spatial = memory[:memory.shape[0] - num_ptr_tokens]
    assert spatial.view(-1, 64)[:, 0].tolist() == frames
    # each 32-wide pointer is split into two 16-wide tokens
    assert num_ptr_tokens == 2 * len(ptrs)
    assert (memory[memory.shape[0] - num_ptr_tokens::2] - 100).tolist() == ptrs


def test_closestcondframes():
    outputs = {t: str(t) for t in (0, 3, 7, 12, 20)}
    assert _closestcondframes(8, outputs, -1) == (outputs, {})
    selected, unselected = _closestcondframes(8, outputs, 3)
    assert list(selected) == [7, 12, 3] and list(unselected) == [0, 20]
    selected, _ = _closestcondframes(25, outputs, 2)
    assert list(selected) == [20, 12]
    with pytest.raises(ValueError, match='max_cond_frames_in_attn'):
        _closestcondframes(8, outputs, 1)


def test_bfloat16_memory_without_pointers_is_promoted(model):
    """Without pointer tokens nothing promotes the stored bfloat16 memories: the step does it itself."""
    feats, poses, sizes = _features(model, 1)
    model.use_obj_ptrs_in_encoder = False
    try:
        with torch.no_grad(), _Capture(model) as capture:
            out = model.trackstep(1, False, feats, poses, sizes, None, None, _markeddict(model, [0], []), 2)
    finally:
        model.use_obj_ptrs_in_encoder = True
    assert capture.calls[0]['memory'].dtype == torch.float32 and capture.calls[0]['num_obj_ptr_tokens'] == 0
    assert out['pred_masks'].dtype == torch.float32


def test_one_frame_video_stays_finite(model):
    """A pointer window of one frame would normalize temporal distances by zero."""
    feats, poses, sizes = _features(model, 1)
    output_dict = _emptydict()
    with torch.no_grad():
        output_dict['cond_frame_outputs'][0] = _compact(
            model.trackstep(0, True, feats, poses, sizes, _points(1), None, output_dict, 1))
        out = model.trackstep(0, False, feats, poses, sizes, _points(1, 2), None, output_dict, 1,
                              prev_sam_mask_logits=output_dict['cond_frame_outputs'][0]['pred_masks'])
    assert torch.isfinite(out['pred_masks']).all() and torch.isfinite(out['obj_ptr']).all()


def test_no_mem_embed_token_needs_equal_widths(model):
    feats, poses, sizes = _features(model, 1)
    model.directly_add_no_mem_embed = False
    try:
        with pytest.raises(ValueError, match=r'mem_dim == hidden_dim'):
            model.trackstep(0, True, feats, poses, sizes, _points(1), None, _emptydict(), 1)
    finally:
        model.directly_add_no_mem_embed = True


def _badcalls(model):
    """(name, kwargs overrides, expected message) for trackstep on a 2-object frame."""
    feats, poses, sizes = _features(model, 2)
    cond = {'cond_frame_outputs': {}, 'non_cond_frame_outputs': {}}
    nomemory = {'cond_frame_outputs': {0: {'obj_ptr': torch.zeros(2, 32), 'maskmem_features': None,
                                           'maskmem_pos_enc': None}}, 'non_cond_frame_outputs': {}}
    swapped = [feats[1], feats[0], feats[2]]
    return [
        ({'frame_idx': -1}, r'frame_idx must be a non-negative int, got -1'),
        ({'num_frames': 0}, r'num_frames must be a positive int .* got 0'),
        ({'current_vision_feats': feats[1:]}, r'current_vision_feats must be a list of 3 .* got list of length 2'),
        ({'current_vision_feats': swapped}, r'current_vision_feats\[0\] must be \(h\*w, B, C\) = \(1024, B, C\)'),
        ({'current_vision_pos_embeds': poses[:2] + [poses[2][:, :1]]},
         r'current_vision_pos_embeds\[2\] must be \(h\*w, B, C\) = \(64, 2, C\) .* got \(64, 1, 32\)'),
        ({'current_vision_pos_embeds': poses[:2] + [poses[2][..., :16]]},
         r'current_vision_feats\[-1\] and current_vision_pos_embeds\[-1\] must be \(64, B, 32\)'),
        ({'current_vision_feats': [torch.zeros(1024, 2, 32)] + feats[1:]},
         r'current_vision_feats\[0\] must have 4 channels \(already projected by conv_s0'),
        ({'point_inputs': {'point_coords': torch.zeros(2, 1, 3), 'point_labels': torch.ones(2, 1)}},
         r'point_inputs\["point_coords"\] must be \(B, P, 2\) = \(2, P, 2\), got \(2, 1, 3\)'),
        ({'point_inputs': {'point_coords': torch.zeros(2, 1, 2), 'point_labels': torch.ones(2, 2)}},
         r'point_inputs\["point_labels"\] must be \(B, P\) = \(2, 1\), got \(2, 2\)'),
        ({'point_inputs': torch.zeros(2, 1, 2)}, r'point_inputs must be None or a dict'),
        ({'mask_inputs': torch.zeros(2, 1, 64, 64)}, r'mask_inputs must be a \(B, 1, H, W\) mask = \(2, 1, 128, 128\), '
                                                     r'got \(2, 1, 64, 64\)'),
        ({'mask_inputs': torch.zeros(1, 1, SIZE, SIZE)}, r'mask_inputs must be .* got \(1, 1, 128, 128\)'),
        ({'prev_sam_mask_logits': torch.zeros(2, 1, 32, 32)}, r'prev_sam_mask_logits .* needs point_inputs'),
        ({'point_inputs': _points(2), 'prev_sam_mask_logits': torch.zeros(2, 32, 32)},
         r'prev_sam_mask_logits must be a \(B, 1, H, W\) mask'),
        ({'is_init_cond_frame': False, 'output_dict': {'cond_frame_outputs': {}}},
         r'output_dict must be a dict with "cond_frame_outputs" and "non_cond_frame_outputs"'),
        ({'is_init_cond_frame': False, 'output_dict': cond}, r'output_dict\["cond_frame_outputs"\] is empty'),
        ({'is_init_cond_frame': False, 'frame_idx': 1, 'output_dict': nomemory},
         r'every stored frame output needs maskmem_features'),
    ]


def test_trackstep_rejects_bad_input(model):
    feats, poses, sizes = _features(model, 2)
    base = dict(frame_idx=0, is_init_cond_frame=True, current_vision_feats=feats, current_vision_pos_embeds=poses,
                feat_sizes=sizes, point_inputs=None, mask_inputs=None, output_dict=_emptydict(), num_frames=4)
    for overrides, message in _badcalls(model):
        with pytest.raises(ValueError, match=message):
            model.trackstep(**{**base, **overrides})


def test_encodenewmemory_rejects_bad_masks(model):
    feats, _, sizes = _features(model, 2)
    with pytest.raises(ValueError, match=r'pred_masks_high_res must be a \(B, 1, H, W\) mask = \(2, 1, H, W\)'):
        model.encodenewmemory(feats, sizes, torch.zeros(2, SIZE, SIZE), torch.ones(2, 1), False)
    with pytest.raises(ValueError, match=r'current_vision_feats\[-1\] must be \(h\*w, B, C\)'):
        model.encodenewmemory(feats, [(8, 8), (16, 16), (4, 4)], torch.zeros(2, 1, SIZE, SIZE), torch.ones(2, 1), False)
