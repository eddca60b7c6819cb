"""The SAMV2 model layer: nn.Modules taking and returning tensors (no numpy, images, files or allocator settings).

Importing this package registers SAMV2 and its parts in the registries (their ``locations`` name it).
"""
# imported for their registrations
from . import maskdecoder, memoryattention, memoryencoder, promptencoder, trainprompts, twowaytransformer  # noqa: F401
from .samv2 import NO_OBJ_SCORE, SAMV2
from .trainprompts import PromptPlan, SAMV2TrainPromptSampler

__all__ = ['NO_OBJ_SCORE', 'PromptPlan', 'SAMV2', 'SAMV2TrainPromptSampler']
