"""SAM 2 with a Hiera-L trunk: Meta's sam2_hiera_large.pt."""
_base_ = ['./base_cfg.py', './hiera_trunks.py']

SEGMENTOR_CFG = dict(
    ckptpath='https://dl.fbaipublicfiles.com/segment_anything_2/072824/sam2_hiera_large.pt',
    image_encoder={{_base_.HIERA_LARGE}},
)
