"""The registries of the training data: datasets and the transforms of their clips, with their ``Build*`` functions.

Each registry imports its own modules (mmengine ``locations``) the first time a type is asked for, as the model
registries do: ``BuildDataset(dict(type='DAVISVideoDataset', videos_dir=...))`` works in a fresh process.
"""
from mmengine.registry import Registry

from ssseg.modules.utils.registry import makebuilder

_HERE = 'ssseg.modules.datasets'

DATASETS = Registry('dataset', locations=[f'{_HERE}.coco', f'{_HERE}.davis'])  # folders -> training clips
DATA_TRANSFORMS = Registry('data transform', locations=[f'{_HERE}.transforms'])  # clip -> clip (resize, flip, ...)

BuildDataset = makebuilder('BuildDataset', DATASETS, 'dataset cfg')
BuildDataTransform = makebuilder('BuildDataTransform', DATA_TRANSFORMS, 'data transform cfg')
