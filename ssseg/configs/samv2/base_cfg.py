"""Shared SAMV2 settings: SAM 2 with a Hiera-T trunk. Each checkpoint's file inherits this through
mmengine's ``_base_`` and states only what differs (dicts merge key by key, lists are replaced)."""

SEGMENTOR_CFG = {
    'type': 'SAMV2',
    'ckptpath': 'https://dl.fbaipublicfiles.com/segment_anything_2/072824/sam2_hiera_tiny.pt',
    'image_encoder': {
        'type': 'SAMV2ImageEncoder',
        'scalp': 1,
        'trunk': {
            'type': 'Hiera', 'embed_dim': 96, 'num_heads': 1, 'stages': [1, 2, 7, 2],
            'global_att_blocks': [5, 7, 9], 'window_pos_embed_bkg_spatial_size': [7, 7],
        },
        'neck': {
            'type': 'FpnNeck', 'd_model': 256, 'backbone_channel_list': [768, 384, 192, 96],
            'fpn_top_down_levels': [2, 3], 'fpn_interp_model': 'nearest',
            'position_encoding': {'type': 'PositionEmbeddingSine', 'num_pos_feats': 256, 'normalize': True,
                                  'temperature': 10000},
        },
    },
    'memory_attention': {
        'type': 'MemoryAttention', 'd_model': 256, 'pos_enc_at_input': True, 'num_layers': 4,
        'layer': {
            'type': 'MemoryAttentionLayer', 'activation': 'relu', 'dim_feedforward': 2048, 'dropout': 0.1,
            'pos_enc_at_attn': False, 'd_model': 256, 'pos_enc_at_cross_attn_keys': True,
            'pos_enc_at_cross_attn_queries': False,
            'self_attention': {
                'type': 'RoPEAttention', 'rope_theta': 10000.0, 'feat_sizes': [64, 64], 'embedding_dim': 256,
                'num_heads': 1, 'downsample_rate': 1, 'dropout': 0.1,
            },
            'cross_attention': {
                'type': 'RoPEAttention', 'rope_theta': 10000.0, 'feat_sizes': [64, 64], 'rope_k_repeat': True,
                'embedding_dim': 256, 'num_heads': 1, 'downsample_rate': 1, 'dropout': 0.1, 'kv_in_dim': 64,
            },
        },
    },
    'memory_encoder': {
        'type': 'MemoryEncoder', 'out_dim': 64,
        'position_encoding': {'type': 'PositionEmbeddingSine', 'num_pos_feats': 64, 'normalize': True,
                              'temperature': 10000},
        'mask_downsampler': {'type': 'MaskDownSampler', 'kernel_size': 3, 'stride': 2, 'padding': 1},
        'fuser': {
            'type': 'Fuser', 'num_layers': 2,
            'layer': {'type': 'CXBlock', 'dim': 256, 'kernel_size': 7, 'padding': 3, 'layer_scale_init_value': 1e-6,
                      'use_dwconv': True},
        },
    },
    # embed_dim and image sizes come from the image encoder and image_size
    'prompt_encoder': {'type': 'PromptEncoder', 'mask_in_chans': 16},
    # transformer_dim and the switches shared with the model come from the model's options below
    'mask_decoder': {
        'type': 'MaskDecoder', 'num_multimask_outputs': 3, 'iou_head_depth': 3, 'iou_head_hidden_dim': 256,
        'transformer': {'type': 'TwoWayTransformer', 'depth': 2, 'embedding_dim': 256, 'mlp_dim': 2048, 'num_heads': 8},
    },
    'num_maskmem': 7,
    'image_size': 1024,
    'sigmoid_scale_for_mem_enc': 20.0,
    'sigmoid_bias_for_mem_enc': -10.0,
    'use_mask_input_as_output_without_sam': True,
    'directly_add_no_mem_embed': True,
    'use_high_res_features_in_sam': True,
    'multimask_output_in_sam': True,
    'iou_prediction_use_sigmoid': True,
    'use_obj_ptrs_in_encoder': True,
    'add_tpos_enc_to_obj_ptrs': False,
    'only_obj_ptrs_in_the_past_for_eval': True,
    'pred_obj_scores': True,
    'pred_obj_scores_mlp': True,
    'fixed_no_obj_ptr': True,
    'multimask_output_for_tracking': True,
    'use_multimask_token_for_obj_ptr': True,
    'multimask_min_pt_num': 0,
    'multimask_max_pt_num': 1,
    'use_mlp_for_obj_ptr_proj': True,
}
