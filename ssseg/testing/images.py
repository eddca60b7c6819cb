"""Deterministic synthetic images for tests and benchmarks (no data files needed)."""
import numpy as np


def syntheticimage(height: int, width: int, seed: int = 0) -> np.ndarray:
    """An RGB image with smooth gradients, discs and rectangles (structure for the encoder).

    Args:
        height, width: the image's size in pixels.
        seed: the seed of the discs, rectangles and noise.
    Returns:
        (height, width, 3) uint8 RGB array.
    """
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    image = np.stack([xx * 255.0 / width, yy * 255.0 / height, (xx + yy) * 127.0 / (height + width)], axis=-1)
    for _ in range(6):
        cy, cx, r = rng.integers(0, height), rng.integers(0, width), rng.integers(10, max(11, min(height, width) // 4))
        image[(yy - cy) ** 2 + (xx - cx) ** 2 < r ** 2] = rng.integers(0, 256, 3)
        y0, x0 = rng.integers(0, height - 10), rng.integers(0, width - 10)
        image[y0:y0 + rng.integers(5, height // 3), x0:x0 + rng.integers(5, width // 3)] = rng.integers(0, 256, 3)
    image += rng.normal(0, 4, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)
