"""SAM 2 mask decoder: output tokens attend to the image through a two-way transformer, then each
mask token drives a hypernetwork whose weights dot the upscaled image features into mask logits.

Output token order: [object-score token (if ``pred_obj_scores``), IoU token, mask token 0 (single
mask), mask tokens 1..M (multimask)], followed by the prompt tokens. Names match Meta's checkpoints.
"""
from typing import List, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from ssseg.modules.models.bricks.layers import MLP, BuildActivation, LayerNorm2d
from ssseg.modules.models.registries import HEADS, BuildTransformer
from ssseg.modules.utils.checks import ispositiveint

from .twowaytransformer import TwoWayTransformer

# prompts decoded at once on a CPU: larger batches outgrow the caches and pay a page fault per 4 KiB of every
# fresh activation (glibc maps big blocks anew each time), so they run in chunks (same results up to round-off)
CPU_PROMPT_CHUNK = 2


@HEADS.register_module()
class MaskDecoder(nn.Module):
    """Predict masks, their IoU scores, output tokens and an object score from image + prompt embeddings.

    Masks come out at 4x the embedding resolution, as logits.

    Args:
        transformer_dim: C, a positive multiple of 8.
        transformer: cfg of a two-way transformer mapping (image (B, C, h, w), pe (B, C, h, w), tokens (B, N, C))
            -> (tokens (B, N, C), image (B, hw, C)).
        num_multimask_outputs: M, masks of the multimask output (a positive int); one more token gives the single mask.
        activation: name or class of the upscaling activations.
        iou_head_depth: layers of the IoU head MLP (a positive int).
        iou_head_hidden_dim: hidden width of the IoU head.
        use_high_res_features: add the projected stride-4 / stride-8 maps while upscaling (builds conv_s0 / conv_s1).
        iou_prediction_use_sigmoid: IoU predictions pass through a sigmoid.
        dynamic_multimask_via_stability: in eval, a single-mask output falls back to the best multimask one when
            it is unstable.
        dynamic_multimask_stability_delta: logit offset +-delta of the stability score.
        dynamic_multimask_stability_thresh: minimal stability score of a kept single mask.
        pred_obj_scores: predict an object score from a dedicated token.
        pred_obj_scores_mlp: ... with an MLP instead of a linear layer.
        use_multimask_token_for_obj_ptr: with ``multimask_output``, return the multimask tokens for the pointer.

    Raises:
        ValueError: ``transformer_dim``, ``num_multimask_outputs`` or ``iou_head_depth`` is not as above.
    """

    def __init__(self, transformer_dim, transformer, num_multimask_outputs=3, activation='gelu', iou_head_depth=3,
                 iou_head_hidden_dim=256, use_high_res_features=False, iou_prediction_use_sigmoid=False,
                 dynamic_multimask_via_stability=False, dynamic_multimask_stability_delta=0.05,
                 dynamic_multimask_stability_thresh=0.98, pred_obj_scores=False, pred_obj_scores_mlp=False,
                 use_multimask_token_for_obj_ptr=False):
        super().__init__()
        if not ispositiveint(transformer_dim) or transformer_dim % 8 != 0:
            raise ValueError(f'transformer_dim must be a positive multiple of 8, got {transformer_dim!r}')
        if not ispositiveint(num_multimask_outputs):
            raise ValueError(f'num_multimask_outputs must be a positive int, got {num_multimask_outputs!r}')
        if not ispositiveint(iou_head_depth):
            raise ValueError(f'iou_head_depth must be a positive int, got {iou_head_depth!r}')
        self.transformer_dim = transformer_dim
        self.transformer = BuildTransformer(transformer)
        self.num_multimask_outputs = num_multimask_outputs
        self.num_mask_tokens = num_multimask_outputs + 1
        self.iou_token = nn.Embedding(1, transformer_dim)
        self.mask_tokens = nn.Embedding(self.num_mask_tokens, transformer_dim)
        self.pred_obj_scores = pred_obj_scores
        if pred_obj_scores:
            self.obj_score_token = nn.Embedding(1, transformer_dim)
        self.use_multimask_token_for_obj_ptr = use_multimask_token_for_obj_ptr
        # two stride-2 transposed convs: embedding grid -> 4x grid, C -> C / 8 channels
        self.output_upscaling = nn.Sequential(
            nn.ConvTranspose2d(transformer_dim, transformer_dim // 4, kernel_size=2, stride=2),
            LayerNorm2d(transformer_dim // 4),
            BuildActivation(activation),
            nn.ConvTranspose2d(transformer_dim // 4, transformer_dim // 8, kernel_size=2, stride=2),
            BuildActivation(activation),
        )
        self.use_high_res_features = use_high_res_features
        if use_high_res_features:
            # projections of the stride-4 / stride-8 backbone maps; callers apply them once per image
            self.conv_s0 = nn.Conv2d(transformer_dim, transformer_dim // 8, kernel_size=1, stride=1)
            self.conv_s1 = nn.Conv2d(transformer_dim, transformer_dim // 4, kernel_size=1, stride=1)
        self.output_hypernetworks_mlps = nn.ModuleList(
            MLP(transformer_dim, transformer_dim, transformer_dim // 8, 3) for _ in range(self.num_mask_tokens)
        )
        self.iou_prediction_head = MLP(transformer_dim, iou_head_hidden_dim, self.num_mask_tokens, iou_head_depth,
                                       sigmoid_output=iou_prediction_use_sigmoid)
        if pred_obj_scores:
            self.pred_obj_score_head = (MLP(transformer_dim, transformer_dim, 1, 3) if pred_obj_scores_mlp
                                        else nn.Linear(transformer_dim, 1))
        self.dynamic_multimask_via_stability = dynamic_multimask_via_stability
        self.dynamic_multimask_stability_delta = dynamic_multimask_stability_delta
        self.dynamic_multimask_stability_thresh = dynamic_multimask_stability_thresh

    def forward(self, image_embeddings: torch.Tensor, image_pe: torch.Tensor, sparse_prompt_embeddings: torch.Tensor,
                dense_prompt_embeddings: torch.Tensor, multimask_output: bool, repeat_image: bool,
                high_res_features: Optional[List[torch.Tensor]] = None
                ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Decode masks for B prompts.

        Args:
            image_embeddings: (B, C, h, w), or (1, C, h, w) with ``repeat_image`` to share one image among the
                B prompts.
            image_pe: (1, C, h, w) position encoding, as from the prompt encoder's ``getdensepe()``.
            sparse_prompt_embeddings: (B, N, C) prompt tokens.
            dense_prompt_embeddings: (B, C, h, w) dense prompt embedding.
            multimask_output: return the M = num_multimask_outputs multimask outputs instead of one mask.
            repeat_image: one image's embeddings serve all B prompts.
            high_res_features: needed iff built with them: [(B or 1, C/8, 4h, 4w), (B or 1, C/4, 2h, 2w)],
                already projected by ``conv_s0`` / ``conv_s1``.

        Returns:
            ``(masks (B, M, 4h, 4w) logits, iou_pred (B, M), sam_tokens_out (B, M', C), object_score_logits
            (B, 1))``: M = num_multimask_outputs with ``multimask_output``, else 1; M' = M when
            ``multimask_output`` and ``use_multimask_token_for_obj_ptr``, else 1 (the single-mask token).

        Raises:
            ValueError: ``image_pe`` is not (1, C, h, w), ``high_res_features`` are missing, or the image batch
                is neither B nor shared with ``repeat_image``.
        """
        return _inchunks(self._forwardchunk, image_embeddings, image_pe, sparse_prompt_embeddings,
                         dense_prompt_embeddings, multimask_output, repeat_image, high_res_features)

    def _forwardchunk(self, image_embeddings, image_pe, sparse_prompt_embeddings, dense_prompt_embeddings,
                      multimask_output, repeat_image, high_res_features, cache):
        masks, iou_pred, mask_tokens_out, object_score_logits = self._predictmasks(
            image_embeddings, image_pe, sparse_prompt_embeddings, dense_prompt_embeddings, repeat_image,
            high_res_features, cache,
        )
        if multimask_output:
            masks, iou_pred = masks[:, 1:], iou_pred[:, 1:]
        elif self.dynamic_multimask_via_stability and not self.training:
            masks, iou_pred = self._dynamicmultimask(masks, iou_pred)
        else:
            masks, iou_pred = masks[:, 0:1], iou_pred[:, 0:1]
        # the object pointer is trained on the single-mask token unless told to use the multimask ones
        if multimask_output and self.use_multimask_token_for_obj_ptr:
            sam_tokens_out = mask_tokens_out[:, 1:]
        else:
            sam_tokens_out = mask_tokens_out[:, 0:1]
        return masks, iou_pred, sam_tokens_out, object_score_logits

    def decodeconfident(self, image_embeddings: torch.Tensor, image_pe: torch.Tensor,
                        sparse_prompt_embeddings: torch.Tensor, dense_prompt_embeddings: torch.Tensor,
                        multimask_output: bool, repeat_image: bool, min_iou: float,
                        high_res_features: Optional[List[torch.Tensor]] = None
                        ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Like :meth:`forward`, but only masks whose predicted IoU exceeds ``min_iou`` are decoded.

        The IoU head does not need the masks, so prompts with no confident output skip the upscaling (the
        bulk of the cost).

        Args:
            image_embeddings, image_pe, sparse_prompt_embeddings, dense_prompt_embeddings, multimask_output,
                repeat_image, high_res_features: as in :meth:`forward`.
            min_iou: keep the outputs whose predicted IoU exceeds it.

        Returns:
            ``(masks (K, 4h, 4w) logits, iou_pred (K,), index (K, 2))``, where ``index`` (int64) holds each kept
            mask's (prompt, output) position in :meth:`forward`'s outputs.

        Raises:
            ValueError: ``multimask_output=False`` on a decoder with dynamic multimask selection in eval, and
                :meth:`forward`'s errors.
        """
        if not multimask_output and self.dynamic_multimask_via_stability and not self.training:
            raise ValueError('decodeconfident needs multimask_output=True or a decoder without dynamic multimask '
                             'selection (it chooses outputs by their masks)')
        return _inchunks(self._confidentchunk, image_embeddings, image_pe, sparse_prompt_embeddings,
                         dense_prompt_embeddings, multimask_output, repeat_image, min_iou, high_res_features,
                         index_output=2)

    def _confidentchunk(self, image_embeddings, image_pe, sparse_prompt_embeddings, dense_prompt_embeddings,
                        multimask_output, repeat_image, min_iou, high_res_features, cache):
        hs, image_tokens, (height, width), iou_pred, mask_tokens_out = self._decodetokens(
            image_embeddings, image_pe, sparse_prompt_embeddings, dense_prompt_embeddings, repeat_image,
            high_res_features, cache)
        first, count = (1, self.num_multimask_outputs) if multimask_output else (0, 1)
        iou_pred = iou_pred[:, first:first + count]
        keep = iou_pred > min_iou
        prompts = torch.nonzero(keep.any(dim=1))[:, 0]
        hyper_in = torch.stack([self.output_hypernetworks_mlps[idx](mask_tokens_out[prompts, idx])
                                for idx in range(first, first + count)], dim=1)
        if high_res_features is not None:
            high_res_features = [x if x.shape[0] == 1 else x[prompts] for x in high_res_features]
        image_tokens = image_tokens if image_tokens.shape[0] == 1 else image_tokens[prompts]
        masks = self._masksfromtokens(image_tokens.expand(len(prompts), -1, -1), height, width, hyper_in,
                                      high_res_features)
        keep = keep[prompts]
        rows, outputs = torch.nonzero(keep, as_tuple=True)
        return masks[keep], iou_pred[prompts][keep], torch.stack((prompts[rows], outputs), dim=1)

    def _decodetokens(self, image_embeddings, image_pe, sparse_prompt_embeddings, dense_prompt_embeddings,
                      repeat_image, high_res_features, cache=None):
        """The two-way transformer and the token heads: -> (tokens (B, N, C), image tokens (B or 1, h*w, C),
        (h, w), iou_pred (B, 1+M), mask tokens (B, 1+M, C))."""
        if image_pe.dim() != 4 or image_pe.shape[0] != 1:
            raise ValueError(f'image_pe must be (1, C, h, w) as from getdensepe(), got {tuple(image_pe.shape)}')
        if self.use_high_res_features and (high_res_features is None or len(high_res_features) != 2):
            raise ValueError('high_res_features must be a list of two maps [(B, C/8, 4h, 4w), (B, C/4, 2h, 2w)] '
                             'for a decoder built with use_high_res_features=True')
        num_prompts = sparse_prompt_embeddings.shape[0]
        weights = [self.iou_token.weight, self.mask_tokens.weight]
        if self.pred_obj_scores:
            weights.insert(0, self.obj_score_token.weight)
        offset = 1 if self.pred_obj_scores else 0  # index of the IoU token
        output_tokens = torch.cat(weights, dim=0).unsqueeze(0).expand(num_prompts, -1, -1)
        tokens = torch.cat((output_tokens, sparse_prompt_embeddings), dim=1)
        if repeat_image:
            src = image_embeddings
            if image_embeddings.shape[0] != 1:
                src = torch.repeat_interleave(image_embeddings, num_prompts, dim=0)
        elif image_embeddings.shape[0] != num_prompts:
            raise ValueError(f'image_embeddings batch {image_embeddings.shape[0]} must equal the number of prompts '
                             f'{num_prompts} (or use repeat_image=True with one image)')
        else:
            src = image_embeddings
        if src.shape[0] == 1 and dense_prompt_embeddings.shape[0] > 1 and dense_prompt_embeddings.stride(0) == 0:
            # no mask prompt: the dense embedding is one vector broadcast over prompts, so the image stays a
            # single batch and the transformer projects it once for all prompts
            dense_prompt_embeddings = dense_prompt_embeddings[:1]
        src = src + dense_prompt_embeddings
        height, width = src.shape[2:]
        # our transformer reuses the image's projections across chunks; others (e.g. Meta's) take no cache
        cache_arg = {'cache': cache} if isinstance(self.transformer, TwoWayTransformer) else {}
        hs, image_tokens = self.transformer(src, image_pe, tokens, **cache_arg)
        iou_pred = self.iou_prediction_head(hs[:, offset])
        mask_tokens_out = hs[:, offset + 1:offset + 1 + self.num_mask_tokens]
        return hs, image_tokens, (height, width), iou_pred, mask_tokens_out

    def _predictmasks(self, image_embeddings, image_pe, sparse_prompt_embeddings, dense_prompt_embeddings,
                      repeat_image, high_res_features, cache=None):
        """All mask tokens: -> (masks (B, 1+M, 4h, 4w), iou_pred (B, 1+M), mask_tokens_out (B, 1+M, C),
        object_score_logits (B, 1))."""
        hs, image_tokens, (height, width), iou_pred, mask_tokens_out = self._decodetokens(
            image_embeddings, image_pe, sparse_prompt_embeddings, dense_prompt_embeddings, repeat_image,
            high_res_features, cache)
        num_prompts = hs.shape[0]
        hyper_in = torch.stack(
            [mlp(mask_tokens_out[:, idx]) for idx, mlp in enumerate(self.output_hypernetworks_mlps)], dim=1
        )
        masks = self._masksfromtokens(image_tokens.expand(num_prompts, -1, -1), height, width, hyper_in,
                                      high_res_features)
        if self.pred_obj_scores:
            object_score_logits = self.pred_obj_score_head(hs[:, 0])
        else:
            # without an object head the object is taken as present: sigmoid(10) ~ 1
            object_score_logits = iou_pred.new_full((iou_pred.shape[0], 1), 10.0)
        return masks, iou_pred, mask_tokens_out, object_score_logits

    def _masksfromtokens(self, image_tokens, height, width, hyper_in, high_res_features):
        """Mask logits (B, M, 4h, 4w) from image tokens (B, h*w, C) (row-major) and hypernetwork vectors (B, M, C/8).

        Same as upscaling the (B, C, h, w) map with the two stride-2 transposed convs (adding the projected
        high-res maps before each norm/activation) and dotting every pixel with ``hyper_in``, but each
        transposed conv runs as one matrix product per pixel and the 2 x 2 sub-pixels it creates stay in
        the channel axis, so nothing large is transposed; only the M mask channels are put in image order.
        """
        deconv1, norm1, act1, deconv2, act2 = self.output_upscaling
        batch, num_pixels = image_tokens.shape[:2]
        mid, low = deconv1.out_channels, deconv2.out_channels
        x = image_tokens @ deconv1.weight.permute(0, 2, 3, 1).reshape(-1, 4 * mid)  # (B, hw, [a, b, c])
        x += deconv1.bias.repeat(4)
        if self.use_high_res_features:
            x += _subpixelorder(high_res_features[1], height, width, levels=1)
        x = act1(F.layer_norm(x.view(batch, num_pixels, 4, mid), (mid,), norm1.weight, norm1.bias, norm1.eps))
        x = x.view(batch, 4 * num_pixels, mid) @ deconv2.weight.permute(0, 2, 3, 1).reshape(-1, 4 * low)
        x += deconv2.bias.repeat(4)
        if self.use_high_res_features:
            x += _subpixelorder(high_res_features[0], height, width, levels=2)
        x = act2(x)
        num_masks = hyper_in.shape[1]
        masks = x.view(batch, 16 * num_pixels, low) @ hyper_in.transpose(1, 2)  # (B, [y, x, a, b, a', b'], M)
        masks = masks.view(batch, height, width, 2, 2, 2, 2, num_masks).permute(0, 7, 1, 3, 5, 2, 4, 6)
        return masks.reshape(batch, num_masks, 4 * height, 4 * width)

    def _stabilityscores(self, mask_logits):
        """IoU between the masks thresholded at +delta and -delta: (B, 1, H, W) -> (B, 1); 1 if both empty."""
        mask_logits = mask_logits.flatten(-2)
        delta = self.dynamic_multimask_stability_delta
        area_inter = torch.sum(mask_logits > delta, dim=-1).float()
        area_union = torch.sum(mask_logits > -delta, dim=-1).float()
        return torch.where(area_union > 0, area_inter / area_union, 1.0)

    def _dynamicmultimask(self, all_mask_logits, all_iou_scores):
        """Keep the single-mask output where it is stable, else fall back to the best-IoU multimask output.

        all_mask_logits (B, 1+M, H, W), all_iou_scores (B, 1+M) -> (B, 1, H, W), (B, 1).
        """
        multimask_logits, multimask_ious = all_mask_logits[:, 1:], all_iou_scores[:, 1:]
        best = torch.argmax(multimask_ious, dim=-1)
        rows = torch.arange(multimask_ious.shape[0], device=all_iou_scores.device)
        best_logits = multimask_logits[rows, best].unsqueeze(1)
        best_ious = multimask_ious[rows, best].unsqueeze(1)
        single_logits, single_ious = all_mask_logits[:, 0:1], all_iou_scores[:, 0:1]
        is_stable = self._stabilityscores(single_logits) >= self.dynamic_multimask_stability_thresh
        mask_logits = torch.where(is_stable[..., None, None], single_logits, best_logits)
        iou_scores = torch.where(is_stable, single_ious, best_ious)
        return mask_logits, iou_scores


def _inchunks(decode, image_embeddings, image_pe, sparse, dense, *args, index_output=None):
    """Run ``decode(..., cache)`` on chunks of at most CPU_PROMPT_CHUNK prompts (on a CPU; GPUs take all at once)
    and concatenate its outputs. Per-prompt inputs are sliced, shared ones (batch 1) passed whole, and one
    ``cache`` dict lets the chunks share the image's projections. Output ``index_output`` holds prompt
    indices, offset by each chunk's start."""
    num_prompts = sparse.shape[0]
    cache = {}
    step = CPU_PROMPT_CHUNK if sparse.device.type == 'cpu' else max(num_prompts, 1)
    # a compiled decoder takes every prompt at once: a chunk loop would fix the number of prompts in the graph
    if torch.compiler.is_compiling() or num_prompts <= step:
        return decode(image_embeddings, image_pe, sparse, dense, *args, cache)

    def rows(x, chunk):
        return x[chunk] if x is not None and x.shape[0] == num_prompts else x

    parts = []
    for start in range(0, num_prompts, step):
        chunk = slice(start, start + step)
        chunk_args = [[rows(x, chunk) for x in arg] if isinstance(arg, (list, tuple)) else arg for arg in args]
        out = list(decode(rows(image_embeddings, chunk), image_pe, sparse[chunk], rows(dense, chunk), *chunk_args,
                          cache))
        if index_output is not None:
            out[index_output] = out[index_output] + torch.tensor([start, 0], device=out[index_output].device)
        parts.append(out)
    return tuple(torch.cat(outputs) for outputs in zip(*parts))


def _subpixelorder(feature_map, height, width, levels):
    """(B, C, 2^L h, 2^L w) -> (B, h w 4^(L-1), 4 C): pixel (y, x) of the h x w grid, then for each level its
    2 x 2 sub-pixel (a, b), the last level's sub-pixel and the channel in the trailing axis."""
    batch, channels = feature_map.shape[:2]
    if levels == 1:
        grid = feature_map.view(batch, channels, height, 2, width, 2).permute(0, 2, 4, 3, 5, 1)
    else:
        grid = feature_map.view(batch, channels, height, 2, 2, width, 2, 2).permute(0, 2, 5, 3, 6, 4, 7, 1)
    return grid.reshape(batch, height * width * 4 ** (levels - 1), 4 * channels)
