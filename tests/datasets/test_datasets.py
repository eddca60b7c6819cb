"""The training datasets: clips as the training step takes them, drawn from their index alone.

- A COCO clip is one frame with up to ``max_num_objects`` of the image's masks; a DAVIS clip is ``num_frames``
  consecutive annotated frames whose first frame shows every chosen object.
- Without augmentation, the frames equal the image predictor's input and the masks the nearest-resized ground truth.
- The same index gives the same clip (any process, any order), another pass over the same item another draw.
- ``collateclips`` flattens the objects of a batch with ``obj_to_frame_idx = [t, clip]``.
"""
import itertools

import numpy as np
import pytest
import torch
import torchvision.transforms.functional as TF

from ssseg.modules.datasets import (
    BuildDataset,
    COCOInstanceDataset,
    DAVISVideoDataset,
    SAMV2InfiniteSampler,
    checkdataset,
    collateclips,
)
from ssseg.modules.models.segmentors.samv2.predictors.transforms import SAMV2Transforms
from ssseg.testing.shapes import writecocoshapes, writedavisshapes

SIZE = 64


@pytest.fixture(scope='module')
def coco(tmp_path_factory):
    return writecocoshapes(tmp_path_factory.mktemp('coco'), n_images=3, size=(48, 80), n_objects=3, seed=1)


@pytest.fixture(scope='module')
def davis(tmp_path_factory):
    return writedavisshapes(tmp_path_factory.mktemp('davis'), n_videos=2, n_frames=5, n_objects=2, size=(48, 80),
                            seed=1)


def _nearest(masks):
    return TF.resize(torch.from_numpy(masks).to(torch.uint8), [SIZE, SIZE],
                     interpolation=TF.InterpolationMode.NEAREST).bool()


def test_coco_clip_is_the_predictor_input_and_resized_masks(coco):
    dataset = COCOInstanceDataset(*coco, image_size=SIZE, max_num_objects=2, transforms=[])
    checkdataset(dataset)
    assert len(dataset) == 3
    clip, raw = dataset[4], dataset.rawsample(1)  # index 4 = the second pass over item 1
    assert clip['images'].shape == (1, 3, SIZE, SIZE) and clip['images'].dtype == torch.float32
    assert clip['masks'].shape == (1, 2, SIZE, SIZE) and clip['masks'].dtype == torch.bool
    torch.testing.assert_close(clip['images'][0], SAMV2Transforms(SIZE).toinput(raw['images'][0]), rtol=0, atol=0)
    chosen = [raw['object_ids'].index(i) for i in clip['object_ids']]
    assert chosen == sorted(chosen) and len(set(chosen)) == 2
    assert torch.equal(clip['masks'], _nearest(raw['masks'][:, chosen]))
    assert clip['orig_size'] == (48, 80) and clip['name'] == raw['name']


def test_davis_clip_is_consecutive_frames_with_visible_objects(davis):
    dataset = BuildDataset(dict(type='DAVISVideoDataset', videos_dir=davis, num_frames=3, image_size=SIZE,
                                max_num_objects=1, transforms=[]))
    checkdataset(dataset)
    raw = dataset.rawsample(0)
    assert raw['masks'].shape == (5, 2, 48, 80) and raw['object_ids'] == [1, 2] and all(raw['annotated'])
    for index in (0, 2, 4, 6):
        clip = dataset[index]
        start = raw['frame_names'].index(clip['name'].split('/')[1])
        assert clip['images'].shape == (3, 3, SIZE, SIZE) and clip['masks'].shape == (3, 1, SIZE, SIZE)
        obj = raw['object_ids'].index(clip['object_ids'][0])
        assert torch.equal(clip['masks'], _nearest(raw['masks'][start:start + 3, obj:obj + 1]))
        assert clip['masks'][0].any()  # the chosen object is visible on the clip's first frame


def test_reversed_clip_plays_backwards(davis):
    dataset = DAVISVideoDataset(davis, num_frames=3, image_size=SIZE, transforms=[], reverse_prob=1.0)
    raw = dataset.rawsample(0)
    for index in (0, 2, 4):
        clip = dataset[index]
        last = raw['frame_names'].index(clip['name'].split('/')[1])  # the clip starts on the window's last frame
        assert last >= 2
        objects = [raw['object_ids'].index(i) for i in clip['object_ids']]
        assert torch.equal(clip['masks'], _nearest(raw['masks'][last - 2:last + 1, objects][::-1].copy()))
        assert clip['masks'][0].flatten(1).any(1).all()


