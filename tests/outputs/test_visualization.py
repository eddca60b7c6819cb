"""Headless tests for the SAM 2 drawing helpers (no display, files go to tmp_path)."""
import os
import subprocess
import sys
import textwrap

import cv2
import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from ssseg.modules.models.segmentors.samv2.outputs import visualization as vis
from ssseg.modules.utils import fileio

H, W = 24, 32


def _ax():
    return Figure(figsize=(2, 2)).add_subplot()


def _image():
    return np.random.default_rng(0).integers(0, 256, size=(H, W, 3), dtype=np.uint8)


def _masks():
    masks = np.zeros((3, H, W), dtype=bool)
    masks[0, 2:20, 3:28] = True
    masks[1, 5:10, 5:12] = True
    masks[2, 12:22, 15:30] = True
    return masks


def _anns(masks):
    return [{'segmentation': m, 'area': int(m.sum())} for m in masks]


def test_aliases():
    for name in ('mask', 'points', 'box', 'masks', 'anns'):
        assert getattr(vis, f'show_{name}') is getattr(vis, f'show{name}')


def test_showmask_overlay_colour_and_borders():
    ax = _ax()
    mask = _masks()[0]
    vis.showmask(mask, ax)
    overlay = ax.images[0].get_array()
    assert overlay.shape == (H, W, 4)
    np.testing.assert_allclose(overlay[10, 15], vis.DEFAULT_MASK_COLOR, rtol=1e-6)  # interior
    far = cv2.dilate(mask.astype(np.uint8), np.ones((5, 5), np.uint8)) == 0  # the border may spill 1-2 px
    assert far.any() and np.all(np.asarray(overlay)[far][:, 3] == 0)
    np.testing.assert_allclose(overlay[2, 15], (1, 1, 1, 0.5))  # top edge carries the white border
    # (1, H, W) float masks, random colour with alpha 0.6, reproducible with a seed, no borders
    ax2, ax3 = _ax(), _ax()
    vis.showmask(torch.from_numpy(mask[None].astype(np.float32)), ax2, random_color=True, borders=False, rng=3)
    vis.showmask(mask[None].astype(np.uint8), ax3, random_color=True, borders=False, rng=3)
    a, b = ax2.images[0].get_array(), ax3.images[0].get_array()
    np.testing.assert_array_equal(a, b)
    assert a[2, 15, 3] == pytest.approx(0.6)


def test_showpoints_and_showbox():
    ax = _ax()
    coords = np.array([[3.0, 4.0], [10.0, 12.0], [20.0, 5.0], [0.0, 0.0]])
    vis.showpoints(coords, np.array([1, 0, 1, -1]), ax)
    positive, negative = ax.collections
    np.testing.assert_array_equal(positive.get_offsets(), coords[[0, 2]])
    np.testing.assert_array_equal(negative.get_offsets(), coords[[1]])
    vis.showbox([2, 3, 12, 20], ax)
    vis.showbox(torch.tensor([[0, 0, 5, 5], [1, 1, 4, 9]]), ax)
    assert len(ax.patches) == 3
    rect = ax.patches[0]
    assert (rect.get_x(), rect.get_y(), rect.get_width(), rect.get_height()) == (2, 3, 10, 17)
    assert rect.get_facecolor()[3] == 0


def test_showmasks_saves_one_file_per_mask(tmp_path):
    import matplotlib.pyplot as plt
    image, masks = _image(), _masks()
    before = len(plt.get_fignums())
    paths = vis.showmasks(image, masks, [0.9, 0.5, 0.1], point_coords=np.array([[5, 5], [20, 15]]),
                          input_labels=np.array([1, 0]), box_coords=np.array([1, 1, 30, 22]),
                          savepath=str(tmp_path / 'sub' / 'mask_{}.png'), show=False)
    assert paths == [str(tmp_path / 'sub' / f'mask_{i}.png') for i in range(3)]
    assert all(os.path.getsize(p) > 0 for p in paths)
    assert len(plt.get_fignums()) == before  # figures are closed
    plain = vis.showmasks(image.astype(np.float32) / 255, masks[:2], np.array([0.7, 0.2]),
                          savepath=tmp_path / 'plain.png')
    assert plain == [str(tmp_path / 'plain_0.png'), str(tmp_path / 'plain_1.png')]
    assert all(os.path.exists(p) for p in plain)
    assert vis.showmasks(image, masks[0], [0.5], show=False) == []  # single (H, W) mask, nothing saved


