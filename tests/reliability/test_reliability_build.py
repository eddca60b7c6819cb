"""Bad input at the model-building entries: device, builders, config files and checkpoint files.

Each case checks the exception class and that the message names the argument, what was expected and
what was received. Everything runs on the tiny random model, offline, on a CPU.
"""
import os
import pickle
import urllib.error
import warnings
import zipfile

import numpy as np
import pytest
import torch

from ssseg.modules import BuildBackbone, BuildSegmentor
from ssseg.modules.models.segmentors.samv2 import SAMV2ImagePredictor, SAMV2VideoPredictor
from ssseg.modules.models.segmentors.samv2.predictors import modelchoice
from ssseg.modules.utils.checkpoints import (
    CheckpointError,
    CheckpointNotFoundError,
    guessconfigname,
    loadpretrained,
    loadstatedict,
    readstatedict,
    resolvecheckpoint,
)
from ssseg.modules.utils.configs import loadsegmentorcfg

from helpers import syntheticimage, tinycfg, writetinyckpt

pytestmark = pytest.mark.usefixtures('onethread')


@pytest.fixture(scope='module')
def tiny(tmp_path_factory):
    """(cfg with ckptpath, the checkpoint's state dict) of the tiny random model."""
    cfg = writetinyckpt(tmp_path_factory.mktemp('tiny') / 'tiny.pt')
    return cfg, readstatedict(cfg['ckptpath'])


def _withckpt(cfg, path):
    return dict(cfg, ckptpath=os.fspath(path))


def _nobuild(monkeypatch):
    """Make any model build fail loudly: the checks under test must come before it."""
    def fail(cfg):
        raise AssertionError('the model was built before the argument was checked')
    monkeypatch.setattr(modelchoice, 'BuildSegmentor', fail)


# ---------------------------------------------------------------------------------------------- device
@pytest.mark.parametrize('device, error, match', [
    ('gpu0', ValueError, r'device must be "cpu", "cuda" or "cuda:N".*got \'gpu0\''),
    ('cuda:-1', ValueError, r'device must be "cpu", "cuda" or "cuda:N".*got \'cuda:-1\''),
    ('meta', ValueError, r'device must be "cpu", "cuda" or "cuda:N".*got \'meta\' \(device type \'meta\''),
    (1.5, TypeError, r'device must be "cpu", "cuda" or "cuda:N".*got float 1.5'),
    (True, TypeError, r'device must be .*got bool True'),
    (['cpu'], TypeError, r'device must be .*got list \[\'cpu\'\]'),
], ids=['gpu0', 'cuda:-1', 'meta', 'float', 'bool', 'list'])
def test_bad_device_is_refused_before_building(device, error, match, tiny, monkeypatch):
    _nobuild(monkeypatch)
    with pytest.raises(error, match=match):
        SAMV2ImagePredictor(samv2_cfg=tiny[0], device=device)


def test_cuda_on_a_cpu_only_machine(tiny, monkeypatch):
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    _nobuild(monkeypatch)
    for device in ('cuda', 'cuda:0', torch.device('cuda'), 0):
        with pytest.raises(ValueError, match=r'device=.*cuda.*: CUDA is not available here .*use device="cpu"'):
            SAMV2ImagePredictor(samv2_cfg=tiny[0], device=device)
    with pytest.raises(ValueError, match='CUDA is not available here'):
        SAMV2VideoPredictor(samv2_cfg=tiny[0], device='cuda')
    assert modelchoice.defaultdevice(None) == torch.device('cpu')
    assert modelchoice.defaultdevice('cpu') == torch.device('cpu')


def test_cuda_index_beyond_the_device_count(monkeypatch):
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    monkeypatch.setattr(torch.cuda, 'device_count', lambda: 2)
    assert modelchoice.defaultdevice('cuda:1') == torch.device('cuda:1')
    assert modelchoice.defaultdevice('cuda') == torch.device('cuda')
    with pytest.raises(ValueError, match=r"device='cuda:2': this machine has 2 CUDA device\(s\), so N .* \[0, 1\]"):
        modelchoice.defaultdevice('cuda:2')


