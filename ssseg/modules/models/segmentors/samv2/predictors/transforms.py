"""Image and prompt transforms between a user's image frame and SAMV2's square input frame.

The model sees a ``resolution`` x ``resolution`` image (aspect ratio not kept); point and box
coordinates are (x, y) pixels, scaled by the same factors.
"""
import warnings
from typing import Optional, Sequence, Union

import cv2
import numpy as np
import torch
import torch.nn.functional as F
import torchvision.transforms.functional as TF
from PIL import Image

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


# PIL modes whose pixels do not fit uint8: converting them to RGB would clip silently
_WIDE_PIL_MODES = ('I', 'F')
_ALPHA_PIL_MODES = ('LA', 'La', 'PA', 'RGBA', 'RGBa')
_DTYPE_HINTS = {'f': '(image * 255).round().clip(0, 255).astype(np.uint8) for values in [0, 1]',
                'u': '(image // 257).astype(np.uint8) for 16-bit values', 'b': 'image.astype(np.uint8) * 255'}


def asrgbimage(image: Union[np.ndarray, Image.Image], argname: str = 'image') -> np.ndarray:
    """Return ``image`` as an (H, W, 3) uint8 RGB numpy array (possibly a view of the input).

    Grayscale (H, W) or (H, W, 1) arrays and PIL modes '1'/'L' are repeated to three channels, and RGBA arrays and
    PIL images with alpha lose it, each with a UserWarning; other 8-bit PIL modes are converted to RGB. Nothing is
    modified.

    Args:
        image: an (H, W, 3) uint8 numpy array (any strides) or an 8-bit PIL image.
        argname: the argument's name in error messages.
    Returns:
        (H, W, 3) uint8 RGB numpy array.
    Raises:
        TypeError: other types, dtypes and 16/32-bit or float PIL modes.
        ValueError: other shapes (channel-first ones included) and empty images.
    """
    if isinstance(image, Image.Image):
        image = _piltoarray(image, argname)
    elif not isinstance(image, np.ndarray):
        if isinstance(image, torch.Tensor):
            raise TypeError(f'{argname} must be an (H, W, 3) uint8 RGB numpy array or a PIL image, got a '
                            'torch.Tensor of '
                            f'shape {tuple(image.shape)}: pass a HWC uint8 numpy array, e.g. '
                            'tensor.permute(1, 2, 0).cpu().numpy() for a (3, H, W) uint8 tensor')
        hint = ': read the file first, e.g. np.asarray(PIL.Image.open(path).convert("RGB"))' \
            if isinstance(image, (str, bytes)) or hasattr(image, '__fspath__') else ''
        raise TypeError(f'{argname} must be an (H, W, 3) uint8 RGB numpy array or a PIL image, got '
                        f'{type(image).__name__}{hint}')
    if image.dtype != np.uint8:
        hint = _DTYPE_HINTS.get(image.dtype.kind, 'image.astype(np.uint8) after scaling to 0..255')
        raise TypeError(f'{argname} must have dtype uint8 (pixel values 0..255), got {image.dtype}: convert it first, '
                        f'e.g. {hint}')
    if image.ndim not in (2, 3):
        raise ValueError(f'{argname} must be an (H, W, 3) RGB array in HWC order, got {image.ndim}-D shape '
                         f'{image.shape}')
    if image.ndim == 3 and image.shape[0] in (1, 3, 4) and image.shape[2] not in (1, 3, 4):
        raise ValueError(f'{argname} must be an (H, W, 3) RGB array in HWC order, got shape {image.shape}, which looks '
                         f'channel-first (C, H, W): transpose it, e.g. {argname}.transpose(1, 2, 0)')
    if image.ndim == 3 and image.shape[2] not in (1, 3, 4):
        raise ValueError(f'{argname} must be an (H, W, 3) RGB array in HWC order (or (H, W) / (H, W, 1) grayscale, '
                         f'(H, W, 4) RGBA), got shape {image.shape}')
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f'{argname} is empty: expected an (H, W, 3) image with H, W >= 1, got shape {image.shape}')
    if image.ndim == 2 or image.shape[2] == 1:
        warnings.warn(f'{argname} is grayscale {image.shape}: repeating it to 3 RGB channels', stacklevel=3)
        image = np.repeat(image.reshape(image.shape[0], image.shape[1], 1), 3, axis=2)
    elif image.shape[2] == 4:
        warnings.warn(f'{argname} has 4 channels: treating it as RGBA and dropping alpha', stacklevel=3)
        image = image[:, :, :3]
    return image


