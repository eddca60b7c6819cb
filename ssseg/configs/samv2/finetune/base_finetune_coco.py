"""Image fine-tuning on a COCO instance file and its image folder: each image is a one-frame clip (one click or a
box, then correction clicks) with up to 3 of its objects."""
_base_ = './base_finetune.py'

TRAIN_CFG = dict(
    max_iters=20000,
    dataset=dict(type='COCOInstanceDataset', max_num_objects=3),
)
