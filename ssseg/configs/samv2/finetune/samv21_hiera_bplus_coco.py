"""SAM 2.1 Hiera-B+ fine-tuned on COCO-style instance masks (from Meta's sam2.1_hiera_base_plus.pt)."""
_base_ = ['../samv21_hiera_baseplus.py', './base_finetune_coco.py']

SEGMENTOR_CFG = dict(image_encoder=dict(trunk=dict(drop_path_rate=0.1)))  # stochastic depth, as Meta trains
