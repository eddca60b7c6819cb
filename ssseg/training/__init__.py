"""Fine-tuning SAMV2 on one's own masks: mmengine's Runner around the model's training step.

    cfg = loadfinetunecfg('samv21_hiera_tiny_coco', {'TRAIN_CFG.max_iters': 1000})
    cfg['TRAIN_CFG']['dataset'].update(ann_file='ann.json', img_dir='images')
    buildrunner(cfg, 'work/coco').train()   # work/coco/model_final.pt: {'model': state_dict}, Meta's format
"""
from .config import availablefinetuneconfigs, loadfinetunecfg
from .model import SAMV2Finetuner, freezemodules
from .runner import buildmodel, buildrunner, processgroup, traindevice

__all__ = ['SAMV2Finetuner', 'availablefinetuneconfigs', 'buildmodel', 'buildrunner', 'freezemodules',
           'loadfinetunecfg', 'processgroup', 'traindevice']
