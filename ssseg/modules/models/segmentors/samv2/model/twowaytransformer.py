"""The two-way transformer of the SAM mask decoder.

It lets a handful of prompt tokens (B, N, C) and the flattened image tokens
(B, H*W, C) attend to each other in both directions; parameter names match Meta's checkpoints.
"""
from typing import Optional, Tuple

import torch
import torch.nn as nn

from ssseg.modules.models.bricks.attention import Attention
from ssseg.modules.models.bricks.layers import MLP
from ssseg.modules.models.registries import TRANSFORMER_LAYERS, TRANSFORMERS
from ssseg.modules.utils.checks import checkpositiveint


@TRANSFORMER_LAYERS.register_module()
class TwoWayAttentionBlock(nn.Module):
    """One round of token self-attention, token->image attention, token MLP and image->token attention.

    Each step is residual and followed by a LayerNorm, except that with ``skip_first_layer_pe`` the
    self-attention sees no position encoding and *replaces* the tokens (no residual), as in Meta's
    first layer, whose inputs are the raw prompt embeddings.

    Args:
        embedding_dim: C, channels of the tokens and the image.
        num_heads: attention heads of every attention.
        mlp_dim: hidden width of the token MLP, a positive int.
        activation: name or class of the MLP activation.
        attention_downsample_rate: inner-width divisor of the two cross attentions.
        skip_first_layer_pe: the self-attention sees no position encoding and replaces the tokens.

    Raises:
        ValueError: ``mlp_dim`` is not a positive int (and :class:`Attention`'s errors).
    """

    def __init__(self, embedding_dim, num_heads, mlp_dim=2048, activation='relu', attention_downsample_rate=2,
                 skip_first_layer_pe=False):
        super().__init__()
        checkpositiveint('mlp_dim', mlp_dim)
        self.self_attn = Attention(embedding_dim, num_heads)
        self.norm1 = nn.LayerNorm(embedding_dim)
        self.cross_attn_token_to_image = Attention(embedding_dim, num_heads, downsample_rate=attention_downsample_rate)
        self.norm2 = nn.LayerNorm(embedding_dim)
        self.mlp = MLP(embedding_dim, mlp_dim, embedding_dim, num_layers=2, activation=activation)
        self.norm3 = nn.LayerNorm(embedding_dim)
        self.norm4 = nn.LayerNorm(embedding_dim)
        self.cross_attn_image_to_token = Attention(embedding_dim, num_heads, downsample_rate=attention_downsample_rate)
        self.skip_first_layer_pe = skip_first_layer_pe

    def forward(self, queries: torch.Tensor, keys: torch.Tensor, query_pe: torch.Tensor, key_pe: torch.Tensor,
                cache: Optional[dict] = None) -> Tuple[torch.Tensor, torch.Tensor]:
        """queries, query_pe (B, N, C); keys (B or 1, HW, C); key_pe (1, HW, C) -> updated (queries, keys (B, HW, C)).

        Args:
            queries: (B, N, C) prompt tokens.
            keys: (B or 1, HW, C) image tokens; shared by all prompts with a batch of 1, then projected once.
            query_pe: (B, N, C) position encoding of the queries.
            key_pe: (1, HW, C) position encoding of the image tokens.
            cache: None, or a dict for one image's chunks of prompts, so shared keys are projected once per cache.

        Returns:
            (queries (B, N, C), keys (B, HW, C)), both updated.
        """
        if self.skip_first_layer_pe:
            queries = self.self_attn(queries, queries, queries)
        else:
            q = queries + query_pe
            queries = queries + self.self_attn(q, q, queries)
        queries = self.norm1(queries)
        attn_out = self.cross_attn_token_to_image.attendimage(queries + query_pe, keys, key_pe, cache)
        queries = self.norm2(queries + attn_out)
        queries = self.norm3(queries + self.mlp(queries))
        # image tokens read the updated prompt tokens
        attended = self.cross_attn_image_to_token.imageattendtokens(keys, key_pe, queries + query_pe, queries, cache)
        keys = self.norm4(attended)
        return queries, keys


