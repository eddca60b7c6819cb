"""Tests for Attention and TwoWayTransformer: parity with Meta's sam2 modules, shapes, bad arguments."""
import pytest
import torch

from ssseg.modules.models.bricks.attention import Attention
from ssseg.modules.models.registries import BuildTransformer
from ssseg.modules.models.segmentors.samv2.model.twowaytransformer import TwoWayTransformer

from helpers import assertclose as _assertclose
from helpers import perturbed

CFG = dict(depth=2, embedding_dim=256, num_heads=8, mlp_dim=2048, attention_downsample_rate=2)


@pytest.mark.parametrize('batch, image_batch, pe_batch, size, tokens', [
    (2, 2, 2, 16, 5),  # a position map per prompt: the plain computation
    (1, 1, 1, 64, 7),  # one prompt
    (3, 1, 1, 32, 6),  # one image shared by three prompts (projected once)
    (3, 3, 1, 32, 6),  # an image per prompt, one position map (projections folded into the tokens)
])
def test_twowaytransformer_matches_meta(batch, image_batch, pe_batch, size, tokens):
    from sam2.modeling.sam.transformer import TwoWayTransformer as MetaTwoWayTransformer
    torch.manual_seed(0)
    meta = perturbed(MetaTwoWayTransformer(**CFG), seed=1)
    ours = BuildTransformer(dict(type='TwoWayTransformer', **CFG)).eval()
    ours.load_state_dict(meta.state_dict(), strict=True)
    image = torch.randn(image_batch, 256, size, size)
    image_pe = torch.randn(pe_batch, 256, size, size)
    points = torch.randn(batch, tokens, 256)
    with torch.no_grad():
        meta_q, meta_k = meta(image.expand(batch, -1, -1, -1), image_pe.expand(batch, -1, -1, -1), points)
        our_q, our_k = ours(image, image_pe, points)
    assert our_q.shape == (batch, tokens, 256) and our_k.shape == (batch, size * size, 256)
    _assertclose(our_q, meta_q)
    _assertclose(our_k, meta_k)


def test_attention_shortcuts_match_plain_attention():
    attn = perturbed(Attention(64, 4, downsample_rate=2), seed=3)
    q, image, pe = torch.randn(3, 5, 64), torch.randn(3, 40, 64), torch.randn(1, 40, 64)
    with torch.no_grad():
        for batch_image in (image, image[:1]):
            plain_keys = (batch_image + pe).expand(3, -1, -1)
            _assertclose(attn.attendimage(q, batch_image, pe), attn(q, plain_keys, batch_image.expand(3, -1, -1)))
            _assertclose(attn.imageattendtokens(batch_image, pe, q, q), batch_image + attn(plain_keys, q, q))


@pytest.mark.parametrize('kv_in_dim', [None, 64])
def test_attention_matches_meta(kv_in_dim):
    from sam2.modeling.sam.transformer import Attention as MetaAttention
    meta = perturbed(MetaAttention(128, 4, downsample_rate=2, kv_in_dim=kv_in_dim), seed=2)
    ours = Attention(128, 4, downsample_rate=2, kv_in_dim=kv_in_dim).eval()
    ours.load_state_dict(meta.state_dict(), strict=True)
    assert ours.k_proj.weight.shape == (64, kv_in_dim or 128)
    q, kv = torch.randn(3, 10, 128), torch.randn(3, 17, kv_in_dim or 128)
    with torch.no_grad():
        _assertclose(ours(q, kv, kv), meta(q, kv, kv))


def test_state_dict_keys_match_meta():
    from sam2.modeling.sam.transformer import TwoWayTransformer as MetaTwoWayTransformer
    meta = {k: v.shape for k, v in MetaTwoWayTransformer(**CFG).state_dict().items()}
    ours = {k: v.shape for k, v in TwoWayTransformer(**CFG).state_dict().items()}
    assert ours == meta
    assert 'layers.1.mlp.layers.1.weight' in ours and 'norm_final_attn.bias' in ours


def test_first_layer_skips_pe():
    model = TwoWayTransformer(**CFG)
    assert [layer.skip_first_layer_pe for layer in model.layers] == [True, False]


def test_attention_dropout_only_in_training():
    attn = Attention(32, 2, dropout=0.5)
    q = torch.randn(2, 6, 32)
    attn.eval()
    assert torch.equal(attn(q, q, q), attn(q, q, q))
    attn.train()
    torch.manual_seed(0)
    first = attn(q, q, q)
    assert not torch.allclose(first, attn(q, q, q))


@pytest.mark.parametrize('kwargs, match', [
    (dict(embedding_dim=0, num_heads=1), 'embedding_dim'),
    (dict(embedding_dim=64, num_heads=0), 'num_heads'),
    (dict(embedding_dim=64, num_heads=3), 'num_heads must divide'),
    (dict(embedding_dim=64, num_heads=2, downsample_rate=3), 'downsample_rate'),
    (dict(embedding_dim=64, num_heads=2, dropout=1.5), 'dropout'),
    (dict(embedding_dim=64, num_heads=2, kv_in_dim=-1), 'kv_in_dim'),
])
def test_attention_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Attention(**kwargs)


def test_twowaytransformer_bad_arguments_and_inputs():
    with pytest.raises(ValueError, match='depth'):
        TwoWayTransformer(depth=-1, embedding_dim=32, num_heads=2, mlp_dim=64)
    with pytest.raises(ValueError, match='mlp_dim'):
        TwoWayTransformer(depth=1, embedding_dim=32, num_heads=2, mlp_dim=0)
    model = TwoWayTransformer(depth=1, embedding_dim=32, num_heads=2, mlp_dim=64)
    image = torch.randn(1, 32, 4, 4)
    with pytest.raises(ValueError, match='image_embedding'):
        model(torch.randn(1, 16, 4, 4), image, torch.randn(1, 3, 32))
    with pytest.raises(ValueError, match='image_pe'):
        model(image, torch.randn(1, 32, 4, 5), torch.randn(1, 3, 32))
    with pytest.raises(ValueError, match='point_embedding'):
        model(image, image, torch.randn(1, 3, 16))
