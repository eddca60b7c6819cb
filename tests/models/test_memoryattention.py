"""Tests for axial RoPE, RoPEAttention and MemoryAttention: parity with Meta's sam2, shapes, bad arguments."""
import pytest
import torch

from ssseg.modules.models.bricks.attention import Attention
from ssseg.modules.models.bricks.rope import RoPEAttention, applyaxialrope, axialropetables
from ssseg.modules.models.registries import BuildTransformer, BuildTransformerLayer
from ssseg.modules.models.segmentors.samv2.model.memoryattention import MemoryAttention, MemoryAttentionLayer

from helpers import assertclose as _assertclose
from helpers import perturbed

ROPE = dict(type='RoPEAttention', rope_theta=10000.0, feat_sizes=[64, 64], embedding_dim=256, num_heads=1,
            downsample_rate=1, dropout=0.1)
LAYER = dict(
    type='MemoryAttentionLayer', activation='relu', dim_feedforward=2048, dropout=0.1, pos_enc_at_attn=False,
    self_attention=ROPE, d_model=256, pos_enc_at_cross_attn_keys=True, pos_enc_at_cross_attn_queries=False,
    cross_attention=dict(ROPE, rope_k_repeat=True, kv_in_dim=64),
)
CFG = dict(type='MemoryAttention', d_model=256, pos_enc_at_input=True, layer=LAYER, num_layers=4)


def _metamemoryattention():
    """Meta's module built like sam2.1_hiera_t.yaml builds it."""
    from sam2.modeling.memory_attention import MemoryAttention as MetaMA
    from sam2.modeling.memory_attention import MemoryAttentionLayer as MetaLayer
    from sam2.modeling.sam.transformer import RoPEAttention as MetaRoPE
    rope = {k: v for k, v in ROPE.items() if k != 'type'}
    layer = {k: v for k, v in LAYER.items() if k not in ('type', 'self_attention', 'cross_attention')}
    layer = MetaLayer(self_attention=MetaRoPE(**rope),
                      cross_attention=MetaRoPE(**rope, rope_k_repeat=True, kv_in_dim=64), **layer)
    return MetaMA(d_model=256, pos_enc_at_input=True, layer=layer, num_layers=4)


@pytest.fixture(scope='module')
def models():
    torch.manual_seed(0)
    meta = perturbed(_metamemoryattention(), seed=1)
    ours = BuildTransformer(CFG).eval()
    ours.load_state_dict(meta.state_dict(), strict=True)
    return meta, ours


def _inputs(size, batch, seed):
    gen = torch.Generator().manual_seed(seed)
    hw, mem = size * size, 2 * size * size + 4
    return (torch.randn(hw, batch, 256, generator=gen), torch.randn(mem, batch, 64, generator=gen),
            torch.randn(hw, batch, 256, generator=gen), torch.randn(mem, batch, 64, generator=gen))


# 32x32 differs from feat_sizes (tables recomputed); the order also checks switching back and forth
@pytest.mark.parametrize('size, batch', [(32, 2), (64, 1), (32, 1)])
def test_memoryattention_matches_meta(models, size, batch):
    meta, ours = models
    curr, memory, curr_pos, memory_pos = _inputs(size, batch, seed=size + batch)
    with torch.no_grad():
        expected = meta([curr], memory, [curr_pos], memory_pos, num_obj_ptr_tokens=4)
        got = ours([curr], memory, [curr_pos], memory_pos, num_obj_ptr_tokens=4)
    assert got.shape == (size * size, batch, 256)
    _assertclose(got, expected)


def test_memoryattention_accepts_tensors(models):
    _, ours = models
    curr, memory, curr_pos, memory_pos = _inputs(16, 2, seed=5)
    with torch.no_grad():
        from_lists = ours([curr], memory, [curr_pos], memory_pos, num_obj_ptr_tokens=4)
        from_tensors = ours(curr, memory, curr_pos, memory_pos, num_obj_ptr_tokens=4)
    assert torch.equal(from_lists, from_tensors)


def test_state_dict_keys_match_meta():
    meta = {k: v.shape for k, v in _metamemoryattention().state_dict().items()}
    ours = {k: v.shape for k, v in BuildTransformer(CFG).state_dict().items()}
    assert ours == meta
    assert ours['layers.3.cross_attn_image.k_proj.weight'] == (256, 64)


def test_rope_tables_match_meta():
    from sam2.modeling.position_encoding import compute_axial_cis
    cos, sin = axialropetables(32, 6, 4, theta=100.0)
    cis = compute_axial_cis(32, 6, 4, theta=100.0)
    assert cos.shape == (24, 16)
    torch.testing.assert_close(cos, cis.real, rtol=0, atol=1e-6)
    torch.testing.assert_close(sin, cis.imag, rtol=0, atol=1e-6)