def _piltoarray(image, argname):
    """An 8-bit PIL image -> (H, W, C) uint8 numpy array, C = 3 (grayscale and alpha are warned about here)."""
    mode = image.mode
    if mode.split(';')[0] in _WIDE_PIL_MODES:
        raise TypeError(f'{argname} must be an 8-bit PIL image (mode RGB, L, P, RGBA, ...), got mode {mode!r} '
                        '(16/32-bit '
                        'or float pixels would be clipped): convert it to uint8 0..255 first')
    if image.width == 0 or image.height == 0:
        raise ValueError(f'{argname} is empty: expected an image with H, W >= 1, got a PIL image of size '
                         f'{image.width} x {image.height}')
    if mode in _ALPHA_PIL_MODES or (mode == 'P' and 'transparency' in image.info):
        warnings.warn(f'{argname} is a PIL image of mode {mode!r}: converting it to RGB and dropping alpha',
                      stacklevel=4)
    elif mode in ('1', 'L'):
        warnings.warn(f'{argname} is a grayscale PIL image (mode {mode!r}): repeating it to 3 RGB channels',
                      stacklevel=4)
    try:
        return np.asarray(image.convert('RGB'))
    except (ValueError, OSError) as err:
        raise TypeError(f'{argname} is a PIL image of mode {mode!r}, which cannot be converted to RGB: {err}') from err


def fillholes(mask_logits: torch.Tensor, threshold: float, max_hole_area: float = 0,
              max_sprinkle_area: float = 0) -> torch.Tensor:
    """Fill background holes and remove foreground sprinkles of at most the given areas (pixels).

    A hole (8-connected background region) is set to ``threshold + 10``, a sprinkle (8-connected foreground
    region) to ``threshold - 10``; both are judged on the original mask. Uses OpenCV connected components on the
    CPU, so no compiled extension is needed.

    Args:
        mask_logits: (N, M, H, W) float logits.
        threshold: the mask threshold (foreground is above it).
        max_hole_area: largest hole filled, in pixels (<= 0: none).
        max_sprinkle_area: largest sprinkle removed, in pixels (<= 0: none).
    Returns:
        (N, M, H, W) logits on the input's device (the input itself when both areas are <= 0).
    """
    if max_hole_area <= 0 and max_sprinkle_area <= 0:
        return mask_logits
    fg = mask_logits > threshold
    # both are judged on the original mask (as Meta's predictor does), not on the hole-filled one
    out = torch.where(smallregions(~fg, max_hole_area), threshold + 10.0, mask_logits)
    return torch.where(smallregions(fg, max_sprinkle_area), threshold - 10.0, out)


def smallregions(regions: torch.Tensor, max_area: float) -> torch.Tensor:
    """The small 8-connected components of each (H, W) map: OpenCV on the CPU, :func:`smallregionstorch` elsewhere.

    Args:
        regions: (..., H, W) bool tensor.
        max_area: the largest component kept, in pixels.
    Returns:
        Same-shape bool map of the components with at most ``max_area`` pixels (all False when ``max_area`` <= 0),
        on ``regions``' device.
    """
    if regions.device.type != 'cpu':
        return smallregionstorch(regions, max_area)  # no host copy, no sync: the same result as OpenCV's
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


def smallregionstorch(regions: torch.Tensor, max_area: float) -> torch.Tensor:
    """The small 8-connected components of each (H, W) map, in torch ops only (no host sync on any device).

    Each region pixel starts with its flat index as label and takes the smallest label of its 3 x 3
    neighbourhood in the region, ``floor(max_area) - 1`` times: a component of A <= max_area pixels has a
    geodesic diameter <= A - 1, so it ends with one label. A label's pixels are a whole component iff none
    of them has a region neighbour with another label; such a component is small iff it has <= max_area pixels.

    Args:
        regions: (..., H, W) bool tensor, on any device.
        max_area: the largest component kept, in pixels (fractions count as their floor).
    Returns:
        Same-shape bool map of the components with at most ``max_area`` pixels (all False when ``max_area`` <= 0),
        on ``regions``' device. Equal to :func:`smallregions` on the CPU.
    """
    height, width = regions.shape[-2:]
    pixels = height * width
    if not max_area > 0 or regions.numel() == 0:
        return torch.zeros_like(regions, dtype=torch.bool)
    limit = pixels if max_area >= pixels else int(max_area)  # no component has more pixels than its map
    inside = regions.reshape(-1, 1, height, width)
    # float32 holds the indices exactly up to 2**24 pixels, float64 beyond (CUDA's max_pool2d takes no int64)
    dtype = torch.float32 if pixels <= 1 << 24 else torch.float64
    # labels are negated flat indices, so a max-pool gives the smallest index without negating at every step
    index = torch.arange(pixels, dtype=dtype, device=regions.device).view(1, 1, height, width)
    outside = torch.tensor(float('-inf'), dtype=dtype, device=regions.device)
    labels = torch.where(inside, -index, outside)
    for _ in range(limit - 1):
        # non-region pixels stay -inf, so labels never leave their component
        labels = torch.where(inside, F.max_pool2d(labels, 3, 1, 1), outside)
    highest = F.max_pool2d(labels, 3, 1, 1)
    lowest = -F.max_pool2d(torch.where(inside, -labels, outside), 3, 1, 1)
    conflict = inside & ((lowest != labels) | (highest != labels))
    bins = torch.where(inside, -labels, 0).long().flatten(1)  # non-region pixels add zeros to bin 0
    counts = torch.zeros(bins.shape, dtype=torch.int64, device=regions.device)
    conflicts = counts.scatter_add(1, bins, conflict.flatten(1).long())
    counts = counts.scatter_add(1, bins, inside.flatten(1).long())
    whole = (conflicts.gather(1, bins) == 0) & (counts.gather(1, bins) <= limit)
    return (inside.flatten(1) & whole).reshape(regions.shape)


