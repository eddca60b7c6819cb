"""Registries for the layers that models assemble from config sub-dicts."""
from mmengine.registry import Registry

from ...utils.registry import buildfromregistry

POSITIONENCODINGS = Registry('position encoding')
TRANSFORMERS = Registry('transformer')  # attention layers, transformer blocks and stacks
HEADS = Registry('head')  # prompt encoders, mask decoders, memory encoders and their parts


def BuildPositionEncoding(cfg):
    return buildfromregistry(POSITIONENCODINGS, cfg, 'position encoding cfg')


def BuildTransformer(cfg):
    return buildfromregistry(TRANSFORMERS, cfg, 'transformer cfg')


def BuildHead(cfg):
    return buildfromregistry(HEADS, cfg, 'head cfg')