def test_apply_rope_matches_meta_with_repeat():
    from sam2.modeling.position_encoding import apply_rotary_enc, compute_axial_cis
    q, k = torch.randn(2, 3, 12, 16), torch.randn(2, 3, 36, 16)
    meta_q, meta_k = apply_rotary_enc(q, k, compute_axial_cis(16, 4, 3), repeat_freqs_k=True)
    cos, sin = axialropetables(16, 4, 3)
    torch.testing.assert_close(applyaxialrope(q, cos, sin), meta_q, rtol=0, atol=1e-5)
    ours_k = applyaxialrope(k.unflatten(2, (3, 12)), cos, sin).flatten(2, 3)
    torch.testing.assert_close(ours_k, meta_k, rtol=0, atol=1e-5)
    assert applyaxialrope(q.half(), cos, sin).dtype == torch.float16


@pytest.mark.parametrize('num_q_side, excluded', [(4, 0), (4, 3), (5, 2)])
def test_ropeattention_matches_meta(num_q_side, excluded):
    from sam2.modeling.sam.transformer import RoPEAttention as MetaRoPE
    kwargs = dict(embedding_dim=32, num_heads=2, rope_k_repeat=True, feat_sizes=(4, 4), kv_in_dim=16)
    meta = perturbed(MetaRoPE(**kwargs), seed=3)
    ours = RoPEAttention(**kwargs).eval()
    ours.load_state_dict(meta.state_dict(), strict=True)
    num_q = num_q_side * num_q_side
    q, kv = torch.randn(2, num_q, 32), torch.randn(2, 3 * num_q + excluded, 16)
    with torch.no_grad():
        _assertclose(ours(q, kv, kv, num_k_exclude_rope=excluded), meta(q, kv, kv, num_k_exclude_rope=excluded))


def test_object_pointers_are_not_rotated():
    # capture the keys handed to attention and compare them with the plain projected keys
    attn = RoPEAttention(8, 1, rope_k_repeat=True, feat_sizes=(2, 2)).eval()
    seen = {}
    attn._attendandmerge = lambda q, k, v, key_mask=None: seen.setdefault('k', k)
    kv = torch.randn(1, 4 * 2 + 3, 8)
    with torch.no_grad():
        attn(torch.randn(1, 4, 8), kv, kv, num_k_exclude_rope=3)
        projected = attn._splitheads(attn.k_proj(kv))
    assert torch.equal(seen['k'][:, :, -3:], projected[:, :, -3:])
    assert not torch.allclose(seen['k'][:, :, 1:8], projected[:, :, 1:8])


def test_masked_keys_equal_the_shorter_memory():
    # padding keys masked out give each row the attention over its own keys only
    attn = RoPEAttention(16, 2, rope_k_repeat=True, feat_sizes=(2, 2)).eval()
    q = torch.randn(2, 4, 16)
    short, long = torch.randn(1, 4 + 2, 16), torch.randn(1, 8 + 3, 16)
    padded = torch.zeros(2, 8 + 3, 16)
    padded[0, :4], padded[0, 8:10] = short[0, :4], short[0, 4:]
    padded[1] = long[0]
    key_mask = torch.zeros(2, 11, dtype=torch.bool)
    key_mask[0, :4], key_mask[0, 8:10], key_mask[1] = True, True, True
    with torch.no_grad():
        batched = attn(q, padded, padded, num_k_exclude_rope=3, key_mask=key_mask)
        alone = [attn(q[:1], short, short, num_k_exclude_rope=2), attn(q[1:], long, long, num_k_exclude_rope=3)]
    torch.testing.assert_close(batched, torch.cat(alone), rtol=1e-5, atol=1e-6)
    with torch.no_grad():
        unmasked = attn(q, padded, padded, num_k_exclude_rope=3)
    assert not torch.allclose(unmasked[0], alone[0][0], atol=1e-3)


