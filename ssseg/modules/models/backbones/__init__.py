from .builder import BACKBONES, BuildBackbone
