"""Backbone registry: image encoders and their trunks/necks, built from config dicts."""
from mmengine.registry import Registry

from ...utils.registry import buildfromregistry

BACKBONES = Registry('backbone')


def BuildBackbone(cfg):
    """Build a backbone from a dict such as ``{'type': 'Hiera', 'embed_dim': 96, ...}``."""
    return buildfromregistry(BACKBONES, cfg, 'backbone cfg')
