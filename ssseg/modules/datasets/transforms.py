"""Transforms of a training clip, each drawing its randomness from the generator it is given.

A clip here is ``{'images': [(H, W, 3) uint8 RGB] * T, 'masks': (T, O, H, W) bool, ...}`` (numpy); every random
choice is made once per clip and applied to all its frames alike, as Meta's consistent transforms do. The last
transform, :class:`ClipToTensor`, gives the model's input: the frames resized to S x S and normalized exactly as
the image predictor prepares an image, the masks resized by nearest neighbour.
"""
from typing import Optional, Sequence

import numpy as np
import torch
import torchvision.transforms.functional as TF

from ssseg.modules.models.segmentors.samv2.predictors.transforms import SAMV2Transforms

from .registries import DATA_TRANSFORMS, BuildDataTransform

_GRAY = np.array([0.299, 0.587, 0.114], np.float32)  # ITU-R 601 luma, as PIL and torchvision use


def _probability(name, value):
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 <= value <= 1:
        raise ValueError(f'{name} must be a probability in [0, 1], got {value!r}')
    return float(value)


@DATA_TRANSFORMS.register_module()
class ClipHorizontalFlip:
    """Mirror every frame and mask left-right with probability ``prob``."""

    def __init__(self, prob: float = 0.5):
        self.prob = _probability('ClipHorizontalFlip prob', prob)

    def __call__(self, clip: dict, rng: np.random.Generator) -> dict:
        if rng.random() < self.prob:
            clip['images'] = [np.ascontiguousarray(image[:, ::-1]) for image in clip['images']]
            clip['masks'] = np.ascontiguousarray(clip['masks'][..., ::-1])
        return clip


@DATA_TRANSFORMS.register_module()
class ClipColorJitter:
    """Brightness, contrast and saturation factors drawn from [1 - x, 1 + x] once per clip (Meta's recipe: 0.1,
    0.03, 0.03), then a grayscale clip with probability ``gray_prob`` (Meta's: 0.05)."""

    def __init__(self, brightness: float = 0.1, contrast: float = 0.03, saturation: float = 0.03,
                 gray_prob: float = 0.05):
        for name, value in (('brightness', brightness), ('contrast', contrast), ('saturation', saturation)):
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 <= value < 1:
                raise ValueError(f'ClipColorJitter {name} must be in [0, 1), got {value!r}')
        self.brightness, self.contrast, self.saturation = float(brightness), float(contrast), float(saturation)
        self.gray_prob = _probability('ClipColorJitter gray_prob', gray_prob)

    def __call__(self, clip: dict, rng: np.random.Generator) -> dict:
        factors = [rng.uniform(1 - x, 1 + x) for x in (self.brightness, self.contrast, self.saturation)]
        gray = rng.random() < self.gray_prob
        clip['images'] = [self._jitter(image, *factors, gray) for image in clip['images']]
        return clip

    @staticmethod
    def _jitter(image, brightness, contrast, saturation, gray):
        pixels = image.astype(np.float32) * brightness
        luma = pixels @ _GRAY
        pixels = (pixels - luma.mean()) * contrast + luma.mean()
        luma = (pixels @ _GRAY)[..., None]
        pixels = luma + (pixels - luma) * saturation
        if gray:
            pixels = np.repeat((pixels @ _GRAY)[..., None], 3, axis=2)
        return np.clip(np.rint(pixels), 0, 255).astype(np.uint8)


@DATA_TRANSFORMS.register_module()
class ClipToTensor:
    """Frames -> (T, 3, S, S) float32 as the image predictor prepares an image; masks -> (T, O, S, S) bool.

    Args:
        image_size: S, the model's input side.
    """

    def __init__(self, image_size: int):
        if not isinstance(image_size, int) or isinstance(image_size, bool) or image_size < 16:
            raise ValueError(f'ClipToTensor image_size must be an int >= 16, got {image_size!r}')
        self.image_size = image_size
        self._transforms = SAMV2Transforms(image_size)

    def __call__(self, clip: dict, rng: Optional[np.random.Generator] = None) -> dict:
        size = [self.image_size, self.image_size]
        clip['images'] = torch.stack([self._transforms.toinput(image) for image in clip['images']])
        masks = torch.from_numpy(np.ascontiguousarray(clip['masks'])).to(torch.uint8)
        if masks.shape[1] == 0:
            clip['masks'] = torch.zeros(masks.shape[0], 0, *size, dtype=torch.bool)
        else:
            clip['masks'] = TF.resize(masks, size, interpolation=TF.InterpolationMode.NEAREST).bool()
        return clip


def defaulttransforms(image_size: int) -> list:
    """Meta's photometric and flip augmentation, then :class:`ClipToTensor` (configs, not objects)."""
    return [dict(type='ClipHorizontalFlip', prob=0.5), dict(type='ClipColorJitter'),
            dict(type='ClipToTensor', image_size=image_size)]


def buildtransforms(cfgs: Optional[Sequence[dict]], image_size: int) -> list:
    """The transforms of ``cfgs`` (None: :func:`defaulttransforms`); ClipToTensor is appended when missing.

    Raises:
        TypeError: ``cfgs`` not a list of dicts; ValueError/TypeError: the builder's errors, naming the entry.
    """
    cfgs = defaulttransforms(image_size) if cfgs is None else cfgs
    if isinstance(cfgs, (str, dict)) or not isinstance(cfgs, (list, tuple)):
        raise TypeError(f'dataset transforms must be a list of dicts with a "type" key, got {cfgs!r:.120}')
    transforms = [BuildDataTransform(dict(cfg) if isinstance(cfg, dict) else cfg) for cfg in cfgs]
    if not any(isinstance(t, ClipToTensor) for t in transforms):
        transforms.append(ClipToTensor(image_size))
    return transforms
