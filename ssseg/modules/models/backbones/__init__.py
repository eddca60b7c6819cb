from .builder import BACKBONES, BuildBackbone
from .hiera import Hiera
from .imageencoder import FpnNeck, SAMV2ImageEncoder
