"""SAMV2.trackstep against Meta's SAM2Base.track_step on one checkpoint, frame after frame.

Both models get the same random backbone features (what track_step consumes: (HW, B, C) per level, the
two finest already projected) and keep their own output_dict, with memories stored as bfloat16 the way
Meta's video predictor stores them. The fast tests run the shipped tiny configs at image_size=128: the
tracking logic does not depend on the image size, the attention cost does; the 1024 check is marked slow.
The object-score head's bias is raised on both models (random weights put every object at the edge of
absent, where masks are empty and compare trivially) and lowered again where a test wants absence.
"""
import contextlib

import pytest
import torch

from ssseg.modules.models.segmentors.samv2.predictors.modelchoice import buildsamv2
from ssseg.modules.utils.configs import loadsegmentorcfg

from helpers import assertclose, buildoraclemodel, temporaryattributes, writerandomcheckpoint

NAMES = ['samv21_hiera_tiny', 'samv2_hiera_tiny']
SIZE = 128
NUM_FRAMES = 12
PRESENT_BIAS = 3.0
OUTPUT_KEYS = {'point_inputs', 'mask_inputs', 'pred_masks', 'pred_masks_high_res', 'obj_ptr', 'object_score_logits',
               'maskmem_features', 'maskmem_pos_enc'}
MAXERR = {}
# share of stored bfloat16 memory values one rounding step apart (observed up to 0.3 % at 128 px);
# a wrong frame, order or encoding changes nearly all of them
BF16_FLIP_FRACTION = 1e-2


def _scorehead(model):
    return model.sam_mask_decoder.pred_obj_score_head.layers[-1]


def _buildpair(name, ckpt, size, cfgedit=None, overrides=()):
    cfg = loadsegmentorcfg(name)
    cfg['ckptpath'], cfg['image_size'] = ckpt, size
    if cfgedit:
        cfgedit(cfg)
    # apply_postprocessing and binarized click masks: the model as Meta's video predictor builds it
    ours = buildsamv2(cfg, device='cpu', apply_postprocessing=True)
    theirs = buildoraclemodel(name, ckpt, hydra_overrides_extra=[f'++model.image_size={size}', *overrides])
    with torch.no_grad():
        for model in (ours, theirs):
            model.binarize_mask_from_pts_for_mem_enc = True
            _scorehead(model).bias.add_(PRESENT_BIAS)
    return ours, theirs


pytestmark = pytest.mark.usefixtures('onethread')


@pytest.fixture(scope='module', autouse=True)
def reporterrors():
    yield
    print('\ntrackstep parity, max error / max(1, scale):', {k: f'{v:.2e}' for k, v in sorted(MAXERR.items())})


@pytest.fixture(scope='module', params=NAMES)
def models(request, makeckpt):
    return _buildpair(request.param, makeckpt(request.param), SIZE)


def _check(key, ours, theirs):
    assertclose(ours, theirs)
    if theirs.numel():
        error = (ours.float() - theirs.float()).abs().max().item() / max(1.0, theirs.abs().max().item())
        MAXERR[key] = max(MAXERR.get(key, 0.0), error)


def _checkstoredmemory(ours, theirs, num_ptr_tokens):
    """Memory tokens fed to the attention: spatial ones came from bfloat16 storage, pointers are float32.

    Each side rounds its own float32 memories (equal within the float32 tolerance) to bfloat16, so a
    value near a rounding boundary may land one bfloat16 step apart (about err / step ~ 0.1 % of
    values); anything else (a wrong frame, order or encoding) would differ almost everywhere.
    """
    spatial = ours.shape[0] - num_ptr_tokens
    _check('memory_obj_ptrs', ours[spatial:], theirs[spatial:])
    a, b = ours[:spatial], theirs[:spatial]
    assert torch.equal(a, a.bfloat16().float()) and torch.equal(b, b.bfloat16().float())
    step = 2.0 ** (torch.floor(torch.log2(torch.maximum(a.abs(), b.abs()).clamp_min(1e-30))) - 7)
    diff = (a - b).abs()
    float32_tolerance = 1e-4 * max(1.0, b.abs().max().item())
    assert (diff <= step + float32_tolerance).all(), 'stored memories differ by more than one bfloat16 step'
    flipped = (diff > 0).float().mean().item()
    assert flipped <= BF16_FLIP_FRACTION, f'{flipped:.2%} of stored memory values differ by a rounding step'
    MAXERR['memory_bf16_flip_fraction'] = max(MAXERR.get('memory_bf16_flip_fraction', 0.0), flipped)


