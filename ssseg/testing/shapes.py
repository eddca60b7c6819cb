"""Synthetic fine-tuning data: coloured shapes on textured backgrounds, as a COCO file or DAVIS-style videos.

Each shape (ellipse, rectangle or triangle) is filled with one colour plus noise over a background of random
stripes and noise, so a model can learn what a clicked object is from the data alone. Used by the tests, the
Fine-tuning docs page and the learning test; nothing here is needed to use ssseg.
"""
import json
import os
from typing import Tuple

import cv2
import numpy as np
from PIL import Image

from ssseg.modules.utils.rle import frommask

_PALETTE = [0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 0, 255, 255, 255, 0, 255, 0, 255] + [128] * (256 * 3 - 18)


def _background(rng, size):
    height, width = size
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    angle, period = rng.uniform(0, np.pi), rng.uniform(6, 20)
    stripes = np.sin((xx * np.cos(angle) + yy * np.sin(angle)) * 2 * np.pi / period)[..., None]
    base = rng.uniform(60, 200, 3)
    image = base + 35 * stripes * rng.uniform(-1, 1, 3) + rng.normal(0, 12, (height, width, 3))
    return image


def _shapemask(rng, size, centre, radius):
    """(H, W) bool mask of a random shape around ``centre`` (x, y) of about ``radius`` pixels."""
    height, width = size
    canvas = np.zeros((height, width), np.uint8)
    cx, cy = (int(round(v)) for v in centre)
    kind = int(rng.integers(3))
    if kind == 0:
        axes = (int(radius * rng.uniform(0.6, 1.0)), int(radius * rng.uniform(0.6, 1.0)))
        cv2.ellipse(canvas, (cx, cy), axes, float(rng.uniform(0, 180)), 0, 360, 1, -1)
    elif kind == 1:
        half = (radius * rng.uniform(0.5, 1.0), radius * rng.uniform(0.5, 1.0))
        cv2.rectangle(canvas, (int(cx - half[0]), int(cy - half[1])), (int(cx + half[0]), int(cy + half[1])), 1, -1)
    else:
        angles = rng.uniform(0, 2 * np.pi) + np.array([0, 2.1, 4.2])
        points = np.stack([cx + radius * np.cos(angles), cy + radius * np.sin(angles)], 1).astype(np.int32)
        cv2.fillPoly(canvas, [points], 1)
    return canvas.astype(bool)


def _scene(rng, size, n_objects):
    """(background, [(mask_fn(offset), colour)]): shapes that can be drawn at shifted positions."""
    height, width = size
    radius = min(height, width) / 6
    shapes = []
    for _ in range(n_objects):
        centre = (rng.uniform(radius, width - radius), rng.uniform(radius, height - radius))
        shapes.append((int(rng.integers(1 << 30)), centre, rng.uniform(0, 255, 3), rng.uniform(-2.5, 2.5, 2)))
    return _background(rng, size), shapes, radius


def _draw(background, shapes, radius, t, rng):
    """The frame at time ``t`` -> ((H, W, 3) uint8, [(H, W) bool per shape, later shapes in front])."""
    image, masks = background.copy(), []
    for seed, centre, colour, velocity in shapes:
        shifted = (centre[0] + velocity[0] * t, centre[1] + velocity[1] * t)
        mask = _shapemask(np.random.default_rng(seed), background.shape[:2], shifted, radius)
        image[mask] = colour + rng.normal(0, 6, (int(mask.sum()), 3))
        masks = [m & ~mask for m in masks] + [mask]
    return np.clip(image, 0, 255).astype(np.uint8), masks


def writecocoshapes(folder, n_images: int = 4, size: Tuple[int, int] = (96, 128), n_objects: int = 3,
                    seed: int = 0) -> Tuple[str, str]:
    """Write ``folder/images/*.jpg`` and ``folder/annotations.json`` (COCO RLE masks, one category 'shape').

    Args:
        folder: the output folder (created).
        n_images, n_objects: images, and shapes per image.
        size: (H, W) of the images.
        seed: the seed of everything drawn.
    Returns:
        (the JSON's path, the image folder).
    """
    rng = np.random.default_rng(seed)
    img_dir = os.path.join(os.fspath(folder), 'images')
    os.makedirs(img_dir, exist_ok=True)
    coco = dict(images=[], annotations=[], categories=[dict(id=1, name='shape', supercategory='shape')])
    for i in range(n_images):
        image, masks = _draw(*_scene(rng, size, n_objects), 0, rng)
        name = f'shapes_{i:03d}.jpg'
        Image.fromarray(image).save(os.path.join(img_dir, name), quality=95)
        coco['images'].append(dict(id=i + 1, file_name=name, height=size[0], width=size[1]))
        for mask in masks:
            if mask.any():
                ys, xs = np.nonzero(mask)
                x0, y0 = float(xs.min()), float(ys.min())
                bbox = [x0, y0, float(xs.max()) + 1 - x0, float(ys.max()) + 1 - y0]
                coco['annotations'].append(dict(id=len(coco['annotations']) + 1, image_id=i + 1, category_id=1,
                                                segmentation=frommask(mask), bbox=bbox, area=int(mask.sum()),
                                                iscrowd=0))
    ann_file = os.path.join(os.fspath(folder), 'annotations.json')
    with open(ann_file, 'w', encoding='utf-8') as file:
        json.dump(coco, file)
    return ann_file, img_dir


def writedavisshapes(folder, n_videos: int = 4, n_frames: int = 6, n_objects: int = 2,
                     size: Tuple[int, int] = (96, 128), seed: int = 0) -> str:
    """Write DAVIS-style videos of moving shapes: ``folder/JPEGImages/<video>/00000.jpg`` and
    ``folder/Annotations/<video>/00000.png`` (palette PNGs, pixel value = object id 1..n_objects).

    Args:
        folder: the output folder (created).
        n_videos, n_frames, n_objects: videos, frames per video and shapes per video.
        size: (H, W) of the frames.
        seed: the seed of everything drawn.
    Returns:
        ``folder`` (as a str).
    """
    rng, folder = np.random.default_rng(seed), os.fspath(folder)
    for v in range(n_videos):
        name = f'video{v:02d}'
        frames_dir, masks_dir = os.path.join(folder, 'JPEGImages', name), os.path.join(folder, 'Annotations', name)
        os.makedirs(frames_dir, exist_ok=True)
        os.makedirs(masks_dir, exist_ok=True)
        scene = _scene(rng, size, n_objects)
        for t in range(n_frames):
            image, masks = _draw(*scene, t, rng)
            label = np.zeros(size, np.uint8)
            for obj_id, mask in enumerate(masks, start=1):
                label[mask] = obj_id
            Image.fromarray(image).save(os.path.join(frames_dir, f'{t:05d}.jpg'), quality=95)
            png = Image.fromarray(label, mode='P')
            png.putpalette(_PALETTE)
            png.save(os.path.join(masks_dir, f'{t:05d}.png'))
    return folder
