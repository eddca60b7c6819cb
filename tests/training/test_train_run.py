"""Fine-tuning runs on the tiny model and synthetic DAVIS-style videos.

- ``ssseg train`` end to end: the work dir holds resumable checkpoints, one losses.jsonl line per iteration and
  model_final.pt, which loads strictly into our SAMV2 and into Meta's ``build_sam2``, and gives the same predictions
  through our image predictor and Meta's; ``--resume`` continues the loss file without repeating an iteration.
- A run stopped after k iterations and resumed ends with the weights of an uninterrupted run, bitwise. Dropout stays
  on here: the model reseeds torch's generator from (seed, iteration, rank) at every step (``step_seed``), so the
  resumed steps draw the masks the uninterrupted ones drew.
- Frozen modules keep their weights bitwise, while the others train.
"""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from mmengine.hooks import Hook

from ssseg.modules import BuildSegmentor
from ssseg.modules.models.segmentors.samv2 import SAMV2ImagePredictor
from ssseg.testing import syntheticimage
from ssseg.training.config import loadfinetunecfg
from ssseg.training.runner import buildrunner

from trainhelpers import REPO, buildmetatiny, metatinycfg, runssseg

pytestmark = pytest.mark.usefixtures('onethread')
LOSS_KEYS = {'iter', 'lr', 'vision_lr', 'loss', 'loss_mask', 'loss_dice', 'loss_iou', 'loss_class'}


def _lines(work_dir):
    with open(os.path.join(work_dir, 'losses.jsonl'), encoding='utf-8') as file:
        return [json.loads(line) for line in file]


def _final(work_dir):
    return torch.load(os.path.join(work_dir, 'model_final.pt'), weights_only=True)['model']


@pytest.fixture(scope='module')
def trained(tmp_path_factory, tinydavisconfig, davisdir):
    """A 4-iteration ``ssseg train`` run (2 clips per iteration) -> its work dir."""
    work_dir = tmp_path_factory.mktemp('run') / 'work'
    result = runssseg(['train', '--cfg', tinydavisconfig, '--work-dir', str(work_dir), '--train-videos',
                       str(davisdir), '--max-iters', '4', '--batch-size', '2', '--device', 'cpu'])
    assert result.returncode == 0, result.stderr[-3000:]
    return work_dir


def test_work_dir_contents(trained, tinyckpt):
    names = set(os.listdir(trained))
    assert {'iter_2.pth', 'iter_4.pth', 'last_checkpoint', 'losses.jsonl', 'model_final.pt'} <= names
    lines = _lines(trained)
    assert [line['iter'] for line in lines] == [1, 2, 3, 4]
    assert all(set(line) == LOSS_KEYS and np.isfinite(line['loss']) for line in lines)
    # Meta's cosine: the rate falls from 5e-6 towards a tenth of it, the vision rate keeps its 3/5
    assert lines[0]['lr'] == pytest.approx(5e-6) and lines[0]['vision_lr'] == pytest.approx(3e-6)
    assert lines[0]['lr'] > lines[-1]['lr'] > 5e-7
    # the resumable checkpoint reads with weights_only (no pickled Python objects)
    checkpoint = torch.load(trained / 'iter_4.pth', weights_only=True)
    assert checkpoint['meta']['iter'] == 4 and {'optimizer', 'param_schedulers', 'state_dict'} <= set(checkpoint)
    start = torch.load(tinyckpt, weights_only=True)['model']
    final = _final(trained)
    assert sorted(final) == sorted(start)
    assert any(not torch.equal(final[k], start[k]) for k in final)


def test_final_checkpoint_loads_strictly_in_ours_and_metas(trained):
    path = str(trained / 'model_final.pt')
    ours = BuildSegmentor(metatinycfg()).loadckpt(path)  # strict
    theirs = buildmetatiny(path)  # build_sam2 loads strictly and raises on any missing or unexpected key
    assert torch.equal(ours.sam_mask_decoder.iou_token.weight, theirs.sam_mask_decoder.iou_token.weight)


