"""Multi-head attention with a narrowed inner width, and the two-way transformer of the SAM mask decoder.

The two-way transformer lets a handful of prompt tokens (B, N, C) and the flattened image tokens
(B, H*W, C) attend to each other in both directions; parameter names match Meta's checkpoints.
"""
import torch.nn as nn
import torch.nn.functional as F

from ...bricks import TRANSFORMERS, MLP


def _checkpositiveint(name, value):
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f'{name} must be a positive int, got {value!r}')


@TRANSFORMERS.register_module()
class Attention(nn.Module):
    """Multi-head attention whose projections work at width ``embedding_dim // downsample_rate``.

    Queries have ``embedding_dim`` channels, keys and values ``kv_in_dim`` (default ``embedding_dim``);
    the output is projected back to ``embedding_dim``. Dropout on the attention weights is used only
    in training mode.
    """

    def __init__(self, embedding_dim, num_heads, downsample_rate=1, dropout=0.0, kv_in_dim=None):
        super().__init__()
        _checkpositiveint('embedding_dim', embedding_dim)
        _checkpositiveint('num_heads', num_heads)
        _checkpositiveint('downsample_rate', downsample_rate)
        if embedding_dim % downsample_rate != 0:
            raise ValueError(f'downsample_rate must divide embedding_dim={embedding_dim}, got {downsample_rate}')
        if kv_in_dim is not None:
            _checkpositiveint('kv_in_dim', kv_in_dim)
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f'dropout must be a probability in [0, 1), got {dropout!r}')
        self.embedding_dim = embedding_dim
        self.kv_in_dim = embedding_dim if kv_in_dim is None else kv_in_dim
        self.internal_dim = embedding_dim // downsample_rate
        self.num_heads = num_heads
        if self.internal_dim % num_heads != 0:
            raise ValueError(f'num_heads must divide embedding_dim // downsample_rate = {self.internal_dim}, got {num_heads}')
        self.q_proj = nn.Linear(embedding_dim, self.internal_dim)
        self.k_proj = nn.Linear(self.kv_in_dim, self.internal_dim)
        self.v_proj = nn.Linear(self.kv_in_dim, self.internal_dim)
        self.out_proj = nn.Linear(self.internal_dim, embedding_dim)
        self.dropout_p = dropout

    def _splitheads(self, x):
        """(B, N, num_heads * D) -> (B, num_heads, N, D), a view."""
        return x.unflatten(-1, (self.num_heads, -1)).transpose(1, 2)

    def _projectheads(self, q, k, v):
        """Project inputs and split heads: q -> (B, h, Nq, D); k, v -> (B, h, Nk, D)."""
        return self._splitheads(self.q_proj(q)), self._splitheads(self.k_proj(k)), self._splitheads(self.v_proj(v))

    def _attendandmerge(self, q, k, v):
        """Attention over split heads, then merge heads and project: -> (B, Nq, embedding_dim).

        A batch of 1 on either side is broadcast over the other (one image shared by many prompts)."""
        batch = max(q.shape[0], k.shape[0])
        if q.shape[0] != batch:
            q = q.expand(batch, -1, -1, -1)
        if k.shape[0] != batch:
            k, v = k.expand(batch, -1, -1, -1), v.expand(batch, -1, -1, -1)
        out = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout_p if self.training else 0.0)
        return self.out_proj(out.transpose(1, 2).flatten(2))

    def forward(self, q, k, v):
        """q (B, Nq, embedding_dim), k and v (B, Nk, kv_in_dim) -> (B, Nq, embedding_dim); B may be 1 on one side."""
        return self._attendandmerge(*self._projectheads(q, k, v))


