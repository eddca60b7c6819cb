"""Position encodings: 2D sine maps (image features, memories), random Fourier features (prompts), 1D sine (time)."""
import math
from typing import Tuple, Union

import torch
import torch.nn as nn

from ssseg.modules.models.registries import POSITIONAL_ENCODINGS


def _sinefrequencies(num_feats, temperature, device):
    """Divisors shared by each (sin, cos) pair of channels: temperature ** (2 * (i // 2) / num_feats)."""
    index = torch.arange(num_feats, dtype=torch.float32, device=device)
    return temperature ** (2 * (index // 2) / num_feats)


def sineencode1d(positions: torch.Tensor, dim: int, temperature: float = 10000) -> torch.Tensor:
    """Encode positions of any shape (...,) as (..., dim): first half sines, second half cosines.

    Args:
        positions: (...,) real tensor of positions, any shape.
        dim: output channels: dim // 2 sines, then dim // 2 cosines.
        temperature: base of the geometric progression of wavelengths.

    Returns:
        (..., dim) floating tensor on ``positions``' device.
    """
    angles = positions.unsqueeze(-1) / _sinefrequencies(dim // 2, temperature, positions.device)
    return torch.cat([angles.sin(), angles.cos()], dim=-1)


@POSITIONAL_ENCODINGS.register_module()
class PositionEmbeddingSine(nn.Module):
    """Fixed 2D sine encoding of a feature map: (B, *, H, W) -> (B, num_pos_feats, H, W).

    Channels [0, num_pos_feats/2) encode the row (y), the rest the column (x); within each half,
    even channels are sines and odd channels cosines. Maps are cached per (H, W, device).

    Args:
        num_pos_feats: output channels (even), half per axis.
        temperature: base of the geometric progression of wavelengths.
        normalize: divide the 1-based positions 1..L of each axis by L (+1e-6) and multiply by ``scale``.
        scale: scale of normalized positions (default 2 * pi); only with ``normalize``.

    Raises:
        ValueError: ``num_pos_feats`` is odd, or ``scale`` is given with ``normalize=False``.
    """

    def __init__(self, num_pos_feats, temperature=10000, normalize=True, scale=None):
        super().__init__()
        if num_pos_feats % 2 != 0:
            raise ValueError(f'num_pos_feats must be even, got {num_pos_feats}')
        if scale is not None and not normalize:
            raise ValueError('scale is only used with normalize=True')
        self.num_pos_feats = num_pos_feats // 2
        self.temperature = temperature
        self.normalize = normalize
        self.scale = 2 * math.pi if scale is None else scale
        self._cache = {}

    def _axis(self, length, device):
        pos = torch.arange(1, length + 1, dtype=torch.float32, device=device)
        if self.normalize:
            pos = pos / (pos[-1:] + 1e-6) * self.scale
        angles = pos[:, None] / _sinefrequencies(self.num_pos_feats, self.temperature, device)
        # interleave: even channels take sin, odd channels take cos of their own angle
        return torch.stack([angles[:, 0::2].sin(), angles[:, 1::2].cos()], dim=2).flatten(1)

    @torch.no_grad()
    def encodemap(self, height: int, width: int, device: Union[torch.device, str]) -> torch.Tensor:
        """Return the (num_pos_feats, H, W) encoding map (cached), computed without autograd.

        Args:
            height: H, rows of the map.
            width: W, columns of the map.
            device: device of the map.

        Returns:
            (num_pos_feats, H, W) float32 tensor on ``device``, the cached tensor itself (read only).
        """
        if torch.compiler.is_compiling():
            # a compiled graph computes it inline: reading or filling the cache would make it recompile
            return self._encodemap(height, width, device)
        key = (height, width, str(device))
        if key not in self._cache:
            self._cache[key] = self._encodemap(height, width, device)
        return self._cache[key]

    def _encodemap(self, height, width, device):
        pos_y = self._axis(height, device)[:, None, :].expand(height, width, -1)
        pos_x = self._axis(width, device)[None, :, :].expand(height, width, -1)
        return torch.cat([pos_y, pos_x], dim=2).permute(2, 0, 1).contiguous()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Encode the grid of a feature map.

        Args:
            x: (B, *, H, W) tensor; only its shape and device are read.

        Returns:
            (B, num_pos_feats, H, W) float32 tensor, an expanded view of the cached map (read only).
        """
        return self.encodemap(x.shape[-2], x.shape[-1], x.device)[None].expand(x.shape[0], -1, -1, -1)


@POSITIONAL_ENCODINGS.register_module()
class PositionEmbeddingRandom(nn.Module):
    """Random Fourier features of normalized (x, y) positions, 2 * num_pos_feats channels.

    Args:
        num_pos_feats: number of random frequencies; features have 2 * num_pos_feats channels (sines, then cosines).
        scale: standard deviation of the Gaussian frequencies; None or <= 0 means 1.0.
    """

    def __init__(self, num_pos_feats=64, scale=None):
        super().__init__()
        scale = 1.0 if scale is None or scale <= 0.0 else scale
        self.register_buffer('positional_encoding_gaussian_matrix', scale * torch.randn((2, num_pos_feats)))

    def _encode(self, coords):
        """coords (..., 2) in [0, 1] as (x, y) -> (..., 2 * num_pos_feats)."""
        angles = 2 * math.pi * ((2 * coords - 1) @ self.positional_encoding_gaussian_matrix)
        return torch.cat([torch.sin(angles), torch.cos(angles)], dim=-1)

    def forward(self, size: Tuple[int, int]) -> torch.Tensor:
        """Encode the centres of an (H, W) grid -> (C, H, W).

        Args:
            size: (H, W) of the grid; cell centres are normalized to [0, 1] as ((x + 0.5) / W, (y + 0.5) / H).

        Returns:
            (2 * num_pos_feats, H, W) floating tensor on the frequencies' device.
        """
        height, width = size
        device = self.positional_encoding_gaussian_matrix.device
        ys = (torch.arange(height, dtype=torch.float32, device=device) + 0.5) / height
        xs = (torch.arange(width, dtype=torch.float32, device=device) + 0.5) / width
        grid = torch.stack([xs[None, :].expand(height, width), ys[:, None].expand(height, width)], dim=-1)
        return self._encode(grid).permute(2, 0, 1)

    def forwardwithcoords(self, coords: torch.Tensor, image_size: Tuple[int, int]) -> torch.Tensor:
        """Encode (B, N, 2) pixel coordinates (x, y) of an image of size (H, W) -> (B, N, C).

        Args:
            coords: (B, N, 2) pixel coordinates (x, y) in the image's frame, any real dtype (used as float32).
            image_size: (H, W) of the image; coordinates are divided by (W, H).

        Returns:
            (B, N, 2 * num_pos_feats) floating tensor.
        """
        height, width = image_size
        coords = coords.to(torch.float32) / coords.new_tensor([width, height], dtype=torch.float32)
        return self._encode(coords)
