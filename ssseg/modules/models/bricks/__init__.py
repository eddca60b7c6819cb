from .builder import POSITIONENCODINGS, TRANSFORMERS, HEADS, BuildPositionEncoding, BuildTransformer, BuildHead
from .layers import MLP, LayerNorm2d, BuildActivation
