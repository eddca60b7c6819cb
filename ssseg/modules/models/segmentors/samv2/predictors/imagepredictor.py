"""SAMV2ImagePredictor: embed an image once, then segment it from points, boxes and masks."""
from typing import Optional, Sequence, Union

import numpy as np
import torch
from numpy.typing import ArrayLike
from PIL import Image

from ssseg.modules.models.segmentors.samv2.model import SAMV2
from ssseg.modules.utils.aliases import metaaliases
from ssseg.modules.utils.checks import asflag, asnumber

from .base import SAMV2PredictorBase
from .prompts import BOX_LABELS, asboxes, asmaskinput, aspoints
from .transforms import SAMV2Transforms, asrgbimage


class NoImageError(RuntimeError, ValueError):
    """A prediction was asked for before the matching image was set (or in the other batch mode)."""


def _promptnames(suffix=''):
    """Argument names in error messages: ``point_coords`` for predict, ``point_coords_batch[i]`` for predictbatch."""
    return {name: f'{name}{suffix}' for name in ('point_coords', 'point_labels', 'box', 'mask_input')}


@metaaliases('set_image', 'set_image_batch', 'predict_batch', 'get_image_embedding', 'reset_predictor')
class SAMV2ImagePredictor(SAMV2PredictorBase):
    """Promptable segmentation of still images with SAM 2 / SAM 2.1.

    Bad input raises TypeError or ValueError (``NoImageError`` for a call in the wrong image mode) naming
    the argument, before any state changes, so a failed call leaves the predictor as it was.

    Args:
        samv2_cfg, use_default, model: choose the model with exactly one of ``samv2_cfg`` (a config dict whose
            ``ckptpath`` is a URL or local path), ``use_default_samv2{,1}_{t,s,bplus,l}=True`` or ``model`` (an
            already built SAMV2, shared with whoever else uses it; see :meth:`fromconfig` for a config name).
        device: defaults to cuda when available, else cpu (see :func:`defaultdevice`).
        load_ckpt_strict: refuse any missing or unexpected checkpoint key (default True).
        apply_postprocessing: (default True) lets a single-mask request fall back to the most stable of the
            multimask outputs (as Meta's builder does).
        mask_threshold: masks are the logits above it.
        max_hole_area, max_sprinkle_area: (pixels of the 256 x 256 low-res mask) fill small holes / remove small
            specks before upsampling, with OpenCV on any device.
        precision: ``'bfloat16'`` opts in to bfloat16 autocast (faster on GPUs and CPUs with AVX512-BF16/AMX,
            masks close to but not equal to float32's); the default 'float32' matches Meta's outputs.
        compile: opt in to ``torch.compile`` of the model's heavy modules (CPU and CUDA; the first calls compile,
            later ones with other numbers of points or prompts reuse the code; see ``model/compiled.py``).
            ``load_ckpt_strict``, ``apply_postprocessing``, ``precision`` and ``compile`` are build options: with
            ``model`` they are the built model's and must be left out.
    Raises:
        TypeError, ValueError: bad options (``mask_threshold`` not a finite number, areas < 0), a bad model
            choice or device (see :func:`choosemodel`), checked before the model is built.
    """

    def __init__(self, samv2_cfg: Optional[dict] = None, model: Optional[SAMV2] = None,
                 device: Optional[Union[str, int, torch.device]] = None, load_ckpt_strict: Optional[bool] = None,
                 apply_postprocessing: Optional[bool] = None, mask_threshold: float = 0.0, max_hole_area: float = 0.0,
                 max_sprinkle_area: float = 0.0, precision: Optional[str] = None, compile: Optional[bool] = None,
                 **use_default: bool) -> None:
        # checked before the (slow) model build
        mask_threshold = asnumber(mask_threshold, 'mask_threshold')
        max_hole_area = asnumber(max_hole_area, 'max_hole_area', low=0)
        max_sprinkle_area = asnumber(max_sprinkle_area, 'max_sprinkle_area', low=0)
        buildoptions = dict(load_ckpt_strict=load_ckpt_strict, apply_postprocessing=apply_postprocessing,
                            precision=precision, compile=compile)
        self._usemodel(model, samv2_cfg, device, buildoptions, use_default)
        self.mask_threshold = mask_threshold
        self.transforms = SAMV2Transforms(self.model.image_size, mask_threshold, max_hole_area, max_sprinkle_area)
        self.resetpredictor()

    def resetpredictor(self) -> None:
        """Forget the current image(s) and their features.

        Returns:
            None.
        """
        self._features = None
        self._orig_hw = None
        self._is_image_set = False
        self._is_batch = False

    # ------------------------------------------------------------------ images
    @torch.no_grad()
    def setimage(self, image: Union[np.ndarray, Image.Image]) -> None:
        """Compute the embedding of one image.

        A rejected image, or a failure while encoding, leaves the previous image set.

        Args:
            image: (H, W, 3) uint8 RGB numpy array (any strides) or PIL image. Grayscale and RGBA input is
                converted with a warning (see :func:`asrgbimage`).
        Returns:
            None.
        Raises:
            TypeError, ValueError: an image :func:`asrgbimage` refuses.
        """
        image = asrgbimage(image, 'image')
        inputs = self.transforms.toinput(image, self.device)[None]
        features = self.model.encodeimage(inputs)
        self.resetpredictor()
        self._features = features
        self._orig_hw = [image.shape[:2]]
        self._is_image_set = True

    @torch.no_grad()
    def setimagebatch(self, images: Sequence[Union[np.ndarray, Image.Image]]) -> None:
        """Compute the embeddings of a list of images for :meth:`predictbatch`.

        Args:
            images: a non-empty list or tuple of images, each (H_i, W_i, 3) uint8 RGB or PIL (as for
                :meth:`setimage`).
        Returns:
            None.
        Raises:
            TypeError: not a list or tuple (e.g. a single array), or an image :func:`asrgbimage` refuses.
            ValueError: an empty list, or an image :func:`asrgbimage` refuses.
        """
        if not isinstance(images, (list, tuple)):
            hint = ' (wrap a single image in a list, or use setimage)' if isinstance(images, np.ndarray) else ''
            raise TypeError(f'images must be a non-empty list of RGB images, got {type(images).__name__}{hint}')
        if not images:
            raise ValueError('images must be a non-empty list of RGB images, got an empty list')
        images = [asrgbimage(image, f'images[{i}]') for i, image in enumerate(images)]
        inputs = torch.stack([self.transforms.toinput(image, self.device) for image in images])
        features = self.model.encodeimage(inputs)
        self.resetpredictor()
        self._features = features
        self._orig_hw = [image.shape[:2] for image in images]
        self._is_image_set = True
        self._is_batch = True

    def getimageembedding(self) -> torch.Tensor:
        """The current image's embedding.

        Returns:
            (1, C, S/16, S/16) float tensor on the device (C=256, 64 x 64 for S=1024); (B, C, S/16, S/16) for the
            B images of :meth:`setimagebatch`.
        Raises:
            NoImageError: no image set.
        """
        self._checkimageset(batch=None, method='getimageembedding')
        return self._features['image_embed']

    # ------------------------------------------------------------------ prediction
    def predict(self, point_coords: Optional[ArrayLike] = None, point_labels: Optional[ArrayLike] = None,
                box: Optional[ArrayLike] = None, mask_input: Optional[ArrayLike] = None, multimask_output: bool = True,
                return_logits: bool = False,
                normalize_coords: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Segment the image set by :meth:`setimage` from prompts.

        Args:
            point_coords: (P, 2) or (N, P, 2) (x, y) pixels of the original image (or [0, 1] fractions
                with ``normalize_coords=False``); coordinates must be finite, points outside the image are
                accepted (as in Meta's predictor).
            point_labels: (P,) or (N, P), 1 foreground, 0 background; in {-1, 0, 1, 2, 3}.
            box: (4,) or (N, 4) xyxy in the same frame (unflipped); several boxes segment N objects at once.
            mask_input: (1, 256, 256) or (N, 1, 256, 256) low-res logits from a previous call.
            multimask_output: M = 3 masks per prompt instead of 1.
            return_logits: masks as float32 logits instead of 0/1.
            normalize_coords: coordinates are pixels (else [0, 1] fractions). The flags take bools (or numpy
                bools, 0 / 1).
        Returns:
            numpy ``(masks, scores, lowres_logits)``: masks (M, H, W) float32 0/1 at the original image size
            (logits with ``return_logits``), scores (M,) float32, logits (M, 256, 256) float32; with N > 1 prompts
            every array gains a leading N axis.
        Raises:
            NoImageError: no image set with :meth:`setimage` (none, or images of :meth:`setimagebatch`).
            TypeError, ValueError: bad prompts or flags, naming the argument.
        """
        self._checkimageset(batch=False, method='predict')
        flags = self._checkflags(multimask_output, return_logits, normalize_coords)
        prompt, mask_input = self._prepare(0, point_coords, point_labels, box, mask_input, flags[2], _promptnames())
        return self._decode(0, prompt, mask_input, *flags[:2])

    def predictbatch(self, point_coords_batch: Optional[Sequence] = None, point_labels_batch: Optional[Sequence] = None,
                     box_batch: Optional[Sequence] = None, mask_input_batch: Optional[Sequence] = None,
                     multimask_output: bool = True, return_logits: bool = False,
                     normalize_coords: bool = True) -> tuple[list, list, list]:
        """:meth:`predict` for each image set by :meth:`setimagebatch`.

        Every image's prompts are checked before any is decoded; errors name e.g. ``box_batch[1]``.

        Args:
            point_coords_batch, point_labels_batch, box_batch, mask_input_batch: lists with one entry (or None)
                per image, each as :meth:`predict`'s argument of that name for that image.
            multimask_output, return_logits, normalize_coords: as for :meth:`predict`.
        Returns:
            Three lists (masks, scores, lowres_logits) of numpy arrays, one entry per image, as :meth:`predict`.
        Raises:
            NoImageError: no images set with :meth:`setimagebatch` (none, or an image of :meth:`setimage`).
            TypeError: a ``*_batch`` that is not a list or tuple; ValueError: one of another length than the
                images; and :meth:`predict`'s errors.
        """
        self._checkimageset(batch=True, method='predictbatch')
        flags = self._checkflags(multimask_output, return_logits, normalize_coords)
        num_images = len(self._orig_hw)
        batches = {'point_coords_batch': point_coords_batch, 'point_labels_batch': point_labels_batch,
                   'box_batch': box_batch, 'mask_input_batch': mask_input_batch}
        for name, value in batches.items():
            if value is None:
                continue
            if not isinstance(value, (list, tuple)):
                raise TypeError(f'{name} must be a list or tuple with one entry (or None) per image, got '
                                f'{type(value).__name__}')
            if len(value) != num_images:
                raise ValueError(f'{name} must be a list with one entry per image: expected length {num_images} (the '
                                 f'images given to setimagebatch), got length {len(value)}')
        pick = lambda values, i: None if values is None else values[i]  # noqa: E731
        prepared = [self._prepare(i, pick(point_coords_batch, i), pick(point_labels_batch, i), pick(box_batch, i),
                                  pick(mask_input_batch, i), flags[2], _promptnames(f'_batch[{i}]'))
                    for i in range(num_images)]
        results = [self._decode(i, prompt, mask_input, *flags[:2]) for i, (prompt, mask_input) in enumerate(prepared)]
        return tuple(list(column) for column in zip(*results))

    @staticmethod
    def _checkflags(multimask_output, return_logits, normalize_coords):
        return (asflag(multimask_output, 'multimask_output'), asflag(return_logits, 'return_logits'),
                asflag(normalize_coords, 'normalize_coords'))

    def _prepare(self, img_idx, point_coords, point_labels, box, mask_input, normalize_coords, names):
        """Check and convert one image's prompts: ``(prompt (coords (N, P, 2) in the model frame, labels (N, P))
        or None, mask_input (N or 1, 1, h, w) or None)``; ``names`` maps each argument to its name in messages."""
        orig_hw = self._orig_hw[img_idx]
        points = aspoints(point_coords, point_labels, self.device, names=(names['point_coords'], names['point_labels']))
        boxes = asboxes(box, self.device, name=names['box'])
        mask_input = asmaskinput(mask_input, self.model.sam_prompt_encoder.mask_input_size, self.device,
                                  name=names['mask_input'])
        prompt = None
        if points is not None:
            prompt = (self.transforms.transformcoords(points[0], normalize_coords, orig_hw), points[1])
        if boxes is not None:
            corners = self.transforms.transformboxes(boxes, normalize_coords, orig_hw)
            labels = BOX_LABELS.to(self.device).repeat(corners.shape[0], 1)
            if prompt is not None:
                if prompt[0].shape[0] not in (1, corners.shape[0]):
                    raise ValueError(f'{names["point_coords"]} has {prompt[0].shape[0]} prompt sets but '
                                     f'{names["box"]} has {corners.shape[0]} boxes: give one point set, or one per box')
                # the box corners go first, as the model was trained
                corners = torch.cat([corners, prompt[0].expand(corners.shape[0], -1, -1)], dim=1)
                labels = torch.cat([labels, prompt[1].expand(corners.shape[0], -1)], dim=1)
            prompt = (corners, labels)
        num_prompts = prompt[0].shape[0] if prompt is not None else 1
        if mask_input is not None and mask_input.shape[0] not in (1, num_prompts):
            expected = '1 mask' if num_prompts == 1 else f'1 mask (shared) or {num_prompts} (one per prompt)'
            raise ValueError(f'{names["mask_input"]} must hold {expected} for {num_prompts} prompt set(s), got '
                             f'{mask_input.shape[0]} masks')
        return prompt, mask_input

    @torch.no_grad()
    def predictlowres(self, point_coords: torch.Tensor, point_labels: torch.Tensor,
                      mask_input: Optional[torch.Tensor] = None, multimask_output: bool = True,
                      min_iou: Optional[float] = None) -> tuple[torch.Tensor, ...]:
        """Prompts in, low-res logits out, all as tensors: for callers that stay in torch (the mask generator).

        Inputs are trusted tensors: only the image being set is checked.

        Args:
            point_coords: (N, P, 2) float32 tensor of (x, y) pixels of the image set by :meth:`setimage`, on
                ``self.device``.
            point_labels: (N, P) int32 tensor (1 foreground, 0 background, -1 padding).
            mask_input: None or (N, 1, 256, 256) float32 low-res logits (for S = 1024: S/4 a side).
            multimask_output: three candidates per prompt instead of one.
            min_iou: None, or decode only the candidates whose predicted IoU exceeds it.
        Returns:
            ``(low_res (N, M, 256, 256), ious (N, M))`` float32 tensors on the device, M = 3 or 1; with
            ``min_iou``: ``(low_res (K, 256, 256), ious (K,), index (K, 2))``, index holding each kept mask's
            (prompt, candidate) position.
        Raises:
            NoImageError: no image set with :meth:`setimage` (none, or images of :meth:`setimagebatch`).
        """
        self._checkimageset(batch=False, method='predictlowres')
        coords = self.transforms.transformcoords(point_coords, normalize=True, orig_hw=self._orig_hw[0])
        return self._lowres(0, (coords, point_labels), mask_input, multimask_output, min_iou)

    def _lowres(self, img_idx, prompt, mask_input, multimask_output, min_iou=None):
        """The model's decoding of one image's checked prompts (coordinates in the model frame)."""
        num_prompts = prompt[0].shape[0] if prompt is not None else 1
        features = self._features
        return self.model.decodeprompts(
            features['image_embed'][img_idx:img_idx + 1],
            [feat[img_idx:img_idx + 1] for feat in features['high_res_feats']],
            points=prompt, mask_input=mask_input, multimask_output=multimask_output,
            repeat_image=prompt is not None and num_prompts > 1, min_iou=min_iou,
        )

    @torch.no_grad()
    def _decode(self, img_idx, prompt, mask_input, multimask_output, return_logits):
        low_res, scores = self._lowres(img_idx, prompt, mask_input, multimask_output)
        masks = self.transforms.postprocessmasks(low_res, self._orig_hw[img_idx])
        low_res = torch.clamp(low_res, -32.0, 32.0)
        if not return_logits:
            masks = masks > self.mask_threshold
        return tuple(x.squeeze(0).float().cpu().numpy() for x in (masks, scores, low_res))

    def _checkimageset(self, batch, method):
        if not self._is_image_set:
            setter = 'setimagebatch' if batch else 'setimage'
            raise NoImageError(f'{method} needs an image: call {setter}(...) first')
        if batch is not None and batch != self._is_batch:
            if batch:
                raise NoImageError(f'{method} is for images set with setimagebatch; after setimage use predict')
            raise NoImageError(f'{method} is for an image set with setimage; after setimagebatch use predictbatch')
