"""ssseg's modules: builders (``BuildSegmentor``, ``BuildBackbone``, ...) and utilities."""
from .models.registries import (
    BuildAttention,
    BuildBackbone,
    BuildConvBlock,
    BuildHead,
    BuildNeck,
    BuildPositionEncoding,
    BuildSegmentor,
    BuildTransformer,
    BuildTransformerLayer,
)

__all__ = ['BuildAttention', 'BuildBackbone', 'BuildConvBlock', 'BuildHead', 'BuildNeck', 'BuildPositionEncoding',
           'BuildSegmentor', 'BuildTransformer', 'BuildTransformerLayer']
