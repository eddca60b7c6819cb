"""Drawing helpers for SAM 2 outputs: masks, prompts and automatic-generator annotations.

Conventions: images are (H, W, 3) RGB (uint8, or float in [0, 1]); masks are (H, W) boolean or 0/1 arrays
(numeric masks are read as ``mask > 0.5``); points are (N, 2) pixel xy; boxes are xyxy pixels.
Torch tensors are accepted wherever arrays are. The matplotlib helpers work without a display: when none is
available and the user has chosen no backend, the Agg backend is selected; a chosen backend is never changed.
``saveoverlay`` needs no matplotlib at all.
"""
import os
import string
import sys
from typing import Any, Optional, Sequence, Union

import cv2
import numpy as np
from numpy.typing import ArrayLike

from ssseg.modules.utils import rle
from ssseg.modules.utils.aliases import addmetaaliases
from ssseg.modules.utils.fileio import writebytes

__all__ = ['showmask', 'showpoints', 'showbox', 'showmasks', 'showanns', 'saveoverlay',
           'show_mask', 'show_points', 'show_box', 'show_masks', 'show_anns']

DEFAULT_MASK_COLOR = (30 / 255, 144 / 255, 255 / 255, 0.6)
_FILE_BACKENDS = {'agg', 'cairo', 'pdf', 'pgf', 'ps', 'svg', 'template'}


def _tonumpy(x):
    """Arrays pass through; torch tensors (any device) become numpy arrays."""
    if hasattr(x, 'detach'):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def _displayavailable():
    """On X11/Wayland systems a display needs DISPLAY or WAYLAND_DISPLAY; macOS and Windows always have one."""
    if sys.platform.startswith('win') or sys.platform == 'darwin':
        return True
    return bool(os.environ.get('DISPLAY') or os.environ.get('WAYLAND_DISPLAY'))


def _pyplot():
    """Import pyplot, selecting Agg first only if there is no display and no backend was chosen yet."""
    import matplotlib
    getbackend = getattr(matplotlib.rcParams, '_get_backend_or_none', None)  # None while still 'auto'
    chosen = bool(os.environ.get('MPLBACKEND')) or (getbackend is None or getbackend() is not None)
    if not chosen and not _displayavailable():
        matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    return plt


def _canshow(plt):
    """True when plt.show() would display something (GUI or notebook inline backend)."""
    return plt.get_backend().lower() not in _FILE_BACKENDS


def _checkax(ax):
    if not (hasattr(ax, 'imshow') and hasattr(ax, 'add_patch')):
        raise TypeError(f'ax must be a matplotlib Axes, got {type(ax).__name__}')


def _asmask(mask, name='mask'):
    """(H, W) or (1, H, W) bool / numeric array -> (H, W) bool."""
    mask = _tonumpy(mask)
    if mask.ndim == 3 and mask.shape[0] == 1:
        mask = mask[0]
    if mask.ndim != 2:
        raise ValueError(f'{name} must have shape (H, W) or (1, H, W), got shape {mask.shape}')
    if mask.dtype == bool:
        return mask
    if not (np.issubdtype(mask.dtype, np.number)):
        raise TypeError(f'{name} must be a boolean or numeric array, got dtype {mask.dtype}')
    return mask > 0.5


def _asmasks(masks, name='masks'):
    """(H, W), (N, H, W) or a sequence of (H, W) masks -> list of (H, W) bool."""
    if isinstance(masks, (list, tuple)):
        return [_asmask(m, f'{name}[{i}]') for i, m in enumerate(masks)]
    masks = _tonumpy(masks)
    if masks.ndim == 2:
        return [_asmask(masks, name)]
    if masks.ndim == 4 and masks.shape[1] == 1:
        masks = masks[:, 0]
    if masks.ndim != 3:
        raise ValueError(f'{name} must have shape (H, W), (N, H, W) or (N, 1, H, W), got shape {masks.shape}')
    return [_asmask(m, f'{name}[{i}]') for i, m in enumerate(masks)]


def _asimage(image, name='image'):
    """(H, W), (H, W, 1|3|4) uint8 or float in [0, 1] -> (H, W, 3) uint8 RGB."""
    image = _tonumpy(image)
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    if image.ndim == 2:
        image = np.stack([image] * 3, axis=-1)
    if image.ndim != 3 or image.shape[-1] not in (3, 4):
        raise ValueError(f'{name} must have shape (H, W) or (H, W, C) with C in 1, 3, 4, got shape {image.shape}')
    image = image[..., :3]
    if image.dtype == np.uint8:
        return image
    if image.dtype == bool or not np.issubdtype(image.dtype, np.number):
        raise TypeError(f'{name} must be a uint8 or float array, got dtype {image.dtype}')
    image = image.astype(np.float32)
    if image.size and image.max() <= 1.0:
        image = image * 255.0
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def _outercontours(mask):
    """Outer contours of a bool mask, simplified with approxPolyDP (list of (K, 1, 2) int32 xy)."""
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    return [cv2.approxPolyDP(c, epsilon=0.01, closed=True) for c in contours]


