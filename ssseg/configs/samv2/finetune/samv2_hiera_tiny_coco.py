"""SAM 2 Hiera-T fine-tuned on COCO-style instance masks (from Meta's sam2_hiera_tiny.pt)."""
_base_ = ['../samv2_hiera_tiny.py', './base_finetune_coco.py']

SEGMENTOR_CFG = dict(image_encoder=dict(trunk=dict(drop_path_rate=0.1)))  # stochastic depth, as Meta trains
