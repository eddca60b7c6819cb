"""SAMV2: Segment Anything 2 (SAM 2 / SAM 2.1) as a segmentor, with its three predictors.

Layers, each importing only the ones before it: ``model/`` (nn.Modules) -> ``predictors/`` and
``video/`` (numpy in and out, state, model choice) -> ``outputs/`` (drawing); see docs/architecture.md.
"""
from .model import SAMV2
from .predictors import SAMV2AutomaticMaskGenerator, SAMV2ImagePredictor
from .video import SAMV2VideoPredictor

__all__ = ['SAMV2', 'SAMV2AutomaticMaskGenerator', 'SAMV2ImagePredictor', 'SAMV2VideoPredictor']
