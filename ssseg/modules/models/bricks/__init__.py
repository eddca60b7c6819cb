"""Generic layers shared by models: MLP, norms, DropPath, attention, axial RoPE, position encodings."""
from .layers import MLP, BuildActivation, DropPath, LayerNorm2d

__all__ = ['MLP', 'BuildActivation', 'DropPath', 'LayerNorm2d']
