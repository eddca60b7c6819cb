"""The opt-in bfloat16 mode on a tiny random model: off by default, float32 outputs, close to float32 masks.

The IoU on the real tiny model against Meta's float32 outputs is measured by
``scripts/benchmark.py --precision bfloat16`` (docs/benchmarks.md).
"""
import json
import warnings

import cv2
import numpy as np
import pytest
import torch

from ssseg.modules.models.segmentors.samv2 import SAMV2AutomaticMaskGenerator, SAMV2ImagePredictor, SAMV2VideoPredictor
from ssseg.modules.models.segmentors.samv2.model import precision as precisionmodule

from helpers import makeframes, syntheticimage, writetinyckpt

pytestmark = pytest.mark.usefixtures('onethread')
H, W = 60, 80


def iou(a, b):
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    union = (a | b).sum()
    return 1.0 if union == 0 else (a & b).sum() / union


@pytest.fixture(scope='module')
def cfg(tmp_path_factory):
    return writetinyckpt(tmp_path_factory.mktemp('tinyprecision') / 'tiny.pt')


@pytest.fixture(autouse=True)
def quiet(monkeypatch):
    # this CPU may lack bfloat16 hardware; the warning has its own test
    monkeypatch.setattr(precisionmodule, 'bfloat16isfast', lambda device: True)


def test_precision_is_float32_unless_asked(cfg):
    assert SAMV2ImagePredictor(samv2_cfg=cfg, device='cpu').model.precision == 'float32'
    assert SAMV2ImagePredictor(samv2_cfg=cfg, device='cpu', precision=None).model.precision == 'float32'
    assert SAMV2ImagePredictor(samv2_cfg={**cfg, 'precision': 'bfloat16'}, device='cpu').model.precision == 'bfloat16'
    assert SAMV2ImagePredictor(samv2_cfg=cfg, device='cpu', precision=torch.bfloat16).model.precision == 'bfloat16'


@pytest.mark.parametrize('bad', ['fp16', 'half', torch.float16, 16, ''])
def test_unknown_precision_is_refused(cfg, bad):
    with pytest.raises(ValueError,
                       match=r"precision must be 'float32' or 'bfloat16'.*got " + repr(bad).replace('.', r'\.')):
        SAMV2ImagePredictor(samv2_cfg=cfg, device='cpu', precision=bad)


def test_warns_where_bfloat16_is_emulated(cfg, monkeypatch):
    monkeypatch.setattr(precisionmodule, 'bfloat16isfast', lambda device: False)
    with pytest.warns(UserWarning, match='without hardware bfloat16 support.*slower than float32'):
        SAMV2VideoPredictor(samv2_cfg=cfg, device='cpu', precision='bfloat16')
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        SAMV2VideoPredictor(samv2_cfg=cfg, device='cpu')  # float32 never warns
    assert isinstance(precisionmodule.bfloat16isfast(torch.device('cpu')), bool)


def test_image_predictor_in_bfloat16(cfg):
    image = syntheticimage(H, W)
    results = {}
    for precision in ('float32', 'bfloat16'):
        predictor = SAMV2ImagePredictor(samv2_cfg=cfg, device='cpu', precision=precision)
        predictor.setimage(image)
        assert predictor.getimageembedding().dtype == torch.float32
        results[precision] = [predictor.predict(point_coords=[[10, 20]], point_labels=[1]),
                              predictor.predict(box=[[0, 0, 30, 30], [10, 10, 70, 50]], multimask_output=False)]
    for full, reduced in zip(results['float32'], results['bfloat16']):
        for a, b in zip(full, reduced):
            assert a.shape == b.shape and a.dtype == b.dtype == np.float32
        logits, logits16 = full[2], reduced[2]
        # autocast really ran (bfloat16 rounding shows) and stayed close to float32
        assert not np.array_equal(logits, logits16)
        assert np.abs(logits - logits16).max() <= 0.03 * np.abs(logits).max()
    boxes, boxes16 = results['float32'][1][0], results['bfloat16'][1][0]
    assert min(iou(a, b) for a, b in zip(boxes, boxes16)) >= 0.98


def test_video_predictor_in_bfloat16(cfg):
    frames = makeframes(8)
    masks = {}
    for precision in ('float32', 'bfloat16'):
        predictor = SAMV2VideoPredictor(samv2_cfg=cfg, device='cpu', precision=precision)
        state = predictor.initstate(frames)
        predictor.addnewpoints(state, 0, 1, [[15, 20]], [1])
        predictor.addnewpointsorbox(state, 0, 2, box=[50, 30, 70, 45])
        outputs = list(predictor.propagateinvideo(state))
        assert all(logits.dtype == torch.float32 for _, _, logits in outputs)
        masks[precision] = [(logits > 0).numpy() for _, _, logits in outputs]
    assert len(masks['bfloat16']) == len(frames)
    assert min(iou(a, b) for full, reduced in zip(masks['float32'], masks['bfloat16'])
               for a, b in zip(full, reduced)) >= 0.98


def test_generator_in_bfloat16(cfg):
    image = syntheticimage(H, W)
    records = {}
    for precision in ('float32', 'bfloat16'):
        generator = SAMV2AutomaticMaskGenerator(samv2_cfg=cfg, device='cpu', precision=precision, points_per_side=4,
                                                pred_iou_thresh=0.0, stability_score_thresh=0.0, box_nms_thresh=1.0)
        records[precision] = sorted(generator.generate(image), key=lambda r: (r['point_coords'], -r['predicted_iou']))
    assert len(records['bfloat16']) == len(records['float32']) > 0
    for full, reduced in zip(records['float32'], records['bfloat16']):
        assert isinstance(reduced['predicted_iou'], float) and reduced['segmentation'].shape == (H, W)
    # the candidates' masks agree on the whole (single small candidates may flip at a tiny random model's logits)
    union = np.mean([iou(a['segmentation'], b['segmentation'])
                     for a, b in zip(records['float32'], records['bfloat16'])])
    assert union >= 0.98


def test_command_line_precision_is_recorded_and_redone(cfg, tmp_path, capsys):
    from ssseg.inference import main
    image = tmp_path / 'a.png'
    cv2.imwrite(str(image), syntheticimage(H, W))
    cfgfile = tmp_path / 'tiny_cfg.py'
    cfgfile.write_text(f'SEGMENTOR_CFG = {cfg!r}\n')
    out = tmp_path / 'out'
    base = ['image', '--cfg', str(cfgfile), '--device', 'cpu', '--image', str(image), '--point', '20,30',
            '--outdir', str(out)]
    assert main(base) == 0
    assert json.loads((out / 'a.json').read_text())['settings']['precision'] == 'float32'
    assert main(base + ['--precision', 'bfloat16']) == 0
    assert 'skipping' not in capsys.readouterr().err  # another precision is another result
    assert json.loads((out / 'a.json').read_text())['settings']['precision'] == 'bfloat16'
