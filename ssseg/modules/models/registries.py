"""The registries of ssseg's models, one kind of module each, and their ``Build*`` functions.

Each registry names, as mmengine ``locations``, the modules that register into it, and imports them the first
time it is asked for a type: building never depends on what happened to be imported before. ``BuildX(cfg)``
builds ``cfg['type']`` with the other keys as keyword arguments; errors name the config and list the known types.
"""
from mmengine.registry import Registry

from ssseg.modules.utils.registry import makebuilder

_SAMV2 = 'ssseg.modules.models.segmentors.samv2.model'
_BACKBONES = ['ssseg.modules.models.backbones.hiera', 'ssseg.modules.models.backbones.imageencoder']
_BRICKS = 'ssseg.modules.models.bricks'

SEGMENTORS = Registry('segmentor', locations=[_SAMV2])  # whole models, built from a config file's SEGMENTOR_CFG
HEADS = Registry('head', locations=[_SAMV2])  # what a segmentor puts on its backbone: prompt/mask/memory heads
BACKBONES = Registry('backbone', locations=_BACKBONES)  # image -> feature maps: trunks, trunk + neck encoders
NECKS = Registry('neck', locations=_BACKBONES[1:])  # multi-scale maps -> fused multi-scale maps (FPN)
POSITIONAL_ENCODINGS = Registry('position encoding', locations=[f'{_BRICKS}.positionencoding'])  # sine, random
ATTENTIONS = Registry('attention', locations=[f'{_BRICKS}.attention', f'{_BRICKS}.rope'])  # (q, k, v) -> q
TRANSFORMER_LAYERS = Registry('transformer layer', locations=[_SAMV2])  # attention + feed-forward, one layer
TRANSFORMERS = Registry('transformer', locations=[_SAMV2])  # stacks of transformer layers
CONV_BLOCKS = Registry('conv block', locations=[_SAMV2])  # convolutional blocks and stacks on (B, C, H, W) maps
LOSSES = Registry('loss', locations=['ssseg.modules.models.losses'])  # (predictions, targets) -> dict of losses
PROMPT_SAMPLERS = Registry('prompt sampler', locations=[_SAMV2])  # training prompts simulated from ground truth

BuildSegmentor = makebuilder('BuildSegmentor', SEGMENTORS, 'segmentor cfg')
BuildHead = makebuilder('BuildHead', HEADS, 'head cfg')
BuildBackbone = makebuilder('BuildBackbone', BACKBONES, 'backbone cfg')
BuildNeck = makebuilder('BuildNeck', NECKS, 'neck cfg')
BuildPositionEncoding = makebuilder('BuildPositionEncoding', POSITIONAL_ENCODINGS, 'position encoding cfg')
BuildAttention = makebuilder('BuildAttention', ATTENTIONS, 'attention cfg')
BuildTransformerLayer = makebuilder('BuildTransformerLayer', TRANSFORMER_LAYERS, 'transformer layer cfg')
BuildTransformer = makebuilder('BuildTransformer', TRANSFORMERS, 'transformer cfg')
BuildConvBlock = makebuilder('BuildConvBlock', CONV_BLOCKS, 'conv block cfg')
BuildLoss = makebuilder('BuildLoss', LOSSES, 'loss cfg')
BuildPromptSampler = makebuilder('BuildPromptSampler', PROMPT_SAMPLERS, 'prompt sampler cfg')