# ---------------------------------------------------------------------------------------------- builders
@pytest.mark.parametrize('build, name', [(BuildSegmentor, 'segmentor'), (BuildBackbone, 'backbone')])
def test_builders_name_the_bad_cfg(build, name):
    with pytest.raises(TypeError, match=rf'{name} cfg must be a dict with a "type" key, got list \[1, 2\]'):
        build([1, 2])
    with pytest.raises(TypeError, match=rf"{name} cfg must be a dict with a \"type\" key, got str 'SAMV2'"):
        build('SAMV2')
    with pytest.raises(ValueError, match=rf"{name} cfg must have a \"type\" key naming a registered {name}, "
                                         rf"got keys \['embed_dim'\]"):
        build({'embed_dim': 96})
    for typename in ('Nope', '', 'scope.Nope'):
        with pytest.raises(ValueError, match=rf"{name} cfg\[\"type\"\]='{typename}' is not a registered {name}; "
                                             rf"known: \["):
            build({'type': typename})
    with pytest.raises(TypeError, match=rf'{name} cfg\["type"\] must be a registered name .* or a class, got int 3'):
        build({'type': 3})


def test_unknown_types_list_the_known_ones():
    with pytest.raises(ValueError, match=r"known: \['SAMV2'\]"):
        BuildSegmentor({'type': 'SAM3'})
    with pytest.raises(ValueError, match=r"'Hieraa' is not a registered backbone; known: \[.*'Hiera'"):
        BuildBackbone({'type': 'Hieraa'})
    with pytest.raises(TypeError, match=r"backbone cfg \(type Hiera\): .*unexpected keyword argument 'bogus'"):
        BuildBackbone({'type': 'Hiera', 'bogus': 1})


def test_predictor_config_errors_name_samv2_cfg(tiny, monkeypatch):
    _nobuild(monkeypatch)
    cfg = {k: v for k, v in tiny[0].items() if k != 'type'}
    with pytest.raises(ValueError, match=r'samv2_cfg must have a "type" key naming a registered segmentor '
                                         r'.*got keys \['):
        SAMV2ImagePredictor(samv2_cfg=cfg, device='cpu')
    with pytest.raises(TypeError, match=r"samv2_cfg must be a config dict .*got str 'samv21_hiera_tiny' \(for a config "
                                        r"name or file use samv2_cfg=loadsegmentorcfg\('samv21_hiera_tiny'\)\)"):
        SAMV2ImagePredictor(samv2_cfg='samv21_hiera_tiny', device='cpu')
    for flag in ('load_ckpt_strict', 'apply_postprocessing'):
        with pytest.raises(TypeError, match=rf"{flag} must be a bool, got str 'no'"):
            SAMV2ImagePredictor(samv2_cfg=tiny[0], device='cpu', **{flag: 'no'})


# ---------------------------------------------------------------------------------------------- configs
CONFIG_FILES = {
    'syntax.py': ('SEGMENTOR_CFG = dict(type=\n', ValueError, 'could not be loaded .*SyntaxError', SyntaxError),
    'raising.py': ('raise RuntimeError("boom")\n', ValueError, 'could not be loaded .*RuntimeError: boom',
                   RuntimeError),
    'undefined.py': ('SEGMENTOR_CFG = dict(type=x)\n', ValueError, "NameError: name 'x' is not defined", NameError),
    'nocfg.py': ('OTHER = 1\n', ValueError, 'must define SEGMENTOR_CFG, a dict; it defines OTHER', None),
    'notadict.py': ('SEGMENTOR_CFG = [1, 2]\n', TypeError, r'SEGMENTOR_CFG must be a dict, got list \[1, 2\]', None),
    'config.json': ('{"SEGMENTOR_CFG": {"type": "SAMV2"}}', ValueError,
                    r'path to a \.py file, got the file .*\(not \.py\)', None),
}


@pytest.mark.parametrize('name', sorted(CONFIG_FILES))
def test_broken_config_files(name, tmp_path):
    text, error, match, cause = CONFIG_FILES[name]
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(error, match=match) as info:
        loadsegmentorcfg(os.fspath(path))
    assert os.fspath(path) in str(info.value) and str(info.value).startswith('cfg')
    if cause is not None:
        assert isinstance(info.value.__cause__, cause)


