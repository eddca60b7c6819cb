"""SAM 2.1 with a Hiera-S trunk: Meta's sam2.1_hiera_small.pt."""
_base_ = ['./base_cfg_samv21.py', './hiera_trunks.py']

SEGMENTOR_CFG = dict(
    ckptpath='https://dl.fbaipublicfiles.com/segment_anything_2/092824/sam2.1_hiera_small.pt',
    image_encoder={{_base_.HIERA_SMALL}},
)
