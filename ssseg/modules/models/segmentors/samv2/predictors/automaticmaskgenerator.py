"""SAMV2AutomaticMaskGenerator: every object of an image from a grid of point prompts, without user input.

Gives the same masks as Meta's generator, but filters candidates on their predicted IoU while they
are still 256 x 256 logits, and upsamples only the survivors, a few at a time: Meta's upsamples every
candidate to full resolution first, which dominates its run time and memory on large images.
"""
from typing import Optional, Sequence, Union

import numpy as np
import torch
from PIL import Image
from torchvision.ops import batched_nms, box_area
from tqdm import tqdm

from ssseg.modules.models.segmentors.samv2.model import SAMV2
from ssseg.modules.utils import rle
from ssseg.modules.utils.checks import asflag, asint, asnumber

from .amg import (
    MaskRecords,
    batchedmasktobox,
    boxxyxytoxywh,
    buildalllayerpointgrids,
    generatecropboxes,
    isboxnearcropedge,
    stabilityscore,
    uncropboxes,
    uncropmasks,
    uncroppoints,
)
from .base import SAMV2PredictorBase, showprogress
from .imagepredictor import SAMV2ImagePredictor
from .transforms import asrgbimage

OUTPUT_MODES = ('binary_mask', 'uncompressed_rle', 'coco_rle')
# full-resolution masks handled at once after the IoU filter (bounds memory on large images)
UPSAMPLE_CHUNK = 16


