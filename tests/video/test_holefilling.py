"""Hole filling of the video predictor: the CPU (sparse) and device (dense, sync-free) forms of what is undone."""
import pytest
import torch

from ssseg.modules.models.segmentors.samv2.video import memory
from ssseg.modules.models.segmentors.samv2.video.memory import HOLE_FILL_LOGIT, fillsmallholes, unfilledmasks

from helpers import smoothmasks


def holeylogits(seed, batch=3, size=32):
    """(B, 1, size, size) logits: smooth blobs plus speckled background, exact zeros and a diagonal 2-pixel hole."""
    generator = torch.Generator().manual_seed(seed)
    logits = smoothmasks(batch, size, size, seed)[1][:, None] + 2
    specks = torch.rand(logits.shape, generator=generator) < 0.03
    logits[specks] = -torch.rand(int(specks.sum()), generator=generator) * 5
    logits[0, 0, 3, 3] = 0.0  # exactly 0 is background
    logits[-1, 0, 20, 20] = logits[-1, 0, 21, 21] = -4
    return logits


@pytest.mark.parametrize('seed', range(6))
@pytest.mark.parametrize('area', [1, 2, 8, 25, 7.5])
def test_dense_form_fills_like_the_cpu_form_and_undoes_exactly(seed, area):
    logits = holeylogits(seed)
    original = logits.clone()
    sparse, sparseholes = fillsmallholes(logits, area)
    is_hole = memory.smallregions(logits <= 0, area)
    dense, denseholes = memory._filldense(logits, is_hole)
    assert torch.equal(dense, sparse) and torch.equal(logits, original)
    assert denseholes[0].dtype == torch.bool and denseholes[0].shape == logits.shape
    assert torch.equal(denseholes[0], is_hole) and bool(is_hole.any())
    assert torch.equal(dense[is_hole], torch.full((int(is_hole.sum()),), HOLE_FILL_LOGIT))
    assert sparseholes is not None and sparseholes[0].dtype == torch.int64
    for filled, holes in ((dense, denseholes), (sparse, sparseholes)):
        assert torch.equal(unfilledmasks({'pred_masks': filled, '_holes': holes}), original)


def test_dense_form_without_holes():
    logits = torch.full((2, 1, 16, 16), 3.0)
    logits[0, 0, :8] = -2.0  # a 128-pixel background region: no hole of at most 8 pixels
    filled, holes = memory._filldense(logits, memory.smallregions(logits <= 0, 8))
    assert torch.equal(filled, logits) and not holes[0].any()
    assert torch.equal(unfilledmasks({'pred_masks': filled, '_holes': holes}), logits)
    assert fillsmallholes(logits, 8) == (logits, None)  # the CPU form says "nothing changed"


def test_dense_form_owns_its_copy_of_the_logits():
    batch = holeylogits(0)
    filled, (is_hole, originals) = memory._filldense(batch[1:2], memory.smallregions(batch[1:2] <= 0, 8))
    assert originals.untyped_storage().data_ptr() != batch.untyped_storage().data_ptr()
    assert originals.untyped_storage().nbytes() == originals.numel() * originals.element_size()


def test_non_cpu_logits_take_the_dense_form_without_host_sync():
    """Meta tensors have no data: the sparse form's any() / nonzero() would raise on them."""
    logits = torch.zeros(2, 1, 16, 16, device='meta')
    filled, (is_hole, originals) = fillsmallholes(logits, 8)
    assert filled.device.type == 'meta' and filled.shape == logits.shape
    assert is_hole.dtype == torch.bool and is_hole.shape == logits.shape and originals.shape == logits.shape
    unfilled = unfilledmasks({'pred_masks': filled, '_holes': (is_hole, originals)})
    assert unfilled.device.type == 'meta' and unfilled.shape == logits.shape
    assert fillsmallholes(logits, 0) == (logits, None)

