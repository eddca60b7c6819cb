"""SAMV2: Segment Anything 2 (SAM 2 / SAM 2.1) as a segmentor, with its three predictors."""
from . import positionencoding, transformer, memoryattention, promptencoder, maskdecoder, memoryencoder  # noqa: F401 (registration)
from .samv2 import SAMV2
from .imagepredictor import SAMV2ImagePredictor
from .automaticmaskgenerator import SAMV2AutomaticMaskGenerator
from .videopredictor import SAMV2VideoPredictor
