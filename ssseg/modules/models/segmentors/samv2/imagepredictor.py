"""SAMV2ImagePredictor: embed an image once, then segment it from points, boxes and masks."""
import torch

from .modelchoice import buildsamv2, choosesegmentorcfg
from .prompts import BOX_LABELS, asboxes, asmaskinput, aspoints
from .transforms import SAMV2Transforms, asrgbimage


class NoImageError(RuntimeError, ValueError):
    """A prediction was asked for before the matching image was set."""


class SAMV2ImagePredictor:
    """Promptable segmentation of still images with SAM 2 / SAM 2.1.

    Choose the model with exactly one of ``samv2_cfg`` (a config dict whose ``ckptpath`` is a URL or
    local path) or ``use_default_samv2{,1}_{t,s,bplus,l}=True``. ``device`` defaults to cuda when
    available, else cpu. ``apply_postprocessing`` lets a single-mask request fall back to the most
    stable of the multimask outputs (as Meta's builder does). Masks are thresholded at
    ``mask_threshold``; ``max_hole_area`` / ``max_sprinkle_area`` (pixels of the 256 x 256 low-res
    mask) fill small holes / remove small specks before upsampling, with OpenCV on any device.
    ``precision='bfloat16'`` opts in to bfloat16 autocast (faster on GPUs and CPUs with AVX512-BF16/AMX,
    masks close to but not equal to float32's); the default 'float32' matches Meta's outputs.
    """

    def __init__(self, samv2_cfg=None, use_default_samv2_l=False, use_default_samv2_bplus=False,
                 use_default_samv2_s=False, use_default_samv2_t=False, use_default_samv21_l=False,
                 use_default_samv21_bplus=False, use_default_samv21_s=False, use_default_samv21_t=False,
                 device=None, load_ckpt_strict=True, apply_postprocessing=True, mask_threshold=0.0,
                 max_hole_area=0.0, max_sprinkle_area=0.0, precision='float32'):
        cfg = choosesegmentorcfg(
            samv2_cfg, use_default_samv2_l=use_default_samv2_l, use_default_samv2_bplus=use_default_samv2_bplus,
            use_default_samv2_s=use_default_samv2_s, use_default_samv2_t=use_default_samv2_t,
            use_default_samv21_l=use_default_samv21_l, use_default_samv21_bplus=use_default_samv21_bplus,
            use_default_samv21_s=use_default_samv21_s, use_default_samv21_t=use_default_samv21_t,
        )
        self.model = buildsamv2(cfg, device=device, load_ckpt_strict=load_ckpt_strict,
                                apply_postprocessing=apply_postprocessing, precision=precision)
        self.mask_threshold = mask_threshold
        self.transforms = SAMV2Transforms(self.model.image_size, mask_threshold, max_hole_area, max_sprinkle_area)
        self.resetpredictor()

    @property
    def device(self):
        return self.model.device

    def resetpredictor(self):
        """Forget the current image(s) and their features."""
        self._features = None
        self._orig_hw = None
        self._is_image_set = False
        self._is_batch = False

    # ------------------------------------------------------------------ images
    @torch.no_grad()
    def setimage(self, image):
        """Compute the embedding of one image: (H, W, 3) uint8 RGB numpy array or PIL image."""
        image = asrgbimage(image, 'image')
        self.resetpredictor()
        inputs = self.transforms.toinput(image, self.device)[None]
        self._features = self.model.encodeimage(inputs)
        self._orig_hw = [image.shape[:2]]
        self._is_image_set = True

    @torch.no_grad()
    def setimagebatch(self, images):
        """Compute the embeddings of a list of images (each (H_i, W_i, 3) uint8 RGB or PIL) for predictbatch."""
        if not isinstance(images, (list, tuple)) or not images:
            raise TypeError(f'images must be a non-empty list of RGB images, got {type(images).__name__}'
                            f'{" (empty)" if isinstance(images, (list, tuple)) else ""}')
        images = [asrgbimage(image, f'images[{i}]') for i, image in enumerate(images)]
        self.resetpredictor()
        inputs = torch.stack([self.transforms.toinput(image, self.device) for image in images])
        self._features = self.model.encodeimage(inputs)
        self._orig_hw = [image.shape[:2] for image in images]
        self._is_image_set = True
        self._is_batch = True

    def getimageembedding(self):
        """The current image's embedding, (1, C, S/16, S/16) (C=256, 64 x 64 for S=1024)."""
        self._checkimageset(batch=None, method='getimageembedding')
        return self._features['image_embed']

    # ------------------------------------------------------------------ prediction
    def predict(self, point_coords=None, point_labels=None, box=None, mask_input=None, multimask_output=True,
                return_logits=False, normalize_coords=True):
        """Segment the image set by :meth:`setimage` from prompts.

        ``point_coords``: (P, 2) or (N, P, 2) (x, y) pixels of the original image (or [0, 1] fractions
        with ``normalize_coords=False``); ``point_labels``: (P,) or (N, P), 1 foreground, 0 background.
        ``box``: (4,) or (N, 4) xyxy in the same frame; several boxes segment N objects at once.
        ``mask_input``: (1, 256, 256) or (N, 1, 256, 256) low-res logits from a previous call.
        Returns numpy ``(masks, scores, lowres_logits)``: masks (M, H, W) float32 0/1 (logits with
        ``return_logits``), scores (M,), logits (M, 256, 256), M = 3 with ``multimask_output`` else 1;
        with N prompts every array gains a leading N axis.
        """
        self._checkimageset(batch=False, method='predict')
        return self._predictone(0, point_coords, point_labels, box, mask_input, multimask_output, return_logits,
                                normalize_coords)

    def predictbatch(self, point_coords_batch=None, point_labels_batch=None, box_batch=None, mask_input_batch=None,
                     multimask_output=True, return_logits=False, normalize_coords=True):
        """:meth:`predict` for each image set by :meth:`setimagebatch`; each ``*_batch`` is a list with one
        entry (or None) per image. Returns three lists (masks, scores, lowres_logits) of numpy arrays."""
        self._checkimageset(batch=True, method='predictbatch')
        num_images = len(self._orig_hw)
        batches = {'point_coords_batch': point_coords_batch, 'point_labels_batch': point_labels_batch,
                   'box_batch': box_batch, 'mask_input_batch': mask_input_batch}
        for name, value in batches.items():
            if value is not None and (not isinstance(value, (list, tuple)) or len(value) != num_images):
                raise ValueError(f'{name} must be a list with one entry per image ({num_images}), got '
                                 f'{type(value).__name__}{" of length %d" % len(value) if hasattr(value, "__len__") else ""}')
        pick = lambda values, i: None if values is None else values[i]  # noqa: E731
        results = [self._predictone(i, pick(point_coords_batch, i), pick(point_labels_batch, i), pick(box_batch, i),
                                    pick(mask_input_batch, i), multimask_output, return_logits, normalize_coords)
                   for i in range(num_images)]
        return tuple(list(column) for column in zip(*results))

    @torch.no_grad()
    def _predictone(self, img_idx, point_coords, point_labels, box, mask_input, multimask_output, return_logits,
                    normalize_coords):
        orig_hw = self._orig_hw[img_idx]
        points = aspoints(point_coords, point_labels, self.device)
        boxes = asboxes(box, self.device)
        mask_input = asmaskinput(mask_input, self.model.sam_prompt_encoder.mask_input_size, self.device)
        prompt = None
        if points is not None:
            prompt = (self.transforms.transformcoords(points[0], normalize_coords, orig_hw), points[1])
        if boxes is not None:
            corners = self.transforms.transformboxes(boxes, normalize_coords, orig_hw)
            labels = BOX_LABELS.to(self.device).repeat(corners.shape[0], 1)
            if prompt is not None:
                if prompt[0].shape[0] not in (1, corners.shape[0]):
                    raise ValueError(f'point_coords has {prompt[0].shape[0]} prompt sets but box has '
                                     f'{corners.shape[0]} boxes: give one point set, or one per box')
                # the box corners go first, as the model was trained
                corners = torch.cat([corners, prompt[0].expand(corners.shape[0], -1, -1)], dim=1)
                labels = torch.cat([labels, prompt[1].expand(corners.shape[0], -1)], dim=1)
            prompt = (corners, labels)
        num_prompts = prompt[0].shape[0] if prompt is not None else 1
        if mask_input is not None and mask_input.shape[0] not in (1, num_prompts):
            raise ValueError(f'mask_input has {mask_input.shape[0]} masks for {num_prompts} prompts')
        features = self._features
        low_res, scores = self.model.decodeprompts(
            features['image_embed'][img_idx:img_idx + 1],
            [feat[img_idx:img_idx + 1] for feat in features['high_res_feats']],
            points=prompt, mask_input=mask_input, multimask_output=multimask_output,
            repeat_image=prompt is not None and num_prompts > 1,
        )
        masks = self.transforms.postprocessmasks(low_res, orig_hw)
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

    # Meta's method names, so code written for the official package runs unchanged
    set_image = setimage
    set_image_batch = setimagebatch
    predict_batch = predictbatch
    get_image_embedding = getimageembedding
    reset_predictor = resetpredictor
