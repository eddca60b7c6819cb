"""SAM 2.1 on top of the SAM 2 base: a spatial no-object embedding and signed, projected temporal
encodings of object pointers."""
_base_ = './base_cfg.py'

SEGMENTOR_CFG = dict(
    ckptpath='https://dl.fbaipublicfiles.com/segment_anything_2/092824/sam2.1_hiera_tiny.pt',
    no_obj_embed_spatial=True,
    add_tpos_enc_to_obj_ptrs=True,
    proj_tpos_enc_in_obj_ptrs=True,
    use_signed_tpos_enc_to_obj_ptrs=True,
)
