"""Video fine-tuning on DAVIS-style folders (JPEGImages/<video>/*.jpg, Annotations/<video>/*.png): Meta's 8-frame
clips with up to 3 objects each."""
_base_ = './base_finetune.py'

TRAIN_CFG = dict(
    max_iters=10000,
    dataset=dict(type='DAVISVideoDataset', num_frames=8, max_num_objects=3),
)
