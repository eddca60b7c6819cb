"""Tests for the SAM 2 mask decoder: parity with Meta's module (output selection, dynamic multimask,
repeated image, object scores), shapes, bad arguments."""
import pytest
import torch

from ssseg.modules.models.registries import BuildHead
from ssseg.modules.models.segmentors.samv2.model.maskdecoder import MaskDecoder

from helpers import assertclose as _assertclose
from helpers import perturbed

DIM, SIZE, PROMPTS, TOKENS = 256, 16, 3, 4
TRANSFORMER = dict(depth=2, embedding_dim=DIM, num_heads=8, mlp_dim=2048)
VARIANTS = {
    # SAM 2 / 2.1 tiny as built by Meta's SAM2Base
    'sam2.1': dict(use_high_res_features=True, iou_prediction_use_sigmoid=True, pred_obj_scores=True,
                   pred_obj_scores_mlp=True, use_multimask_token_for_obj_ptr=True),
    # SAM 1-like head: no high-res maps, raw IoU, no object head (score defaults to 10)
    'plain': dict(),
    # linear object head, high-res maps, single-mask token for the object pointer
    'linear_obj': dict(use_high_res_features=True, pred_obj_scores=True),
}


def _kwargs(variant, dynamic):
    return dict(transformer_dim=DIM, num_multimask_outputs=3, iou_head_depth=3, iou_head_hidden_dim=256,
                dynamic_multimask_via_stability=dynamic, **VARIANTS[variant])


