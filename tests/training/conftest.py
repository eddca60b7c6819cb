"""Fixtures of the fine-tuning tests: synthetic DAVIS-style data, a random tiny checkpoint and a tiny config."""
import pytest
import torch

from ssseg.modules import BuildSegmentor

from trainhelpers import metatinycfg, writetinytrainconfig

# 3-frame clips of 2 objects, checkpoints every 2 iterations, everything in this process (no loader workers)
TINY_TRAIN = dict(num_workers=0, log_interval=1, checkpoint=dict(interval=2, max_keep_ckpts=3),
                  dataset=dict(num_frames=3, max_num_objects=2))


@pytest.fixture(scope='session')
def davisdir(tmp_path_factory):
    """A DAVIS-style folder of 4 synthetic videos (6 frames, 2 moving shapes each)."""
    from ssseg.testing.shapes import writedavisshapes
    return writedavisshapes(tmp_path_factory.mktemp('davis'), n_videos=4, n_frames=6, n_objects=2, size=(96, 128),
                            seed=0)


@pytest.fixture(scope='session')
def cocodata(tmp_path_factory):
    """(ann_file, img_dir) of 4 synthetic images with shapes."""
    from ssseg.testing.shapes import writecocoshapes
    return writecocoshapes(tmp_path_factory.mktemp('coco'), n_images=4, size=(96, 128), seed=0)


@pytest.fixture(scope='session')
def tinyckpt(tmp_path_factory):
    """A random-weight checkpoint of :func:`metatinycfg` in Meta's format."""
    path = tmp_path_factory.mktemp('tinyckpt') / 'tiny.pt'
    torch.manual_seed(0)
    torch.save({'model': BuildSegmentor(metatinycfg()).state_dict()}, path)
    return path


@pytest.fixture(scope='session')
def tinydavisconfig(tmp_path_factory, tinyckpt):
    """A fine-tune config file: the shipped tiny DAVIS recipe on the tiny model, starting from ``tinyckpt``."""
    return writetinytrainconfig(tmp_path_factory.mktemp('cfg'), 'samv21_hiera_tiny_davis', tinyckpt, **TINY_TRAIN)


@pytest.fixture(scope='session')
def tinycococonfig(tmp_path_factory, tinyckpt):
    """A fine-tune config file: the shipped tiny COCO recipe on the tiny model, starting from ``tinyckpt``."""
    return writetinytrainconfig(tmp_path_factory.mktemp('cococfg'), 'samv21_hiera_tiny_coco', tinyckpt,
                                num_workers=0, log_interval=1, checkpoint=dict(interval=2))
