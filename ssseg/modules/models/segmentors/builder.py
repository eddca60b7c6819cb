"""Segmentor registry: full models (SAMV2) built from config dicts."""
from mmengine.registry import Registry

from ...utils.registry import buildfromregistry

SEGMENTORS = Registry('segmentor')


def BuildSegmentor(cfg):
    """Build a segmentor from a dict such as ``SEGMENTOR_CFG`` of a config file (its 'ckptpath' is not loaded here)."""
    return buildfromregistry(SEGMENTORS, cfg, 'segmentor cfg')
