"""Small real and generated image folders for the quickstart, tests and benchmarks.

- ``write_digits_folder``: scikit-learn's bundled handwritten digits (1,797
  8x8 images, 10 classes) as PNG files, one sub-folder per digit.
- ``write_shapes_folder``: a generated two-class JPEG folder shaped like the
  article's example (150x150 colour JPEGs of warm 'circles' and cool 'squares' on
  noisy backgrounds), for tests and the seed CNN benchmark.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw


def write_digits_folder(root: str | Path, test_fraction: float = 0.2, seed: int = 0) -> Path:
    """Write digits as ``root/train/<digit>/*.png`` and ``root/test/<digit>/*.png``."""
    from sklearn.datasets import load_digits

    root = Path(root)
    digits = load_digits()
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(digits.target))
    n_test = int(round(len(order) * test_fraction))
    for rank, i in enumerate(order):
        split = "test" if rank < n_test else "train"
        folder = root / split / str(digits.target[i])
        folder.mkdir(parents=True, exist_ok=True)
        pixels = (digits.images[i] * (255.0 / 16.0)).round().astype(np.uint8)
        Image.fromarray(pixels, mode="L").save(folder / f"digit_{i:04d}.png")
    return root


def _shape_image(kind: str, size: int, rng: np.random.Generator) -> Image.Image:
    """A noisy grey background with one warm circle or one cool square on it.

    Shape and hue both carry the class, so the article's CNN learns it within two
    epochs and benchmark accuracies compare something real.
    """
    background = int(rng.integers(40, 216))
    noise = rng.normal(0, 20, size=(size, size, 3))
    arr = np.clip(background + noise, 0, 255).astype(np.uint8)
    img = Image.fromarray(arr)
    draw = ImageDraw.Draw(img)
    r = int(rng.integers(size // 6, size // 3))
    cx, cy = (int(v) for v in rng.integers(r, size - r, size=2))
    jitter = rng.integers(-30, 31, size=3)
    base = np.array([220, 90, 60]) if kind == "circles" else np.array([60, 110, 220])
    color = tuple(int(v) for v in np.clip(base + jitter, 0, 255))
    box = (cx - r, cy - r, cx + r, cy + r)
    if kind == "circles":
        draw.ellipse(box, fill=color)
    else:
        draw.rectangle(box, fill=color)
    return img


def write_shapes_folder(
    root: str | Path,
    n_train: int = 200,
    n_test: int = 50,
    size: int = 150,
    seed: int = 0,
) -> Path:
    """Write ``root/{train,test}/{circles,squares}/*.jpg`` (n per class and split)."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    for split, n in (("train", n_train), ("test", n_test)):
        for kind in ("circles", "squares"):
            folder = root / split / kind
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                _shape_image(kind, size, rng).save(folder / f"{kind}_{i:05d}.jpg", quality=90)
    return root
