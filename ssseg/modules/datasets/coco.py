"""Image fine-tuning data: a COCO instance JSON (RLE or polygon masks) and its image folder.

Each image is a one-frame clip with up to ``max_num_objects`` of its annotations (crowd ones left out). The JSON
may come from a labelling tool or from ``ssseg amg --coco``: ``images`` (id, file_name, height, width),
``annotations`` (id, image_id, category_id, segmentation, iscrowd) and ``categories``.
"""
import json
import os
from typing import List, Optional, Sequence, Tuple

import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils

from ssseg.modules.utils import rle as rle_utils

from .base import ClipDataset
from .registries import DATASETS
from .validation import DatasetError


def _readjson(ann_file):
    if not os.path.isfile(ann_file):
        raise DatasetError(f'{ann_file}: no such COCO annotation file')
    try:
        with open(ann_file, encoding='utf-8') as file:
            coco = json.load(file)
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise DatasetError(f'{ann_file}: not a readable JSON file ({type(err).__name__}: {err})') from err
    if not isinstance(coco, dict) or not isinstance(coco.get('images'), list) or \
            not isinstance(coco.get('annotations'), list):
        raise DatasetError(f'{ann_file}: a COCO instance file needs "images" and "annotations" lists')
    return coco


def decodesegmentation(segmentation, size: Tuple[int, int]) -> np.ndarray:
    """(H, W) bool mask of a COCO segmentation: a polygon list, or an uncompressed or compressed RLE dict.

    Raises:
        ValueError: a segmentation of another size than ``size`` = (H, W), or one that does not decode.
    """
    height, width = size
    if isinstance(segmentation, dict):
        return rle_utils.decode(segmentation, 'segmentation', size=(height, width))
    if isinstance(segmentation, list) and segmentation and \
            all(isinstance(p, list) and len(p) >= 6 and len(p) % 2 == 0 for p in segmentation):
        rles = mask_utils.frPyObjects(segmentation, height, width)
        return mask_utils.decode(mask_utils.merge(rles)).astype(bool)
    raise ValueError('segmentation must be an RLE dict ({"size", "counts"}) or a list of polygons '
                     f'[[x1, y1, x2, y2, x3, y3, ...], ...], got {str(segmentation)[:80]}')


@DATASETS.register_module()
class COCOInstanceDataset(ClipDataset):
    """Images of a COCO instance file as one-frame training clips.

    Args:
        ann_file: the COCO JSON.
        img_dir: the folder its ``file_name`` entries are relative to.
        image_size, max_num_objects, transforms, seed: see :class:`ClipDataset`.
    Raises:
        DatasetError: a missing or unreadable JSON, or one without "images"/"annotations"; no image with an
            annotation.
    """

    def __init__(self, ann_file: str, img_dir: str, image_size: int = 1024, max_num_objects: int = 3,
                 transforms: Optional[Sequence] = None, seed: int = 0):
        super().__init__(image_size, max_num_objects, transforms, seed)
        self.ann_file, self.img_dir = os.fspath(ann_file), os.fspath(img_dir)
        coco = _readjson(self.ann_file)
        self.categories = {c.get('id') for c in coco.get('categories') or [] if isinstance(c, dict)}
        self._annotations, self._images = {}, {}
        for image in coco['images']:
            if isinstance(image, dict):
                self._images[image.get('id')] = image
        for annotation in coco['annotations']:
            if isinstance(annotation, dict) and not annotation.get('iscrowd', 0):
                self._annotations.setdefault(annotation.get('image_id'), []).append(annotation)
        self.image_ids = [i for i in self._images if i in self._annotations]
        self._unknown = [a for i, anns in self._annotations.items() if i not in self._images for a in anns]
        self._nonempty(self.ann_file)

    def __len__(self) -> int:
        return len(self.image_ids)

    def describe(self) -> str:
        return f'{self.ann_file} (images in {self.img_dir})'

    def imagepath(self, item: int) -> str:
        """The file of image ``item``."""
        return os.path.join(self.img_dir, str(self._images[self.image_ids[item]].get('file_name')))

    def rawsample(self, item: int, annotation_ids: Optional[List[int]] = None) -> dict:
        """Image ``item`` as read: ``name``, ``images`` [(H, W, 3) uint8], ``masks`` (1, O, H, W) bool (all its
        non-crowd annotations in file order, or those of ``annotation_ids``), ``object_ids``, ``orig_size``."""
        record = self._images[self.image_ids[item]]
        image = np.asarray(Image.open(self.imagepath(item)).convert('RGB'))
        size = image.shape[:2]
        annotations = self._annotations[self.image_ids[item]]
        if annotation_ids is not None:
            wanted = set(annotation_ids)
            annotations = [a for a in annotations if a.get('id') in wanted]
        masks = np.stack([decodesegmentation(a['segmentation'], size) for a in annotations])[None]
        return dict(name=str(record.get('file_name')), images=[image], masks=masks,
                    object_ids=[a.get('id') for a in annotations], orig_size=size)

    def _rawclip(self, item: int, rng: np.random.Generator) -> dict:
        ids = [a.get('id') for a in self._annotations[self.image_ids[item]]]
        return self.rawsample(item, self.selectobjects(ids, rng))

    def problems(self) -> List[Tuple[str, str]]:
        """Missing or unreadable images, sizes that differ from the JSON, masks of another size, masks with no
        pixels and unknown categories, each named by its file (and annotation id)."""
        found = [(self.ann_file, f'annotation {a.get("id")} refers to image_id {a.get("image_id")!r}, which is '
                  'not in "images"') for a in self._unknown]
        for item in range(len(self)):
            found += self._imageproblems(item)
        return found

    def _imageproblems(self, item):
        record, path = self._images[self.image_ids[item]], self.imagepath(item)
        if not os.path.isfile(path):
            return [(path, f'image file missing (file_name of image id {record.get("id")} in {self.ann_file})')]
        try:
            with Image.open(path) as image:
                width, height = image.size
        except (OSError, ValueError) as err:
            return [(path, f'not a readable image ({type(err).__name__}: {err})')]
        found = []
        if (record.get('height'), record.get('width')) not in ((height, width), (None, None)):
            found.append((path, f'image is {width}x{height} (width x height) but {self.ann_file} says '
                                f'{record.get("width")}x{record.get("height")}'))
        for annotation in self._annotations[self.image_ids[item]]:
            message = self._annotationproblem(annotation, (height, width))
            if message:
                found.append((self.ann_file, f'annotation {annotation.get("id")} (image {record.get("file_name")}): '
                                             f'{message}'))
        return found

    def _annotationproblem(self, annotation, size):
        if self.categories and annotation.get('category_id') not in self.categories:
            return f'unknown category_id {annotation.get("category_id")!r} (categories: {sorted(self.categories)})'
        try:
            mask = decodesegmentation(annotation.get('segmentation'), size)
        except (ValueError, TypeError) as err:
            return f'mask does not fit its {size[1]}x{size[0]} image: {err}'
        if not mask.any():
            return 'mask has no pixels'
        return None
