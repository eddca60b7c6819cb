"""Image-encoder settings of the larger Hiera trunks (the base configs use Hiera-T), shared by SAM 2 and SAM 2.1.

A model config takes one with mmengine's base-variable reference, e.g.
``image_encoder={{_base_.HIERA_LARGE}}``; dicts merge key by key into the base config's image encoder.
"""
HIERA_SMALL = dict(trunk=dict(stages=[1, 2, 11, 2], global_att_blocks=[7, 10, 13]))
HIERA_BASEPLUS = dict(
    trunk=dict(embed_dim=112, num_heads=2, stages=[2, 3, 16, 3], global_att_blocks=[12, 16, 20],
               window_pos_embed_bkg_spatial_size=[14, 14]),
    neck=dict(backbone_channel_list=[896, 448, 224, 112]),
)
HIERA_LARGE = dict(
    trunk=dict(embed_dim=144, num_heads=2, stages=[2, 6, 36, 4], global_att_blocks=[23, 33, 43],
               window_pos_embed_bkg_spatial_size=[7, 7], window_spec=[8, 4, 16, 8]),
    neck=dict(backbone_channel_list=[1152, 576, 288, 144]),
)