@contextlib.contextmanager
def _objectscoreoffset(pair, delta):
    with torch.no_grad():
        for model in pair:
            _scorehead(model).bias.add_(delta)
    try:
        yield
    finally:
        with torch.no_grad():
            for model in pair:
                _scorehead(model).bias.sub_(delta)


def _features(frame_idx, batch_size, size):
    """One video frame's features, shared by all objects as the predictor shares them (stride-0 batch)."""
    generator = torch.Generator().manual_seed(1000 + frame_idx)
    embed = size // 16
    sizes = [(4 * embed, 4 * embed), (2 * embed, 2 * embed), (embed, embed)]
    feats, poses = [], []
    for (h, w), channels in zip(sizes, (32, 64, 256)):
        # the two finest maps are projected to C/8 and C/4 channels, their position encodings are not
        feats.append(torch.randn(h * w, 1, channels, generator=generator).expand(-1, batch_size, -1))
        poses.append(torch.randn(h * w, 1, 256, generator=generator).expand(-1, batch_size, -1))
    return feats, poses, sizes


def _points(seed, batch_size, num_points, size):
    generator = torch.Generator().manual_seed(seed)
    labels = torch.ones(batch_size, num_points, dtype=torch.int32)
    labels[:, 1:] = (torch.rand(batch_size, num_points - 1, generator=generator) > 0.5).int()
    return {'point_coords': torch.rand(batch_size, num_points, 2, generator=generator) * size, 'point_labels': labels}


