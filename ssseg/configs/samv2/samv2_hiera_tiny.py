"""SAM 2 with a Hiera-T trunk: Meta's sam2_hiera_tiny.pt."""
_base_ = './base_cfg.py'

SEGMENTOR_CFG = dict(
    ckptpath='https://dl.fbaipublicfiles.com/segment_anything_2/072824/sam2_hiera_tiny.pt',
)
