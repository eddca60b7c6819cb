"""SAM 2 memory encoder: fuse a frame's image features with its predicted mask into a memory map.

The mask (at the input-image resolution) is downsampled to the feature grid by strided convs, added
to projected image features, mixed by ConvNeXt blocks and projected to the memory width.
Parameter names match Meta's checkpoints.
"""
import copy
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from ssseg.modules.models.bricks.layers import BuildActivation, DropPath, LayerNorm2d
from ssseg.modules.models.registries import CONV_BLOCKS, HEADS, BuildConvBlock, BuildPositionEncoding
from ssseg.modules.utils.checks import ispositiveint


@CONV_BLOCKS.register_module()
class MaskDownSampler(nn.Module):
    """Downsample a (B, 1, H, W) mask by ``total_stride`` in steps of ``stride``: -> (B, embed_dim, H/s, W/s).

    Each step is conv -> LayerNorm2d -> activation and multiplies the channels by stride**2;
    a final 1x1 conv projects to ``embed_dim``.

    Args:
        embed_dim: output channels.
        kernel_size, stride, padding: of each step's conv; ``stride`` is an int >= 2.
        total_stride: s, a power of ``stride``.
        activation: name or class of each step's activation.

    Raises:
        ValueError: ``stride`` is not an int >= 2, or ``total_stride`` is not a power of it.
    """

    def __init__(self, embed_dim=256, kernel_size=4, stride=4, padding=0, total_stride=16, activation='gelu'):
        super().__init__()
        if not ispositiveint(stride) or stride < 2:
            raise ValueError(f'stride must be an int >= 2, got {stride!r}')
        num_layers = int(math.log2(total_stride) // math.log2(stride)) if ispositiveint(total_stride) else 0
        if num_layers < 1 or stride ** num_layers != total_stride:
            raise ValueError(f'total_stride must be a power of stride={stride}, got {total_stride!r}')
        layers, in_chans = [], 1
        for _ in range(num_layers):
            out_chans = in_chans * stride ** 2
            layers += [nn.Conv2d(in_chans, out_chans, kernel_size=kernel_size, stride=stride, padding=padding),
                       LayerNorm2d(out_chans), BuildActivation(activation)]
            in_chans = out_chans
        layers.append(nn.Conv2d(in_chans, embed_dim, kernel_size=1))
        self.encoder = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Downsample a mask.

        Args:
            x: (B, 1, H, W) floating mask.

        Returns:
            (B, embed_dim, H/s, W/s) floating map.
        """
        return self.encoder(x)


@CONV_BLOCKS.register_module()
class CXBlock(nn.Module):
    """ConvNeXt block on (B, dim, H, W): depthwise conv, LayerNorm, pointwise MLP (x4, GELU), layer scale, residual.

    The pointwise MLP runs as Linear layers on channels-last tokens; ``use_dwconv=False`` makes the
    spatial conv dense; ``layer_scale_init_value <= 0`` drops ``gamma``.

    Args:
        dim: channels, a positive int.
        kernel_size, padding: of the spatial conv.
        drop_path: stochastic depth probability of the residual branch, in [0, 1).
        layer_scale_init_value: initial value of the per-channel layer scale ``gamma``.
        use_dwconv: the spatial conv is depthwise.

    Raises:
        ValueError: ``dim`` is not a positive int, or ``drop_path`` is outside [0, 1).
    """

    def __init__(self, dim, kernel_size=7, padding=3, drop_path=0.0, layer_scale_init_value=1e-6, use_dwconv=True):
        super().__init__()
        if not ispositiveint(dim):
            raise ValueError(f'dim must be a positive int, got {dim!r}')
        if not 0.0 <= drop_path < 1.0:
            raise ValueError(f'drop_path must be a probability in [0, 1), got {drop_path!r}')
        self.dwconv = nn.Conv2d(dim, dim, kernel_size=kernel_size, padding=padding, groups=dim if use_dwconv else 1)
        self.norm = LayerNorm2d(dim, eps=1e-6)
        self.pwconv1 = nn.Linear(dim, 4 * dim)
        self.act = nn.GELU()
        self.pwconv2 = nn.Linear(4 * dim, dim)
        self.gamma = nn.Parameter(layer_scale_init_value * torch.ones(dim)) if layer_scale_init_value > 0 else None
        self.drop_path = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the block.

        Args:
            x: (B, dim, H, W) floating map.

        Returns:
            (B, dim, H, W) floating map (with the default size-preserving kernel_size and padding).
        """
        residual = self.norm(self.dwconv(x)).permute(0, 2, 3, 1)  # (B, H, W, C) for the Linear layers
        residual = self.pwconv2(self.act(self.pwconv1(residual)))
        if self.gamma is not None:
            residual = self.gamma * residual
        residual = residual.permute(0, 3, 1, 2)
        return x + self.drop_path(residual)


@CONV_BLOCKS.register_module()
class Fuser(nn.Module):
    """``num_layers`` copies of the block built from cfg ``layer`` (identically initialized, as Meta's),
    optionally after a 1x1 conv on ``dim`` channels; shape-preserving on (B, C, H, W).

    Args:
        layer: conv block cfg (CONV_BLOCKS), built once and copied.
        num_layers: number of copies, a non-negative int.
        dim: channels of the input projection.
        input_projection: apply the 1x1 conv first; needs a positive int ``dim``.

    Raises:
        ValueError: ``num_layers`` is not a non-negative int, or ``input_projection`` lacks ``dim``.
    """

    def __init__(self, layer, num_layers, dim=None, input_projection=False):
        super().__init__()
        if not isinstance(num_layers, int) or isinstance(num_layers, bool) or num_layers < 0:
            raise ValueError(f'num_layers must be a non-negative int, got {num_layers!r}')
        if input_projection and not ispositiveint(dim):
            raise ValueError(f'dim must be a positive int when input_projection=True, got {dim!r}')
        self.proj = nn.Conv2d(dim, dim, kernel_size=1) if input_projection else nn.Identity()
        block = BuildConvBlock(layer)
        self.layers = nn.ModuleList(copy.deepcopy(block) for _ in range(num_layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the projection and the blocks.

        Args:
            x: (B, C, H, W) floating map.

        Returns:
            (B, C, H, W) floating map.
        """
        x = self.proj(x)
        for layer in self.layers:
            x = layer(x)
        return x


@HEADS.register_module()
class MemoryEncoder(nn.Module):
    """Encode (image features, mask) into a memory: ``vision_features`` (B, out_dim, h, w) and its position encoding.

    ``mask_downsampler`` / ``fuser``: conv block cfgs (the downsampler must output ``in_dim`` channels at the
    feature resolution); ``position_encoding``: a position-encoding cfg producing ``out_dim`` channels.

    Args:
        out_dim: memory channels, a positive int.
        mask_downsampler: conv block cfg of the mask downsampler.
        fuser: conv block cfg mixing the summed features.
        position_encoding: position-encoding cfg of the memory.
        in_dim: channels of the image features, a positive int.

    Raises:
        ValueError: ``out_dim`` or ``in_dim`` is not a positive int.
    """

    def __init__(self, out_dim, mask_downsampler, fuser, position_encoding, in_dim=256):
        super().__init__()
        if not ispositiveint(out_dim):
            raise ValueError(f'out_dim must be a positive int, got {out_dim!r}')
        if not ispositiveint(in_dim):
            raise ValueError(f'in_dim must be a positive int, got {in_dim!r}')
        self.mask_downsampler = BuildConvBlock(mask_downsampler)
        self.pix_feat_proj = nn.Conv2d(in_dim, in_dim, kernel_size=1)
        self.fuser = BuildConvBlock(fuser)
        self.position_encoding = BuildPositionEncoding(position_encoding)
        self.out_proj = nn.Conv2d(in_dim, out_dim, kernel_size=1) if out_dim != in_dim else nn.Identity()

    def forward(self, pix_feat: torch.Tensor, masks: torch.Tensor, skip_mask_sigmoid: bool = False) -> dict:
        """Encode a frame's features and masks into a memory.

        Args:
            pix_feat: (B, in_dim, h, w) image features (moved to ``masks``' device).
            masks: (B, 1, s*h, s*w) logits (s the downsampler's total stride), or probabilities with
                ``skip_mask_sigmoid``.
            skip_mask_sigmoid: ``masks`` are already probabilities.

        Returns:
            dict(vision_features (B, out_dim, h, w), vision_pos_enc [(B, out_dim, h, w)]), the position map
            in the features' dtype.
        """
        if not skip_mask_sigmoid:
            # probabilities look more like the binary ground-truth masks seen in training
            masks = F.sigmoid(masks)
        masks = self.mask_downsampler(masks)
        x = self.pix_feat_proj(pix_feat.to(masks.device)) + masks
        x = self.out_proj(self.fuser(x))
        pos = self.position_encoding(x).to(x.dtype)
        return {'vision_features': x, 'vision_pos_enc': [pos]}
