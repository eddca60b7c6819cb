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

from ...bricks import HEADS, LayerNorm2d, BuildActivation, BuildHead, BuildPositionEncoding


def _positiveint(value):
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


@HEADS.register_module()
class MaskDownSampler(nn.Module):
    """Downsample a (B, 1, H, W) mask by ``total_stride`` in steps of ``stride``: -> (B, embed_dim, H/s, W/s).

    Each step is conv -> LayerNorm2d -> activation and multiplies the channels by stride**2;
    a final 1x1 conv projects to ``embed_dim``.
    """

    def __init__(self, embed_dim=256, kernel_size=4, stride=4, padding=0, total_stride=16, activation='gelu'):
        super().__init__()
        if not _positiveint(stride) or stride < 2:
            raise ValueError(f'stride must be an int >= 2, got {stride!r}')
        num_layers = int(math.log2(total_stride) // math.log2(stride)) if _positiveint(total_stride) else 0
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

    def forward(self, x):
        return self.encoder(x)


def _droppath(x, drop_prob, training):
    """Stochastic depth: zero whole samples of the residual branch with prob ``drop_prob``, rescale the rest."""
    if drop_prob == 0.0 or not training:
        return x
    keep_prob = 1.0 - drop_prob
    keep = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(keep_prob)
    return x * keep.div_(keep_prob)


@HEADS.register_module()
class CXBlock(nn.Module):
    """ConvNeXt block on (B, dim, H, W): depthwise conv, LayerNorm, pointwise MLP (x4, GELU), layer scale, residual.

    The pointwise MLP runs as Linear layers on channels-last tokens; ``use_dwconv=False`` makes the
    spatial conv dense; ``layer_scale_init_value <= 0`` drops ``gamma``.
    """

    def __init__(self, dim, kernel_size=7, padding=3, drop_path=0.0, layer_scale_init_value=1e-6, use_dwconv=True):
        super().__init__()
        if not _positiveint(dim):
            raise ValueError(f'dim must be a positive int, got {dim!r}')
        if not 0.0 <= drop_path < 1.0:
            raise ValueError(f'drop_path must be a probability in [0, 1), got {drop_path!r}')
        self.dwconv = nn.Conv2d(dim, dim, kernel_size=kernel_size, padding=padding, groups=dim if use_dwconv else 1)
        self.norm = LayerNorm2d(dim, eps=1e-6)
        self.pwconv1 = nn.Linear(dim, 4 * dim)
        self.act = nn.GELU()
        self.pwconv2 = nn.Linear(4 * dim, dim)
        self.gamma = nn.Parameter(layer_scale_init_value * torch.ones(dim)) if layer_scale_init_value > 0 else None
        self.drop_path = drop_path

    def forward(self, x):
        residual = self.norm(self.dwconv(x)).permute(0, 2, 3, 1)  # (B, H, W, C) for the Linear layers
        residual = self.pwconv2(self.act(self.pwconv1(residual)))
        if self.gamma is not None:
            residual = self.gamma * residual
        residual = residual.permute(0, 3, 1, 2)
        return x + _droppath(residual, self.drop_path, self.training)


@HEADS.register_module()
class Fuser(nn.Module):
    """``num_layers`` copies of the block built from cfg ``layer`` (identically initialized, as Meta's),
    optionally after a 1x1 conv on ``dim`` channels; shape-preserving on (B, C, H, W)."""

    def __init__(self, layer, num_layers, dim=None, input_projection=False):
        super().__init__()
        if not isinstance(num_layers, int) or isinstance(num_layers, bool) or num_layers < 0:
            raise ValueError(f'num_layers must be a non-negative int, got {num_layers!r}')
        if input_projection and not _positiveint(dim):
            raise ValueError(f'dim must be a positive int when input_projection=True, got {dim!r}')
        self.proj = nn.Conv2d(dim, dim, kernel_size=1) if input_projection else nn.Identity()
        block = BuildHead(layer)
        self.layers = nn.ModuleList(copy.deepcopy(block) for _ in range(num_layers))

    def forward(self, x):
        x = self.proj(x)
        for layer in self.layers:
            x = layer(x)
        return x


@HEADS.register_module()
class MemoryEncoder(nn.Module):
    """Encode (image features, mask) into a memory: ``vision_features`` (B, out_dim, h, w) and its position encoding.

    ``mask_downsampler`` / ``fuser``: head cfgs (the downsampler must output ``in_dim`` channels at the
    feature resolution); ``position_encoding``: a position-encoding cfg producing ``out_dim`` channels.
    """

    def __init__(self, out_dim, mask_downsampler, fuser, position_encoding, in_dim=256):
        super().__init__()
        if not _positiveint(out_dim):
            raise ValueError(f'out_dim must be a positive int, got {out_dim!r}')
        if not _positiveint(in_dim):
            raise ValueError(f'in_dim must be a positive int, got {in_dim!r}')
        self.mask_downsampler = BuildHead(mask_downsampler)
        self.pix_feat_proj = nn.Conv2d(in_dim, in_dim, kernel_size=1)
        self.fuser = BuildHead(fuser)
        self.position_encoding = BuildPositionEncoding(position_encoding)
        self.out_proj = nn.Conv2d(in_dim, out_dim, kernel_size=1) if out_dim != in_dim else nn.Identity()

    def forward(self, pix_feat, masks, skip_mask_sigmoid=False):
        """pix_feat (B, in_dim, h, w); masks (B, 1, s*h, s*w) logits (s the downsampler's total stride),
        or probabilities with ``skip_mask_sigmoid``. Returns dict(vision_features (B, out_dim, h, w),
        vision_pos_enc [(B, out_dim, h, w)])."""
        if not skip_mask_sigmoid:
            # probabilities look more like the binary ground-truth masks seen in training
            masks = F.sigmoid(masks)
        masks = self.mask_downsampler(masks)
        x = self.pix_feat_proj(pix_feat.to(masks.device)) + masks
        x = self.out_proj(self.fuser(x))
        pos = self.position_encoding(x).to(x.dtype)
        return {'vision_features': x, 'vision_pos_enc': [pos]}
