"""ssseg's modules: builders (``BuildSegmentor``, ``BuildBackbone``, ...) and utilities."""
from .models.registries import (
    BuildAttention,
    BuildBackbone,
    BuildConvBlock,
    BuildHead,
    BuildLoss,
    BuildNeck,
    BuildPositionEncoding,
    BuildPromptSampler,
    BuildSegmentor,
    BuildTransformer,
    BuildTransformerLayer,
)

__all__ = ['BuildAttention', 'BuildBackbone', 'BuildConvBlock', 'BuildHead', 'BuildLoss', 'BuildNeck',
           'BuildPositionEncoding', 'BuildPromptSampler', 'BuildSegmentor', 'BuildTransformer', 'BuildTransformerLayer']