def test_config_names_and_types(tmp_path):
    with pytest.raises(FileNotFoundError,
                       match=r"cfg='samv21_hiera_nope' is neither .*known names: .*samv21_hiera_tiny"):
        loadsegmentorcfg('samv21_hiera_nope')
    with pytest.raises(FileNotFoundError, match='is neither an existing file'):
        loadsegmentorcfg(os.fspath(tmp_path / 'missing.py'))
    with pytest.raises(FileNotFoundError, match='is neither an existing file'):
        loadsegmentorcfg(os.fspath(tmp_path))  # a folder
    for value, shown in ((3, 'int 3'), (None, 'NoneType None'), (['samv21_hiera_tiny'], 'list')):
        with pytest.raises(TypeError, match=f'cfg must be a config name or a path to a .py file, got {shown}'):
            loadsegmentorcfg(value)


# ---------------------------------------------------------------------------------------------- checkpoint files
class _RunsCode:
    """Pickles as a call to os.makedirs(marker): loading it unrestricted would create the folder."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.makedirs, (self.marker,)


def test_checkpoint_loading_uses_weights_only(tiny, tmp_path):
    marker = tmp_path / 'code_ran'
    path = tmp_path / 'objects.pt'
    torch.save({'model': dict(tiny[1]), 'extra': _RunsCode(os.fspath(marker))}, path)
    with pytest.raises(ValueError, match=r'objects\.pt is not a readable PyTorch checkpoint \(it holds Python objects '
                                         r'other than tensors, which weights_only=True refuses'):
        readstatedict(os.fspath(path))
    assert not marker.exists()  # nothing in the file was executed
    with pytest.raises(ValueError, match='weights_only=True refuses'):
        SAMV2ImagePredictor(samv2_cfg=_withckpt(tiny[0], path), device='cpu')
    assert not marker.exists()


def _zipnottorch(path):
    with zipfile.ZipFile(path, 'w') as archive:
        archive.writestr('readme.txt', 'a zip archive, not a torch file')


@pytest.mark.parametrize('kind', ['truncated', 'empty', 'text', 'zip', 'plain pickle'])
def test_unreadable_checkpoint_files(kind, tiny, tmp_path):
    path = tmp_path / f'{kind.replace(" ", "_")}.pt'
    if kind == 'truncated':
        data = open(tiny[0]['ckptpath'], 'rb').read()
        path.write_bytes(data[: len(data) // 3])
    elif kind == 'empty':
        path.write_bytes(b'')
    elif kind == 'text':
        path.write_text('not a checkpoint')
    elif kind == 'zip':
        _zipnottorch(path)
    else:
        path.write_bytes(pickle.dumps({'model': {'w': [1.0, 2.0]}}, protocol=2))
    with pytest.raises(CheckpointError, match=rf'{path.name} is not a readable PyTorch checkpoint \(') as info:
        readstatedict(os.fspath(path))
    assert isinstance(info.value, ValueError) and info.value.__cause__ is not None
    with pytest.raises(ValueError, match=rf'{path.name} is not a readable PyTorch checkpoint'):
        SAMV2ImagePredictor(samv2_cfg=_withckpt(tiny[0], path), device='cpu')


@pytest.mark.parametrize('content, shown', [
    ({'state': [1, 2]}, r"a dict with keys \['state'\]"),
    ([torch.zeros(1)], 'list'),
    ({}, 'an empty dict'),
    ({'model': {'w': torch.zeros(1), 'step': 3}}, r"a dict with keys \['w', 'step'\]"),
], ids=['other keys', 'list', 'empty dict', 'non-tensor value'])
def test_checkpoint_with_another_layout(content, shown, tmp_path):
    path = tmp_path / 'layout.pt'
    torch.save(content, path)
    with pytest.raises(CheckpointError, match=rf'layout\.pt must hold {{"model": state_dict}} \(or a state dict of '
                                              rf'tensors\), got {shown}'):
        readstatedict(os.fspath(path))


def test_checkpoint_for_another_model_size_suggests_the_config():
    small = BuildSegmentor(loadsegmentorcfg('samv21_hiera_small')).state_dict()
    tiny_model = BuildSegmentor(loadsegmentorcfg('samv21_hiera_tiny'))
    assert guessconfigname(small) == 'samv21_hiera_small'
    assert guessconfigname(tiny_model.state_dict()) == 'samv21_hiera_tiny'
    with pytest.raises(CheckpointError) as info:
        loadstatedict(tiny_model, small, source='small.pt')
    message = str(info.value)
    assert message.startswith('small.pt does not fit SAMV2 (is it for another model size or version?)')
    assert 'unexpected keys: image_encoder.trunk.blocks.12.' in message  # small has 16 blocks, tiny 12
    assert ("looks like one for the config 'samv21_hiera_small' "
            "while the model is built as 'samv21_hiera_tiny'") in message


def test_missing_unexpected_and_mismatched_keys_are_named(tiny):
    state = dict(tiny[1])
    del state['no_mem_embed']
    state['extra.weight'] = torch.zeros(2)
    key = 'sam_mask_decoder.iou_token.weight'
    state[key] = torch.zeros(7, 3)
    with pytest.raises(CheckpointError) as info:
        loadstatedict(BuildSegmentor(tinycfg()), state, source='mixed.pt')
    message = str(info.value)
    assert '1 missing keys: no_mem_embed' in message and '1 unexpected keys: extra.weight' in message
    assert f'1 shape mismatches: {key} (checkpoint (7, 3), model {tuple(tiny[1][key].shape)})' in message


def test_non_strict_loading_needs_a_real_overlap(tiny, tmp_path):
    # nothing in common: refused instead of running on random weights
    foreign = tmp_path / 'foreign.pt'
    torch.save({'model': {'backbone.conv.weight': torch.zeros(4, 3, 3, 3)}}, foreign)
    with pytest.raises(ValueError, match=r'foreign\.pt shares almost nothing with SAMV2 even with '
                                         r'strict=False \(load_ckpt_strict=False\): 0\.0% of the model\'s '
                                         r'values would be loaded, at least 5% expected.*'
                                         r'unexpected keys: backbone\.conv\.weight'):
        SAMV2ImagePredictor(samv2_cfg=_withckpt(tiny[0], foreign), device='cpu', load_ckpt_strict=False)
    # only a sliver in common (the small prompt-encoder tensors): refused too
    sliver = tmp_path / 'sliver.pt'
    torch.save({'model': {k: v for k, v in tiny[1].items() if k.startswith('sam_prompt_encoder.')}}, sliver)
    with pytest.raises(ValueError, match='shares almost nothing'):
        loadpretrained(BuildSegmentor(tinycfg()), os.fspath(sliver), strict=False)
    # a real partial overlap still loads, with a warning naming what was left out
    partial = tmp_path / 'partial.pt'
    state = dict(tiny[1])
    del state['no_mem_embed']
    torch.save({'model': state}, partial)
    with pytest.warns(UserWarning, match='loaded non-strictly into SAMV2: 1 missing keys: no_mem_embed'):
        predictor = SAMV2ImagePredictor(samv2_cfg=_withckpt(tiny[0], partial), device='cpu', load_ckpt_strict=False)
    ours = predictor.model.state_dict()
    assert all(torch.equal(ours[k], v) for k, v in state.items())


def test_unreachable_url_without_cache(tmp_path, monkeypatch):
    monkeypatch.setenv('TORCH_HOME', os.fspath(tmp_path))

    def offline(url, dst, *args, **kwargs):
        raise urllib.error.URLError('[Errno -3] Temporary failure in name resolution')
    monkeypatch.setattr(torch.hub, 'download_url_to_file', offline)
    url = 'https://example.invalid/ckpts/sam2.1_hiera_tiny.pt'
    cached = os.path.join(os.fspath(tmp_path), 'hub', 'checkpoints', 'sam2.1_hiera_tiny.pt')
    with pytest.raises(FileNotFoundError) as info:
        resolvecheckpoint(url)
    message = str(info.value)
    assert isinstance(info.value, CheckpointNotFoundError) and isinstance(info.value.__cause__, urllib.error.URLError)
    assert message.startswith(f'could not download the checkpoint {url} (URLError: ')
    assert 'Temporary failure in name resolution' in message
    assert f'place the file at {cached}' in message
    # through a predictor too, and a file put at the named path is then used offline
    cfg = dict(tinycfg(), ckptpath=url)
    with pytest.raises(FileNotFoundError, match=f'place the file at {cached}'):
        SAMV2ImagePredictor(samv2_cfg=cfg, device='cpu')
    writetinyckpt(cached)
    assert resolvecheckpoint(url) == cached
    with pytest.raises(ValueError, match=r"ckptpath URL must end in a file name .*got 'https://example.invalid/'"):
        resolvecheckpoint('https://example.invalid/')


def test_corrupt_file_in_the_hub_cache_says_to_delete_it(tmp_path, monkeypatch):
    monkeypatch.setenv('TORCH_HOME', os.fspath(tmp_path))
    cached = tmp_path / 'hub' / 'checkpoints' / 'sam2.1_hiera_tiny.pt'
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b'PK\x03\x04 half a download')
    cfg = dict(tinycfg(), ckptpath='https://example.invalid/sam2.1_hiera_tiny.pt')
    with pytest.raises(ValueError, match=r'sam2\.1_hiera_tiny\.pt is not a readable PyTorch checkpoint .* It is in the '
                                         r'torch\.hub cache: delete it to download it again\.'):
        SAMV2ImagePredictor(samv2_cfg=cfg, device='cpu')


def test_local_checkpoint_paths(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"checkpoint file not found: ckptpath='.*nothere\.pt'"):
        resolvecheckpoint(os.fspath(tmp_path / 'nothere.pt'))
    with pytest.raises(FileNotFoundError, match=r'ckptpath must be a checkpoint file .*got the folder'):
        resolvecheckpoint(os.fspath(tmp_path))
    with pytest.raises(TypeError, match=r'ckptpath must be a URL or a local path \(str\), got int 3'):
        resolvecheckpoint(3)
    cfg = dict(tinycfg(), ckptpath=os.fspath(tmp_path / 'nothere.pt'))
    with pytest.raises(FileNotFoundError, match='nothere.pt'):
        SAMV2ImagePredictor(samv2_cfg=cfg, device='cpu')


# ---------------------------------------------------------------------------------------------- state after a failure
def test_failed_construction_leaves_nothing_behind(tiny, tmp_path):
    image = syntheticimage(60, 80, seed=3)
    points, labels = np.array([[30.0, 20.0], [50.0, 40.0]]), np.array([1, 0])

    def predict(predictor):
        predictor.setimage(image)
        return predictor.predict(point_coords=points, point_labels=labels, multimask_output=True)

    before = predict(SAMV2ImagePredictor(samv2_cfg=tiny[0], device='cpu'))
    truncated = tmp_path / 'truncated.pt'
    truncated.write_bytes(open(tiny[0]['ckptpath'], 'rb').read()[:1000])
    wrong = tmp_path / 'wrong.pt'
    torch.save({'model': BuildSegmentor(tinycfg('2')).state_dict()}, wrong)
    for bad in (dict(device='cuda:99'), dict(samv2_cfg=_withckpt(tiny[0], truncated)),
                dict(samv2_cfg=_withckpt(tiny[0], wrong)), dict(samv2_cfg=_withckpt(tiny[0], tmp_path / 'none.pt'))):
        with pytest.raises((ValueError, FileNotFoundError)):
            SAMV2ImagePredictor(**{'samv2_cfg': tiny[0], 'device': 'cpu', **bad})
    with warnings.catch_warnings():
        warnings.simplefilter('error')  # nothing left over to warn about either
        after = predict(SAMV2ImagePredictor(samv2_cfg=tiny[0], device='cpu'))
    for a, b in zip(before, after):
        np.testing.assert_array_equal(a, b)
