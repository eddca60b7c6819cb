"""Checkpoint resolution (torch.hub cache, local paths, offline errors), strict loading, model choice."""
import os

import pytest
import torch

from ssseg.modules import BuildSegmentor
from ssseg.modules.models.segmentors.samv2 import SAMV2ImagePredictor
from ssseg.modules.utils.checkpoints import loadpretrained, readstatedict, resolvecheckpoint
from ssseg.modules.utils.configs import loadsegmentorcfg

URL = 'https://dl.fbaipublicfiles.com/segment_anything_2/092824/sam2.1_hiera_tiny.pt'


def test_cached_url_resolves_offline(torchhome, makeckpt):
    path = makeckpt('samv21_hiera_tiny')
    assert resolvecheckpoint(URL) == os.path.join(torchhome, 'hub', 'checkpoints', 'sam2.1_hiera_tiny.pt') == path


def test_use_default_flag_loads_from_the_hub_cache(torchhome, makeckpt):
    makeckpt('samv21_hiera_tiny')
    predictor = SAMV2ImagePredictor(use_default_samv21_t=True, device='cpu')
    expected = readstatedict(makeckpt('samv21_hiera_tiny'))
    ours = predictor.model.state_dict()
    assert all(torch.equal(ours[k], expected[k]) for k in expected)
    assert str(predictor.device) == 'cpu' and not predictor.model.training


def test_unreachable_url_without_cache_names_url_and_path(tmp_path, monkeypatch):
    monkeypatch.setenv('TORCH_HOME', str(tmp_path))
    url = 'http://127.0.0.1:9/sam2.1_hiera_tiny.pt'
    with pytest.raises(FileNotFoundError) as info:
        resolvecheckpoint(url)
    assert url in str(info.value)
    assert os.path.join(str(tmp_path), 'hub', 'checkpoints', 'sam2.1_hiera_tiny.pt') in str(info.value)
    assert not os.listdir(os.path.join(tmp_path, 'hub', 'checkpoints'))  # nothing half-written is left


def test_missing_local_file(tmp_path):
    with pytest.raises(FileNotFoundError, match='nothere.pt'):
        resolvecheckpoint(str(tmp_path / 'nothere.pt'))


def test_checkpoint_of_another_size_names_the_keys(makeckpt):
    model = BuildSegmentor(loadsegmentorcfg('samv21_hiera_tiny'))
    with pytest.raises(ValueError) as info:
        loadpretrained(model, makeckpt('samv2_hiera_small'))
    message = str(info.value)
    assert 'missing keys' in message or 'unexpected keys' in message
    assert 'no_obj_embed_spatial' in message  # a SAM 2 checkpoint lacks the SAM 2.1 keys


def test_shape_mismatch_is_reported_by_name(makeckpt, tmp_path):
    state = readstatedict(makeckpt('samv21_hiera_tiny'))
    state['no_mem_embed'] = torch.zeros(1, 1, 128)
    path = tmp_path / 'bad.pt'
    torch.save({'model': state}, path)
    model = BuildSegmentor(loadsegmentorcfg('samv21_hiera_tiny'))
    with pytest.raises(ValueError, match=r'no_mem_embed \(checkpoint \(1, 1, 128\), model \(1, 1, 256\)\)'):
        loadpretrained(model, str(path))
    with pytest.warns(UserWarning, match='no_mem_embed'):
        loadpretrained(model, str(path), strict=False)


def test_truncated_and_foreign_files(makeckpt, tmp_path):
    data = open(makeckpt('samv21_hiera_tiny'), 'rb').read()
    truncated = tmp_path / 'truncated.pt'
    truncated.write_bytes(data[: len(data) // 2])
    text = tmp_path / 'notes.pt'
    text.write_text('not a checkpoint')
    for path in (truncated, text):
        with pytest.raises(ValueError, match='not a readable PyTorch checkpoint'):
            readstatedict(str(path))
    wrong = tmp_path / 'wrong.pt'
    torch.save({'state': [1, 2]}, wrong)
    with pytest.raises(ValueError, match='"model": state_dict'):
        readstatedict(str(wrong))


@pytest.mark.parametrize('kwargs, match', [
    ({}, 'choose exactly one model.*got none'),
    ({'use_default_samv21_t': True, 'use_default_samv2_t': True}, 'got use_default_samv2_t, use_default_samv21_t'),
    ({'use_default_samv21_t': True, 'samv2_cfg': {'type': 'SAMV2'}}, 'use_default_samv21_t, samv2_cfg'),
])
def test_model_choice_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SAMV2ImagePredictor(device='cpu', **kwargs)


def test_config_without_checkpoint_is_refused():
    cfg = loadsegmentorcfg('samv21_hiera_tiny')
    cfg['ckptpath'] = None
    with pytest.raises(ValueError, match='never runs with random weights'):
        SAMV2ImagePredictor(samv2_cfg=cfg, device='cpu')