def test_ropeattention_bad_inputs():
    attn = RoPEAttention(16, 1, feat_sizes=(4, 4))
    with pytest.raises(ValueError, match='rope_k_repeat'):
        attn(torch.randn(1, 16, 16), torch.randn(1, 32, 16), torch.randn(1, 32, 16))
    with pytest.raises(ValueError, match='square grid'):
        attn(torch.randn(1, 12, 16), torch.randn(1, 12, 16), torch.randn(1, 12, 16))
    with pytest.raises(ValueError, match='num_k_exclude_rope'):
        attn(torch.randn(1, 16, 16), torch.randn(1, 16, 16), torch.randn(1, 16, 16), num_k_exclude_rope=20)
    repeat = RoPEAttention(16, 1, rope_k_repeat=True, feat_sizes=(4, 4))
    with pytest.raises(ValueError, match='multiple of 16'):
        repeat(torch.randn(1, 16, 16), torch.randn(1, 20, 16), torch.randn(1, 20, 16))


def test_ropeattention_non_square_feat_sizes():
    attn = RoPEAttention(16, 2, feat_sizes=(6, 2)).eval()
    q = torch.randn(3, 12, 16)
    assert attn(q, q, q).shape == (3, 12, 16)


@pytest.mark.parametrize('kwargs, match', [
    (dict(feat_sizes=(4,)), 'feat_sizes'),
    (dict(feat_sizes=(4, 0)), 'feat_sizes'),
    (dict(num_heads=4), 'divisible by 4'),
])
def test_ropeattention_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        RoPEAttention(**{'embedding_dim': 24, 'num_heads': 1, **kwargs})


def test_layer_and_stack_errors():
    small = dict(type='Attention', embedding_dim=32, num_heads=2)
    layer = dict(type='MemoryAttentionLayer', activation='relu', cross_attention=dict(small, kv_in_dim=8), d_model=32,
                 dim_feedforward=64, dropout=0.0, pos_enc_at_attn=True, pos_enc_at_cross_attn_keys=True,
                 pos_enc_at_cross_attn_queries=True, self_attention=small)
    with pytest.raises(ValueError, match='self_attention'):
        BuildTransformerLayer(dict(layer, self_attention=dict(small, embedding_dim=16)))
    with pytest.raises(ValueError, match='dropout'):
        BuildTransformerLayer(dict(layer, dropout=1.0))
    with pytest.raises(ValueError, match='num_layers'):
        MemoryAttention(d_model=32, pos_enc_at_input=True, layer=layer, num_layers=0)
    model = MemoryAttention(d_model=32, pos_enc_at_input=True, layer=layer, num_layers=2).eval()
    assert isinstance(model.layers[0], MemoryAttentionLayer) and isinstance(model.layers[1].self_attn, Attention)
    curr, memory = torch.randn(9, 2, 32), torch.randn(5, 2, 8)
    # plain Attention cross attention: object pointer count is ignored by the stack, as in Meta
    assert model(curr, memory, curr, memory, num_obj_ptr_tokens=2).shape == (9, 2, 32)
    assert model(curr, memory).shape == (9, 2, 32)
    with pytest.raises(ValueError, match='RoPEAttention'):
        model.layers[0](curr.transpose(0, 1), memory.transpose(0, 1), num_k_exclude_rope=2)
    with pytest.raises(ValueError, match='batch size'):
        model(curr, torch.randn(5, 3, 8))
    with pytest.raises(ValueError, match='exactly one'):
        model([curr, curr], memory, [curr, curr], memory)


@pytest.mark.parametrize('num_ptr_tokens, frames', [(0, 1), (0, 2), (2, 1), (6, 2)])
def test_compiled_padding_changes_nothing(num_ptr_tokens, frames):
    # the compiled path pads memories to >= 2 frames and >= 2 pointer tokens, masked: the result must not move
    from ssseg.modules.models.registries import BuildSegmentor
    from ssseg.testing.tiny import tinycfg
    torch.manual_seed(0)
    model = BuildSegmentor(tinycfg()).eval()
    tokens, batch = 64, 3
    memory = torch.randn(frames * tokens + num_ptr_tokens, batch, 16)
    memory_pos, curr = torch.randn_like(memory), torch.randn(tokens, batch, 32)
    padded, padded_pos, mask, padded_ptrs = model._padforcompiled(memory, memory_pos, None, num_ptr_tokens, tokens)
    assert padded.shape[0] - padded_ptrs >= 2 * tokens and padded_ptrs >= 2 and mask.shape == (batch, padded.shape[0])
    assert int(mask.sum()) == batch * memory.shape[0]
    with torch.no_grad():
        plain = model.memory_attention(curr=curr, memory=memory, memory_pos=memory_pos,
                                       num_obj_ptr_tokens=num_ptr_tokens)
        masked = model.memory_attention(curr=curr, memory=padded, memory_pos=padded_pos,
                                        num_obj_ptr_tokens=padded_ptrs, memory_mask=mask)
    torch.testing.assert_close(masked, plain, rtol=1e-5, atol=1e-6)
