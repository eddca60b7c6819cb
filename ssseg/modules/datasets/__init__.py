"""Training and evaluation data: COCO instance images and DAVIS-style videos as SAMV2 training clips.

``BuildDataset(cfg)`` builds a registered dataset; ``checkdataset(dataset)`` reads every file once and raises a
:class:`DatasetError` naming the bad ones; ``collateclips`` stacks samples into the :class:`ClipBatch` that
``SAMV2.forwardtrain`` takes.
"""
from .base import ClipDataset, SAMV2InfiniteSampler
from .batch import ClipBatch, collateclips
from .coco import COCOInstanceDataset
from .davis import DAVISVideoDataset
from .registries import DATA_TRANSFORMS, DATASETS, BuildDataset, BuildDataTransform
from .transforms import ClipColorJitter, ClipHorizontalFlip, ClipToTensor
from .validation import DatasetError, checkdataset

__all__ = ['BuildDataTransform', 'BuildDataset', 'COCOInstanceDataset', 'ClipBatch', 'ClipColorJitter',
           'ClipDataset', 'ClipHorizontalFlip', 'ClipToTensor', 'DATASETS', 'DATA_TRANSFORMS', 'DAVISVideoDataset',
           'DatasetError', 'SAMV2InfiniteSampler', 'checkdataset', 'collateclips']
