"""The SAMV2 model layer: nn.Modules taking and returning tensors (no numpy, images, files or allocator settings).

Importing this package registers SAMV2 and its parts in the registries (their ``locations`` name it).
"""
from . import maskdecoder, memoryattention, memoryencoder, promptencoder, twowaytransformer  # noqa: F401 (registration)
from .samv2 import NO_OBJ_SCORE, SAMV2

__all__ = ['NO_OBJ_SCORE', 'SAMV2']
