"""Multi-head attention whose projections work at a narrowed inner width, with shortcuts for one shared image.

The shortcuts (:meth:`Attention.attendimage`, :meth:`Attention.imageattendtokens`) compute the same
attention as the plain call when a few prompt tokens meet many image tokens, without materializing
the large projections. Parameter names match Meta's checkpoints.
"""
import math
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from ssseg.modules.models.registries import ATTENTIONS
from ssseg.modules.utils.checks import checkpositiveint


@ATTENTIONS.register_module()
class Attention(nn.Module):
    """Multi-head attention whose projections work at width ``embedding_dim // downsample_rate``.

    Queries have ``embedding_dim`` channels, keys and values ``kv_in_dim`` (default ``embedding_dim``);
    the output is projected back to ``embedding_dim``. Dropout on the attention weights is used only
    in training mode.

    Args:
        embedding_dim: query and output channels.
        num_heads: attention heads; must divide ``embedding_dim // downsample_rate``.
        downsample_rate: divides ``embedding_dim`` into the inner width of the projections.
        dropout: dropout probability on the attention weights, in [0, 1).
        kv_in_dim: key and value channels (default ``embedding_dim``).

    Raises:
        ValueError: a width, head count or rate is not a positive int, ``downsample_rate`` does not divide
            ``embedding_dim``, ``num_heads`` does not divide the inner width, or ``dropout`` is outside [0, 1).
    """

    def __init__(self, embedding_dim, num_heads, downsample_rate=1, dropout=0.0, kv_in_dim=None):
        super().__init__()
        checkpositiveint('embedding_dim', embedding_dim)
        checkpositiveint('num_heads', num_heads)
        checkpositiveint('downsample_rate', downsample_rate)
        if embedding_dim % downsample_rate != 0:
            raise ValueError(f'downsample_rate must divide embedding_dim={embedding_dim}, got {downsample_rate}')
        if kv_in_dim is not None:
            checkpositiveint('kv_in_dim', kv_in_dim)
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f'dropout must be a probability in [0, 1), got {dropout!r}')
        self.embedding_dim = embedding_dim
        self.kv_in_dim = embedding_dim if kv_in_dim is None else kv_in_dim
        self.internal_dim = embedding_dim // downsample_rate
        self.num_heads = num_heads
        if self.internal_dim % num_heads != 0:
            raise ValueError(f'num_heads must divide embedding_dim // downsample_rate = {self.internal_dim}, got '
                             f'{num_heads}')
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

    def _attendandmerge(self, q, k, v, key_mask=None):
        """Attention over split heads, then merge heads and project: -> (B, Nq, embedding_dim).

        A batch of 1 on either side is broadcast over the other (one image shared by many prompts). ``key_mask``
        None or (B, Nk) bool, True for keys that are attended (padding of objects batched together is False)."""
        batch = max(q.shape[0], k.shape[0])
        if q.shape[0] != batch:
            q = q.expand(batch, -1, -1, -1)
        if k.shape[0] != batch:
            k, v = k.expand(batch, -1, -1, -1), v.expand(batch, -1, -1, -1)
        attn_mask = None if key_mask is None else key_mask[:, None, None, :]
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask,
                                             dropout_p=self.dropout_p if self.training else 0.0)
        return self.out_proj(out.transpose(1, 2).flatten(2))

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                key_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """q (B, Nq, embedding_dim), k and v (B, Nk, kv_in_dim) -> (B, Nq, embedding_dim); B may be 1 on one side.

        Args:
            q: (B, Nq, embedding_dim) queries.
            k: (B, Nk, kv_in_dim) keys.
            v: (B, Nk, kv_in_dim) values, with k's batch.
            key_mask: None, or (B, Nk) bool with False on padding keys, which get no attention weight.

        Returns:
            (B, Nq, embedding_dim) attended queries, B the larger of the two batches.
        """
        return self._attendandmerge(*self._projectheads(q, k, v), key_mask)

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

    def attendimage(self, q: torch.Tensor, image: torch.Tensor, image_pe: torch.Tensor,
                    cache: Optional[dict] = None) -> torch.Tensor:
        """Few tokens attend to many image tokens: ``self(q, image + image_pe, image)``, computed cheaply.

        One image shared by all prompts is projected once (once per ``cache``); per-prompt images are never
        projected: the key projection is folded into the queries and the value projection applied after the
        weighted sum, so each image is read twice.

        Args:
            q: (B, Nq, embedding_dim) query tokens.
            image: (B or 1, N, kv_in_dim) image tokens, the values (and keys with ``image_pe`` added).
            image_pe: (1, N, kv_in_dim) position encoding of the image tokens; a batch of B falls back to the
                plain computation.
            cache: None, or a dict living for one image that keeps its projections across calls.

        Returns:
            (B, Nq, embedding_dim) attended queries.
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

    def imageattendtokens(self, image: torch.Tensor, image_pe: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                          cache: Optional[dict] = None) -> torch.Tensor:
        """Many image tokens attend to a few tokens, residual included: ``image + self(image + image_pe, k, v)``.

        The output projection is applied to each prompt's few values before the weighted sum, and the
        residual is added inside the same matrix product; per-prompt images get their query projection
        folded into the keys, so no (B, N, width) projection is materialized.

        Args:
            image: (B or 1, N, embedding_dim) image tokens, the queries (with ``image_pe`` added) and the residual.
            image_pe: (1, N, embedding_dim) position encoding of the image tokens; a batch of B falls back to
                the plain computation.
            k: (B, Nk, kv_in_dim) keys (the few tokens).
            v: (B, Nk, kv_in_dim) values.
            cache: None, or a dict living for one image that keeps its projections across calls.

        Returns:
            (B, N, embedding_dim) updated image tokens, residual included.
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