def _rle_variants(masks):
    from pycocotools import mask as maskutils
    from sam2.utils.amg import coco_encode_rle, mask_to_rle_pytorch, rle_to_mask
    uncompressed = mask_to_rle_pytorch(torch.from_numpy(masks))
    for rle, m in zip(uncompressed, masks):
        np.testing.assert_array_equal(rle_to_mask(rle), m)
    coco = [coco_encode_rle(r) for r in uncompressed]
    for rle, m in zip(coco, masks):
        np.testing.assert_array_equal(maskutils.decode(rle).astype(bool), m)
    return uncompressed, coco


def test_showanns_all_output_modes_agree():
    masks = _masks()
    uncompressed, coco = _rle_variants(masks)
    areas = [int(m.sum()) for m in masks]
    drawn = []
    for segs in (list(masks), uncompressed, coco):
        ax = _ax()
        vis.showanns([{'segmentation': s, 'area': a} for s, a in zip(segs, areas)], ax=ax, rng=0)
        (image,) = ax.images
        drawn.append(np.asarray(image.get_array()))
        assert not ax.get_autoscale_on()
    np.testing.assert_array_equal(drawn[0], drawn[1])
    np.testing.assert_array_equal(drawn[0], drawn[2])
    overlay = drawn[0]
    assert overlay.shape == (H, W, 4)
    assert np.all(overlay[~masks.any(0)][:, 3] == 0)
    # largest first: the small mask 1 lies inside mask 0 and is painted on top of it
    inner = overlay[7, 8]
    assert inner[3] == pytest.approx(0.5) and not np.allclose(inner[:3], overlay[15, 5][:3])


def test_showanns_empty_and_current_axes():
    import matplotlib.pyplot as plt
    vis.showanns([])  # no-op, no axes needed
    fig = plt.figure()
    try:
        vis.showanns(_anns(_masks()), borders=False)
        assert len(plt.gca().images) == 1
    finally:
        plt.close(fig)


def test_saveoverlay_writes_png_atomically(tmp_path, monkeypatch):
    image, masks = _image(), _masks()
    path = tmp_path / 'out' / 'overlay.png'
    assert vis.saveoverlay(image, masks, path, borders=False, colors=(255, 0, 0)) == str(path)
    written = cv2.imread(str(path))[..., ::-1]
    assert written.shape == (H, W, 3)
    outside = ~masks.any(0)
    np.testing.assert_array_equal(written[outside], image[outside])
    np.testing.assert_array_equal(written[2, 4], np.rint(0.5 * image[2, 4] + 0.5 * np.array([255, 0, 0])))
    assert os.listdir(path.parent) == ['overlay.png']  # no temp file left behind
    # a failing rename leaves the previous file untouched and cleans up the temp file
    old = path.read_bytes()

    def failingreplace(src, dst):
        raise OSError('disk full')
    monkeypatch.setattr(fileio.os, 'replace', failingreplace)
    with pytest.raises(OSError):
        vis.saveoverlay(image, masks, path)
    assert path.read_bytes() == old and os.listdir(path.parent) == ['overlay.png']
    monkeypatch.undo()
    # annotation lists (any output mode), grayscale images and an empty mask list also work
    _, coco = _rle_variants(masks)
    annpath = vis.saveoverlay(image[..., 0], [{'segmentation': s, 'area': 1} for s in coco], tmp_path / 'anns.png')
    assert cv2.imread(annpath).shape == (H, W, 3)
    vis.saveoverlay(image, [], tmp_path / 'empty.png')
    np.testing.assert_array_equal(cv2.imread(str(tmp_path / 'empty.png'))[..., ::-1], image)


