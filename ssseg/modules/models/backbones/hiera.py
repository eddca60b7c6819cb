"""Hiera trunk (hierarchical ViT used by SAM 2): windowed/global attention blocks with query pooling between stages.

Tokens travel channel-last, (B, H, W, C); the trunk returns channel-first maps (B, C_i, H_i, W_i),
highest resolution first. Parameter names match Meta's checkpoints (``image_encoder.trunk.*``).
"""
from typing import List

import torch
import torch.nn as nn
import torch.nn.functional as F

from ssseg.modules.models.registries import BACKBONES
from ssseg.modules.utils.checks import checkintlist

from ..bricks.layers import MLP, DropPath


def _windowpartition(x, window_size):
    """Split (B, H, W, C) into (B * nWin, ws, ws, C) windows, zero-padding H and W up to multiples of ws.

    Returns the windows and the padded size (Hp, Wp).
    """
    batch, height, width, channels = x.shape
    pad_h = (window_size - height % window_size) % window_size
    pad_w = (window_size - width % window_size) % window_size
    if pad_h or pad_w:
        x = F.pad(x, (0, 0, 0, pad_w, 0, pad_h))
    padded_h, padded_w = height + pad_h, width + pad_w
    x = x.view(batch, padded_h // window_size, window_size, padded_w // window_size, window_size, channels)
    windows = x.permute(0, 1, 3, 2, 4, 5).reshape(-1, window_size, window_size, channels)
    return windows, (padded_h, padded_w)


def _windowunpartition(windows, window_size, padded_hw, hw):
    """Inverse of ``_windowpartition``: (B * nWin, ws, ws, C) -> (B, H, W, C), cropping the padding."""
    (padded_h, padded_w), (height, width) = padded_hw, hw
    rows, cols = padded_h // window_size, padded_w // window_size
    x = windows.reshape(-1, rows, cols, window_size, window_size, windows.shape[-1])
    x = x.permute(0, 1, 3, 2, 4, 5).reshape(x.shape[0], padded_h, padded_w, -1)
    if padded_h > height or padded_w > width:
        x = x[:, :height, :width, :]
    return x


def _pool(x, pool):
    """Apply a channel-first pooling layer to channel-last tokens (B, H, W, C) -> (B, H', W', C)."""
    return pool(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)


class PatchEmbed(nn.Module):
    """Overlapping 7x7 stride-4 patch projection: (B, 3, H, W) -> (B, H/4, W/4, C).

    Args:
        embed_dim: C, output channels.
        in_chans: input channels.
        kernel_size, stride, padding: of the projecting conv.
    """

    def __init__(self, embed_dim, in_chans=3, kernel_size=(7, 7), stride=(4, 4), padding=(3, 3)):
        super().__init__()
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=kernel_size, stride=stride, padding=padding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Project patches to channel-last tokens.

        Args:
            x: (B, in_chans, H, W) floating image.

        Returns:
            (B, H/4, W/4, embed_dim) channel-last tokens (with the default kernel, stride and padding).
        """
        return self.proj(x).permute(0, 2, 3, 1)


class MultiScaleAttention(nn.Module):
    """Multi-head self-attention on (B, H, W, dim) tokens -> (B, H', W', dim_out); queries optionally pooled.

    Args:
        dim: input channels.
        dim_out: output channels, also the attention width split over the heads.
        num_heads: attention heads.
        q_pool: None, or a channel-first pooling module applied to the queries (it sets H', W').
    """

    def __init__(self, dim, dim_out, num_heads, q_pool=None):
        super().__init__()
        self.num_heads = num_heads
        self.q_pool = q_pool
        self.qkv = nn.Linear(dim, dim_out * 3)
        self.proj = nn.Linear(dim_out, dim_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Attend over all tokens of x (one window or the whole map).

        Args:
            x: (B, H, W, dim) channel-last tokens.

        Returns:
            (B, H', W', dim_out) channel-last tokens; (H', W') is (H, W) pooled by ``q_pool``, or (H, W).
        """
        batch, height, width, _ = x.shape
        qkv = self.qkv(x).reshape(batch, height * width, 3, self.num_heads, -1)
        q, k, v = qkv.unbind(2)  # each (B, H*W, heads, head_dim)
        if self.q_pool is not None:
            # pooling the queries alone halves the output resolution at stage transitions
            q = _pool(q.reshape(batch, height, width, -1), self.q_pool)
            height, width = q.shape[1:3]
            q = q.reshape(batch, height * width, self.num_heads, -1)
        x = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
        x = x.transpose(1, 2).reshape(batch, height, width, -1)
        return self.proj(x)


class MultiScaleBlock(nn.Module):
    """Pre-norm transformer block on (B, H, W, dim) -> (B, H', W', dim_out).

    ``window_size`` > 0 restricts attention to non-overlapping windows (0 means global attention);
    ``q_stride`` pools the queries and the shortcut, so the block also downsamples.

    Args:
        dim: input channels.
        dim_out: output channels (a linear layer projects the shortcut when they differ).
        num_heads: attention heads.
        mlp_ratio: hidden width of the MLP as a multiple of ``dim_out``.
        drop_path: stochastic depth probability of both residual branches.
        q_stride: None, or the (sy, sx) max-pooling kernel and stride of the queries and shortcut.
        window_size: side of the attention windows; 0 means global attention.
    """

    def __init__(self, dim, dim_out, num_heads, mlp_ratio=4.0, drop_path=0.0, q_stride=None, window_size=0):
        super().__init__()
        self.dim, self.dim_out = dim, dim_out
        self.window_size = window_size
        self.q_stride = q_stride
        self.pool = None if q_stride is None else nn.MaxPool2d(kernel_size=q_stride, stride=q_stride, ceil_mode=False)
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = MultiScaleAttention(dim, dim_out, num_heads=num_heads, q_pool=self.pool)
        self.drop_path = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()
        self.norm2 = nn.LayerNorm(dim_out, eps=1e-6)
        self.mlp = MLP(dim_out, int(dim_out * mlp_ratio), dim_out, num_layers=2, activation='gelu')
        if dim != dim_out:
            self.proj = nn.Linear(dim, dim_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the block.

        Args:
            x: (B, H, W, dim) channel-last tokens.

        Returns:
            (B, H', W', dim_out) channel-last tokens, (H', W') = (H // sy, W // sx) with ``q_stride``, else (H, W).
        """
        shortcut = x
        x = self.norm1(x)
        if self.dim != self.dim_out:
            # the widened shortcut comes from the normalized tokens, pooled like the queries
            shortcut = self.proj(x)
            if self.pool is not None:
                shortcut = _pool(shortcut, self.pool)
        window_size = self.window_size
        if window_size > 0:
            x, padded_hw = _windowpartition(x, window_size)
        x = self.attn(x)
        if window_size > 0:
            if self.q_stride is not None:
                # each window shrank by the stride; the padded grid shrinks with it
                window_size = window_size // self.q_stride[0]
                padded_hw = (padded_hw[0] // self.q_stride[0], padded_hw[1] // self.q_stride[1])
            x = _windowunpartition(x, window_size, padded_hw, shortcut.shape[1:3])
        x = shortcut + self.drop_path(x)
        return x + self.drop_path(self.mlp(self.norm2(x)))


@BACKBONES.register_module()
class Hiera(nn.Module):
    """Hiera trunk: (B, 3, H, W) -> list of (B, C_i, H_i, W_i), highest resolution first.

    Stage i outputs C_i = embed_dim * dim_mul^i channels on the H/4 x W/4 token grid halved (floor) at
    each pooled stage transition: H/4, H/8, H/16, H/32 with the default q_pool=3.

    H / 4 and W / 4 must be multiples of ``window_spec[0]`` (the tiled window position embedding).
    ``channel_list`` gives the output widths lowest resolution first, the order the FPN neck expects.

    Args:
        embed_dim: channels of the first stage.
        num_heads: attention heads of the first stage.
        drop_path_rate: stochastic depth of the last block, rising linearly from 0 over the blocks.
        q_pool: number of stage transitions (the first ones) that pool the tokens.
        q_stride: (sy, sx) pooling stride at those transitions.
        stages: number of blocks per stage.
        dim_mul: channel multiplier at each stage transition.
        head_mul: head-count multiplier at each stage transition.
        window_pos_embed_bkg_spatial_size: (h, w) of the background position embedding (resized bicubically).
        window_spec: window size per stage; ``window_spec[0]`` also sizes the tiled window embedding.
        global_att_blocks: None, or indices of the blocks that attend globally.
        return_interm_layers: return every stage end, else only the last.

    Raises:
        ValueError: an argument is malformed or out of range, ``dim_mul`` leaves the width unchanged at a pooled
            transition, or a pooled window is not a multiple of a square ``q_stride``.
    """

    def __init__(self, embed_dim=96, num_heads=1, drop_path_rate=0.0, q_pool=3, q_stride=(2, 2), stages=(2, 3, 16, 3),
                 dim_mul=2.0, head_mul=2.0, window_pos_embed_bkg_spatial_size=(14, 14), window_spec=(8, 4, 14, 7),
                 global_att_blocks=(12, 16, 20), return_interm_layers=True):
        super().__init__()
        checkintlist('stages', stages, minimum=1)
        checkintlist('window_spec', window_spec, length=len(stages))
        checkintlist('q_stride', q_stride, length=2, minimum=1)
        checkintlist('window_pos_embed_bkg_spatial_size', window_pos_embed_bkg_spatial_size, length=2, minimum=1)
        depth = sum(stages)
        if not isinstance(q_pool, int) or not 0 <= q_pool <= len(stages) - 1:
            raise ValueError(f'q_pool must be an int in [0, {len(stages) - 1}] (one per stage transition), got '
                             f'{q_pool!r}')
        if global_att_blocks is not None:
            if not isinstance(global_att_blocks, (list, tuple)) \
                    or not all(isinstance(i, int) and 0 <= i < depth for i in global_att_blocks):
                raise ValueError(f'global_att_blocks must be None or a list of block indices in [0, {depth}), '
                                 f'got {global_att_blocks!r}')
        if window_spec[0] < 1:
            raise ValueError('window_spec[0] sizes the window position embedding and must be >= 1, got '
                             f'{window_spec!r}')
        self.window_spec = window_spec
        self.q_stride = q_stride
        self.global_att_blocks = global_att_blocks
        self.return_interm_layers = return_interm_layers
        self.stage_ends = [sum(stages[:i + 1]) - 1 for i in range(len(stages))]
        self.q_pool_blocks = [end + 1 for end in self.stage_ends[:-1]][:q_pool]
        self.patch_embed = PatchEmbed(embed_dim=embed_dim)
        # background embedding resized to the token grid, plus one window-sized embedding tiled over it
        self.pos_embed = nn.Parameter(torch.zeros(1, embed_dim, *window_pos_embed_bkg_spatial_size))
        self.pos_embed_window = nn.Parameter(torch.zeros(1, embed_dim, window_spec[0], window_spec[0]))
        drop_rates = torch.linspace(0, drop_path_rate, depth).tolist()
        self.blocks = nn.ModuleList()
        stage, dim = 0, embed_dim
        for index in range(depth):
            # a stage's first block still uses the previous stage's window (it does the pooling)
            window_size = window_spec[stage]
            if global_att_blocks is not None and index in global_att_blocks:
                window_size = 0
            dim_out = dim
            if index - 1 in self.stage_ends:
                dim_out, num_heads, stage = int(dim * dim_mul), int(num_heads * head_mul), stage + 1
            pooled = index in self.q_pool_blocks
            if pooled and dim_out == dim:
                raise ValueError(f'dim_mul must change the width at pooled stage transitions, got dim_mul={dim_mul!r}')
            if pooled and window_size > 0 and (q_stride[0] != q_stride[1] or window_size % q_stride[0]):
                # pooled windows must stay square windows of a whole size
                raise ValueError(f'window_spec[{stage - 1}]={window_size} (used by pooling block {index}) must be a '
                                 'multiple '
                                 f'of a square q_stride, got q_stride={q_stride!r}')
            self.blocks.append(MultiScaleBlock(
                dim=dim, dim_out=dim_out, num_heads=num_heads, drop_path=drop_rates[index],
                q_stride=tuple(q_stride) if pooled else None, window_size=window_size,
            ))
            dim = dim_out
        ends = self.stage_ends[::-1] if return_interm_layers else self.stage_ends[-1:]
        self.channel_list = [self.blocks[i].dim_out for i in ends]

    # runs eagerly under torch.compile: its cache is a Python-side effect a graph cannot hold
    @torch.compiler.disable
    def _posembed(self, height, width):
        """Position embedding for an (H, W) token grid, channel-last (1, H, W, C).

        Without autograd it is cached per grid, device and parameter version (the bicubic resize costs
        about 50 ms on a CPU for a 1024 x 1024 input, every image or video frame otherwise).
        """
        window = self.pos_embed_window
        if height % window.shape[-2] or width % window.shape[-1]:
            raise ValueError(f'the token grid ({height}, {width}) (input size / 4) must be a multiple of '
                             f'window_spec[0]={window.shape[-1]}')
        if (torch.is_grad_enabled() and (self.pos_embed.requires_grad or window.requires_grad)) or (
                self.pos_embed.is_inference() or window.is_inference()):
            # training, or weights created under inference_mode (no version counter to watch)
            return self._interpolateposembed(height, width)
        key = (height, width, self.pos_embed.device, self.pos_embed.dtype, self.pos_embed.data_ptr(), window.data_ptr(),
               self.pos_embed._version, window._version)
        if getattr(self, '_posembedcache', (None,))[0] != key:
            with torch.no_grad():
                # a plain tensor, not an inference tensor, so that the cache also serves later no_grad calls
                with torch.inference_mode(False):
                    self._posembedcache = (key, self._interpolateposembed(height, width))
        return self._posembedcache[1]

    def _interpolateposembed(self, height, width):
        window = self.pos_embed_window
        pos_embed = F.interpolate(self.pos_embed, size=(height, width), mode='bicubic')
        pos_embed = pos_embed + window.tile(1, 1, height // window.shape[-2], width // window.shape[-1])
        return pos_embed.permute(0, 2, 3, 1)

    def forward(self, x: torch.Tensor) -> List[torch.Tensor]:
        """x (B, 3, H, W) -> list of (B, C_i, H_i, W_i) at every stage end (or only the last).

        Args:
            x: (B, 3, H, W) floating normalized image; H / 4 and W / 4 multiples of ``window_spec[0]``.

        Returns:
            List of channel-first (B, C_i, H_i, W_i) maps, highest resolution first.

        Raises:
            ValueError: the (H/4, W/4) token grid is not a multiple of ``window_spec[0]``.
        """
        x = self.patch_embed(x)
        x = x + self._posembed(x.shape[1], x.shape[2])
        outputs = []
        for index, block in enumerate(self.blocks):
            x = block(x)
            if index == self.stage_ends[-1] or (self.return_interm_layers and index in self.stage_ends):
                outputs.append(x.permute(0, 3, 1, 2))
        return outputs
