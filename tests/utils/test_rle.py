"""Parity of the RLE codec (ssseg.modules.utils.rle) with Meta's sam2.utils.amg on random and edge-case masks."""
import numpy as np
import pytest
import torch

from ssseg.modules.utils import rle

from helpers import MASK_SIZES, edgecasemasks


@pytest.fixture(scope='module')
def meta():
    from sam2.utils import amg as meta_amg
    return meta_amg


@pytest.mark.parametrize('size', MASK_SIZES + [(120, 80)])
def test_masktorle(meta, chunking, size):
    masks = edgecasemasks(*size, seed=3)
    ours, theirs = rle.encode(masks), meta.mask_to_rle_pytorch(masks)
    assert ours == theirs
    for encoded, mask in zip(ours, masks):
        assert all(type(c) is int for c in encoded['counts'])
        decoded = rle.decode(encoded)
        assert decoded.dtype == bool and np.array_equal(decoded, mask.numpy())
        assert np.array_equal(decoded, meta.rle_to_mask(encoded))
        assert rle.area(encoded) == meta.area_from_rle(encoded) == int(mask.sum())
        assert rle.tococo(encoded) == meta.coco_encode_rle(encoded)


def test_masktorle_degenerate(meta):
    none = torch.zeros(0, 4, 5, dtype=torch.bool)
    assert rle.encode(none) == meta.mask_to_rle_pytorch(none) == []
    assert rle.encode(torch.zeros(2, 0, 5, dtype=torch.bool)) == [{'size': [0, 5], 'counts': [0]}] * 2
    with pytest.raises(ValueError, match='bool'):
        rle.encode(torch.zeros(2, 4, 5, dtype=torch.uint8))
    with pytest.raises(ValueError, match='3-D'):
        rle.encode(torch.zeros(4, 5, dtype=torch.bool))


def test_rletomask_badcounts():
    with pytest.raises(ValueError, match='summing to h \\* w = 6'):
        rle.decode({'size': [2, 3], 'counts': [1, 2]})
    with pytest.raises(ValueError, match='non-negative'):
        rle.decode({'size': [2, 3], 'counts': [8, -2]})
