"""SAM 2 with a Hiera-B+ trunk: Meta's sam2_hiera_base_plus.pt."""
_base_ = ['./base_cfg.py', './hiera_trunks.py']

SEGMENTOR_CFG = dict(
    ckptpath='https://dl.fbaipublicfiles.com/segment_anything_2/072824/sam2_hiera_base_plus.pt',
    image_encoder={{_base_.HIERA_BASEPLUS}},
)
