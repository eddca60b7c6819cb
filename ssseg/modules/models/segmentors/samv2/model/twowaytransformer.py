"""Multi-head attention with a narrowed inner width, and the two-way transformer of the SAM mask decoder.

The two-way transformer lets a handful of prompt tokens (B, N, C) and the flattened image tokens
(B, H*W, C) attend to each other in both directions; parameter names match Meta's checkpoints.
"""
import math

import torch
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

    def _shortcutsapply(self, image_pe):
        """The algebraic shortcuts below assume no dropout on the attention weights and one shared position map."""
        return image_pe.shape[0] == 1 and not (self.training and self.dropout_p > 0)

    def _once(self, cache, name, compute):
        """``compute()``, remembered in ``cache`` (a dict living for one image) when one is given."""
        if cache is None:
            return compute()
        key = (id(self), name)
        if key not in cache:
            cache[key] = compute()
        return cache[key]

    def attendimage(self, q, image, image_pe, cache=None):
        """Few tokens attend to many image tokens: ``self(q, image + image_pe, image)``, computed cheaply.

        q (B, Nq, embedding_dim); image (B or 1, N, kv_in_dim); image_pe (1, N, kv_in_dim) (a batch of B falls
        back to the plain computation) -> (B, Nq, embedding_dim). One image shared by all prompts is projected
        once (once per ``cache``); per-prompt images are never projected: the key projection is folded into
        the queries and the value projection applied after the weighted sum, so each image is read twice.
        """
        batch, num_q = q.shape[:2]
        if not self._shortcutsapply(image_pe):
            return self(q, image + image_pe, image)
        heads = self.num_heads
        qh = self._splitheads(self.q_proj(q))  # (B, h, Nq, D)
        head_dim = qh.shape[-1]
        if image.shape[0] == 1:
            k, v = self._once(cache, 'kv', lambda: (self._splitheads(self.k_proj(image + image_pe)),
                                                     self._splitheads(self.v_proj(image))))
            # every prompt's tokens become rows of one long query against the shared image
            qh = qh.transpose(0, 1).reshape(1, heads, batch * num_q, head_dim)
            out = F.scaled_dot_product_attention(qh, k, v).view(heads, batch, num_q, head_dim)
            return self.out_proj(out.permute(1, 2, 0, 3).flatten(2))
        num_image, in_dim = image.shape[1:]
        # scores = q . (Wk (image + pe) + bk) = (q Wk) . image + q . (Wk pe + bk)
        q_in = (qh @ self.k_proj.weight.view(heads, head_dim, in_dim)).reshape(batch, heads * num_q, in_dim)
        scores = torch.bmm(q_in, image.transpose(1, 2)).view(batch, heads, num_q, num_image)
        pe_keys = self._once(cache, 'pe_k', lambda: self._splitheads(self.k_proj(image_pe))[0])  # (h, N, D)
        pe_scores = qh.transpose(0, 1).reshape(heads, batch * num_q, head_dim) @ pe_keys.transpose(1, 2)
        scores += pe_scores.view(heads, batch, num_q, num_image).transpose(0, 1)
        attn = torch.softmax(scores * (1.0 / math.sqrt(head_dim)), dim=-1)
        # values: (attn image) Wv + bv, as each row of attn sums to one
        mixed = torch.bmm(attn.view(batch, heads * num_q, num_image), image)
        out = mixed.view(batch, heads, num_q, in_dim) @ self.v_proj.weight.view(heads, head_dim, in_dim).transpose(1, 2)
        out = out + self.v_proj.bias.view(heads, 1, head_dim)
        return self.out_proj(out.transpose(1, 2).flatten(2))

    def imageattendtokens(self, image, image_pe, k, v, cache=None):
        """Many image tokens attend to a few tokens, residual included: ``image + self(image + image_pe, k, v)``.

        image (B or 1, N, embedding_dim); image_pe (1, N, embedding_dim); k, v (B, Nk, kv_in_dim) ->
        (B, N, embedding_dim). The output projection is applied to each prompt's few values before the
        weighted sum, and the residual is added inside the same matrix product; per-prompt images get
        their query projection folded into the keys, so no (B, N, width) projection is materialized.
        """
        batch, num_k = k.shape[:2]
        if not self._shortcutsapply(image_pe):
            return image + self(image + image_pe, k, v)
        heads, num_image, width = self.num_heads, image.shape[1], image.shape[2]
        kh, vh = self._splitheads(self.k_proj(k)), self._splitheads(self.v_proj(v))  # (B, h, Nk, D)
        head_dim = kh.shape[-1]
        keys_by_head = kh.permute(1, 3, 0, 2).reshape(heads, head_dim, batch * num_k)
        if image.shape[0] == 1:
            qh = self._once(cache, 'q', lambda: self._splitheads(self.q_proj(image + image_pe))[0])  # (h, N, D)
            scores = (qh @ keys_by_head).view(heads, num_image, batch, num_k).permute(2, 1, 0, 3)
        else:
            # scores = (Wq (image + pe) + bq) . k = image . (Wq^T k) + (Wq pe + bq) . k
            k_in = kh @ self.q_proj.weight.view(heads, head_dim, width)  # (B, h, Nk, width)
            pe_queries = self._once(cache, 'pe_q', lambda: self._splitheads(self.q_proj(image_pe))[0])  # (h, N, D)
            pe_scores = (pe_queries @ keys_by_head).view(heads, num_image, batch, num_k).permute(2, 1, 0, 3)
            scores = torch.baddbmm(pe_scores.reshape(batch, num_image, heads * num_k), image,
                                   k_in.flatten(1, 2).transpose(1, 2))
        attn = torch.softmax(scores.reshape(batch, num_image, heads, num_k) * (1.0 / math.sqrt(head_dim)), dim=-1)
        # per-head values already projected out; the output bias is split over heads (rows sum to one)
        values_out = vh @ self.out_proj.weight.view(width, heads, head_dim).permute(1, 2, 0)  # (B, h, Nk, width)
        values_out = values_out + self.out_proj.bias / heads
        return torch.baddbmm(image, attn.view(batch, num_image, heads * num_k), values_out.flatten(1, 2))


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

    def forward(self, queries, keys, query_pe, key_pe, cache=None):
        """queries, query_pe (B, N, C); keys (B or 1, HW, C); key_pe (1, HW, C) -> updated (queries, keys (B, HW, C)).

        Keys shared by all prompts come with a batch of 1 and are projected once (once per ``cache``, a dict
        for one image's chunks of prompts)."""
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
        keys = self.norm4(self.cross_attn_image_to_token.imageattendtokens(keys, key_pe, queries + query_pe, queries, cache))
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

    def forward(self, image_embedding, image_pe, point_embedding, cache=None):
        """Run the prompt tokens and image tokens through the blocks.

        image_embedding (B, C, H, W), or (1, C, H, W) shared by the B prompts (the first layer then projects
        the image once instead of B times); image_pe (B or 1, C, H, W); point_embedding (B, N, C), which is
        both the initial tokens and their position encoding at every layer. ``cache``: an optional dict kept
        while one image is decoded in chunks of prompts, so its projections are computed once.
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
            queries, keys = layer(queries, keys, point_embedding, key_pe, cache)
        queries = self.norm_final_attn(
            queries + self.final_attn_token_to_image.attendimage(queries + point_embedding, keys, key_pe, cache))
        return queries, keys