def test_final_checkpoint_gives_metas_predictions(trained):
    from sam2.sam2_image_predictor import SAM2ImagePredictor
    path = str(trained / 'model_final.pt')
    ours = SAMV2ImagePredictor(samv2_cfg=dict(metatinycfg(), ckptpath=path), device='cpu')
    theirs = SAM2ImagePredictor(buildmetatiny(path, apply_postprocessing=True))
    side = metatinycfg()['image_size']
    theirs._bb_feat_sizes = [(side // 4, side // 4), (side // 8, side // 8), (side // 16, side // 16)]  # Meta: 1024
    image = syntheticimage(96, 128, seed=3)
    prompts = dict(point_coords=np.array([[40.0, 50.0]]), point_labels=np.array([1]), multimask_output=True,
                   return_logits=True)
    with torch.no_grad():
        ours.setimage(image)
        theirs.set_image(image)
        mine, official = ours.predict(**prompts), theirs.predict(**prompts)
    for a, b in zip(mine, official):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4 * max(1.0, float(np.abs(b).max())))


def test_resume_continues_the_loss_file(trained, tmp_path, tinydavisconfig, davisdir):
    result = runssseg(['train', '--cfg', tinydavisconfig, '--work-dir', str(trained), '--train-videos',
                       str(davisdir), '--max-iters', '5', '--batch-size', '2', '--device', 'cpu', '--resume'])
    assert result.returncode == 0, result.stderr[-3000:]
    assert [line['iter'] for line in _lines(trained)] == [1, 2, 3, 4, 5]
    assert os.path.isfile(trained / 'iter_5.pth')


def test_images_through_train_sh(tmp_path, tinycococonfig, cocodata):
    ann_file, img_dir = cocodata
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHON=sys.executable)
    result = subprocess.run(['bash', os.path.join(REPO, 'scripts', 'train.sh'), '--cfg', tinycococonfig, '--work-dir',
                             str(tmp_path / 'work'), '--train-ann', str(ann_file), '--train-images', str(img_dir),
                             '--max-iters', '2', '--batch-size', '2', '--device', 'cpu', '--lr', '1e-4'],
                            capture_output=True, text=True, cwd=REPO, env=env, timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = _lines(tmp_path / 'work')
    assert [line['iter'] for line in lines] == [1, 2] and lines[0]['lr'] == pytest.approx(1e-4)
    assert lines[0]['vision_lr'] == pytest.approx(0.6e-4)  # the vision rate keeps its 3/5 of the base rate
    BuildSegmentor(metatinycfg()).loadckpt(str(tmp_path / 'work' / 'model_final.pt'))


class StopAfter(Hook):
    """Ends the loop after ``iters`` iterations of a longer run, as a job killed after its checkpoint would."""

    def __init__(self, iters):
        self.iters = iters

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if runner.iter + 1 >= self.iters:
            runner.train_loop.stop_training = True


def _cfg(config, davisdir, **train):
    cfg = loadfinetunecfg(config, {f'TRAIN_CFG.{k}': v for k, v in train.items()})
    cfg['TRAIN_CFG']['dataset']['videos_dir'] = str(davisdir)
    return cfg


def test_stopped_and_resumed_equals_uninterrupted(tmp_path, tinydavisconfig, davisdir):
    cfg = _cfg(tinydavisconfig, davisdir, max_iters=4, batch_size=1)
    buildrunner(cfg, str(tmp_path / 'straight'), device='cpu').train()
    runner = buildrunner(cfg, str(tmp_path / 'stopped'), device='cpu')
    runner.register_hook(StopAfter(2))
    runner.train()
    assert [line['iter'] for line in _lines(tmp_path / 'stopped')] == [1, 2]
    torch.manual_seed(1234)  # the resumed process's own random state must not matter
    buildrunner(cfg, str(tmp_path / 'stopped'), device='cpu', resume=True).train()
    straight, resumed = _final(tmp_path / 'straight'), _final(tmp_path / 'stopped')
    assert [k for k in straight if not torch.equal(straight[k], resumed[k])] == []
    assert _lines(tmp_path / 'straight') == _lines(tmp_path / 'stopped')


def test_freeze_keeps_frozen_weights(tmp_path, tinydavisconfig, davisdir, tinyckpt):
    frozen = ['image_encoder', 'sam_prompt_encoder']
    cfg = _cfg(tinydavisconfig, davisdir, max_iters=2, batch_size=1, freeze=frozen)
    buildrunner(cfg, str(tmp_path / 'frozen'), device='cpu').train()
    start, final = torch.load(tinyckpt, weights_only=True)['model'], _final(tmp_path / 'frozen')
    inside = [k for k in final if k.split('.')[0] in frozen]
    assert inside and all(torch.equal(final[k], start[k]) for k in inside)
    assert any(not torch.equal(final[k], start[k]) for k in final if k.startswith('sam_mask_decoder.'))
