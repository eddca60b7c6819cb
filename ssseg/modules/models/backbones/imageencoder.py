"""SAM 2 image encoder: a trunk's multi-scale maps fused by a top-down FPN neck into d_model-wide features."""
from typing import List, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from ssseg.modules.models.registries import BACKBONES, NECKS, BuildBackbone, BuildNeck, BuildPositionEncoding

_INTERPMODES = ('nearest', 'bilinear', 'bicubic')
_FUSETYPES = ('sum', 'avg')


@NECKS.register_module()
class FpnNeck(nn.Module):
    """FPN without output convs: 1x1 lateral convs, then top-down upsample-and-add on chosen levels.

    ``backbone_channel_list`` lists the trunk widths lowest resolution first (``convs[0]`` reads the
    coarsest map). Levels are indexed highest resolution first, like the trunk outputs; only levels in
    ``fpn_top_down_levels`` (default: all) receive the upsampled coarser features.

    Args:
        position_encoding: position-encoding cfg (POSITIONAL_ENCODINGS), applied to every output level.
        d_model: output channels of every level.
        backbone_channel_list: trunk widths, lowest resolution first (positive ints).
        kernel_size, stride, padding: of the lateral convs.
        fpn_interp_model: upsampling mode of the top-down path: 'nearest', 'bilinear' or 'bicubic'.
        fuse_type: 'sum' adds the lateral and top-down maps, 'avg' also halves the sum.
        fpn_top_down_levels: None (all), or the level indices that receive the top-down features.

    Raises:
        ValueError: ``backbone_channel_list``, ``fpn_interp_model``, ``fuse_type`` or ``fpn_top_down_levels``
            is malformed or unknown.
    """

    def __init__(self, position_encoding, d_model, backbone_channel_list, kernel_size=1, stride=1, padding=0,
                 fpn_interp_model='bilinear', fuse_type='sum', fpn_top_down_levels=None):
        super().__init__()
        if not isinstance(backbone_channel_list, (list, tuple)) or len(backbone_channel_list) == 0 \
                or not all(isinstance(c, int) and c > 0 for c in backbone_channel_list):
            raise ValueError('backbone_channel_list must be a non-empty list of positive ints, got '
                             f'{backbone_channel_list!r}')
        if fpn_interp_model not in _INTERPMODES:
            raise ValueError(f'fpn_interp_model must be one of {_INTERPMODES}, got {fpn_interp_model!r}')
        if fuse_type not in _FUSETYPES:
            raise ValueError(f'fuse_type must be one of {_FUSETYPES}, got {fuse_type!r}')
        num_levels = len(backbone_channel_list)
        if fpn_top_down_levels is None:
            fpn_top_down_levels = range(num_levels)
        elif not isinstance(fpn_top_down_levels, (list, tuple)) \
                or not all(isinstance(i, int) and 0 <= i < num_levels for i in fpn_top_down_levels):
            raise ValueError(f'fpn_top_down_levels must be None or a list of level indices in [0, {num_levels}), '
                             f'got {fpn_top_down_levels!r}')
        self.position_encoding = BuildPositionEncoding(position_encoding)
        self.d_model = d_model
        self.backbone_channel_list = list(backbone_channel_list)
        self.fpn_interp_model = fpn_interp_model
        self.fuse_type = fuse_type
        self.fpn_top_down_levels = list(fpn_top_down_levels)
        self.convs = nn.ModuleList()
        for channels in backbone_channel_list:
            lateral = nn.Sequential()
            lateral.add_module('conv', nn.Conv2d(channels, d_model, kernel_size=kernel_size, stride=stride,
                                                 padding=padding))
            self.convs.append(lateral)

    def forward(self, xs: List[torch.Tensor]) -> Tuple[List[torch.Tensor], List[torch.Tensor]]:
        """Fuse the trunk's maps top-down.

        Args:
            xs: list of (B, C_i, H_i, W_i), highest resolution first, each level half the size of the previous.

        Returns:
            (features, positions): two lists of (B, d_model, H_i, W_i) in the same order; fused levels are
            computed in float32, and each position map has its level's dtype.

        Raises:
            ValueError: ``xs`` does not hold one map per lateral conv.
        """
        if len(xs) != len(self.convs):
            raise ValueError(f'FpnNeck expects {len(self.convs)} feature maps, got {len(xs)}')
        last = len(self.convs) - 1
        features, positions = [None] * len(xs), [None] * len(xs)
        previous = None
        for level in range(last, -1, -1):
            lateral = self.convs[last - level](xs[level])
            if previous is not None and level in self.fpn_top_down_levels:
                # upsample in float32 so low-precision runs fuse at full precision
                top_down = F.interpolate(
                    previous.to(dtype=torch.float32), scale_factor=2.0, mode=self.fpn_interp_model,
                    align_corners=None if self.fpn_interp_model == 'nearest' else False, antialias=False,
                )
                previous = lateral + top_down
                if self.fuse_type == 'avg':
                    previous = previous / 2
            else:
                previous = lateral
            features[level] = previous
            positions[level] = self.position_encoding(previous).to(previous.dtype)
        return features, positions


@BACKBONES.register_module()
class SAMV2ImageEncoder(nn.Module):
    """Trunk + FPN neck: (B, 3, H, W) -> dict of multi-scale features for SAM 2.

    Output dict: ``backbone_fpn`` (list of (B, d_model, H_i, W_i), highest resolution first, the
    ``scalp`` coarsest levels dropped), ``vision_pos_enc`` (matching position maps) and
    ``vision_features`` (the coarsest kept level, (B, d_model, H/16, W/16) for SAM 2 with scalp=1).

    Args:
        trunk: backbone cfg (BACKBONES) of the trunk, e.g. Hiera.
        neck: neck cfg (NECKS), whose ``backbone_channel_list`` must equal the trunk's ``channel_list``.
        scalp: number of coarsest levels to drop, in [0, number of levels).

    Raises:
        ValueError: the trunk and neck channel lists differ, or ``scalp`` is out of range.
    """

    def __init__(self, trunk, neck, scalp=0):
        super().__init__()
        self.trunk = BuildBackbone(trunk)
        self.neck = BuildNeck(neck)
        trunk_channels = list(getattr(self.trunk, 'channel_list', []))
        neck_channels = list(getattr(self.neck, 'backbone_channel_list', []))
        if trunk_channels != neck_channels:
            raise ValueError(f'trunk channel_list {trunk_channels} must equal neck backbone_channel_list '
                             f'{neck_channels}')
        if not isinstance(scalp, int) or not 0 <= scalp < len(neck_channels):
            raise ValueError(f'scalp must be an int in [0, {len(neck_channels)}) (levels to drop), got {scalp!r}')
        self.scalp = scalp

    def forward(self, sample: torch.Tensor) -> dict:
        """sample (B, 3, H, W) normalized image -> {'vision_features', 'vision_pos_enc', 'backbone_fpn'}.

        Args:
            sample: (B, 3, H, W) floating normalized image.

        Returns:
            Dict with ``vision_features`` (B, d_model, h, w) tensor (the coarsest kept level) and the lists
            ``vision_pos_enc`` and ``backbone_fpn`` of (B, d_model, H_i, W_i) maps, highest resolution first.
        """
        features, positions = self.neck(self.trunk(sample))
        if self.scalp > 0:
            features, positions = features[:-self.scalp], positions[:-self.scalp]
        return {'vision_features': features[-1], 'vision_pos_enc': positions, 'backbone_fpn': features}
