"""Axial 2D rotary position embedding (RoPE) and the attention that applies it to queries and keys.

Axial RoPE rotates each (even, odd) channel pair of a head by an angle that grows with the token's
grid position: the first half of the pairs use the column index x, the second half the row index y.
Tokens are in row-major order over an (end_y, end_x) grid, so token t sits at x = t % end_x,
y = t // end_x.
"""
import math
from typing import Optional, Tuple

import torch

from ssseg.modules.models.registries import ATTENTIONS

from .attention import Attention


def axialropetables(dim: int, end_x: int, end_y: int, theta: float = 10000.0,
                    device: Optional[torch.device] = None) -> Tuple[torch.Tensor, torch.Tensor]:
    """Return (cos, sin), each (end_x * end_y, dim // 2) float32 on ``device`` (the CPU), for a head width ``dim``.

    Column j < dim // 4 rotates by x * theta ** (-4j / dim), column dim // 4 + j by y * theta ** (-4j / dim).

    Args:
        dim: head width, divisible by 4.
        end_x: columns of the token grid.
        end_y: rows of the token grid.
        theta: base of the rotation frequencies.
        device: where the tables are computed (default the CPU).

    Returns:
        (cos, sin): each (end_x * end_y, dim // 2) float32 on ``device``, one row per token in row-major order.

    Raises:
        ValueError: ``dim`` is not divisible by 4.
    """
    if dim % 4 != 0:
        raise ValueError(f'axial RoPE needs a head width divisible by 4, got {dim}')
    inv_freqs = 1.0 / (theta ** (torch.arange(0, dim, 4, device=device)[: dim // 4].float() / dim))
    pos_x = torch.arange(end_x, dtype=torch.float32, device=device).repeat(end_y)
    pos_y = torch.arange(end_y, dtype=torch.float32, device=device).repeat_interleave(end_x)
    angles = torch.cat([torch.outer(pos_x, inv_freqs), torch.outer(pos_y, inv_freqs)], dim=-1)
    return angles.cos(), angles.sin()


def applyaxialrope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate channel pairs of x (..., N, dim) by tables cos, sin (N, dim // 2); returns x's dtype.

    Pair (a, b) becomes (a cos - b sin, a sin + b cos), i.e. the complex product (a + ib) e^{i angle},
    computed in float32.

    Args:
        x: (..., N, dim) floating tensor, N tokens whose channel pairs (2i, 2i + 1) are rotated.
        cos: (N, dim // 2) float32 cosines, as from :func:`axialropetables`, on x's device.
        sin: (N, dim // 2) float32 sines, likewise.

    Returns:
        (..., N, dim) tensor of x's dtype.
    """
    pairs = x.float().unflatten(-1, (-1, 2))
    real, imag = pairs[..., 0], pairs[..., 1]
    rotated = torch.stack([real * cos - imag * sin, real * sin + imag * cos], dim=-1)
    return rotated.flatten(-2).type_as(x)


@ATTENTIONS.register_module()
class RoPEAttention(Attention):
    """Attention whose queries and keys are rotated by axial 2D RoPE after projection.

    Queries must be the tokens of a grid: ``feat_sizes`` = (end_x, end_y) when they number
    end_x * end_y, otherwise a square grid (as Meta assumes). With ``rope_k_repeat`` the rotated keys
    may hold several frames of that grid back to back, each frame rotated like the queries.
    The last ``num_k_exclude_rope`` keys (object pointers) are never rotated.

    Args:
        *args, **kwargs: :class:`Attention`'s (embedding_dim, num_heads, downsample_rate, dropout, kv_in_dim).
        rope_theta: base of the rotation frequencies.
        rope_k_repeat: allow rotated keys holding several frames of the query grid back to back.
        feat_sizes: (end_x, end_y) of the query grid.

    Raises:
        ValueError: ``feat_sizes`` is not two positive ints, or the head width internal_dim // num_heads is
            not divisible by 4 (and :class:`Attention`'s errors).
    """

    def __init__(self, *args, rope_theta=10000.0, rope_k_repeat=False, feat_sizes=(64, 64), **kwargs):
        super().__init__(*args, **kwargs)
        if len(feat_sizes) != 2 or not all(isinstance(s, int) and s > 0 for s in feat_sizes):
            raise ValueError(f'feat_sizes must be two positive ints (end_x, end_y), got {feat_sizes!r}')
        head_dim = self.internal_dim // self.num_heads
        if head_dim % 4 != 0:
            raise ValueError('RoPEAttention needs a head width divisible by 4, got internal_dim // num_heads = '
                             f'{head_dim}')
        self.rope_theta = rope_theta
        self.rope_k_repeat = rope_k_repeat
        self.feat_sizes = tuple(feat_sizes)
        # tables per (num tokens, device); not buffers, so they stay float32 and out of the state dict
        self._ropecache = {}

    def _grid(self, num_tokens):
        """(end_x, end_y) of the query grid of ``num_tokens`` tokens."""
        if num_tokens == self.feat_sizes[0] * self.feat_sizes[1]:
            return self.feat_sizes
        side = math.isqrt(num_tokens)
        if side * side != num_tokens:
            raise ValueError(f'RoPEAttention queries must form feat_sizes={self.feat_sizes} or a square grid, '
                             f'got {num_tokens} tokens')
        return side, side

    def _ropetables(self, num_tokens, device):
        if torch.compiler.is_compiling():
            # computed inline on the device (values within an ulp of the CPU ones): the cache would recompile
            end_x, end_y = self._grid(num_tokens)
            return axialropetables(self.internal_dim // self.num_heads, end_x, end_y, self.rope_theta, device)
        key = (num_tokens, str(device))
        if key not in self._ropecache:
            end_x, end_y = self._grid(num_tokens)
            head_dim = self.internal_dim // self.num_heads
            # built on the CPU then moved, as Meta does, so values agree on every device
            cos, sin = axialropetables(head_dim, end_x, end_y, self.rope_theta)
            self._ropecache[key] = (cos.to(device), sin.to(device))
        return self._ropecache[key]

    def _checkkeys(self, num_q, num_k, num_k_exclude_rope):
        if not 0 <= num_k_exclude_rope <= num_k:
            raise ValueError(f'num_k_exclude_rope must be in [0, {num_k}] (number of keys), got {num_k_exclude_rope}')
        num_k_rope = num_k - num_k_exclude_rope
        if num_k_rope != num_q and not (self.rope_k_repeat and num_k_rope % num_q == 0):
            expected = (f'a multiple of {num_q}' if self.rope_k_repeat
                        else f'{num_q} (set rope_k_repeat for several frames)')
            raise ValueError(f'RoPEAttention: rotated keys must number {expected}, got {num_k_rope}')

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, num_k_exclude_rope: int = 0,
                key_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """q (B, Nq, embedding_dim), k and v (B, Nk, kv_in_dim) -> (B, Nq, embedding_dim).

        The first Nk - num_k_exclude_rope keys are rotated; they must number Nq, or a multiple of Nq
        when ``rope_k_repeat``.

        Args:
            q: (B, Nq, embedding_dim) queries, the tokens of the grid in row-major order.
            k: (B, Nk, kv_in_dim) keys: the rotated ones (frames of the grid), then the excluded ones.
            v: (B, Nk, kv_in_dim) values.
            num_k_exclude_rope: number of trailing keys (object pointers) left unrotated.
            key_mask: None, or (B, Nk) bool with False on padding keys, which get no attention weight.

        Returns:
            (B, Nq, embedding_dim) attended queries.

        Raises:
            ValueError: ``num_k_exclude_rope`` is outside [0, Nk], the rotated keys do not number Nq (or a
                multiple with ``rope_k_repeat``), or Nq tokens form neither ``feat_sizes`` nor a square grid.
        """
        q, k, v = self._projectheads(q, k, v)
        num_q, num_k = q.shape[-2], k.shape[-2]
        num_k_rope = num_k - num_k_exclude_rope
        if not torch.compiler.is_compiling():
            # checked eagerly only: in a graph each comparison would become a guard that recompiles
            self._checkkeys(num_q, num_k, num_k_exclude_rope)
        cos, sin = self._ropetables(num_q, q.device)
        q = applyaxialrope(q, cos, sin)
        if num_k_rope > 0:
            # view the keys as (frames, tokens per frame) so one table serves every frame
            rotated = applyaxialrope(k[:, :, :num_k_rope].unflatten(2, (-1, num_q)), cos, sin).flatten(2, 3)
            if num_k_exclude_rope == 0:
                k = rotated
            else:
                k[:, :, :num_k_rope] = rotated
        return self._attendandmerge(q, k, v, key_mask)