@TRANSFORMERS.register_module()
class TwoWayAttentionBlock(nn.Module):
    """One round of token self-attention, token->image attention, token MLP and image->token attention.

    Each step is residual and followed by a LayerNorm, except that with ``skip_first_layer_pe`` the
    self-attention sees no position encoding and *replaces* the tokens (no residual), as in Meta's
    first layer, whose inputs are the raw prompt embeddings.
    """

    def __init__(self, embedding_dim, num_heads, mlp_dim=2048, activation='relu', attention_downsample_rate=2, skip_first_layer_pe=False):
        super().__init__()
        _checkpositiveint('mlp_dim', mlp_dim)
        self.self_attn = Attention(embedding_dim, num_heads)
        self.norm1 = nn.LayerNorm(embedding_dim)
        self.cross_attn_token_to_image = Attention(embedding_dim, num_heads, downsample_rate=attention_downsample_rate)
        self.norm2 = nn.LayerNorm(embedding_dim)
        self.mlp = MLP(embedding_dim, mlp_dim, embedding_dim, num_layers=2, activation=activation)
        self.norm3 = nn.LayerNorm(embedding_dim)
        self.norm4 = nn.LayerNorm(embedding_dim)
        self.cross_attn_image_to_token = Attention(embedding_dim, num_heads, downsample_rate=attention_downsample_rate)
        self.skip_first_layer_pe = skip_first_layer_pe

    def forward(self, queries, keys, query_pe, key_pe):
        """queries, query_pe (B, N, C); keys, key_pe (B, HW, C) -> updated (queries, keys), same shapes.

        Keys shared by all prompts may come with a batch of 1: their projections are then computed once."""
        if self.skip_first_layer_pe:
            queries = self.self_attn(queries, queries, queries)
        else:
            q = queries + query_pe
            queries = queries + self.self_attn(q, q, queries)
        queries = self.norm1(queries)
        q, k = queries + query_pe, keys + key_pe
        queries = self.norm2(queries + self.cross_attn_token_to_image(q, k, keys))
        queries = self.norm3(queries + self.mlp(queries))
        # image tokens read the updated prompt tokens, so the token position sum is recomputed
        q = queries + query_pe
        keys = self.norm4(keys + self.cross_attn_image_to_token(k, q, queries))
        return queries, keys


@TRANSFORMERS.register_module()
class TwoWayTransformer(nn.Module):
    """``depth`` two-way blocks, then a last token->image attention and LayerNorm on the tokens."""

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

    def forward(self, image_embedding, image_pe, point_embedding):
        """Run the prompt tokens and image tokens through the blocks.

        image_embedding (B, C, H, W), or (1, C, H, W) shared by the B prompts (the first layer then projects
        the image once instead of B times); image_pe (B or 1, C, H, W); point_embedding (B, N, C), which is
        both the initial tokens and their position encoding at every layer.
        Returns (queries (B, N, C), keys (B, H*W, C)), image tokens in row-major (y, x) order.
        """
        if image_embedding.dim() != 4 or image_embedding.shape[1] != self.embedding_dim:
            raise ValueError(f'image_embedding must be (B, {self.embedding_dim}, H, W), got {tuple(image_embedding.shape)}')
        if image_embedding.shape[0] not in (1, point_embedding.shape[0]):
            raise ValueError(f'image_embedding batch {image_embedding.shape[0]} must be 1 or the number of prompts '
                             f'{point_embedding.shape[0]}')
        if image_pe.dim() != 4 or image_pe.shape[1:] != image_embedding.shape[1:]:
            raise ValueError(f'image_pe must be (B, C, H, W) like image_embedding {tuple(image_embedding.shape)}, '
                             f'got {tuple(image_pe.shape)}')
        if point_embedding.dim() != 3 or point_embedding.shape[-1] != self.embedding_dim:
            raise ValueError(f'point_embedding must be (B, N, {self.embedding_dim}), got {tuple(point_embedding.shape)}')
        keys = image_embedding.flatten(2).transpose(1, 2)
        key_pe = image_pe.flatten(2).transpose(1, 2)
        queries = point_embedding
        for layer in self.layers:
            queries, keys = layer(queries, keys, point_embedding, key_pe)
        q, k = queries + point_embedding, keys + key_pe
        queries = self.norm_final_attn(queries + self.final_attn_token_to_image(q, k, keys))
        return queries, keys
