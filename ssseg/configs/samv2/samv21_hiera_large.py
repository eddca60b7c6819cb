"""SAM 2.1 with a Hiera-L trunk: Meta's sam2.1_hiera_large.pt."""
_base_ = './base_cfg_samv21.py'

SEGMENTOR_CFG = dict(
    ckptpath='https://dl.fbaipublicfiles.com/segment_anything_2/092824/sam2.1_hiera_large.pt',
    image_encoder=dict(
        trunk=dict(embed_dim=144, num_heads=2, stages=[2, 6, 36, 4], global_att_blocks=[23, 33, 43],
                window_pos_embed_bkg_spatial_size=[7, 7], window_spec=[8, 4, 16, 8]),
        neck=dict(backbone_channel_list=[1152, 576, 288, 144]),
    ),
)
