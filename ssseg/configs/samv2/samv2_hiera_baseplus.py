"""SAM 2 with a Hiera-B+ trunk: Meta's sam2_hiera_base_plus.pt."""
_base_ = './base_cfg.py'

SEGMENTOR_CFG = dict(
    ckptpath='https://dl.fbaipublicfiles.com/segment_anything_2/072824/sam2_hiera_base_plus.pt',
    image_encoder=dict(
        trunk=dict(embed_dim=112, num_heads=2, stages=[2, 3, 16, 3], global_att_blocks=[12, 16, 20],
                window_pos_embed_bkg_spatial_size=[14, 14]),
        neck=dict(backbone_channel_list=[896, 448, 224, 112]),
    ),
)
