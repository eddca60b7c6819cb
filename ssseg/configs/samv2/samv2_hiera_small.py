"""SAM 2 with a Hiera-S trunk: Meta's sam2_hiera_small.pt."""
_base_ = './base_cfg.py'

SEGMENTOR_CFG = dict(
    ckptpath='https://dl.fbaipublicfiles.com/segment_anything_2/072824/sam2_hiera_small.pt',
    image_encoder=dict(
        trunk=dict(stages=[1, 2, 11, 2], global_att_blocks=[7, 10, 13]),
    ),
)