def _rng(rng):
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)


def _decodesegmentation(segmentation, name):
    """Binary mask, COCO RLE ({'size', 'counts': str|bytes}) or uncompressed RLE ({'size', 'counts': [int]})."""
    if not isinstance(segmentation, dict):
        return _asmask(segmentation, name)
    return rle.decode(segmentation, name)


def showmask(mask: ArrayLike, ax: Any, random_color: bool = False, borders: bool = True,
             rng: Optional[Union[int, np.random.Generator]] = None) -> None:
    """Overlay one mask on ``ax`` as an RGBA image (blue, or a random colour, at alpha 0.6).

    Args:
        mask: (H, W) or (1, H, W) bool/0-1 array or tensor (numeric masks are read as ``mask > 0.5``), in pixels of
            the image drawn on ``ax``.
        ax: a matplotlib Axes.
        random_color: a random colour instead of blue.
        borders: also draw its simplified outer contours in white.
        rng: seed or np.random.Generator for ``random_color`` (None: fresh randomness).
    Returns:
        None.
    Raises:
        TypeError: ``ax`` not an Axes, or a mask that is neither bool nor numeric.
        ValueError: a mask of another shape.
    """
    _checkax(ax)
    mask = _asmask(mask)
    color = np.concatenate([_rng(rng).random(3), [0.6]]) if random_color else np.asarray(DEFAULT_MASK_COLOR)
    overlay = mask[..., None] * color.astype(np.float32)
    if borders:
        cv2.drawContours(overlay, _outercontours(mask), -1, (1.0, 1.0, 1.0, 0.5), thickness=2)
    ax.imshow(overlay)


def showpoints(coords: ArrayLike, labels: ArrayLike, ax: Any, marker_size: float = 375) -> None:
    """Draw prompt points: label 1 as green stars, label 0 as red stars (white edges); other labels are skipped.

    Args:
        coords: (N, 2) (x, y) pixels of the image drawn on ``ax``.
        labels: (N,) point labels.
        ax: a matplotlib Axes.
        marker_size: the stars' size (matplotlib's ``s``, points^2).
    Returns:
        None.
    Raises:
        TypeError: ``ax`` not an Axes; ValueError: coords not (N, 2) or labels not (N,).
    """
    _checkax(ax)
    coords, labels = _tonumpy(coords), _tonumpy(labels)
    if coords.ndim != 2 or coords.shape[-1] != 2:
        raise ValueError(f'coords must have shape (N, 2) in pixel xy, got shape {coords.shape}')
    if labels.shape != coords.shape[:1]:
        raise ValueError(f'labels must have shape ({coords.shape[0]},) to match coords, got shape {labels.shape}')
    for value, color in ((1, 'green'), (0, 'red')):
        picked = coords[labels == value]
        ax.scatter(picked[:, 0], picked[:, 1], color=color, marker='*', s=marker_size,
                   edgecolor='white', linewidth=1.25)


def showbox(box: ArrayLike, ax: Any) -> None:
    """Draw boxes as unfilled green rectangles.

    Args:
        box: one xyxy box (4,) or several (N, 4), pixels of the image drawn on ``ax``.
        ax: a matplotlib Axes.
    Returns:
        None.
    Raises:
        TypeError: ``ax`` not an Axes; ValueError: another shape.
    """
    _checkax(ax)
    from matplotlib.patches import Rectangle
    boxes = _tonumpy(box).astype(np.float64)
    if boxes.shape == (4,):
        boxes = boxes[None]
    if boxes.ndim != 2 or boxes.shape[-1] != 4:
        raise ValueError(f'box must have shape (4,) or (N, 4) in pixel xyxy, got shape {boxes.shape}')
    for x0, y0, x1, y1 in boxes:
        ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, edgecolor='green', facecolor=(0, 0, 0, 0), lw=2))


def _indexedpath(savepath, index):
    """'out/m_{}.png' -> 'out/m_3.png'; 'out/m.png' -> 'out/m_3.png' (no extension: '.png' is added)."""
    try:
        hasfield = any(field is not None for _, field, _, _ in string.Formatter().parse(savepath))
    except ValueError:
        hasfield = False
    if hasfield:
        return savepath.format(index)
    root, ext = os.path.splitext(savepath)
    return f'{root}_{index}{ext or ".png"}'