@TRANSFORMERS.register_module()
class TwoWayTransformer(nn.Module):
    """``depth`` two-way blocks, then a last token->image attention and LayerNorm on the tokens.

    Args:
        depth: number of two-way blocks, a non-negative int.
        embedding_dim: C, channels of the tokens and the image.
        num_heads: attention heads of every attention.
        mlp_dim: hidden width of each block's token MLP.
        activation: name or class of the MLP activation.
        attention_downsample_rate: inner-width divisor of the cross attentions.

    Raises:
        ValueError: ``depth`` is not a non-negative int (and the blocks' errors).
    """

    def __init__(self, depth, embedding_dim, num_heads, mlp_dim, activation='relu', attention_downsample_rate=2):
        super().__init__()
        if isinstance(depth, bool) or not isinstance(depth, int) or depth < 0:
            raise ValueError(f'depth must be a non-negative int, got {depth!r}')
        self.depth = depth
        self.embedding_dim = embedding_dim
        self.num_heads = num_heads
        self.mlp_dim = mlp_dim
        self.layers = nn.ModuleList(
            TwoWayAttentionBlock(
                embedding_dim, num_heads, mlp_dim=mlp_dim, activation=activation,
                attention_downsample_rate=attention_downsample_rate, skip_first_layer_pe=(idx == 0),
            ) for idx in range(depth)
        )
        self.final_attn_token_to_image = Attention(embedding_dim, num_heads, downsample_rate=attention_downsample_rate)
        self.norm_final_attn = nn.LayerNorm(embedding_dim)

    def forward(self, image_embedding: torch.Tensor, image_pe: torch.Tensor, point_embedding: torch.Tensor,
                cache: Optional[dict] = None) -> Tuple[torch.Tensor, torch.Tensor]:
        """Run the prompt tokens and image tokens through the blocks.

        Args:
            image_embedding: (B, C, H, W), or (1, C, H, W) shared by the B prompts (the first layer then projects
                the image once instead of B times).
            image_pe: (B or 1, C, H, W) position encoding of the image.
            point_embedding: (B, N, C), both the initial tokens and their position encoding at every layer.
            cache: None, or a dict kept while one image is decoded in chunks of prompts, so its projections
                are computed once.

        Returns:
            (queries (B, N, C), keys (B, H*W, C)), image tokens in row-major (y, x) order.

        Raises:
            ValueError: a shape does not match the above (channels ``embedding_dim``, image batch 1 or B).
        """
        if image_embedding.dim() != 4 or image_embedding.shape[1] != self.embedding_dim:
            raise ValueError(f'image_embedding must be (B, {self.embedding_dim}, H, W), got '
                             f'{tuple(image_embedding.shape)}')
        if image_embedding.shape[0] not in (1, point_embedding.shape[0]):
            raise ValueError(f'image_embedding batch {image_embedding.shape[0]} must be 1 or the number of prompts '
                             f'{point_embedding.shape[0]}')
        if image_pe.dim() != 4 or image_pe.shape[1:] != image_embedding.shape[1:]:
            raise ValueError(f'image_pe must be (B, C, H, W) like image_embedding {tuple(image_embedding.shape)}, '
                             f'got {tuple(image_pe.shape)}')
        if point_embedding.dim() != 3 or point_embedding.shape[-1] != self.embedding_dim:
            raise ValueError(f'point_embedding must be (B, N, {self.embedding_dim}), got '
                             f'{tuple(point_embedding.shape)}')
        keys = image_embedding.flatten(2).transpose(1, 2)
        key_pe = image_pe.flatten(2).transpose(1, 2)
        queries = point_embedding
        for layer in self.layers:
            queries, keys = layer(queries, keys, point_embedding, key_pe, cache)
        queries = self.norm_final_attn(
            queries + self.final_attn_token_to_image.attendimage(queries + point_embedding, keys, key_pe, cache))
        return queries, keys
