"""smallregionstorch (pure torch, any device, no host sync) against smallregions' OpenCV path on the CPU."""
import pytest
import torch
import torch.nn.functional as F

from ssseg.modules.models.segmentors.samv2.predictors import transforms
from ssseg.modules.models.segmentors.samv2.predictors.transforms import smallregions, smallregionstorch

from helpers import MASK_SIZES, edgecasemasks

pytestmark = pytest.mark.usefixtures('onethread')  # hundreds of tiny pooling steps

AREAS = [0, 1, 2, 8, 25, 100, 7.5]
SIZES = [(1, 1, 64, 64), (3, 1, 37, 53), (20, 30), (2, 3, 17, 9)]


def blobs(shape, seed, scale):
    """Bool maps of a blurred random field thresholded: components of many sizes, touching the borders."""
    generator = torch.Generator().manual_seed(seed)
    h, w = shape[-2:]
    field = torch.randn(int(torch.tensor(shape[:-2]).prod()), 1, h, w, generator=generator)
    kernel = torch.ones(1, 1, 2 * scale + 1, 2 * scale + 1) / (2 * scale + 1) ** 2
    field = F.conv2d(F.pad(field, [scale] * 4, mode='replicate'), kernel)
    offset = (torch.rand((), generator=generator) - 0.5) * field.std()
    return (field > offset).reshape(shape)


def assertsame(maps, areas=AREAS):
    for area in areas:
        ours, theirs = smallregionstorch(maps, area), smallregions(maps, area)
        assert ours.dtype == torch.bool and ours.shape == maps.shape
        assert torch.equal(ours, theirs), f'area {area}: {(ours != theirs).sum()} pixels differ'


@pytest.mark.parametrize('shape', SIZES)
@pytest.mark.parametrize('seed', range(10))
@pytest.mark.parametrize('density', [0.2, 0.5, 0.8])
def test_random_maps_match_opencv(shape, seed, density):
    generator = torch.Generator().manual_seed(seed)
    assertsame(torch.rand(shape, generator=generator) < density)


@pytest.mark.parametrize('shape', SIZES)
@pytest.mark.parametrize('seed', range(8))
@pytest.mark.parametrize('scale', [1, 2, 4])
def test_blob_maps_match_opencv(shape, seed, scale):
    maps = blobs(shape, seed, scale)
    assertsame(maps)
    assertsame(~maps)  # the holes of the same map


@pytest.mark.parametrize('size', MASK_SIZES)
def test_edge_case_maps_match_opencv(size):
    """Empty, full, single pixels at the corners and centre, border lines, noise, smooth blobs."""
    maps = edgecasemasks(*size, seed=sum(size))
    assertsame(maps)
    assertsame(maps[:, None])  # a leading dim more


def test_diagonal_connections_join_components():
    checker = (torch.arange(12)[:, None] + torch.arange(16)) % 2 == 0  # one component under 8-connectivity
    diagonal = torch.eye(9, dtype=torch.bool)
    assert int(checker.sum()) == 96 and not smallregionstorch(checker, 95).any()
    assert torch.equal(smallregionstorch(checker, 96), checker)
    assert not smallregionstorch(diagonal, 8).any() and torch.equal(smallregionstorch(diagonal, 9), diagonal)
    assertsame(torch.stack([checker[:9, :9], diagonal, diagonal.flip(1), checker[:9, :9] & ~diagonal]))


@pytest.mark.parametrize('length', [1, 2, 7, 8, 9, 25, 26])
def test_longest_paths_converge_within_their_area(length):
    """A path of A pixels has geodesic diameter A - 1: the worst case of the fixed iteration count."""
    snake = torch.zeros(11, 11, dtype=torch.bool)
    snake[0::2, :] = True
    snake[1::4, -1] = snake[3::4, 0] = True  # rows joined at alternating ends: one winding component of 71 pixels
    diagonal = torch.zeros(30, 30, dtype=torch.bool)
    diagonal[range(length), range(length)] = True  # a path of diagonal steps: diameter exactly length - 1
    for maps in (snake, diagonal):
        pixels = int(maps.sum())
        for area in (pixels - 1, pixels, pixels + 0.5):
            assert torch.equal(smallregionstorch(maps, area), maps if area >= pixels else torch.zeros_like(maps))
        assertsame(maps, [length - 1, length, length + 1])


def test_full_empty_and_one_pixel_maps():
    full, empty = torch.ones(2, 1, 6, 7, dtype=torch.bool), torch.zeros(2, 1, 6, 7, dtype=torch.bool)
    speck = empty.clone()
    speck[0, 0, 0, 0] = speck[1, 0, 5, 6] = speck[1, 0, 2, 3] = True
    assert torch.equal(smallregionstorch(full, 42), full) and not smallregionstorch(full, 41).any()
    assert not smallregionstorch(empty, 100).any() and torch.equal(smallregionstorch(speck, 1), speck)
    assert torch.equal(smallregionstorch(full, float('inf')), full)
    for maps in (full, empty, speck, ~speck):
        assertsame(maps, AREAS + [41, 42, float('inf'), -3, 0.5])


def test_non_cpu_tensors_take_the_torch_path_without_host_sync():
    """Meta tensors have a non-CPU device and no data: the OpenCV path (a host copy) and any sync raise on them."""
    regions = torch.zeros(2, 1, 16, 16, dtype=torch.bool, device='meta')
    with pytest.raises(NotImplementedError):
        regions.cpu()
    for area in (1, 8, 100):
        small = smallregions(regions, area)
        assert small.device.type == 'meta' and small.dtype == torch.bool and small.shape == regions.shape


def test_cpu_tensors_keep_opencv(monkeypatch):
    called = []
    monkeypatch.setattr(transforms, 'smallregionstorch', lambda *args: called.append(args))
    smallregions(torch.ones(4, 4, dtype=torch.bool), 8)
    assert called == []