def showmasks(image: ArrayLike, masks: Union[ArrayLike, Sequence], scores: ArrayLike,
              point_coords: Optional[ArrayLike] = None, box_coords: Optional[ArrayLike] = None,
              input_labels: Optional[ArrayLike] = None, borders: bool = True,
              savepath: Optional[Union[str, os.PathLike]] = None, show: Optional[bool] = None) -> list:
    """One figure per mask (in the given order): image, mask, prompts, title 'Mask {i+1}, Score: {s:.3f}'.

    Args:
        image: (H, W, 3) RGB (uint8, or float in [0, 1]; (H, W) and (H, W, 1 or 4) are converted).
        masks: (N, H, W) (or (H, W), (N, 1, H, W) or a list of (H, W)) bool/0-1 masks of the image's size.
        scores: (N,) one score per mask.
        point_coords: (K, 2) (x, y) pixels of the image, with ``input_labels`` (K,).
        box_coords: (4,) or (B, 4) xyxy pixels of the image.
        input_labels: (K,) labels of ``point_coords``.
        borders: draw the masks' outer contours.
        savepath: a pattern with a '{}' field filled with the 0-based mask index, or a plain path that gets
            '_{index}' before its extension; its folder is created.
        show: None shows only when the backend can display, True always calls plt.show(), False never.
    Returns:
        The list of saved paths (str).
    Raises:
        ValueError: scores not one per mask, masks of another size, ``point_coords`` without ``input_labels``,
            bad shapes. TypeError: a ``savepath`` that is neither str nor os.PathLike, bad dtypes.
    """
    image = _asimage(image)
    masks = _asmasks(masks)
    scores = np.atleast_1d(_tonumpy(scores)).reshape(-1)
    if len(scores) != len(masks):
        raise ValueError(f'scores must have one value per mask ({len(masks)}), got {len(scores)}')
    for i, mask in enumerate(masks):
        if mask.shape != image.shape[:2]:
            raise ValueError(f'masks[{i}] must have the image size {image.shape[:2]}, got {mask.shape}')
    if point_coords is not None and input_labels is None:
        raise ValueError('input_labels must be given with point_coords, got None')
    if savepath is not None and not isinstance(savepath, (str, os.PathLike)):
        raise TypeError(f'savepath must be a str or os.PathLike, got {type(savepath).__name__}')
    plt = _pyplot()
    doshow = _canshow(plt) if show is None else bool(show)
    saved = []
    for i, (mask, score) in enumerate(zip(masks, scores)):
        fig = plt.figure(figsize=(10, 10))
        try:
            ax = fig.gca()
            ax.imshow(image)
            showmask(mask, ax, borders=borders)
            if point_coords is not None:
                showpoints(point_coords, input_labels, ax)
            if box_coords is not None:
                showbox(box_coords, ax)
            ax.set_title(f'Mask {i + 1}, Score: {float(score):.3f}', fontsize=18)
            ax.axis('off')
            if savepath is not None:
                path = _indexedpath(os.fspath(savepath), i)
                os.makedirs(os.path.dirname(path) or '.', exist_ok=True)
                fig.savefig(path, bbox_inches='tight')
                saved.append(path)
            if doshow:
                plt.show()
        finally:
            plt.close(fig)
    return saved


def showanns(anns: Sequence[dict], borders: bool = True, ax: Optional[Any] = None,
             rng: Optional[Union[int, np.random.Generator]] = None) -> None:
    """Draw automatic-generator annotations, largest area first, as one RGBA image with random colours.

    An empty list draws nothing.

    Args:
        anns: list of dicts with 'segmentation' ((H, W) bool, COCO RLE or uncompressed RLE dict) and 'area'.
        borders: also draw each mask's outer contours.
        ax: target matplotlib Axes (default: the current axes).
        rng: seed or np.random.Generator for the colours.
    Returns:
        None.
    Raises:
        TypeError: ``anns`` not a list or tuple, ``ax`` not an Axes.
        ValueError: an entry without 'segmentation' and 'area', a bad RLE, or segmentations of several sizes.
    """
    if not isinstance(anns, (list, tuple)):
        raise TypeError(f'anns must be a list of dicts, got {type(anns).__name__}')
    if len(anns) == 0:
        return
    for i, ann in enumerate(anns):
        if not isinstance(ann, dict) or 'segmentation' not in ann or 'area' not in ann:
            raise ValueError(f"anns[{i}] must be a dict with keys 'segmentation' and 'area', got {type(ann).__name__}"
                             + (f' with keys {sorted(ann)}' if isinstance(ann, dict) else ''))
    if ax is None:
        ax = _pyplot().gca()
    _checkax(ax)
    order = sorted(range(len(anns)), key=lambda i: anns[i]['area'], reverse=True)
    segs = [_decodesegmentation(anns[i]['segmentation'], f"anns[{i}]['segmentation']") for i in order]
    for i, seg in zip(order, segs):
        if seg.shape != segs[0].shape:
            raise ValueError(f"anns[{i}]['segmentation'] must have size {segs[0].shape} like the others, "
                             f'got {seg.shape}')
    gen = _rng(rng)
    overlay = np.ones((*segs[0].shape, 4), dtype=np.float32)
    overlay[..., 3] = 0
    for seg in segs:
        overlay[seg] = np.concatenate([gen.random(3), [0.5]])
        if borders:
            cv2.drawContours(overlay, _outercontours(seg), -1, (0.0, 0.0, 1.0, 0.4), thickness=1)
    ax.set_autoscale_on(False)  # keep the limits of the image drawn underneath
    ax.imshow(overlay)


