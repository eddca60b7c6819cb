"""What the tests share: tiny random configs, parity assertions, synthetic videos, and the testing tools of ssseg.

Random-weight checkpoints in Meta's format and synthetic images come from :mod:`ssseg.testing` (the
benchmark script uses them too); the rest is only for tests.
"""
import contextlib
import copy
import os

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from ssseg.modules.utils.configs import loadsegmentorcfg
from ssseg.testing import CHECKPOINT_NAMES, ORACLE_CONFIGS, buildoraclemodel, syntheticimage, writerandomcheckpoint  # noqa: F401 (shared with the tests)

# the synthetic video of makeframes(): frames and size
NUM_FRAMES, H, W = 30, 60, 80
# (H, W) of the edge-case masks the mask helpers are tested on
MASK_SIZES = [(37, 53), (53, 37), (1, 1), (1, 9), (9, 1), (2, 2), (64, 48)]


def tinycfg(version='2.1'):
    cfg = loadsegmentorcfg('samv21_hiera_tiny' if version == '2.1' else 'samv2_hiera_tiny')
    dim, mem = 32, 16
    cfg['image_size'] = 128
    cfg['image_encoder']['trunk'] = {'type': 'Hiera', 'embed_dim': 8, 'num_heads': 1, 'stages': [1, 1, 2, 1],
                                     'global_att_blocks': [2], 'window_spec': [4, 4, 2, 2],
                                     'window_pos_embed_bkg_spatial_size': [4, 4]}
    cfg['image_encoder']['neck'].update({'d_model': dim, 'backbone_channel_list': [64, 32, 16, 8]})
    cfg['image_encoder']['neck']['position_encoding']['num_pos_feats'] = dim
    attention = cfg['memory_attention']
    attention.update({'d_model': dim, 'num_layers': 1})
    attention['layer'].update({'d_model': dim, 'dim_feedforward': 64})
    attention['layer']['self_attention'].update({'embedding_dim': dim, 'feat_sizes': [8, 8]})
    attention['layer']['cross_attention'].update({'embedding_dim': dim, 'feat_sizes': [8, 8], 'kv_in_dim': mem})
    encoder = cfg['memory_encoder']
    encoder.update({'out_dim': mem, 'in_dim': dim})
    encoder['position_encoding']['num_pos_feats'] = mem
    encoder['mask_downsampler']['embed_dim'] = dim
    encoder['fuser']['layer']['dim'] = dim
    cfg['mask_decoder'].update({'iou_head_hidden_dim': dim})
    cfg['mask_decoder']['transformer'].update({'embedding_dim': dim, 'mlp_dim': 64, 'num_heads': 2})
    return copy.deepcopy(cfg)


def writetinyckpt(path, version='2.1', seed=0):
    """Build the tiny model with seeded random weights and save it in Meta's format; returns its cfg."""
    from ssseg.modules import BuildSegmentor
    cfg = tinycfg(version)
    torch.manual_seed(seed)
    model = BuildSegmentor(cfg)
    torch.save({'model': model.state_dict()}, path)
    cfg['ckptpath'] = os.fspath(path)
    return cfg


def perturbed(module, seed, scale=0.05):
    """Add seeded noise to every float tensor of the state dict so no parameter keeps its init value."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for tensor in module.state_dict().values():
            if tensor.is_floating_point():
                tensor.add_(scale * torch.randn(tensor.shape, generator=generator))
    return module.eval()


def assertclose(ours, theirs, rtol=1e-4):
    """Max abs error within ``rtol`` of the output scale (at least 1)."""
    assert ours.shape == theirs.shape, f'shape {tuple(ours.shape)} != {tuple(theirs.shape)}'
    if theirs.numel() == 0:
        return
    error = (ours - theirs).abs().max().item()
    assert error <= rtol * max(1.0, theirs.abs().max().item()), f'max abs error {error:.3g}'


@contextlib.contextmanager
def temporaryattributes(objects, **values):
    """Set the same attributes on every object (ours and Meta's) for the duration of a block."""
    saved = [{key: getattr(obj, key) for key in values} for obj in objects]
    for obj in objects:
        for key, value in values.items():
            setattr(obj, key, value)
    try:
        yield
    finally:
        for obj, old in zip(objects, saved):
            for key, value in old.items():
                setattr(obj, key, value)


def makeframes(n=NUM_FRAMES, h=H, w=W):
    """A red square moving right and a green bar moving down on a grey gradient."""
    yy, xx = np.mgrid[0:h, 0:w]
    frames = []
    for t in range(n):
        frame = np.stack([xx * 2, yy * 3, np.full_like(xx, 90)], -1).astype(np.uint8)
        frame[10:30, 5 + t:25 + t] = (210, 40, 40)
        frame[30 + t // 2:45 + t // 2, 50:70] = (40, 200, 60)
        frames.append(frame)
    return frames


def snapshot(result):
    """A call's result with its obj_ids list and mask tensor copied (later calls must not change it)."""
    frame_idx, obj_ids, masks = result
    return frame_idx, list(obj_ids), masks.clone()


def smoothmasks(n, h, w, seed, threshold=0.0):
    """(n, h, w) bool blobs, plus (n, h, w) float logits they come from."""
    generator = torch.Generator().manual_seed(seed)
    coarse = torch.randn(n, 1, max(2, h // 8), max(2, w // 8), generator=generator) * 4
    logits = F.interpolate(coarse, (h, w), mode='bilinear', align_corners=False)[:, 0].contiguous()
    return logits > threshold, logits


def edgecasemasks(h, w, seed=0):
    """Empty, full, single pixels at the four corners and centre, border lines, random noise, smooth blobs."""
    masks = [torch.zeros(h, w, dtype=torch.bool), torch.ones(h, w, dtype=torch.bool)]
    for y, x in [(0, 0), (0, w - 1), (h - 1, 0), (h - 1, w - 1), (h // 2, w // 2)]:
        single = torch.zeros(h, w, dtype=torch.bool)
        single[y, x] = True
        masks += [single, ~single]
    for line in [(slice(None), 0), (slice(None), w - 1), (0, slice(None)), (h - 1, slice(None))]:
        border = torch.zeros(h, w, dtype=torch.bool)
        border[line] = True
        masks.append(border)
    generator = torch.Generator().manual_seed(seed)
    masks += list(torch.rand(4, h, w, generator=generator) > 0.5)
    masks += list(smoothmasks(4, h, w, seed)[0])
    return torch.stack(masks)


def writeclip(folder, num_frames=12, height=120, width=160):
    """A folder of JPEG frames (returned as a str): a textured background, a red disc moving right, a green
    block moving down."""
    folder.mkdir(parents=True, exist_ok=True)
    background = syntheticimage(height, width, seed=7)
    yy, xx = np.mgrid[0:height, 0:width]
    for t in range(num_frames):
        frame = background.copy()
        frame[(yy - 50) ** 2 + (xx - (30 + 6 * t)) ** 2 < 18 ** 2] = (220, 40, 40)
        frame[60 + 3 * t:95 + 3 * t, 100:140] = (40, 200, 60)
        cv2.imwrite(str(folder / f'{t:05d}.jpg'), np.ascontiguousarray(frame[..., ::-1]))
    return str(folder)