class SAMV2AutomaticMaskGenerator(SAMV2PredictorBase):
    """Segment everything in an image with SAM 2 / SAM 2.1 from a regular grid of single-point prompts.

    Candidates are kept when their predicted IoU exceeds ``pred_iou_thresh`` and their stability score (IoU of
    the mask thresholded at ``mask_threshold`` +- ``stability_score_offset``) reaches ``stability_score_thresh``;
    duplicates are removed by box NMS (``box_nms_thresh`` within a crop, ``crop_nms_thresh`` across crops).

    Args:
        points_per_side: n x n points per crop layer; or None with explicit ``point_grids``.
        points_per_batch: points decoded at once.
        pred_iou_thresh: keep candidates whose predicted IoU exceeds it.
        stability_score_thresh: keep candidates whose stability score reaches it.
        stability_score_offset: the logit offset of the stability score.
        mask_threshold: the mask logit threshold.
        box_nms_thresh: box NMS IoU threshold within a crop.
        crop_n_layers: > 0 also runs on overlapping crops (layer i: 2^i x 2^i crops).
        crop_nms_thresh: box NMS IoU threshold across crops.
        crop_overlap_ratio: the crops' overlap (see :func:`generatecropboxes`).
        crop_n_points_downscale_factor: layer i's grid side is divided by it^i.
        point_grids: explicit grids, a list of crop_n_layers + 1 (K, 2) arrays of (x, y) in [0, 1] (fractions
            of the crop), one per crop layer; exactly one of ``points_per_side`` and ``point_grids``.
        min_mask_region_area: fills holes and removes specks up to that area in the 256 x 256 low-res masks
            (OpenCV, any device).
        output_mode: 'binary_mask' (H x W bool arrays), 'uncompressed_rle' or 'coco_rle'.
        use_m2m: refine each mask once more with its own logits as a mask prompt.
        multimask_output: three candidates per point instead of one.
        samv2_cfg, model, device, load_ckpt_strict, apply_postprocessing, precision, compile, use_default: the
            model (and ``precision``, ``compile``) is chosen as for :class:`SAMV2ImagePredictor`, ``model=``
            included (a generator and a predictor may share one built model); ``apply_postprocessing`` defaults to
            False as in Meta's docs for this generator.
        progress: show a progress bar (None: only when stderr is a terminal).
    Raises:
        TypeError, ValueError: options are checked before the model is built: thresholds must be finite numbers
            in [0, 1] (``crop_overlap_ratio`` in [0, 1)), counts ints (bools refused), flags bools; the errors
            name the option. ValueError also for both or none of ``points_per_side`` and ``point_grids``, bad
            ``point_grids`` (TypeError when not numeric), a layer left without points, or another
            ``output_mode``.
    """

    def __init__(self, points_per_side: Optional[int] = 32, points_per_batch: int = 64, pred_iou_thresh: float = 0.8,
                 stability_score_thresh: float = 0.95, stability_score_offset: float = 1.0,
                 mask_threshold: float = 0.0, box_nms_thresh: float = 0.7, crop_n_layers: int = 0,
                 crop_nms_thresh: float = 0.7, crop_overlap_ratio: float = 512 / 1500,
                 crop_n_points_downscale_factor: int = 1, point_grids: Optional[Sequence] = None,
                 min_mask_region_area: float = 0, output_mode: str = 'binary_mask', use_m2m: bool = False,
                 multimask_output: bool = True, samv2_cfg: Optional[dict] = None, model: Optional[SAMV2] = None,
                 device: Optional[Union[str, int, torch.device]] = None, load_ckpt_strict: Optional[bool] = None,
                 apply_postprocessing: Optional[bool] = None, progress: Optional[bool] = None,
                 precision: Optional[str] = None, compile: Optional[bool] = None, **use_default: bool) -> None:
        if (points_per_side is None) == (point_grids is None):
            raise ValueError('give exactly one of points_per_side (an int; set it to None when passing point_grids) '
                             'and '
                             'point_grids (a list of (K, 2) arrays in [0, 1]); got '
                             f'points_per_side={points_per_side!r} and '
                             f'point_grids={"None" if point_grids is None else f"a {type(point_grids).__name__}"}')
        crop_n_layers = asint(crop_n_layers, 'crop_n_layers', low=0)
        crop_n_points_downscale_factor = asint(crop_n_points_downscale_factor, 'crop_n_points_downscale_factor', low=1)
        if points_per_side is not None:
            points_per_side = asint(points_per_side, 'points_per_side', low=1)
            smallest = points_per_side // crop_n_points_downscale_factor ** crop_n_layers
            if smallest < 1:
                raise ValueError(f'crop_n_points_downscale_factor={crop_n_points_downscale_factor} leaves crop layer '
                                 f'{crop_n_layers} with 0 points per side (points_per_side={points_per_side} // '
                                 f'{crop_n_points_downscale_factor}**{crop_n_layers}): lower it or crop_n_layers, or '
                                 'raise points_per_side')
            point_grids = buildalllayerpointgrids(points_per_side, crop_n_layers, crop_n_points_downscale_factor)
        else:
            point_grids = self._checkgrids(point_grids, crop_n_layers)
        if output_mode not in OUTPUT_MODES:
            raise ValueError(f'output_mode must be one of {OUTPUT_MODES}, got {output_mode!r}')
        self.point_grids = point_grids
        self.points_per_batch = asint(points_per_batch, 'points_per_batch', low=1)
        self.pred_iou_thresh = asnumber(pred_iou_thresh, 'pred_iou_thresh', low=0, high=1)
        self.stability_score_thresh = asnumber(stability_score_thresh, 'stability_score_thresh', low=0, high=1)
        self.stability_score_offset = asnumber(stability_score_offset, 'stability_score_offset')
        self.mask_threshold = asnumber(mask_threshold, 'mask_threshold')
        self.box_nms_thresh = asnumber(box_nms_thresh, 'box_nms_thresh', low=0, high=1)
        self.crop_n_layers = crop_n_layers
        self.crop_nms_thresh = asnumber(crop_nms_thresh, 'crop_nms_thresh', low=0, high=1)
        self.crop_overlap_ratio = asnumber(crop_overlap_ratio, 'crop_overlap_ratio', low=0, high=1, high_open=True)
        self.crop_n_points_downscale_factor = crop_n_points_downscale_factor
        self.min_mask_region_area = asnumber(min_mask_region_area, 'min_mask_region_area', low=0)
        self.output_mode = output_mode
        self.use_m2m = asflag(use_m2m, 'use_m2m')
        self.multimask_output = asflag(multimask_output, 'multimask_output')
        self.progress = progress
        if apply_postprocessing is None and model is None:
            apply_postprocessing = False  # as Meta's docs build the model for this generator
        self.predictor = SAMV2ImagePredictor(
            samv2_cfg=samv2_cfg, model=model, device=device, load_ckpt_strict=load_ckpt_strict,
            apply_postprocessing=apply_postprocessing, mask_threshold=self.mask_threshold,
            max_hole_area=self.min_mask_region_area, max_sprinkle_area=self.min_mask_region_area,
            precision=precision, compile=compile, **use_default,
        )

    @staticmethod
    def _checkgrids(point_grids, crop_n_layers):
        if not isinstance(point_grids, (list, tuple)) or len(point_grids) != crop_n_layers + 1:
            length = f' of length {len(point_grids)}' if isinstance(point_grids, (list, tuple)) else ''
            raise ValueError(f'point_grids must be a list of crop_n_layers + 1 = {crop_n_layers + 1} arrays, got '
                             f'{type(point_grids).__name__}{length}')
        grids = []
        for i, grid in enumerate(point_grids):
            try:
                grid = np.asarray(grid, dtype=np.float64)
            except (TypeError, ValueError) as err:
                raise TypeError(f'point_grids[{i}] must be a numeric (K, 2) array of (x, y) in [0, 1], got '
                                f'{type(grid).__name__}: {err}') from err
            if grid.ndim != 2 or grid.shape[1] != 2 or len(grid) == 0:
                raise ValueError(f'point_grids[{i}] must be a non-empty (K, 2) array of finite (x, y) in [0, 1], got '
                                 f'shape {grid.shape}')
            outside = ~np.isfinite(grid).all(axis=1) | (grid < 0).any(axis=1) | (grid > 1).any(axis=1)
            if outside.any():
                raise ValueError(f'point_grids[{i}] must hold finite (x, y) in [0, 1] (fractions of the crop), got '
                                 f'{int(outside.sum())} point(s) outside it, e.g. {grid[outside][0].tolist()}')
            grids.append(grid)
        return grids

    @property
    def model(self) -> SAMV2:
        """The SAMV2 model (the inner image predictor's).

        Returns:
            The SAMV2 model.
        """
        return self.predictor.model

    @torch.no_grad()
    def generate(self, image: Union[np.ndarray, Image.Image]) -> list:
        """Masks of everything in ``image``.

        Args:
            image: (H, W, 3) uint8 RGB array or PIL image (as for :meth:`SAMV2ImagePredictor.setimage`).
        Returns:
            A list of dicts: ``segmentation`` (per ``output_mode``: an (H, W) bool array, an uncompressed RLE or a
            COCO RLE dict), ``area`` (pixels), ``bbox`` (XYWH image pixels), ``predicted_iou``, ``point_coords``
            ([[x, y]] image pixels of the prompt), ``stability_score`` and ``crop_box`` (XYWH of the crop the
            mask came from).
        Raises:
            TypeError, ValueError: an image :func:`asrgbimage` refuses.
        """
        image = asrgbimage(image, 'image')
        records = self._generatemasks(image)
        annotations = []
        for i, encoded in enumerate(records['rles'] if len(records) else []):
            if self.output_mode == 'coco_rle':
                segmentation = rle.tococo(encoded)
            elif self.output_mode == 'binary_mask':
                segmentation = rle.decode(encoded)
            else:
                segmentation = encoded
            annotations.append({
                'segmentation': segmentation,
                'area': rle.area(encoded),
                'bbox': boxxyxytoxywh(records['boxes'][i]).tolist(),
                'predicted_iou': records['iou_preds'][i].item(),
                'point_coords': [records['points'][i].tolist()],
                'stability_score': records['stability_score'][i].item(),
                'crop_box': boxxyxytoxywh(records['crop_boxes'][i]).tolist(),
            })
        return annotations

    def _generatemasks(self, image):
        orig_size = image.shape[:2]
        crop_boxes, layer_idxs = generatecropboxes(orig_size, self.crop_n_layers, self.crop_overlap_ratio)
        total = sum(-(-len(self.point_grids[layer]) // self.points_per_batch) for layer in layer_idxs)
        records = MaskRecords()
        with tqdm(total=total, desc='automatic masks', unit='batch', disable=not showprogress(self.progress)) as bar:
            for crop_box, layer_idx in zip(crop_boxes, layer_idxs):
                records.cat(self._processcrop(image, crop_box, layer_idx, orig_size, bar))
        if len(crop_boxes) > 1 and len(records) > 0:
            # across crops prefer masks from smaller crops, which saw the object at a higher resolution
            scores = 1 / box_area(records['crop_boxes'])
            keep = batched_nms(records['boxes'].float(), scores.to(records['boxes'].device),
                               torch.zeros_like(records['boxes'][:, 0]), iou_threshold=self.crop_nms_thresh)
            records.filter(keep)
        records.tonumpy()
        return records

    def _processcrop(self, image, crop_box, layer_idx, orig_size, bar):
        x0, y0, x1, y1 = crop_box
        crop = image[y0:y1, x0:x1, :]
        crop_size = crop.shape[:2]
        self.predictor.setimage(crop)
        points = self.point_grids[layer_idx] * np.array(crop_size)[None, ::-1]
        records = MaskRecords()
        try:
            for start in range(0, len(points), self.points_per_batch):
                batch = points[start:start + self.points_per_batch]
                records.cat(self._processbatch(batch, crop_size, crop_box, orig_size))
                bar.update(1)
        finally:
            self.predictor.resetpredictor()  # even after a failure, no crop's features outlive the call
        if len(records) == 0:
            return records
        keep = batched_nms(records['boxes'].float(), records['iou_preds'], torch.zeros_like(records['boxes'][:, 0]),
                           iou_threshold=self.box_nms_thresh)
        records.filter(keep)
        records['boxes'] = uncropboxes(records['boxes'], crop_box)
        records['points'] = uncroppoints(records['points'], crop_box)
        records['crop_boxes'] = torch.tensor([crop_box for _ in range(len(records['rles']))])
        return records

    def _decode(self, points, mask_input=None, multimask_output=True, min_iou=None):
        """Low-res logits (N, M, 256, 256) and IoU predictions (N, M) for N single positive points (crop pixels);
        with ``min_iou``, only the confident ones as in :meth:`SAMV2.decodeprompts`."""
        labels = torch.ones(points.shape[0], 1, dtype=torch.int32, device=points.device)
        return self.predictor.predictlowres(points[:, None, :], labels, mask_input=mask_input,
                                            multimask_output=multimask_output, min_iou=min_iou)

    def _processbatch(self, points, crop_size, crop_box, orig_size):
        points = torch.as_tensor(points, dtype=torch.float32, device=self.predictor.device)
        if self.pred_iou_thresh > 0.0 and not self.use_m2m and self._canfilterbeforedecoding():
            # the IoU head needs no mask: only confident candidates are decoded at all
            low_res, iou_preds, index = self._decode(points, multimask_output=self.multimask_output,
                                                     min_iou=self.pred_iou_thresh)
            points = points[index[:, 0]]
        else:
            low_res, iou_preds = self._decode(points, multimask_output=self.multimask_output)
            per_point = low_res.shape[1]
            low_res, iou_preds = low_res.flatten(0, 1), iou_preds.flatten(0, 1)
            points = points.repeat_interleave(per_point, dim=0)
            if self.use_m2m:
                low_res, iou_preds = self._refine(points, low_res.clamp(-32.0, 32.0))
            if self.pred_iou_thresh > 0.0:
                # filtering on predicted IoU needs no full-resolution mask, so it happens first
                keep = iou_preds > self.pred_iou_thresh
                low_res, iou_preds, points = low_res[keep], iou_preds[keep], points[keep]
        records = MaskRecords()
        for start in range(0, len(low_res), UPSAMPLE_CHUNK):
            chunk = slice(start, start + UPSAMPLE_CHUNK)
            records.cat(self._fullresolution(low_res[chunk], iou_preds[chunk], points[chunk], crop_size, crop_box,
                                             orig_size))
        return records

    def _canfilterbeforedecoding(self):
        # single-mask output with dynamic selection picks outputs by their masks
        decoder = self.predictor.model.sam_mask_decoder
        return self.multimask_output or not decoder.dynamic_multimask_via_stability

    def _refine(self, points, low_res):
        """One mask-to-mask step: each candidate prompted again by its point and its own low-res logits."""
        refined, ious = [], []
        for start in range(0, len(points), self.points_per_batch):
            chunk = slice(start, start + self.points_per_batch)
            masks, scores = self._decode(points[chunk], mask_input=low_res[chunk, None], multimask_output=False)
            refined.append(masks[:, 0])
            ious.append(scores[:, 0])
        if not refined:
            return low_res, low_res.new_zeros(0)
        return torch.cat(refined), torch.cat(ious)

    def _fullresolution(self, low_res, iou_preds, points, crop_size, crop_box, orig_size):
        """Upsample a few candidates to the crop size, filter on stability and crop edges, encode as RLE."""
        masks = self.predictor.transforms.postprocessmasks(low_res[:, None], crop_size)[:, 0]
        stability = stabilityscore(masks, self.mask_threshold, self.stability_score_offset)
        if self.stability_score_thresh > 0.0:
            keep = stability >= self.stability_score_thresh
            masks, iou_preds, points, stability = masks[keep], iou_preds[keep], points[keep], stability[keep]
        masks = masks > self.mask_threshold
        boxes = batchedmasktobox(masks)
        orig_h, orig_w = orig_size
        keep = ~isboxnearcropedge(boxes, crop_box, [0, 0, orig_w, orig_h])
        masks, boxes, iou_preds = masks[keep], boxes[keep], iou_preds[keep]
        points, stability = points[keep], stability[keep]
        rles = rle.encode(uncropmasks(masks, crop_box, orig_h, orig_w))
        return MaskRecords(rles=rles, boxes=boxes, iou_preds=iou_preds, points=points, stability_score=stability)