def _inputs(repeat_image, high_res, seed=3):
    gen = torch.Generator().manual_seed(seed)
    images = 1 if repeat_image else PROMPTS
    inputs = dict(
        image_embeddings=torch.randn(images, DIM, SIZE, SIZE, generator=gen),
        image_pe=torch.randn(1, DIM, SIZE, SIZE, generator=gen),
        sparse_prompt_embeddings=torch.randn(PROMPTS, TOKENS, DIM, generator=gen),
        dense_prompt_embeddings=torch.randn(PROMPTS, DIM, SIZE, SIZE, generator=gen),
        repeat_image=repeat_image,
        high_res_features=None,
    )
    if high_res:
        inputs['high_res_features'] = [torch.randn(images, DIM // 8, 4 * SIZE, 4 * SIZE, generator=gen),
                                       torch.randn(images, DIM // 4, 2 * SIZE, 2 * SIZE, generator=gen)]
    return inputs


def _meta(variant, dynamic, transformer_cls):
    from sam2.modeling.sam.mask_decoder import MaskDecoder as MetaMaskDecoder
    torch.manual_seed(0)
    meta = perturbed(MetaMaskDecoder(transformer=transformer_cls(**TRANSFORMER), **_kwargs(variant, dynamic)), 1)
    # give the mask logits a trained model's magnitude (|logit| ~ 10) so stability scores are realistic
    with torch.no_grad():
        masks = meta.predict_masks(**{k: v for k, v in _inputs(False, meta.use_high_res_features).items()})[0]
        for mlp in meta.output_hypernetworks_mlps:
            mlp.layers[-1].weight.mul_(10.0 / masks.std())
            mlp.layers[-1].bias.mul_(10.0 / masks.std())
    return meta


_CACHE = {}


def _pair(variant):
    """(meta, ours) with identical weights, built with dynamic multimask on; the transformers are Meta's
    and ours (registered 'TwoWayTransformer')."""
    from sam2.modeling.sam.transformer import TwoWayTransformer as MetaTwoWayTransformer
    if variant not in _CACHE:
        meta = _meta(variant, True, MetaTwoWayTransformer)
        ours = BuildHead(dict(type='MaskDecoder', transformer=dict(type='TwoWayTransformer', **TRANSFORMER),
                              **_kwargs(variant, True))).eval()
        assert ours.dynamic_multimask_via_stability
        ours.load_state_dict(meta.state_dict(), strict=True)
        _CACHE[variant] = meta, ours
    return _CACHE[variant]


# (multimask_output, dynamic_multimask_via_stability, repeat_image); dynamic selection only acts on single output
MODES = [(True, False, False), (True, True, True), (False, False, False), (False, True, False), (False, True, True)]


@pytest.mark.parametrize('multimask, dynamic, repeat_image', MODES)
@pytest.mark.parametrize('variant', sorted(VARIANTS))
def test_matches_meta(variant, multimask, dynamic, repeat_image):
    meta, ours = _pair(variant)
    inputs = _inputs(repeat_image, ours.use_high_res_features)
    try:
        for module in (meta, ours):
            module.dynamic_multimask_via_stability = dynamic
        with torch.no_grad():
            expected = meta(multimask_output=multimask, **inputs)
            outputs = ours(multimask_output=multimask, **inputs)
    finally:
        for module in (meta, ours):
            module.dynamic_multimask_via_stability = True
    num_masks = 3 if multimask else 1
    num_tokens = 3 if multimask and variant == 'sam2.1' else 1
    shapes = [(PROMPTS, num_masks, 4 * SIZE, 4 * SIZE), (PROMPTS, num_masks), (PROMPTS, num_tokens, DIM), (PROMPTS, 1)]
    for ours_out, meta_out, shape in zip(outputs, expected, shapes):
        assert ours_out.shape == shape
        _assertclose(ours_out, meta_out)
    if variant == 'plain':
        assert torch.equal(outputs[3], torch.full((PROMPTS, 1), 10.0))


def test_logits_are_realistic_and_stability_is_mixed():
    """The scaled logits reach |10| and, at the tuned threshold, some prompts fall back to a multimask output."""
    meta, ours = _pair('sam2.1')
    inputs = _inputs(False, True)
    with torch.no_grad():
        masks = ours._predictmasks(**{k: v for k, v in inputs.items()})[0]
        scores = meta._get_stability_scores(masks[:, 0:1])
        _assertclose(ours._stabilityscores(masks[:, 0:1]), scores)
    assert 5.0 < masks.abs().max().item() < 200.0
    # put the threshold between the prompts' stability scores so both branches of the selection are taken
    thresh = scores.flatten().sort().values[:2].mean().item()
    for module in (meta, ours):
        module.dynamic_multimask_stability_thresh = thresh
    try:
        with torch.no_grad():
            expected = meta(multimask_output=False, **inputs)
            outputs = ours(multimask_output=False, **inputs)
        stable = (scores >= thresh).flatten()
        assert stable.any() and not stable.all()
        # prompts are decoded in chunks, so equal up to float round-off
        assert torch.allclose(outputs[0][stable], masks[stable, 0:1], atol=1e-4)
        assert not torch.allclose(outputs[0][~stable], masks[~stable, 0:1], atol=1e-4)
        for ours_out, meta_out in zip(outputs, expected):
            _assertclose(ours_out, meta_out)
    finally:
        for module in (meta, ours):
            module.dynamic_multimask_stability_thresh = 0.98


def test_training_mode_skips_dynamic_selection():
    meta, ours = _pair('sam2.1')
    inputs = _inputs(False, True)
    try:
        meta.train(), ours.train()
        with torch.no_grad():
            expected = meta(multimask_output=False, **inputs)
            outputs = ours(multimask_output=False, **inputs)
            single = ours._predictmasks(**inputs)[0][:, 0:1]
        _assertclose(outputs[0], single)
        for ours_out, meta_out in zip(outputs, expected):
            _assertclose(ours_out, meta_out)
    finally:
        meta.eval(), ours.eval()


def test_state_dict_keys_match_meta():
    from sam2.modeling.sam.mask_decoder import MaskDecoder as MetaMaskDecoder
    from sam2.modeling.sam.transformer import TwoWayTransformer as MetaTwoWayTransformer
    for variant in VARIANTS:
        meta = MetaMaskDecoder(transformer=MetaTwoWayTransformer(**TRANSFORMER), **_kwargs(variant, False))
        ours = MaskDecoder(transformer=dict(type='TwoWayTransformer', **TRANSFORMER), **_kwargs(variant, False))
        assert {k: v.shape for k, v in ours.state_dict().items()} == {k: v.shape for k, v in meta.state_dict().items()}


def test_meta_transformer_as_type():
    """A class works as the transformer 'type' too (handy to isolate the decoder from our transformer)."""
    from sam2.modeling.sam.transformer import TwoWayTransformer as MetaTwoWayTransformer
    meta, _ = _pair('sam2.1')
    ours = MaskDecoder(transformer=dict(type=MetaTwoWayTransformer, **TRANSFORMER), **_kwargs('sam2.1', False)).eval()
    ours.load_state_dict(meta.state_dict(), strict=True)
    inputs = _inputs(True, True)
    with torch.no_grad():
        for ours_out, meta_out in zip(ours(multimask_output=True, **inputs), meta(multimask_output=True, **inputs)):
            _assertclose(ours_out, meta_out)


def test_bad_inputs():
    _, ours = _pair('sam2.1')
    inputs = _inputs(False, True)
    with pytest.raises(ValueError, match='high_res_features'):
        ours(multimask_output=True, **{**inputs, 'high_res_features': None})
    with pytest.raises(ValueError, match='image_pe'):
        ours(multimask_output=True, **{**inputs, 'image_pe': inputs['image_pe'].expand(PROMPTS, -1, -1, -1)})
    with pytest.raises(ValueError, match='image_embeddings'):
        ours(multimask_output=True, **{**inputs, 'image_embeddings': inputs['image_embeddings'][:2]})


@pytest.mark.parametrize('kwargs, match', [
    (dict(transformer_dim=100), 'transformer_dim'),
    (dict(num_multimask_outputs=0), 'num_multimask_outputs'),
    (dict(iou_head_depth=0), 'iou_head_depth'),
    (dict(activation='swish'), 'activation'),
])
def test_bad_arguments(kwargs, match):
    cfg = dict(transformer_dim=DIM, transformer=dict(type='TwoWayTransformer', **TRANSFORMER))
    with pytest.raises(ValueError, match=match):
        MaskDecoder(**{**cfg, **kwargs})


@pytest.mark.parametrize('multimask', [True, False])
@pytest.mark.parametrize('repeat_image', [True, False])
def test_decodeconfident_keeps_exactly_the_confident_masks(multimask, repeat_image):
    """Only masks with IoU above the bar are decoded, equal to forward's, with their (prompt, output) index,
    also across chunks of prompts."""
    from ssseg.modules.models.segmentors.samv2.model import maskdecoder
    _, ours = _pair('sam2.1')
    inputs = _inputs(repeat_image, ours.use_high_res_features)
    ours.dynamic_multimask_via_stability = False
    try:
        with torch.no_grad():
            masks, ious = ours(multimask_output=multimask, **inputs)[:2]
            bar = ious.flatten().sort().values[ious.numel() // 2].item()  # about half are kept
            kept, kept_ious, index = ours.decodeconfident(multimask_output=multimask, min_iou=bar, **inputs)
    finally:
        ours.dynamic_multimask_via_stability = True
    assert PROMPTS > maskdecoder.CPU_PROMPT_CHUNK  # the chunked path with index offsets is exercised
    expected = torch.nonzero(ious > bar)
    assert 0 < len(expected) < ious.numel()
    assert torch.equal(index, expected)
    _assertclose(kept, masks[index[:, 0], index[:, 1]])
    _assertclose(kept_ious, ious[index[:, 0], index[:, 1]])


def test_decodeconfident_refuses_dynamic_single_output():
    _, ours = _pair('sam2.1')
    with pytest.raises(ValueError, match='multimask_output=True'):
        ours.decodeconfident(multimask_output=False, min_iou=0.5, **_inputs(True, ours.use_high_res_features))
