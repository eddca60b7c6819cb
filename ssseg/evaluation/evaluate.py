"""Evaluation loops: one-click and box mIoU on COCO-style images, J&F (DAVIS semi-supervised protocol) on videos.

Both take a predictor and a dataset of :mod:`ssseg.modules.datasets` (``rawsample(i)``) and use only the predictors'
public methods, so any object with the same methods (e.g. the ground-truth fakes of the tests) can be evaluated.
"""
from typing import Dict, List, Optional

import numpy as np
from tqdm import tqdm

from .metrics import BOUND_TH, centerclick, fmeasure, jaccard, maskbox, maskiou


def _mean(values) -> Optional[float]:
    return float(np.mean(values)) if len(values) else None


def _count(dataset, limit):
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ValueError(f'limit must be None or an int >= 1, got {limit!r}')
    return len(dataset) if limit is None else min(limit, len(dataset))


def _evaluateimage(predictor, sample: dict) -> dict:
    """Every object of one image: the centre click (best of 3 masks by score) and the box (one mask)."""
    predictor.setimage(sample['images'][0])
    record = dict(name=sample['name'], object_ids=list(sample['object_ids']), clicks=[], boxes=[], iou_click=[],
                  iou_box=[])
    for obj_id, gt in zip(sample['object_ids'], sample['masks'][0]):
        if not gt.any():
            raise ValueError(f'{sample["name"]}: object {obj_id} has no pixels (run checkdataset first)')
        click, box = centerclick(gt), maskbox(gt)
        masks, scores, _ = predictor.predict(point_coords=np.array([click], np.float32),
                                             point_labels=np.array([1], np.int32), multimask_output=True)
        # SAM's protocol for one click: of the 3 candidates, the one the model scores highest
        record['iou_click'].append(maskiou(np.asarray(masks[int(np.argmax(scores))]) > 0, gt))
        masks, _, _ = predictor.predict(box=np.array(box, np.float32), multimask_output=False)
        record['iou_box'].append(maskiou(np.asarray(masks[0]) > 0, gt))
        record['clicks'].append(list(click))
        record['boxes'].append(list(box))
    return record


def evaluateimages(predictor, dataset, progress: bool = False, limit: Optional[int] = None) -> dict:
    """mIoU of a single centre click and of the box, over every object of every image.

    Per object (each non-crowd annotation): the click is :func:`~.metrics.centerclick` of its mask (label 1,
    ``multimask_output=True``, the highest-scoring of the 3 masks is kept, as the SAM paper), the box is
    :func:`~.metrics.maskbox` (``multimask_output=False``); each mask is compared to the annotation by IoU at the
    image's resolution.

    Args:
        predictor: a :class:`SAMV2ImagePredictor` (or anything with ``setimage(image)`` and ``predict(point_coords,
            point_labels, box, multimask_output)`` returning ``(masks (M, H, W), scores (M,), logits)``).
        dataset: a :class:`COCOInstanceDataset` (``rawsample(i)`` gives ``images`` [(H, W, 3) uint8 RGB] and ``masks``
            (1, O, H, W) bool).
        progress: show a tqdm bar over the images.
        limit: evaluate only the first ``limit`` images (None: all).
    Returns:
        dict(miou_click, miou_box (floats in [0, 1], means over objects), num_images, num_objects, per_image=[dict(
        name, object_ids, clicks [[x, y]], boxes [[x1, y1, x2, y2]], iou_click [float], iou_box [float])]).
    Raises:
        ValueError: a bad ``limit``, an object without pixels.
    """
    per_image = [_evaluateimage(predictor, dataset.rawsample(i))
                 for i in tqdm(range(_count(dataset, limit)), desc='evaluate images', disable=not progress)]
    clicks = [iou for record in per_image for iou in record['iou_click']]
    boxes = [iou for record in per_image for iou in record['iou_box']]
    return dict(miou_click=_mean(clicks), miou_box=_mean(boxes), num_images=len(per_image), num_objects=len(clicks),
                per_image=per_image)


def scoringplan(annotated: List[bool], masks: np.ndarray, object_ids: List[int], skip_last: bool = True) -> Dict:
    """Where each object of a video is prompted and which frames score it (DAVIS semi-supervised protocol).

    Args:
        annotated: [bool per frame], frames that have a ground-truth PNG.
        masks: (T, O, H, W) bool ground truth (all False on frames without a PNG).
        object_ids: the O ids.
        skip_last: leave out the video's last annotated frame, as the DAVIS 2017 toolkit (and Meta's SA-V benchmark)
            does.
    Returns:
        {obj id: (first, frames)}: ``first`` the first annotated frame showing the object (its mask is the prompt),
        ``frames`` the annotated frames after it that score it (the object may be absent there), possibly empty.
    """
    frames = [t for t, on in enumerate(annotated) if on]
    last = frames[-1] if skip_last and frames else None
    plan = {}
    for k, obj_id in enumerate(object_ids):
        shown = [t for t in frames if masks[t, k].any()]
        if shown:
            plan[obj_id] = (shown[0], [t for t in frames if t > shown[0] and t != last])
    return plan


def _claim(labels: np.ndarray, mask: np.ndarray, obj_id: int) -> None:
    """Put ``obj_id`` where ``mask`` is, except where a smaller id already is (Meta's vos_inference: lower ids win)."""
    labels[mask & ((labels == 0) | (labels > obj_id))] = obj_id


