"""The SAMV2 predictor layer: numpy/PIL in and out, validation, model choice and per-image state."""
from .automaticmaskgenerator import SAMV2AutomaticMaskGenerator
from .imagepredictor import NoImageError, SAMV2ImagePredictor

__all__ = ['NoImageError', 'SAMV2AutomaticMaskGenerator', 'SAMV2ImagePredictor']
