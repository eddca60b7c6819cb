from .bricks import BuildPositionEncoding, BuildTransformer, BuildHead
from .backbones import BuildBackbone
from .segmentors import BuildSegmentor
from .segmentors import samv2  # noqa: F401  (registers SAMV2 and its parts)