def _binary(logits) -> np.ndarray:
    """(N, H, W) bool masks of (N, 1, H, W) logits (a torch tensor on any device, or an array)."""
    if hasattr(logits, 'detach'):
        logits = logits.detach().float().cpu().numpy()
    return np.asarray(logits)[:, 0] > 0


def _trackvideo(predictor, sample: dict, plan: Dict, keep: set) -> Dict[int, np.ndarray]:
    """{frame: (H, W) integer label map of object ids (0: none)} for the frames in ``keep``: the objects prompted with
    their first masks, one propagation per distinct first frame (forward only, so no object sees earlier frames)."""
    ids = list(sample['object_ids'])
    groups: Dict[int, list] = {}
    for obj_id, (first, _) in plan.items():
        groups.setdefault(first, []).append(obj_id)
    dtype = np.uint8 if max(ids) < 256 else np.int64  # DAVIS ids are 8-bit: a byte per pixel and kept frame
    labels = {t: np.zeros(sample['orig_size'], dtype) for t in sorted(keep)}
    state = predictor.initstate(sample['images'])
    for n, start in enumerate(sorted(groups)):
        if n:
            predictor.resetstate(state)
        for obj_id in groups[start]:
            predictor.addnewmask(state, start, obj_id, sample['masks'][start, ids.index(obj_id)])
        for frame_idx, obj_ids, logits in predictor.propagateinvideo(state, start_frame_idx=start):
            if frame_idx in labels:
                for obj_id, mask in zip(obj_ids, _binary(logits)):
                    _claim(labels[frame_idx], mask, obj_id)
    return labels


def _evaluatevideo(predictor, sample: dict, skip_last: bool, bound_th: float) -> dict:
    """J and F of every object of one video, averaged over its scoring frames."""
    plan = scoringplan(sample['annotated'], sample['masks'], sample['object_ids'], skip_last)
    record = dict(name=sample['name'], num_frames=len(sample['images']), objects=[],
                  skipped=[obj_id for obj_id in sample['object_ids'] if not plan.get(obj_id, (0, []))[1]])
    keep = {t for _, frames in plan.values() for t in frames}
    if not keep:
        return record  # nothing to score: no tracking
    labels = _trackvideo(predictor, sample, plan, keep)
    for k, obj_id in enumerate(sample['object_ids']):
        first, frames = plan.get(obj_id, (None, []))
        if not frames:
            continue
        j = [jaccard(labels[t] == obj_id, sample['masks'][t, k]) for t in frames]
        f = [fmeasure(labels[t] == obj_id, sample['masks'][t, k], bound_th) for t in frames]
        record['objects'].append(dict(id=obj_id, first_frame=first, num_frames=len(frames), j=_mean(j), f=_mean(f)))
    return record


def evaluatevideos(predictor, dataset, progress: bool = False, limit: Optional[int] = None, skip_last: bool = True,
                   bound_th: float = BOUND_TH) -> dict:
    """J&F of semi-supervised tracking: each object given by its mask on its first frame, tracked forward.

    Per video, each object's ground-truth mask on the first annotated frame showing it is given with ``addnewmask``;
    objects first shown on one frame are propagated together from there (a fresh state per such frame). Predictions
    become one label map per frame, lower object ids winning where masks overlap (what DAVIS result PNGs hold). An
    object is scored on the annotated frames after its first (frames where it is absent included, the video's last
    annotated frame left out with ``skip_last``, as the DAVIS 2017 toolkit); an object with no such frame is skipped.
    J (:func:`~.metrics.jaccard`) and F (:func:`~.metrics.fmeasure`) are averaged over an object's frames, then over
    objects.

    Args:
        predictor: a :class:`SAMV2VideoPredictor` (or anything with ``initstate(frames)``, ``resetstate``,
            ``addnewmask(state, frame_idx, obj_id, mask)`` and ``propagateinvideo(state, start_frame_idx)`` yielding
            ``(frame_idx, obj_ids, mask_logits (N, 1, H, W))``).
        dataset: a :class:`DAVISVideoDataset` (``rawsample(i)``: ``images`` [(H, W, 3) uint8 RGB], ``masks``
            (T, O, H, W) bool, ``annotated``, ``object_ids``, ``orig_size``).
        progress: show a tqdm bar over the videos.
        limit: evaluate only the first ``limit`` videos (None: all).
        skip_last: leave out each video's last annotated frame (DAVIS); False scores it.
        bound_th: F's boundary tolerance (see :func:`~.metrics.boundaryradius`).
    Returns:
        dict(j, f, jf=(j + f) / 2 (None when no object was scored), num_videos, num_objects (objects scored),
        per_video=[dict(name, num_frames, objects=[dict(id, first_frame, num_frames (scored), j, f)], skipped=[ids])]).
    Raises:
        ValueError: a bad ``limit``.
    """
    per_video = [_evaluatevideo(predictor, dataset.rawsample(i), skip_last, bound_th)
                 for i in tqdm(range(_count(dataset, limit)), desc='evaluate videos', disable=not progress)]
    objects = [obj for record in per_video for obj in record['objects']]
    j, f = _mean([obj['j'] for obj in objects]), _mean([obj['f'] for obj in objects])
    return dict(j=j, f=f, jf=None if j is None else (j + f) / 2, num_videos=len(per_video), num_objects=len(objects),
                per_video=per_video)
