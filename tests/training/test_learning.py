"""Fine-tuning learns: the tiny model, from random weights, trained on synthetic shapes (coloured ellipses,
rectangles and triangles on striped, noisy backgrounds) for a few hundred iterations, segments held-out images from
one centre click far better than the checkpoint it started from.

Reduced recipe, for a test that runs in a couple of minutes: the tiny model at 128 px, no correction clicks (the
first click or box only), a rate of 3e-3 for every parameter without clipping (random weights need far more than
Meta's 5e-6 for a pretrained model), 4 images per iteration. Everything else is the shipped COCO recipe.
"""
import json

import numpy as np
import pytest
import torch

from ssseg.evaluation import evaluateimages
from ssseg.modules.datasets import COCOInstanceDataset
from ssseg.modules.models.segmentors.samv2 import SAMV2ImagePredictor
from ssseg.testing.shapes import writecocoshapes
from ssseg.training.config import loadfinetunecfg
from ssseg.training.runner import buildrunner

from trainhelpers import metatinycfg, writetinytrainconfig

ITERS, LR = 300, 3e-3


def _miou(ckptpath, held):
    predictor = SAMV2ImagePredictor(samv2_cfg=dict(metatinycfg(), ckptpath=str(ckptpath)), device='cpu')
    return evaluateimages(predictor, COCOInstanceDataset(*held, image_size=128))['miou_click']


@pytest.fixture
def twothreads():
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(threads)


def test_held_out_one_click_miou_rises(tmp_path, tinyckpt, twothreads):
    train = writecocoshapes(tmp_path / 'train', n_images=24, size=(96, 128), seed=0)
    held = writecocoshapes(tmp_path / 'held', n_images=8, size=(96, 128), seed=1)
    optim = dict(optimizer=dict(lr=LR), paramwise_cfg=dict(vision_lr=LR), clip_grad=None)
    config = writetinytrainconfig(tmp_path, 'samv21_hiera_tiny_coco', tinyckpt, num_workers=0, log_interval=50,
                                  checkpoint=dict(interval=ITERS), prompt_sampler=dict(num_correction_pt_per_frame=0),
                                  optim_wrapper=optim)
    cfg = loadfinetunecfg(config, {'TRAIN_CFG.max_iters': ITERS, 'TRAIN_CFG.batch_size': 4})
    cfg['TRAIN_CFG']['dataset'].update(ann_file=train[0], img_dir=train[1])
    buildrunner(cfg, str(tmp_path / 'work'), device='cpu').train()
    with open(tmp_path / 'work' / 'losses.jsonl', encoding='utf-8') as file:
        losses = [json.loads(line)['loss'] for line in file]
    assert len(losses) == ITERS and np.mean(losses[-50:]) < 0.5 * np.mean(losses[:10])
    start, final = _miou(tinyckpt, held), _miou(tmp_path / 'work' / 'model_final.pt', held)
    print(f'held-out one-click mIoU: {start:.3f} at the start, {final:.3f} after {ITERS} iterations')
    assert final > 3 * start and final > start + 0.1, (start, final)
