"""SAM 2.1 with a Hiera-T trunk: Meta's sam2.1_hiera_tiny.pt."""
_base_ = './base_cfg_samv21.py'

SEGMENTOR_CFG = dict(
    ckptpath='https://dl.fbaipublicfiles.com/segment_anything_2/092824/sam2.1_hiera_tiny.pt',
)
