import os

import pytest
import torch

from ssseg.modules.utils import maskchunks

from helpers import CHECKPOINT_NAMES, writerandomcheckpoint


def pytest_configure(config):
    config.addinivalue_line('markers', 'slow: large models or long runs (select with -m slow)')


@pytest.fixture(scope='session')
def checkpointdir(tmp_path_factory):
    """A torch.hub-style cache folder shared by the session: <dir>/hub/checkpoints/<Meta's file name>."""
    return tmp_path_factory.mktemp('torchhome')


@pytest.fixture(scope='session')
def makeckpt(checkpointdir):
    """makeckpt(name) -> path of a random-weight checkpoint in Meta's format for config ``name`` (cached)."""
    def make(name):
        path = os.path.join(checkpointdir, 'hub', 'checkpoints', CHECKPOINT_NAMES[name])
        if not os.path.isfile(path):
            writerandomcheckpoint(name, path, seed=sorted(CHECKPOINT_NAMES).index(name))
        return path
    return make


@pytest.fixture
def torchhome(checkpointdir, monkeypatch):
    """Point torch.hub at the session's checkpoint cache (what a user's offline cache looks like)."""
    monkeypatch.setenv('TORCH_HOME', str(checkpointdir))
    return checkpointdir


@pytest.fixture(scope='module')
def onethread():
    """One torch thread for a module of tiny steps: a second OpenMP thread only adds barrier waits, which
    grow a hundredfold when other processes share the cores. Use with ``pytest.mark.usefixtures``."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(params=['cpu', 'tinychunks', 'acceleratorpath'])
def chunking(request, monkeypatch):
    """Run chunked helpers as they are, with chunks of a single mask, and down the (whole-batch, torch) GPU path."""
    if request.param == 'tinychunks':
        monkeypatch.setattr(maskchunks, 'CHUNK_PIXELS', 1)
    elif request.param == 'acceleratorpath':
        monkeypatch.setattr(maskchunks, 'oncpupath', lambda tensor: False)
    return request.param
