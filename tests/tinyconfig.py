"""A tiny random SAMV2 config (128 x 128 input, 32 channels) for fast unit tests of shapes and errors."""
import copy
import os

import torch

from ssseg.modules.utils.configs import loadsegmentorcfg


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
