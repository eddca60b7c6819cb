"""Fixtures of the evaluation tests: small synthetic COCO and DAVIS data, the tiny model's config file and a random
checkpoint of it, and fake predictors that answer with the ground truth."""
import numpy as np
import pytest
import torch

from ssseg.modules.datasets import COCOInstanceDataset, DAVISVideoDataset
from ssseg.testing.shapes import writecocoshapes, writedavisshapes
from ssseg.testing.tiny import tinycfg, writetinyckpt

SIZE = (96, 128)


@pytest.fixture(scope='session')
def evalcoco(tmp_path_factory):
    """(ann_file, img_dir) of 3 synthetic images, 3 shapes each."""
    return writecocoshapes(tmp_path_factory.mktemp('evalcoco'), n_images=3, size=SIZE, seed=1)


@pytest.fixture(scope='session')
def evaldavis(tmp_path_factory):
    """A DAVIS-style folder of 2 synthetic videos (5 frames, 2 moving shapes each)."""
    return writedavisshapes(tmp_path_factory.mktemp('evaldavis'), n_videos=2, n_frames=5, n_objects=2, size=SIZE,
                            seed=1)


@pytest.fixture(scope='session')
def evalckpt(tmp_path_factory):
    """(the tiny model's config with ``ckptpath``, the checkpoint's path): random weights in Meta's format."""
    path = tmp_path_factory.mktemp('evalckpt') / 'model_final.pt'
    return writetinyckpt(path, seed=0), str(path)


@pytest.fixture(scope='session')
def tinycfgfile(tmp_path_factory):
    """A model config file (``SEGMENTOR_CFG``, no checkpoint) of the tiny model, for ``--cfg``."""
    path = tmp_path_factory.mktemp('evalcfg') / 'tiny_eval.py'
    path.write_text(f'SEGMENTOR_CFG = {tinycfg()!r}\n', encoding='utf-8')
    return str(path)


@pytest.fixture(scope='session')
def cocodataset(evalcoco):
    return COCOInstanceDataset(*evalcoco, image_size=128)


@pytest.fixture(scope='session')
def davisdataset(evaldavis):
    return DAVISVideoDataset(evaldavis, num_frames=1, image_size=128)


def _key(image):
    return np.ascontiguousarray(image).tobytes()


class GroundTruthImagePredictor:
    """Answers a click with 3 candidates whose best-scored is the clicked object's ground truth, and a box with the
    mask whose tight box it is; records the prompts."""

    def __init__(self, dataset):
        self.samples = {_key(s['images'][0]): s for s in (dataset.rawsample(i) for i in range(len(dataset)))}
        self.calls = []

    def setimage(self, image):
        self.masks = self.samples[_key(image)]['masks'][0]

    def predict(self, point_coords=None, point_labels=None, box=None, multimask_output=True):
        from ssseg.evaluation.metrics import maskbox
        self.calls.append((point_coords, point_labels, box, multimask_output))
        if box is not None:
            gt = next(m for m in self.masks if maskbox(m) == tuple(int(v) for v in box))
            return gt[None].astype(np.float32), np.ones(1, np.float32), None
        x, y = (int(v) for v in point_coords[0])
        gt = next(m for m in self.masks if m[y, x])
        candidates = np.stack([np.zeros_like(gt), gt, np.ones_like(gt)]).astype(np.float32)
        return candidates, np.array([0.2, 0.9, 0.5], np.float32), None


class GroundTruthVideoPredictor:
    """A video predictor answering each prompted object's ground truth on every frame it tracks; ``change(frame_idx,
    obj_id, mask)`` may alter the answer. Records the prompts and the propagation starts."""

    def __init__(self, dataset, change=None):
        self.samples = {_key(s['images'][0]): s for s in (dataset.rawsample(i) for i in range(len(dataset)))}
        self.change, self.prompts, self.starts = change, [], []

    def initstate(self, frames):
        return dict(sample=self.samples[_key(frames[0])], objects=[])

    def resetstate(self, state):
        state['objects'] = []

    def addnewmask(self, state, frame_idx, obj_id, mask):
        sample = state['sample']
        gt = sample['masks'][frame_idx, sample['object_ids'].index(obj_id)]
        assert np.array_equal(np.asarray(mask, bool), gt), 'the prompt is the ground truth of that frame'
        state['objects'].append(obj_id)
        self.prompts.append((sample['name'], frame_idx, obj_id))

    def propagateinvideo(self, state, start_frame_idx=None):
        sample = state['sample']
        self.starts.append((sample['name'], start_frame_idx))
        for t in range(start_frame_idx, len(sample['images'])):
            masks = [sample['masks'][t, sample['object_ids'].index(o)] for o in state['objects']]
            if self.change:
                masks = [self.change(t, o, m, sample) for o, m in zip(state['objects'], masks)]
            logits = torch.from_numpy(np.stack(masks)[:, None].astype(np.float32) * 20 - 10)
            yield t, list(state['objects']), logits


@pytest.fixture
def gtimagepredictor():
    return GroundTruthImagePredictor


@pytest.fixture
def gtvideopredictor():
    return GroundTruthVideoPredictor

