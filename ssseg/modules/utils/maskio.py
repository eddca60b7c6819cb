"""Export of automatic-mask-generator records: COCO JSON and label-map PNG, both written atomically.

A record is a dict as the generator returns: ``segmentation`` (an (H, W) binary array, an uncompressed
RLE {'size': [H, W], 'counts': [int, ...]} or a COCO RLE {'size': [H, W], 'counts': str or bytes}),
and optionally ``area``, ``bbox`` (XYWH), ``predicted_iou``, ``point_coords``, ``stability_score`` and
``crop_box`` (XYWH). ``image_size`` is always (height, width).
"""
import json
import os
import uuid

import cv2
import numpy as np
from pycocotools import mask as mask_utils


def writeatomically(path, writer):
    """Create or replace ``path`` all at once: ``writer(temp_path)`` writes a temporary file beside it.

    The temporary file keeps ``path``'s extension (OpenCV picks its encoder from it), is flushed to disk
    and then renamed over ``path``. If the writer raises or returns False, the temporary file is removed,
    ``path`` is left as it was, and the error propagates (an OSError for False). Returns ``path``.
    """
    path = os.fspath(path)
    folder, name = os.path.split(os.path.abspath(path))
    stem, ext = os.path.splitext(name)
    temp = os.path.join(folder, f'.{stem}.{uuid.uuid4().hex}.tmp{ext}')
    # O_EXCL: never reuse someone else's file; mode 0o666 lets the umask decide permissions, as for a plain open()
    os.close(os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    try:
        if writer(temp) is False:
            raise OSError(f'could not write {path!r} (the writer reported failure)')
        descriptor = os.open(temp, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
        os.replace(temp, path)
    except BaseException:
        if os.path.exists(temp):
            os.remove(temp)
        raise
    return path


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
    h, w = image_size
    if isinstance(segmentation, dict):
        size, counts = segmentation.get('size'), segmentation.get('counts')
        if size is None or counts is None or [int(v) for v in size] != [h, w]:
            raise ValueError(f'records[{index}]["segmentation"] must be an RLE with size [{h}, {w}], '
                             f'got size {size!r}' + ('' if counts is not None else ' and no counts'))
        if isinstance(counts, list):
            if sum(counts) != h * w:
                raise ValueError(f'records[{index}]["segmentation"]: uncompressed RLE counts sum to {sum(counts)}, '
                                 f'expected h * w = {h * w}')
            rle = mask_utils.frPyObjects(segmentation, h, w)
        elif isinstance(counts, (str, bytes)):
            rle = {'size': [h, w], 'counts': counts.encode('utf-8') if isinstance(counts, str) else counts}
        else:
            raise ValueError(f'records[{index}]["segmentation"]["counts"] must be a list of ints, str or bytes, '
                             f'got {type(counts).__name__}')
    else:
        rle = mask_utils.encode(np.asfortranarray(_binary(segmentation, image_size, index), dtype=np.uint8))
    return {'size': [h, w], 'counts': rle['counts'].decode('utf-8')}


def _decode(segmentation, image_size, index):
    """(H, W) bool mask of one record's segmentation."""
    if not isinstance(segmentation, dict):
        return _binary(segmentation, image_size, index)
    rle = _cocorle(segmentation, image_size, index)
    return mask_utils.decode({'size': rle['size'], 'counts': rle['counts'].encode('utf-8')}).astype(bool)


def recordstococo(records, image_size, file_name='image.png', image_id=1, category_id=1):
    """COCO-style dict (info, images, categories, annotations) of the records of one image.

    Annotation i has id i + 1, a COCO RLE segmentation with str counts, bbox (XYWH; from the mask when
    the record has none), area (likewise), score = predicted_iou, iscrowd 0, and the record's
    stability_score, point_coords and crop_box when present. Loadable with ``pycocotools.coco.COCO``.
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


def savecocojson(records, path, image_size, file_name='image.png', image_id=1, category_id=1):
    """Write ``recordstococo(...)`` to ``path`` as JSON, atomically; returns ``path``."""
    coco = recordstococo(records, image_size, file_name=file_name, image_id=image_id, category_id=category_id)

    def writer(temp):
        with open(temp, 'w', encoding='utf-8') as file:
            json.dump(coco, file)
    return writeatomically(path, writer)


def recordstolabelmap(records, image_size):
    """(H, W) uint16 label map: 0 background, i + 1 where record i's mask is.

    Larger masks are painted first (stable for equal areas), so smaller ones, usually nested parts,
    stay visible on top. At most 65535 records.
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


def savelabelmap(records, path, image_size):
    """Write ``recordstolabelmap(...)`` as a single-channel 16-bit PNG (always uint16), atomically; returns ``path``."""
    if os.path.splitext(os.fspath(path))[1].lower() != '.png':
        raise ValueError(f'path must end with .png (a 16-bit PNG label map), got {os.fspath(path)!r}')
    labels = recordstolabelmap(records, image_size)
    return writeatomically(path, lambda temp: cv2.imwrite(temp, labels))