def test_a_clip_is_a_function_of_its_index(davis):
    dataset = DAVISVideoDataset(davis, num_frames=2, image_size=SIZE)  # the default augmentation
    first = [dataset[i] for i in range(8)]
    again = [dataset[i] for i in reversed(range(8))][::-1]
    for a, b in zip(first, again):
        assert torch.equal(a['images'], b['images']) and torch.equal(a['masks'], b['masks'])
    # item 0 in passes 0, 1, 2, 3: the draws (start frame, objects, flip, colours) differ from pass to pass
    draws = {(c['name'], tuple(c['object_ids']), c['images'].sum().item()) for c in first[0::2]}
    assert len(draws) == 4


def test_flip_mirrors_frames_and_masks_together(coco):
    plain = COCOInstanceDataset(*coco, image_size=SIZE, transforms=[])
    flipped = COCOInstanceDataset(*coco, image_size=SIZE, transforms=[dict(type='ClipHorizontalFlip', prob=1.0)])
    a, b = plain[0], flipped[0]
    assert a['object_ids'] == b['object_ids']
    raw = plain.rawsample(0)
    expected = SAMV2Transforms(SIZE).toinput(np.ascontiguousarray(raw['images'][0][:, ::-1]))
    torch.testing.assert_close(b['images'][0], expected, rtol=0, atol=0)
    assert torch.equal(b['masks'], _nearest(np.ascontiguousarray(raw['masks'][..., ::-1])))


def test_collate_flattens_objects_with_their_clip(davis):
    dataset = DAVISVideoDataset(davis, num_frames=3, image_size=SIZE, max_num_objects=2)
    samples = [dataset[0], dataset[1], dataset[2]]
    batch = collateclips(samples)
    counts = [s['masks'].shape[1] for s in samples]
    assert batch.images.shape == (3, 3, 3, SIZE, SIZE) and batch.masks.shape == (3, sum(counts), SIZE, SIZE)
    clips = list(itertools.chain.from_iterable([b] * n for b, n in enumerate(counts)))
    for t in range(3):
        assert batch.obj_to_frame_idx[t, :, 0].tolist() == [t] * sum(counts)
        assert batch.obj_to_frame_idx[t, :, 1].tolist() == clips
    assert torch.equal(batch.masks[:, counts[0]:counts[0] + counts[1]], samples[1]['masks'])
    assert len(batch) == 3 and batch.names == [s['name'] for s in samples]
    with pytest.raises(ValueError, match='one frame count'):
        collateclips([dataset[0], DAVISVideoDataset(davis, num_frames=2, image_size=SIZE)[0]])


def test_sampler_passes_carry_the_pass_number(davis):
    dataset = DAVISVideoDataset(davis, num_frames=2, image_size=SIZE)
    indices = list(itertools.islice(iter(SAMV2InfiniteSampler(dataset, shuffle=True, seed=3)), 6))
    assert sorted(i % 2 for i in indices[:2]) == [0, 1] and all(i // 2 == k // 2 for k, i in enumerate(indices))


@pytest.mark.parametrize('cfg, message', [
    (dict(image_size=0), 'image_size must be an int >= 1'),
    (dict(max_num_objects=1.5), 'max_num_objects must be an int >= 1'),
    (dict(num_frames=0), 'num_frames must be an int >= 1'),
    (dict(reverse_prob=2), 'reverse_prob must be a probability'),
    (dict(transforms=[dict(type='ClipHorizontalFlip', prob=-1)]), 'prob must be a probability'),
    (dict(transforms=[dict(type='NoSuchTransform')]), 'not a registered data transform'),
    (dict(transforms=dict(type='ClipToTensor')), 'must be a list of dicts'),
])
def test_bad_options(davis, cfg, message):
    with pytest.raises((ValueError, TypeError), match=message):
        BuildDataset(dict(type='DAVISVideoDataset', videos_dir=davis, **cfg))