class SAMV2Transforms:
    """Resize + normalize images to the model's input and map prompts and masks between frames.

    Args:
        resolution: S, the side of the model's square input.
        mask_threshold: the mask threshold :meth:`postprocessmasks` fills holes and removes sprinkles at.
        max_hole_area, max_sprinkle_area: pixels of the low-res masks (see :func:`fillholes`).
    """

    def __init__(self, resolution: int, mask_threshold: float = 0.0, max_hole_area: float = 0.0,
                 max_sprinkle_area: float = 0.0) -> None:
        self.resolution = resolution
        self.mask_threshold = mask_threshold
        self.max_hole_area = max_hole_area
        self.max_sprinkle_area = max_sprinkle_area

    def toinput(self, image: np.ndarray, device: Union[str, torch.device] = 'cpu') -> torch.Tensor:
        """An image as the model's input.

        Args:
            image: (H, W, 3) uint8 RGB array.
            device: where the tensor goes.
        Returns:
            (3, S, S) float32 tensor (S = resolution), resized with antialiasing and ImageNet-normalized.
        """
        planes = np.ascontiguousarray(image.transpose(2, 0, 1))
        if not planes.flags.writeable:
            planes = planes.copy()  # torch.from_numpy warns on read-only arrays (e.g. from PIL)
        tensor = torch.from_numpy(planes).to(device)
        tensor = tensor.to(torch.float32).div(255)
        tensor = TF.resize(tensor, [self.resolution, self.resolution], antialias=True)
        return TF.normalize(tensor, IMAGENET_MEAN, IMAGENET_STD)

    def transformcoords(self, coords: torch.Tensor, normalize: bool = True,
                        orig_hw: Optional[Sequence[int]] = None) -> torch.Tensor:
        """(x, y) coordinates -> pixels of the S x S input.

        Args:
            coords: (..., 2) float (x, y) coordinates (not modified).
            normalize: the coordinates are pixels of the original (H, W) image; otherwise they are already in
                [0, 1] relative to the image.
            orig_hw: the original (H, W), needed with ``normalize``.
        Returns:
            (..., 2) float (x, y) pixels of the S x S input.
        """
        if normalize:
            height, width = orig_hw
            coords = coords.clone()
            coords[..., 0] = coords[..., 0] / width
            coords[..., 1] = coords[..., 1] / height
        return coords * self.resolution

    def transformboxes(self, boxes: torch.Tensor, normalize: bool = True,
                       orig_hw: Optional[Sequence[int]] = None) -> torch.Tensor:
        """Boxes -> corner points in the S x S input.

        Args:
            boxes: (N, 4) float xyxy boxes, pixels of the original image (or [0, 1] without ``normalize``).
            normalize, orig_hw: as for :meth:`transformcoords`.
        Returns:
            (N, 2, 2) float corner points ((x1, y1), (x2, y2)) in pixels of the S x S input.
        """
        return self.transformcoords(boxes.reshape(-1, 2, 2), normalize, orig_hw)

    def postprocessmasks(self, masks: torch.Tensor, orig_hw: Sequence[int]) -> torch.Tensor:
        """Low-resolution logits -> logits at the original image size.

        Holes and sprinkles are handled first (see :func:`fillholes`), then the logits are upsampled bilinearly.

        Args:
            masks: (N, M, h, w) low-resolution logits (any float dtype).
            orig_hw: the original image's (H, W).
        Returns:
            (N, M, H, W) float32 logits at the original image size.
        """
        masks = fillholes(masks.float(), self.mask_threshold, self.max_hole_area, self.max_sprinkle_area)
        return F.interpolate(masks, orig_hw, mode='bilinear', align_corners=False)
