"""A tiny SAMV2 (Hiera with 8 channels, 32-wide heads, 128 px input) with seeded random weights: what the
unit tests run, and the reduced config of the long-stream benchmark. It exercises every code path of the
shipped SAM 2.1 / SAM 2 tiny configs at a small fraction of their cost; its outputs mean nothing.
"""
import copy
import os
from typing import Union

import torch

from ssseg.modules.utils.configs import loadsegmentorcfg


def tinycfg(version: str = '2.1') -> dict:
    """The tiny config.

    Args:
        version: '2.1' (from samv21_hiera_tiny) or '2' (from samv2_hiera_tiny).
    Returns:
        A SAMV2 config dict without a checkpoint.
    """
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


def writetinyckpt(path: Union[str, os.PathLike], version: str = '2.1', seed: int = 0) -> dict:
    """Build the tiny model with seeded random weights and save it in Meta's ``{'model': state_dict}`` format.

    Args:
        path: the checkpoint file to write.
        version: as for :func:`tinycfg`.
        seed: the seed of the random weights.
    Returns:
        The tiny config with ``ckptpath`` set to ``path``.
    """
    from ssseg.modules import BuildSegmentor
    cfg = tinycfg(version)
    torch.manual_seed(seed)
    model = BuildSegmentor(cfg)
    torch.save({'model': model.state_dict()}, path)
    cfg['ckptpath'] = os.fspath(path)
    return cfg
