"""Export of automatic-mask-generator records: COCO JSON and label-map PNG, both written atomically.

Masks are encoded and decoded by :mod:`.rle`, files written by :mod:`.fileio`.

A record is a dict as the generator returns: ``segmentation`` (an (H, W) binary array, an uncompressed
RLE {'size': [H, W], 'counts': [int, ...]} or a COCO RLE {'size': [H, W], 'counts': str or bytes}),
and optionally ``area``, ``bbox`` (XYWH), ``predicted_iou``, ``point_coords``, ``stability_score`` and
``crop_box`` (XYWH). ``image_size`` is always (height, width).
"""
import os
from typing import Sequence, Union

import numpy as np
from pycocotools import mask as mask_utils

from . import rle
from .fileio import writeimage, writejson


def _checksize(image_size):
    if (not isinstance(image_size, (tuple, list)) or len(image_size) != 2
            or not all(isinstance(v, (int, np.integer)) and v > 0 for v in image_size)):
        raise ValueError(f'image_size must be (height, width) positive ints, got {image_size!r}')
    return int(image_size[0]), int(image_size[1])


def _checkrecords(records):
    if not isinstance(records, (list, tuple)):
        raise ValueError(f'records must be a list of dicts, got {type(records).__name__}')
    for i, record in enumerate(records):
        if not isinstance(record, dict) or 'segmentation' not in record:
            keys = f' with keys {sorted(record)}' if isinstance(record, dict) else ''
            raise ValueError(f'records[{i}] must be a dict with a "segmentation" key, '
                             f'got {type(record).__name__}{keys}')


def _binary(segmentation, image_size, index):
    mask = np.asarray(segmentation)
    if mask.shape != tuple(image_size):
        raise ValueError(f'records[{index}]["segmentation"] must be a binary {tuple(image_size)} array, '
                         f'got shape {mask.shape}')
    return mask != 0


def _cocorle(segmentation, image_size, index):
    """COCO RLE with str counts of one record's segmentation, checked against image_size."""
    if isinstance(segmentation, dict):
        return rle.tococo(segmentation, f'records[{index}]["segmentation"]', image_size)
    return rle.frommask(_binary(segmentation, image_size, index))


def _decode(segmentation, image_size, index):
    """(H, W) bool mask of one record's segmentation."""
    if isinstance(segmentation, dict):
        return rle.decode(segmentation, f'records[{index}]["segmentation"]', image_size)
    return _binary(segmentation, image_size, index)


def recordstococo(records: Sequence[dict], image_size: Sequence[int], file_name: str = 'image.png', image_id: int = 1,
                  category_id: int = 1) -> dict:
    """COCO-style dict (info, images, categories, annotations) of the records of one image.

    Annotation i has id i + 1, a COCO RLE segmentation with str counts, bbox (XYWH; from the mask when
    the record has none), area (likewise), score = predicted_iou, iscrowd 0, and the record's
    stability_score, point_coords and crop_box when present. Loadable with ``pycocotools.coco.COCO``.

    Args:
        records: the generator's records (see the module docstring), masks of ``image_size``.
        image_size: the image's (height, width), positive ints.
        file_name: the image's file name in ``images``.
        image_id, category_id: the ids written into the dict.
    Returns:
        The JSON-ready COCO dict.
    Raises:
        ValueError: a bad ``image_size``, records that are not a list of dicts with "segmentation", or a
            segmentation of another size or a bad RLE.
    """
    h, w = _checksize(image_size)
    _checkrecords(records)
    annotations = []
    for i, record in enumerate(records):
        rle = _cocorle(record['segmentation'], (h, w), i)
        compressed = {'size': rle['size'], 'counts': rle['counts'].encode('utf-8')}
        bbox = record['bbox'] if record.get('bbox') is not None else mask_utils.toBbox(compressed)
        area = record['area'] if record.get('area') is not None else mask_utils.area(compressed)
        annotation = {'id': i + 1, 'image_id': image_id, 'category_id': category_id, 'segmentation': rle,
                      'bbox': [float(v) for v in np.asarray(bbox).reshape(-1)], 'area': int(area), 'iscrowd': 0}
        if record.get('predicted_iou') is not None:
            annotation['score'] = float(record['predicted_iou'])
        if record.get('stability_score') is not None:
            annotation['stability_score'] = float(record['stability_score'])
        for key in ('point_coords', 'crop_box'):
            if record.get(key) is not None:
                annotation[key] = np.asarray(record[key], dtype=np.float64).tolist()
        annotations.append(annotation)
    return {
        'info': {'description': 'masks of the SAMV2 automatic mask generator'},
        'images': [{'id': image_id, 'file_name': str(file_name), 'height': h, 'width': w}],
        'categories': [{'id': category_id, 'name': 'object', 'supercategory': 'object'}],
        'annotations': annotations,
    }


def savecocojson(records: Sequence[dict], path: Union[str, os.PathLike], image_size: Sequence[int],
                 file_name: str = 'image.png', image_id: int = 1, category_id: int = 1) -> str:
    """Write ``recordstococo(...)`` to ``path`` as JSON, atomically.

    Args:
        records, image_size, file_name, image_id, category_id: as for :func:`recordstococo`.
        path: the JSON file to create or replace.
    Returns:
        ``path`` (as a str).
    Raises:
        ValueError: as :func:`recordstococo`.
    """
    coco = recordstococo(records, image_size, file_name=file_name, image_id=image_id, category_id=category_id)
    return writejson(path, coco)


def recordstolabelmap(records: Sequence[dict], image_size: Sequence[int]) -> np.ndarray:
    """Label map of the records of one image.

    Larger masks are painted first (stable for equal areas), so smaller ones, usually nested parts,
    stay visible on top.

    Args:
        records: at most 65535 of the generator's records, masks of ``image_size``.
        image_size: the image's (height, width).
    Returns:
        (H, W) uint16 label map: 0 background, i + 1 where record i's mask is.
    Raises:
        ValueError: as :func:`recordstococo`, or more than 65535 records.
    """
    h, w = _checksize(image_size)
    _checkrecords(records)
    if len(records) > np.iinfo(np.uint16).max:
        raise ValueError(f'a uint16 label map holds at most 65535 masks, got {len(records)} records')
    masks = [_decode(record['segmentation'], (h, w), i) for i, record in enumerate(records)]
    areas = np.array([int(mask.sum()) for mask in masks], dtype=np.int64)
    labels = np.zeros((h, w), dtype=np.uint16)
    for i in np.argsort(-areas, kind='stable'):
        labels[masks[i]] = i + 1
    return labels


def savelabelmap(records: Sequence[dict], path: Union[str, os.PathLike], image_size: Sequence[int]) -> str:
    """Write ``recordstolabelmap(...)`` as a single-channel 16-bit PNG (always uint16), atomically.

    Args:
        records, image_size: as for :func:`recordstolabelmap`.
        path: the ``.png`` file to create or replace.
    Returns:
        ``path`` (as a str).
    Raises:
        ValueError: a path not ending with .png, and :func:`recordstolabelmap`'s errors.
    """
    if os.path.splitext(os.fspath(path))[1].lower() != '.png':
        raise ValueError(f'path must end with .png (a 16-bit PNG label map), got {os.fspath(path)!r}')
    labels = recordstolabelmap(records, image_size)
    return writeimage(path, labels)
