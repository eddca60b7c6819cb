"""Memory attention: current-frame tokens attend to themselves and to the memory bank, with axial 2D RoPE.

Axial RoPE rotates each (even, odd) channel pair of a head by an angle that grows with the token's
grid position: the first half of the pairs use the column index x, the second half the row index y.
Tokens are in row-major order over an (end_y, end_x) grid, so token t sits at x = t % end_x,
y = t // end_x. Parameter names match Meta's checkpoints.
"""
import math

import torch
import torch.nn as nn

from ...bricks import TRANSFORMERS, BuildTransformer, BuildActivation
from .transformer import Attention


def axialropetables(dim, end_x, end_y, theta=10000.0):
    """Return (cos, sin), each (end_x * end_y, dim // 2) float32 on the CPU, for a head width ``dim``.

    Column j < dim // 4 rotates by x * theta ** (-4j / dim), column dim // 4 + j by y * theta ** (-4j / dim).
    """
    if dim % 4 != 0:
        raise ValueError(f'axial RoPE needs a head width divisible by 4, got {dim}')
    inv_freqs = 1.0 / (theta ** (torch.arange(0, dim, 4)[: dim // 4].float() / dim))
    pos_x = torch.arange(end_x, dtype=torch.float32).repeat(end_y)
    pos_y = torch.arange(end_y, dtype=torch.float32).repeat_interleave(end_x)
    angles = torch.cat([torch.outer(pos_x, inv_freqs), torch.outer(pos_y, inv_freqs)], dim=-1)
    return angles.cos(), angles.sin()


def applyaxialrope(x, cos, sin):
    """Rotate channel pairs of x (..., N, dim) by tables cos, sin (N, dim // 2); returns x's dtype.

    Pair (a, b) becomes (a cos - b sin, a sin + b cos), i.e. the complex product (a + ib) e^{i angle},
    computed in float32.
    """
    pairs = x.float().unflatten(-1, (-1, 2))
    real, imag = pairs[..., 0], pairs[..., 1]
    rotated = torch.stack([real * cos - imag * sin, real * sin + imag * cos], dim=-1)
    return rotated.flatten(-2).type_as(x)


@TRANSFORMERS.register_module()
class RoPEAttention(Attention):
    """Attention whose queries and keys are rotated by axial 2D RoPE after projection.

    Queries must be the tokens of a grid: ``feat_sizes`` = (end_x, end_y) when they number
    end_x * end_y, otherwise a square grid (as Meta assumes). With ``rope_k_repeat`` the rotated keys
    may hold several frames of that grid back to back, each frame rotated like the queries.
    The last ``num_k_exclude_rope`` keys (object pointers) are never rotated.
    """

    def __init__(self, *args, rope_theta=10000.0, rope_k_repeat=False, feat_sizes=(64, 64), **kwargs):
        super().__init__(*args, **kwargs)
        if len(feat_sizes) != 2 or not all(isinstance(s, int) and s > 0 for s in feat_sizes):
            raise ValueError(f'feat_sizes must be two positive ints (end_x, end_y), got {feat_sizes!r}')
        head_dim = self.internal_dim // self.num_heads
        if head_dim % 4 != 0:
            raise ValueError(f'RoPEAttention needs a head width divisible by 4, got internal_dim // num_heads = {head_dim}')
        self.rope_theta = rope_theta
        self.rope_k_repeat = rope_k_repeat
        self.feat_sizes = tuple(feat_sizes)
        # tables per (num tokens, device); not buffers, so they stay float32 and out of the state dict
        self._ropecache = {}

    def _ropetables(self, num_tokens, device):
        key = (num_tokens, str(device))
        if key not in self._ropecache:
            if num_tokens == self.feat_sizes[0] * self.feat_sizes[1]:
                end_x, end_y = self.feat_sizes
            else:
                end_x = end_y = math.isqrt(num_tokens)
                if end_x * end_x != num_tokens:
                    raise ValueError(f'RoPEAttention queries must form feat_sizes={self.feat_sizes} or a square grid, '
                                     f'got {num_tokens} tokens')
            head_dim = self.internal_dim // self.num_heads
            # built on the CPU then moved, as Meta does, so values agree on every device
            cos, sin = axialropetables(head_dim, end_x, end_y, self.rope_theta)
            self._ropecache[key] = (cos.to(device), sin.to(device))
        return self._ropecache[key]

    def forward(self, q, k, v, num_k_exclude_rope=0):
        """q (B, Nq, embedding_dim), k and v (B, Nk, kv_in_dim) -> (B, Nq, embedding_dim).

        The first Nk - num_k_exclude_rope keys are rotated; they must number Nq, or a multiple of Nq
        when ``rope_k_repeat``.
        """
        q, k, v = self._projectheads(q, k, v)
        num_q, num_k = q.shape[-2], k.shape[-2]
        if not 0 <= num_k_exclude_rope <= num_k:
            raise ValueError(f'num_k_exclude_rope must be in [0, {num_k}] (number of keys), got {num_k_exclude_rope}')
        num_k_rope = num_k - num_k_exclude_rope
        if num_k_rope != num_q and not (self.rope_k_repeat and num_k_rope % num_q == 0):
            expected = f'a multiple of {num_q}' if self.rope_k_repeat else f'{num_q} (set rope_k_repeat for several frames)'
            raise ValueError(f'RoPEAttention: rotated keys must number {expected}, got {num_k_rope}')
        cos, sin = self._ropetables(num_q, q.device)
        q = applyaxialrope(q, cos, sin)
        if num_k_rope > 0:
            # view the keys as (frames, tokens per frame) so one table serves every frame
            rotated = applyaxialrope(k[:, :, :num_k_rope].unflatten(2, (-1, num_q)), cos, sin).flatten(2, 3)
            if num_k_exclude_rope == 0:
                k = rotated
            else:
                k[:, :, :num_k_rope] = rotated
        return self._attendandmerge(q, k, v)


def _withpos(x, pos, enabled):
    """x + pos when enabled and a position encoding is given; None means no encoding."""
    return x + pos if enabled and pos is not None else x


@TRANSFORMERS.register_module()
class MemoryAttentionLayer(nn.Module):
    """Pre-norm layer: self-attention, cross-attention to the memory, then a feed-forward block.

    ``self_attention`` and ``cross_attention`` are TRANSFORMERS config dicts (usually RoPEAttention,
    the cross one with rope_k_repeat and kv_in_dim = memory channels). Inputs are batch first.
    """

    def __init__(self, activation, cross_attention, d_model, dim_feedforward, dropout, pos_enc_at_attn,
                 pos_enc_at_cross_attn_keys, pos_enc_at_cross_attn_queries, self_attention):
        super().__init__()
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f'dropout must be a probability in [0, 1), got {dropout!r}')
        self.d_model = d_model
        self.dim_feedforward = dim_feedforward
        self.self_attn = BuildTransformer(self_attention)
        self.cross_attn_image = BuildTransformer(cross_attention)
        for name, attn in (('self_attention', self.self_attn), ('cross_attention', self.cross_attn_image)):
            if getattr(attn, 'embedding_dim', d_model) != d_model:
                raise ValueError(f'{name} must have embedding_dim equal to d_model={d_model}, got {attn.embedding_dim}')
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.linear2 = nn.Linear(dim_feedforward, d_model)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.norm3 = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)
        self.dropout3 = nn.Dropout(dropout)
        self.activation = BuildActivation(activation)
        self.pos_enc_at_attn = pos_enc_at_attn
        self.pos_enc_at_cross_attn_queries = pos_enc_at_cross_attn_queries
        self.pos_enc_at_cross_attn_keys = pos_enc_at_cross_attn_keys

    def forward(self, tgt, memory, pos=None, query_pos=None, num_k_exclude_rope=0):
        """tgt, query_pos (B, HW, d_model); memory, pos (B, M, Cmem) -> (B, HW, d_model).

        The last ``num_k_exclude_rope`` memory tokens are object pointers, left unrotated.
        """
        normed = self.norm1(tgt)
        q = _withpos(normed, query_pos, self.pos_enc_at_attn)
        tgt = tgt + self.dropout1(self.self_attn(q, q, normed))
        normed = self.norm2(tgt)
        kwargs = {}
        if num_k_exclude_rope > 0:
            if not isinstance(self.cross_attn_image, RoPEAttention):
                raise ValueError(f'num_k_exclude_rope={num_k_exclude_rope} needs a RoPEAttention cross attention, '
                                 f'got {type(self.cross_attn_image).__name__}')
            kwargs['num_k_exclude_rope'] = num_k_exclude_rope
        attended = self.cross_attn_image(
            _withpos(normed, query_pos, self.pos_enc_at_cross_attn_queries),
            _withpos(memory, pos, self.pos_enc_at_cross_attn_keys), memory, **kwargs,
        )
        tgt = tgt + self.dropout2(attended)
        hidden = self.dropout(self.activation(self.linear1(self.norm3(tgt))))
        return tgt + self.dropout3(self.linear2(hidden))


@TRANSFORMERS.register_module()
class MemoryAttention(nn.Module):
    """``num_layers`` MemoryAttentionLayers (each built from the ``layer`` dict) and a final LayerNorm.

    Inputs and output are sequence first, as in Meta's video predictor: tokens of the current frame
    (HW, B, C) in row-major grid order, memory (M, B, Cmem) whose last ``num_obj_ptr_tokens`` entries
    are object-pointer tokens.
    """

    def __init__(self, d_model, pos_enc_at_input, layer, num_layers, batch_first=True):
        super().__init__()
        if isinstance(num_layers, bool) or not isinstance(num_layers, int) or num_layers <= 0:
            raise ValueError(f'num_layers must be a positive int, got {num_layers!r}')
        self.d_model = d_model
        self.layers = nn.ModuleList(BuildTransformer(layer) for _ in range(num_layers))
        self.num_layers = num_layers
        self.norm = nn.LayerNorm(d_model)
        self.pos_enc_at_input = pos_enc_at_input
        self.batch_first = batch_first

    def forward(self, curr, memory, curr_pos=None, memory_pos=None, num_obj_ptr_tokens=0):
        """curr, curr_pos (HW, B, d_model) or one-element lists of them; memory, memory_pos (M, B, Cmem).

        Returns the memory-conditioned current tokens (HW, B, d_model).
        """
        if isinstance(curr, (list, tuple)):
            if len(curr) != 1 or (curr_pos is not None and (not isinstance(curr_pos, (list, tuple)) or len(curr_pos) != 1)):
                raise ValueError('curr and curr_pos given as lists must each hold exactly one (HW, B, C) tensor')
            curr, curr_pos = curr[0], None if curr_pos is None else curr_pos[0]
        if curr.dim() != 3 or memory.dim() != 3 or curr.shape[1] != memory.shape[1]:
            raise ValueError(f'curr (HW, B, C) and memory (M, B, Cmem) must share the batch size, '
                             f'got {tuple(curr.shape)} and {tuple(memory.shape)}')
        output = curr
        if self.pos_enc_at_input and curr_pos is not None:
            output = output + 0.1 * curr_pos
        if self.batch_first:
            output, memory = output.transpose(0, 1), memory.transpose(0, 1)
            curr_pos = None if curr_pos is None else curr_pos.transpose(0, 1)
            memory_pos = None if memory_pos is None else memory_pos.transpose(0, 1)
        for layer in self.layers:
            # only RoPE cross attention knows which keys are object pointers
            kwargs = {'num_k_exclude_rope': num_obj_ptr_tokens} if isinstance(layer.cross_attn_image, RoPEAttention) else {}
            output = layer(output, memory, pos=memory_pos, query_pos=curr_pos, **kwargs)
        output = self.norm(output)
        return output.transpose(0, 1) if self.batch_first else output