def saveoverlay(image: ArrayLike, masks: Union[ArrayLike, Sequence], path: Union[str, os.PathLike],
                alpha: float = 0.5, colors: Optional[ArrayLike] = None, borders: bool = True, seed: int = 0) -> str:
    """Blend masks onto an image and write it with OpenCV (no matplotlib), atomically.

    Args:
        image: (H, W, 3) RGB (uint8, or float in [0, 1]).
        masks: (H, W), (N, H, W), a list of (H, W) masks of the image's size, or the automatic generator's
            annotation list (drawn largest area first).
        path: the file to write (its folder is created); the format follows its extension ('.png' when none).
        alpha: the masks' opacity in [0, 1]. borders: draw the masks' outer contours in white.
        colors: None (random, seeded by ``seed``), one RGB 0-255 triple, or one per mask ((N, 3)).
    Returns:
        ``path`` (as a str).
    Raises:
        TypeError: a ``path`` that is neither str nor os.PathLike, bad dtypes.
        ValueError: ``alpha`` outside [0, 1], masks of another size, bad ``colors`` shape, annotations without
            'segmentation', or an extension OpenCV cannot write.
    """
    image = _asimage(image)
    if isinstance(masks, (list, tuple)) and masks and isinstance(masks[0], dict):
        for i, ann in enumerate(masks):
            if not isinstance(ann, dict) or 'segmentation' not in ann:
                raise ValueError(f"masks[{i}] must be a dict with key 'segmentation' like masks[0], got {ann!r:.80}")
        order = sorted(range(len(masks)), key=lambda i: masks[i].get('area', 0), reverse=True)
        masks = [_decodesegmentation(masks[i]['segmentation'], f"masks[{i}]['segmentation']") for i in order]
    else:
        masks = _asmasks(masks)
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f'path must be a str or os.PathLike, got {type(path).__name__}')
    if not 0.0 <= float(alpha) <= 1.0:
        raise ValueError(f'alpha must be in [0, 1], got {alpha}')
    for i, mask in enumerate(masks):
        if mask.shape != image.shape[:2]:
            raise ValueError(f'masks[{i}] must have the image size {image.shape[:2]}, got {mask.shape}')
    if colors is None:
        palette = np.random.default_rng(seed).integers(0, 256, size=(len(masks), 3))
    else:
        palette = np.asarray(colors, dtype=np.float32)
        if palette.shape == (3,):
            palette = np.tile(palette, (len(masks), 1))
        if palette.shape != (len(masks), 3):
            raise ValueError(f'colors must be an RGB triple or one per mask ({len(masks)}, 3), '
                             f'got shape {palette.shape}')
    canvas = image.astype(np.float32)
    for mask, color in zip(masks, palette):
        canvas[mask] = (1.0 - alpha) * canvas[mask] + alpha * np.asarray(color, dtype=np.float32)
    canvas = np.clip(np.rint(canvas), 0, 255).astype(np.uint8)
    if borders:
        for mask in masks:
            cv2.drawContours(canvas, _outercontours(mask), -1, (255, 255, 255), thickness=2)
    path = os.fspath(path)
    ext = os.path.splitext(path)[1] or '.png'
    try:
        ok, encoded = cv2.imencode(ext, np.ascontiguousarray(canvas[..., ::-1]))  # OpenCV expects BGR
    except cv2.error:
        ok = False
    if not ok:
        raise ValueError(f'path must end with an image extension OpenCV can write, got {path!r}')
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    return writebytes(path, encoded.tobytes())


# names used by Meta's notebooks
addmetaaliases(globals(), 'show_mask', 'show_points', 'show_box', 'show_masks', 'show_anns')
