"""Tests for ssseg.modules.utils.heap: glibc is tuned only inside scopes or while a holder lives."""
import gc
import os
import subprocess
import sys

import pytest
import torch

import ssseg.modules.utils.heap as heap

pytestmark = pytest.mark.skipif(heap._libc is None, reason='needs glibc (Linux) without user malloc settings')


class _Owner:
    pass


@pytest.fixture
def depth():
    """Holders still alive from other tests count too: tests check the change in depth."""
    gc.collect()
    before = heap._depth
    yield lambda: heap._depth - before
    gc.collect()
    assert heap._depth == before


def test_scopes_nest_and_restore(depth):
    with heap.keepheap():
        assert heap.keepheapactive() and depth() == 1
        with heap.keepheap():
            assert depth() == 2
        assert depth() == 1
    assert depth() == 0


def test_settings_restored_when_the_last_scope_exits():
    gc.collect()
    if heap._depth:
        pytest.skip('a predictor from another test is still alive')
    with heap.keepheap():
        assert heap.keepheapactive()
    assert not heap.keepheapactive()


def test_scope_restores_after_an_error(depth):
    with pytest.raises(RuntimeError):
        with heap.keepheap():
            raise RuntimeError('boom')
    assert depth() == 0


def test_decorator_form(depth):
    @heap.keepheap()
    def inside():
        return depth()
    assert inside() == 1 and inside() == 1
    assert depth() == 0


def test_holder_keeps_it_until_collected(depth):
    owner = _Owner()
    heap.holdheapfor(owner)
    assert depth() == 1
    del owner
    gc.collect()
    assert depth() == 0


def test_trimheap_only_while_the_heap_is_kept(monkeypatch):
    calls = []

    class _FakeLibc:
        def malloc_trim(self, pad):
            calls.append(pad)

        def mallopt(self, option, value):
            pass
    monkeypatch.setattr(heap, '_libc', _FakeLibc())
    monkeypatch.setattr(heap, '_depth', 0)
    heap.trimheap()
    assert calls == []  # glibc trims by itself when the heap is not kept
    monkeypatch.setattr(heap, '_depth', 1)
    heap.trimheap()
    assert calls == [0]


def test_long_propagations_trim_the_heap(tmp_path, monkeypatch):
    import ssseg.modules.models.segmentors.samv2.video.predictor as videopredictor

    from helpers import makeframes, writetinyckpt
    trims = []
    monkeypatch.setattr(videopredictor, 'trimheap', lambda: trims.append(1))
    monkeypatch.setattr(videopredictor, 'HEAP_TRIM_FRAMES', 3)
    predictor = videopredictor.SAMV2VideoPredictor(samv2_cfg=writetinyckpt(tmp_path / 'tiny.pt'), device='cpu')
    state = predictor.initstate(makeframes(7))
    predictor.addnewpoints(state, 0, 1, [[15, 20]], [1])
    assert len(list(predictor.propagateinvideo(state))) == 7 and len(trims) == 2  # after the 3rd and 6th frame


def test_results_do_not_depend_on_it():
    torch.manual_seed(0)
    layer = torch.nn.Linear(256, 1024)
    x = torch.randn(4096, 256)
    plain = layer(x)
    with heap.keepheap():
        tuned = layer(x)
    assert torch.equal(plain, tuned)


def test_predictors_hold_it_on_cpu(depth, tmp_path):
    from ssseg.modules.models.segmentors.samv2 import SAMV2ImagePredictor, SAMV2VideoPredictor

    from helpers import writetinyckpt
    cfg = writetinyckpt(tmp_path / 'tiny.pt')
    image, video = SAMV2ImagePredictor(samv2_cfg=cfg, device='cpu'), SAMV2VideoPredictor(samv2_cfg=cfg, device='cpu')
    assert depth() == 2
    del image, video
    gc.collect()
    assert depth() == 0


@pytest.mark.parametrize('env', [{'SSSEG_KEEP_HEAP': '0'}, {'MALLOC_ARENA_MAX_': '2'},
                                 {'LD_PRELOAD': 'libjemalloc.so.2'}])
def test_switched_off_by_environment(env):
    """SSSEG_KEEP_HEAP=0, the user's own malloc settings or another allocator: glibc is left alone."""
    # the module alone (it needs nothing else), without the package's imports of torch
    code = ('import importlib.util as u; spec = u.spec_from_file_location("heap", ' + repr(heap.__file__) + '); '
            'h = u.module_from_spec(spec); spec.loader.exec_module(h); print(h._libc is None)')
    environ = {k: v for k, v in os.environ.items() if k != 'LD_PRELOAD'}
    environ.update(env)
    if 'LD_PRELOAD' in env:
        environ['LD_PRELOAD'] = ''  # the name alone decides; preloading a missing library would only warn
        environ['SSSEG_TEST_FAKE_PRELOAD'] = env['LD_PRELOAD']
        code = ('import os; os.environ["LD_PRELOAD"] = os.environ["SSSEG_TEST_FAKE_PRELOAD"]; ' + code)
    result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, env=environ, check=True)
    assert result.stdout.strip() == 'True'