@pytest.mark.parametrize('call, error, words', [
    (lambda: vis.showmask(np.zeros((2, H, W)), _ax()), ValueError, 'mask must have shape'),
    (lambda: vis.showmask(np.zeros((H, W)), object()), TypeError, 'ax must be a matplotlib Axes'),
    (lambda: vis.showmask(np.array([['a']]), _ax()), TypeError, 'dtype'),
    (lambda: vis.showpoints(np.zeros((3, 3)), np.zeros(3), _ax()), ValueError, 'coords must have shape'),
    (lambda: vis.showpoints(np.zeros((3, 2)), np.zeros(2), _ax()), ValueError, 'labels must have shape'),
    (lambda: vis.showbox([1, 2, 3], _ax()), ValueError, 'box must have shape'),
    (lambda: vis.showmasks(_image(), _masks(), [0.1]), ValueError, 'scores must have one value'),
    (lambda: vis.showmasks(_image(), _masks()[:, :5], [1, 2, 3]), ValueError, 'image size'),
    (lambda: vis.showmasks(_image(), _masks(), [1, 2, 3], point_coords=np.zeros((1, 2))), ValueError,
     'input_labels'),
    (lambda: vis.showmasks(np.zeros((H, W, 2)), _masks(), [1, 2, 3]), ValueError, 'image must have shape'),
    (lambda: vis.showanns({'segmentation': 1}), TypeError, 'anns must be a list'),
    (lambda: vis.showanns([{'area': 3}], ax=_ax()), ValueError, "'segmentation' and 'area'"),
    (lambda: vis.showanns([{'segmentation': {'size': [2, 2], 'counts': [1, 2]}, 'area': 1}], ax=_ax()),
     ValueError, 'summing to h * w = 4'),
    (lambda: vis.showanns([{'segmentation': {'counts': [4]}, 'area': 1}], ax=_ax()), ValueError, "'size'"),
    (lambda: vis.showanns(_anns([np.ones((4, 4), bool), np.ones((5, 4), bool)]), ax=_ax()), ValueError,
     'like the others'),
    (lambda: vis.saveoverlay(_image(), _masks(), '/tmp/x.notanimage'), ValueError, 'image extension'),
    (lambda: vis.saveoverlay(_image(), _masks(), 3), TypeError, 'path must be'),
    (lambda: vis.saveoverlay(_image(), _masks(), '/tmp/x.png', alpha=2), ValueError, 'alpha'),
    (lambda: vis.saveoverlay(_image(), _masks(), '/tmp/x.png', colors=[(1, 2, 3)]), ValueError, 'colors'),
])
def test_bad_inputs_raise(call, error, words):
    with pytest.raises(error) as info:
        call()
    assert words in str(info.value)


_BACKEND_SCRIPT = textwrap.dedent('''
    import os, sys, tempfile, matplotlib
    if sys.argv[1] != 'auto':
        matplotlib.use(sys.argv[1])
    import numpy as np
    from ssseg.modules.models.segmentors.samv2.visualization import showmasks
    out = tempfile.mkdtemp()
    paths = showmasks(np.zeros((8, 8, 3), np.uint8), np.ones((1, 8, 8), bool), [1.0], savepath=out + '/m.png')
    assert os.path.exists(paths[0]), paths
    print(matplotlib.get_backend().lower())
''')


@pytest.mark.parametrize('requested, expected', [('auto', 'agg'), ('svg', 'svg')])
def test_backend_headless_and_respected(requested, expected):
    env = {k: v for k, v in os.environ.items() if k not in ('DISPLAY', 'WAYLAND_DISPLAY', 'MPLBACKEND')}
    result = subprocess.run([sys.executable, '-c', _BACKEND_SCRIPT, requested], env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == expected