def _maskinput(seed, batch_size, size):
    """Binary (B, 1, S, S) masks: a random box per object, the last object empty (absent)."""
    generator = torch.Generator().manual_seed(seed)
    masks = torch.zeros(batch_size, 1, size, size)
    for obj in range(batch_size - 1):
        y0, x0 = torch.randint(0, size // 2, (2,), generator=generator).tolist()
        masks[obj, 0, y0:y0 + size // 3, x0:x0 + size // 4] = 1
    return masks


class _Tracker:
    """Runs one step on both models with the same inputs, compares everything, stores like the predictor."""

    def __init__(self, pair, batch_size, size=SIZE, num_frames=NUM_FRAMES):
        self.pair, self.batch_size, self.size, self.num_frames = pair, batch_size, size, num_frames
        self.dicts = [{'cond_frame_outputs': {}, 'non_cond_frame_outputs': {}} for _ in pair]
        self.captured = [[] for _ in pair]
        self.hooks = [model.memory_attention.register_forward_pre_hook(
            lambda mod, args, kwargs, store=store: store.append(kwargs), with_kwargs=True)
            for model, store in zip(pair, self.captured)]

    def close(self):
        for hook in self.hooks:
            hook.remove()

    def step(self, frame_idx, init, points=None, mask=None, reverse=False, cond=None, run_mem_encoder=True,
             prev_logits=False):
        feats, poses, sizes = _features(frame_idx, self.batch_size, self.size)
        for store in self.captured:
            store.clear()
        outs = []
        with torch.no_grad():
            for model, output_dict in zip(self.pair, self.dicts):
                prev = None
                if prev_logits:
                    stored = output_dict['non_cond_frame_outputs'].get(frame_idx)
                    prev = (stored or output_dict['cond_frame_outputs'][frame_idx])['pred_masks']
                step = model.trackstep if hasattr(model, 'trackstep') else model.track_step
                outs.append(step(frame_idx, init, feats, poses, sizes, points, mask, output_dict, self.num_frames,
                                 track_in_reverse=reverse, run_mem_encoder=run_mem_encoder, prev_sam_mask_logits=prev))
        self.compare(*outs, memoryfromstore=not init)
        ours, theirs = outs
        assert ours['point_inputs'] is points and ours['mask_inputs'] is mask
        assert ours['pred_masks'].dtype == ours['obj_ptr'].dtype == torch.float32
        if run_mem_encoder:
            assert ours['maskmem_features'].dtype == torch.float32
            prompted = init or points is not None or mask is not None
            self.store(frame_idx, outs, prompted if cond is None else cond)
        return outs

    def compare(self, ours, theirs, memoryfromstore=True):
        assert set(ours) == set(theirs) == OUTPUT_KEYS
        for key in ('pred_masks', 'pred_masks_high_res', 'obj_ptr', 'object_score_logits'):
            _check(key, ours[key], theirs[key])
        if theirs['maskmem_features'] is None:
            assert ours['maskmem_features'] is None and ours['maskmem_pos_enc'] is None
        else:
            _check('maskmem_features', ours['maskmem_features'], theirs['maskmem_features'])
            assert len(ours['maskmem_pos_enc']) == len(theirs['maskmem_pos_enc'])
            for a, b in zip(ours['maskmem_pos_enc'], theirs['maskmem_pos_enc']):
                _check('maskmem_pos_enc', a, b)
        # the memory the attention saw: same frames, order, dtype and pointer count
        assert len(self.captured[0]) == len(self.captured[1])
        for mine, official in zip(*self.captured):
            assert mine['num_obj_ptr_tokens'] == official['num_obj_ptr_tokens']
            assert mine['memory'].dtype == official['memory'].dtype
            if memoryfromstore:
                _checkstoredmemory(mine['memory'], official['memory'], mine['num_obj_ptr_tokens'])
            else:
                _check('memory', mine['memory'], official['memory'])
            _check('memory_pos', mine['memory_pos'], official['memory_pos'])

    def store(self, frame_idx, outs, cond):
        for output_dict, out in zip(self.dicts, outs):
            compact = {'maskmem_features': out['maskmem_features'].to(torch.bfloat16),
                       'maskmem_pos_enc': out['maskmem_pos_enc'], 'pred_masks': out['pred_masks'],
                       'obj_ptr': out['obj_ptr'], 'object_score_logits': out['object_score_logits']}
            output_dict['non_cond_frame_outputs'].pop(frame_idx, None)
            output_dict['cond_frame_outputs' if cond else 'non_cond_frame_outputs'][frame_idx] = compact


def _scenario(tracker, reverse):
    """Prompts on frames 0, 2 and 9, tracking through the video, a correction click on frame 4.

    Frame indices are mirrored (f -> N - 1 - f) when tracking in reverse. Returns every step's outputs.
    """
    n, b, s = tracker.num_frames, tracker.batch_size, tracker.size
    at = (lambda f: n - 1 - f) if reverse else (lambda f: f)
    outs = [tracker.step(at(0), True, points=_points(0, b, 1, s), reverse=reverse),
            tracker.step(at(9), True, mask=_maskinput(9, b, s), reverse=reverse),
            tracker.step(at(2), True, points=_points(2, b, 1, s), reverse=reverse)]
    for f in (1, 3, 4, 5):
        outs.append(tracker.step(at(f), False, reverse=reverse))
    # a correction on a tracked frame: new clicks with the previous logits, memory encoded afterwards
    outs.append(tracker.step(at(4), False, points=_points(4, b, 2, s), reverse=reverse, run_mem_encoder=False,
                             prev_logits=True))
    feats, _, sizes = _features(at(4), b, s)
    (ours, theirs), (mine, official) = tracker.pair, outs[-1]
    with torch.no_grad():
        memories = [ours.encodenewmemory(feats, sizes, mine['pred_masks_high_res'], mine['object_score_logits'], True),
                    theirs._encode_new_memory(feats, sizes, official['pred_masks_high_res'],
                                              official['object_score_logits'], True)]
    _check('maskmem_features', memories[0][0], memories[1][0])
    for out, (features, pos) in zip(outs[-1], memories):
        out['maskmem_features'], out['maskmem_pos_enc'] = features, pos
    tracker.store(at(4), outs[-1], cond=True)
    for f in (6, 7, 8, 10, 11):
        if f == 7:
            # both objects judged absent by the decoder on this frame
            with _objectscoreoffset(tracker.pair, -2 * PRESENT_BIAS):
                outs.append(tracker.step(at(f), False, reverse=reverse))
            assert (outs[-1][1]['object_score_logits'] < 0).all()
        else:
            outs.append(tracker.step(at(f), False, reverse=reverse))
    return outs


OPTION_SETS = {
    'shipped': {},
    # memory every 2nd frame, 2 of 4 conditioning frames attended, a short pointer window
    'stride2-maxcond2-ptrs4': {'memory_temporal_stride_for_eval': 2, 'max_cond_frames_in_attn': 2,
                               'max_obj_ptrs_in_encoder': 4},
    # other switches flipped where both implementations support them; non_overlap_masks_for_mem_enc is
    # compared in test_encodenewmemory_and_nonoverlap: on tracked frames these random-weight objects get
    # near-equal logits, and the per-pixel argmax then follows float32 round-off
    'flipped': {'only_obj_ptrs_in_the_past_for_eval': False, 'add_tpos_enc_to_obj_ptrs': True,
                'binarize_mask_from_pts_for_mem_enc': False,
                'use_mask_input_as_output_without_sam': False, 'multimask_output_for_tracking': False},
}


@pytest.mark.parametrize('reverse', [False, True], ids=['forward', 'reverse'])
@pytest.mark.parametrize('options', list(OPTION_SETS))
def test_trackstep_sequence(models, options, reverse):
    settings = dict(OPTION_SETS[options])
    if options == 'flipped':
        settings['use_signed_tpos_enc_to_obj_ptrs'] = not models[0].use_signed_tpos_enc_to_obj_ptrs
    tracker = _Tracker(models, batch_size=2)
    try:
        with temporaryattributes(models, **settings):
            outs = _scenario(tracker, reverse)
    finally:
        tracker.close()
    scores = torch.cat([theirs['object_score_logits'] for _, theirs in outs])
    # both presence and absence were exercised, and tracking frames saw many memories and pointers
    assert (scores > 0).any() and (scores < 0).any()
    assert len(tracker.dicts[1]['cond_frame_outputs']) == 4


def test_encodenewmemory_and_nonoverlap(models):
    ours, theirs = models
    generator = torch.Generator().manual_seed(5)
    feats, _, sizes = _features(3, 3, SIZE)
    masks = torch.randn(3, 1, SIZE, SIZE, generator=generator) * 10
    scores = torch.tensor([[2.0], [-1.0], [0.5]])
    with torch.no_grad():
        _check('nonoverlap', ours.applynonoverlappingconstraints(masks),
               theirs._apply_non_overlapping_constraints(masks))
        single = masks[:1]
        assert ours.applynonoverlappingconstraints(single) is single
        for non_overlap in (False, True):
            for from_points in (False, True):
                with temporaryattributes(models, non_overlap_masks_for_mem_enc=non_overlap):
                    mine = ours.encodenewmemory(feats, sizes, masks, scores, from_points)
                    official = theirs._encode_new_memory(feats, sizes, masks, scores, from_points)
                _check('maskmem_features', mine[0], official[0])
                _check('maskmem_pos_enc', mine[1][0], official[1][0])


def _widememories(cfg):
    """Memories as wide as the image features (256), so the no-memory token can enter the attention.

    Cross attention without RoPE: rotating keys frame by frame has no meaning for a single token (Meta's
    RoPE attention fails on it as well).
    """
    cfg['directly_add_no_mem_embed'] = False
    cfg['memory_encoder']['out_dim'] = 256
    cfg['memory_encoder']['position_encoding']['num_pos_feats'] = 256
    cfg['memory_attention']['layer']['cross_attention'] = {
        'type': 'Attention', 'embedding_dim': 256, 'num_heads': 1, 'downsample_rate': 1, 'dropout': 0.1,
        'kv_in_dim': 256}


_CROSS = 'model.memory_attention.layer.cross_attention'
WIDE_OVERRIDES = ['++model.directly_add_no_mem_embed=false', '++model.memory_encoder.out_dim=256',
                  '++model.memory_encoder.position_encoding.num_pos_feats=256', f'++{_CROSS}.kv_in_dim=256',
                  f'++{_CROSS}._target_=sam2.modeling.sam.transformer.Attention', f'~{_CROSS}.rope_theta',
                  f'~{_CROSS}.feat_sizes', f'~{_CROSS}.rope_k_repeat']


def test_trackstep_no_mem_token_and_unsplit_pointers(tmp_path):
    """The initial frame goes through memory attention with the no-memory token; pointers stay one token."""
    name = 'samv21_hiera_tiny'
    ckpt = tmp_path / 'wide.pt'
    writerandomcheckpoint(name, ckpt, seed=7, hydra_overrides_extra=[f'++model.image_size={SIZE}', *WIDE_OVERRIDES])
    pair = _buildpair(name, str(ckpt), SIZE, cfgedit=_widememories, overrides=WIDE_OVERRIDES)
    assert pair[0].mem_dim == pair[0].hidden_dim == 256
    tracker = _Tracker(pair, batch_size=2, num_frames=4)
    try:
        tracker.step(0, True, points=_points(0, 2, 1, SIZE))
        assert tracker.captured[0][0]['memory'].shape[0] == 1
        for frame_idx in (1, 2, 3):
            tracker.step(frame_idx, False)
        assert tracker.captured[0][0]['num_obj_ptr_tokens'] == 3
    finally:
        tracker.close()


@pytest.mark.slow
@pytest.mark.parametrize('name', NAMES)
def test_trackstep_full_size(makeckpt, name):
    pair = _buildpair(name, makeckpt(name), 1024)
    tracker = _Tracker(pair, batch_size=1, size=1024, num_frames=3)
    try:
        tracker.step(0, True, points=_points(0, 1, 1, 1024))
        tracker.step(1, False)
        tracker.step(2, False)
    finally:
        tracker.close()
