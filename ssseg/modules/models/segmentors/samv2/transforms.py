"""Image and prompt transforms between a user's image frame and SAMV2's square input frame.

The model sees a ``resolution`` x ``resolution`` image (aspect ratio not kept); point and box
coordinates are (x, y) pixels, scaled by the same factors.
"""
import warnings

import cv2
import numpy as np
import torch
import torch.nn.functional as F
import torchvision.transforms.functional as TF
from PIL import Image

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def asrgbimage(image, argname='image'):
    """Return ``image`` as an (H, W, 3) uint8 RGB numpy array.

    Accepts an (H, W, 3) uint8 array or a PIL image (any mode, converted to RGB). Grayscale (H, W)
    or (H, W, 1) arrays are repeated to three channels and RGBA arrays lose alpha, with a warning.
    """
    if isinstance(image, Image.Image):
        return np.asarray(image.convert('RGB'))
    if not isinstance(image, np.ndarray):
        raise TypeError(f'{argname} must be an (H, W, 3) uint8 RGB numpy array or a PIL image, got {type(image).__name__}')
    if image.dtype != np.uint8:
        raise TypeError(f'{argname} must have dtype uint8 (pixel values 0..255), got {image.dtype}')
    if image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 1):
        warnings.warn(f'{argname} is grayscale {image.shape}: repeating it to 3 RGB channels')
        image = np.repeat(image.reshape(image.shape[0], image.shape[1], 1), 3, axis=2)
    elif image.ndim == 3 and image.shape[2] == 4:
        warnings.warn(f'{argname} has 4 channels: treating it as RGBA and dropping alpha')
        image = image[:, :, :3]
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f'{argname} must be an (H, W, 3) RGB array in HWC order, got shape {image.shape}')
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f'{argname} is empty: shape {image.shape}')
    return image


def fillholes(mask_logits, threshold, max_hole_area=0, max_sprinkle_area=0):
    """Fill background holes and remove foreground sprinkles of at most the given areas (pixels).

    ``mask_logits``: (N, M, H, W) float. A hole (8-connected background region) is set to
    ``threshold + 10``, a sprinkle (8-connected foreground region) to ``threshold - 10``.
    Uses OpenCV connected components on the CPU, so no compiled extension is needed.
    """
    if max_hole_area <= 0 and max_sprinkle_area <= 0:
        return mask_logits
    fg = mask_logits > threshold
    # both are judged on the original mask (as Meta's predictor does), not on the hole-filled one
    out = torch.where(smallregions(~fg, max_hole_area), threshold + 10.0, mask_logits)
    return torch.where(smallregions(fg, max_sprinkle_area), threshold - 10.0, out)


def smallregions(regions, max_area):
    """(..., H, W) bool -> same-shape bool map of the 8-connected components of each (H, W) map with at most
    ``max_area`` pixels (all False when ``max_area`` <= 0). OpenCV on the CPU; the result is on ``regions``' device."""
    small = np.zeros(regions.shape, dtype=bool)
    if max_area > 0:
        maps = regions.cpu().numpy()
        for index in np.ndindex(maps.shape[:-2]):
            small[index] = _smallcomponents(maps[index], max_area)
    return torch.from_numpy(small).to(regions.device)


def _smallcomponents(region, max_area):
    """Boolean map of the 8-connected components of ``region`` (H, W bool) with area <= max_area."""
    _, labels, stats, _ = cv2.connectedComponentsWithStats(region.astype(np.uint8), connectivity=8)
    small = stats[:, cv2.CC_STAT_AREA] <= max_area
    small[0] = False  # label 0 is the complement of the region, not a component
    return small[labels]


class SAMV2Transforms:
    """Resize + normalize images to the model's input and map prompts and masks between frames."""

    def __init__(self, resolution, mask_threshold=0.0, max_hole_area=0.0, max_sprinkle_area=0.0):
        self.resolution = resolution
        self.mask_threshold = mask_threshold
        self.max_hole_area = max_hole_area
        self.max_sprinkle_area = max_sprinkle_area

    def toinput(self, image, device='cpu'):
        """(H, W, 3) uint8 RGB array -> (3, S, S) float32 normalized tensor (S = resolution)."""
        tensor = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))).to(device)
        tensor = tensor.to(torch.float32).div(255)
        tensor = TF.resize(tensor, [self.resolution, self.resolution], antialias=True)
        return TF.normalize(tensor, IMAGENET_MEAN, IMAGENET_STD)

    def transformcoords(self, coords, normalize=True, orig_hw=None):
        """(..., 2) (x, y) coordinates -> pixels of the S x S input.

        With ``normalize`` the coordinates are pixels of the original (H, W) image; otherwise they
        are already in [0, 1] relative to the image.
        """
        if normalize:
            height, width = orig_hw
            coords = coords.clone()
            coords[..., 0] = coords[..., 0] / width
            coords[..., 1] = coords[..., 1] / height
        return coords * self.resolution

    def transformboxes(self, boxes, normalize=True, orig_hw=None):
        """(N, 4) xyxy boxes -> (N, 2, 2) corner points in the S x S input."""
        return self.transformcoords(boxes.reshape(-1, 2, 2), normalize, orig_hw)

    def postprocessmasks(self, masks, orig_hw):
        """(N, M, h, w) low-resolution logits -> (N, M, H, W) logits at the original image size."""
        masks = fillholes(masks.float(), self.mask_threshold, self.max_hole_area, self.max_sprinkle_area)
        return F.interpolate(masks, orig_hw, mode='bilinear', align_corners=False)
