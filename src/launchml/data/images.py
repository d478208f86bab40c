"""Image folders: one sub-folder per class, Keras ``flow_from_directory`` semantics.

Classes are the sub-folder names in sorted order; every image is decoded and
resized once into a uint8 array (N, H, W, C) that epochs read instead of the
files. ``load_image`` is the one decode/resize function: ``prepare`` and the
predictor both call it with the same fitted state from ``package.json``.
"""

from __future__ import annotations

import hashlib
import io
import os
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
from PIL import Image, UnidentifiedImageError
from pydantic import Field, field_validator

from launchml.configbase import StrictModel
from launchml.errors import DataError, InputError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")
_RESAMPLE = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
}


# The most pixels an image may have, checked from its header before it is decoded, and
# what to say to raise it. Unset (None) for files given to prepare or predict, which
# only Pillow's own decompression-bomb check bounds; the server sets it per request
# (``pixel_limit``, deploy/limits.py), so an upload cannot make it decode a huge image.
_PIXEL_LIMIT: ContextVar[tuple[int, str] | None] = ContextVar("launchml_pixel_limit",
                                                              default=None)
MAX_TARGET_SIDE = 4096  # data.target_size: a larger side is refused (memory: N x H x W x C)


class ImageTooLargeError(InputError):
    """An image has more pixels than the decode limit (the server answers 413)."""


@contextmanager
def pixel_limit(max_pixels: int | None, fix: str = "") -> Iterator[None]:
    """Within this block (this thread or task), images over ``max_pixels`` are not decoded:
    a JPEG is decoded at 1/2, 1/4 or 1/8 scale when that fits (Pillow's ``draft``), any
    other image raises ImageTooLargeError naming its size, the limit and ``fix``."""
    token = _PIXEL_LIMIT.set(None if max_pixels is None else (int(max_pixels), fix))
    try:
        yield
    finally:
        _PIXEL_LIMIT.reset(token)


class ImageFolderConfig(StrictModel):
    """``data:`` for a folder of images with one sub-folder per class."""

    kind: ClassVar[str] = "image_folder"
    # model settings that cannot apply to this source: the combiner's (an image folder
    # is one image column, which the image networks train)
    unused_model_sections: ClassVar[tuple[str, ...]] = ("mlp",)

    train: str = Field(description="folder with one sub-folder per class")
    validation: str | None = Field(None, description="optional separate validation folder")
    test: str | None = Field(None, description="optional separate test folder")
    validation_split: float = Field(0.2, ge=0.0, lt=1.0, description="used when no validation")
    test_split: float = Field(0.0, ge=0.0, lt=1.0, description="used when no test folder")
    target_size: tuple[int, int] = Field((150, 150), description="[height, width] after resize")
    color_mode: Literal["rgb", "grayscale"] = "rgb"
    class_mode: Literal["auto", "binary", "categorical"] = Field(
        "auto", description="binary: one sigmoid output; categorical: softmax; auto: by count"
    )
    rescale: float = Field(1 / 255, gt=0.0, description="pixel values are multiplied by this")
    interpolation: Literal["nearest", "bilinear", "bicubic", "lanczos"] = Field(
        "nearest", description="resize filter; 'nearest' is the Keras default"
    )
    on_bad_file: Literal["error", "skip"] = "error"

    @field_validator("target_size")
    @classmethod
    def _positive(cls, v: tuple[int, int]) -> tuple[int, int]:
        if min(v) < 1:
            raise ValueError("both sides must be >= 1 pixel, e.g. [150, 150]")
        if max(v) > MAX_TARGET_SIDE:  # [100000, 100000] would mean terabytes of arrays
            raise ValueError(f"each side must be at most {MAX_TARGET_SIDE} pixels (got "
                             f"{list(v)}); a network input is usually 32 to 512, e.g. [150, 150]")
        return v

    def state(self) -> dict[str, Any]:
        """The fitted preprocessing state of the ``image`` column (saved in package.json)."""
        return {
            "type": "image",
            "target_size": list(self.target_size),
            "color_mode": self.color_mode,
            "interpolation": self.interpolation,
            "rescale": self.rescale,
        }


def channels(state: dict[str, Any]) -> int:
    return 1 if state["color_mode"] == "grayscale" else 3


def load_image(source: Any, state: dict[str, Any], name: str | None = None) -> np.ndarray:
    """Decode and resize one image to uint8 (H, W, C) with the given preprocessing state.

    ``source`` is a path, raw bytes, a PIL image or an array (H, W[, C]); ``name``
    is what error messages call it (default: the path, or '<bytes>').
    Raises InputError if it is not a readable image.
    """
    h, w = state["target_size"]
    mode = "L" if state["color_mode"] == "grayscale" else "RGB"
    if name is None:
        name = str(source) if isinstance(source, str | Path) else f"<{type(source).__name__}>"
    if isinstance(source, np.ndarray):
        arr = source
        if arr.dtype != np.uint8:
            if arr.size and float(np.nanmax(arr)) <= 1.0:
                arr = arr * 255.0
            arr = np.clip(arr, 0, 255).astype(np.uint8)
        if arr.ndim == 3 and arr.shape[2] == 1:
            arr = arr[:, :, 0]
        if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (3, 4)):
            raise InputError(
                f"array of shape {arr.shape} is not an image; expected (H, W), (H, W, 1), "
                "(H, W, 3) or (H, W, 4)"
            )
        img = Image.fromarray(arr)
    elif isinstance(source, Image.Image):
        img = source
    else:
        try:
            data = source if isinstance(source, bytes) else Path(source).read_bytes()
        except OSError as e:
            raise InputError(f"cannot read image file '{source}': {e.strerror or e}") from None
        img = _decode(data, name=name)
    try:
        img = _to_mode(img, mode)
        if img.size != (w, h):
            img = img.resize((w, h), _RESAMPLE[state["interpolation"]])
    except (ValueError, OSError) as e:
        raise InputError(f"'{name}' (mode {img.mode}) cannot be converted to {mode}: {e}") from None
    out = np.asarray(img, dtype=np.uint8)
    return out[:, :, None] if out.ndim == 2 else out


def _to_mode(img: Image.Image, mode: str) -> Image.Image:
    """Convert to 'RGB' or 'L'; 16-bit and float images are scaled to 0..255, not clipped."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(img)  # its own dtype (2 or 4 bytes a pixel), never a float64 copy
        top = float(arr.max()) if arr.size else 0.0
        wide = img.mode.startswith("I;16") or (img.mode == "I" and top > 255)  # 0..65535
        unit = img.mode == "F" and top <= 1.0  # 0..1
        out = np.empty(arr.shape, np.uint8)
        step = max(1, (1 << 22) // max(1, arr.shape[1]))  # float64 rows of ~32 MB at a time
        for r in range(0, arr.shape[0], step):
            block = arr[r:r + step].astype(np.float64)
            block = block / 257.0 if wide else block * 255.0 if unit else block
            out[r:r + step] = np.clip(block, 0, 255).round()
        img = Image.fromarray(out)
    if img.mode == mode:
        return img
    if img.mode in ("P", "LA", "PA") and mode == "RGB":
        return img.convert("RGBA").convert("RGB")
    return img.convert(mode)


def _decode(data: bytes, name: str) -> Image.Image:
    try:
        img = Image.open(io.BytesIO(data))  # reads the header only
        limit = _PIXEL_LIMIT.get()
        if limit is not None:
            _fit_limit(img, name, *limit)
        img.load()  # force the full decode: truncated files fail here, not later
        return img
    except ImageTooLargeError:
        raise
    except UnidentifiedImageError:
        raise InputError(f"'{name}' is not a readable image (not a format Pillow can "
                         f"decode; expected one of {', '.join(IMAGE_EXTENSIONS)})") from None
    except (Image.DecompressionBombError, OSError, SyntaxError, ValueError) as e:
        raise InputError(f"'{name}' is not a readable image ({type(e).__name__}: {e})") from None


def _fit_limit(img: Image.Image, name: str, max_pixels: int, fix: str) -> None:
    """Before decoding: a JPEG over ``max_pixels`` is set to decode at the least reduction
    (1/2, 1/4, 1/8) that fits; any other image over it raises ImageTooLargeError."""
    w, h = img.size
    if w * h <= max_pixels:
        return
    if img.format == "JPEG":
        for s in (2, 4, 8):
            if -(-w // s) * -(-h // s) <= max_pixels:
                img.draft(None, (max(1, w // s), max(1, h // s)))
                break
        if img.size[0] * img.size[1] <= max_pixels:
            return
    raise ImageTooLargeError(
        f"'{name}' is {w}x{h} pixels ({w * h / 1e6:.1f} million); at most "
        f"{max_pixels / 1e6:.1f} million are decoded. Fix: send a smaller image"
        + (f", or {fix}" if fix else "") + ".")


def scan_folder(root: str, key: str, where: str | None = None
                ) -> tuple[list[str], list[str], list[str]]:
    """List ``root/<class>/<image>`` in sorted order: (files, class names per file, ignored).

    ``where`` names the setting in error messages (default ``data.<key>``).
    """
    where = where or f"data.{key}"
    base = Path(root)
    if base.is_file():
        from launchml.data.tables import FORMATS

        table = base.suffix.lower() in FORMATS or base.suffix.lower() == ".json"
        raise DataError(
            f"{where}: '{root}' is a file, not a folder; an image folder has one sub-folder "
            "per class. " + (
                "It looks like a table: a table config needs data.target, the column to "
                "predict. Fix: add e.g. 'target: label' under data:, or point "
                f"{where} at an image folder." if table and where.startswith("data.") else
                f"Fix: point {where} at a folder with one sub-folder per class."))
    if not base.is_dir():
        raise DataError(
            f"{where}: folder '{root}' does not exist or is not a folder. "
            f"Fix: point {where} at a folder with one sub-folder per class."
        )
    classes = sorted(p.name for p in base.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        loose = [p.name for p in base.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS]
        raise DataError(
            f"{where}: folder '{root}' has no class sub-folders ({len(loose)} images lie "
            f"directly inside). Fix: put each class's images in its own sub-folder, "
            f"e.g. {root}/cats/*.jpg and {root}/dogs/*.jpg."
        )
    files: list[str] = []
    labels: list[str] = []
    # files beside the class folders belong to no class: listed, never silently dropped
    ignored: list[str] = sorted(str(p) for p in base.iterdir()
                                if p.is_file() and not p.name.startswith("."))
    for name in classes:
        found = 0
        for dirpath, dirnames, filenames in os.walk(base / name):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for fn in sorted(filenames):
                path = os.path.join(dirpath, fn)
                if fn.startswith("."):
                    continue
                if fn.lower().endswith(IMAGE_EXTENSIONS):
                    files.append(path)
                    labels.append(name)
                    found += 1
                else:
                    ignored.append(path)
        if found == 0:
            raise DataError(
                f"{where}: class folder '{base / name}' has no images "
                f"({', '.join(e[1:] for e in IMAGE_EXTENSIONS)}). "
                "Fix: add images to it or remove the folder."
            )
    return files, labels, ignored


def decode_workers() -> int:
    """Decode threads: the cores this process may use, at most 8."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        cores = os.cpu_count() or 1
    return max(1, min(8, cores))


def decode_files(
    files: list[str], state: dict[str, Any], out: np.ndarray, on_bad_file: str,
    workers: int | None = None,
) -> tuple[list[str], list[dict[str, str]]]:
    """Decode ``files`` into ``out`` (N, H, W, C) on ``workers`` threads (default
    ``decode_workers()``): Pillow releases the GIL while it decodes and resizes, and
    hashlib while it hashes. Row ``i`` is always file ``i``, so the array is byte for
    byte what a sequential decode writes (tested).

    Returns the sha1 of every file (empty for a skipped one) and the skipped files
    (``on_bad_file: skip``); with ``error``, one error names every bad file.
    """
    def one(i: int) -> tuple[int, str, str | None]:
        path = files[i]
        try:
            data = Path(path).read_bytes()
            digest = hashlib.sha1(data).hexdigest()
            out[i] = load_image(data, state, name=path)
            return i, digest, None
        except (InputError, OSError) as e:
            return i, "", str(e)

    digests = [""] * len(files)
    skipped: list[dict[str, str]] = []
    with ThreadPoolExecutor(max_workers=workers or decode_workers()) as pool:
        for i, digest, err in pool.map(one, range(len(files))):
            digests[i] = digest
            if err is not None:
                skipped.append({"file": files[i], "error": err})
    if skipped and on_bad_file == "error":
        raise DataError(bad_files_message(skipped))
    return digests, skipped


MAX_LISTED_BAD_FILES = 20
SKIP_FIX = "or set data.on_bad_file: skip to leave bad files out (they are listed)."


def bad_files_message(bad: list[dict[str, str]], skip: str = SKIP_FIX) -> str:
    """One message naming every bad file (the first ``MAX_LISTED_BAD_FILES``, then a count);
    ``skip`` ends the fix (how to leave them out; empty: no such way)."""
    skip = f", {skip}" if skip else "."
    if len(bad) == 1:
        return f"{bad[0]['error']}. Fix: delete or replace '{bad[0]['file']}'{skip}"
    shown = bad[:MAX_LISTED_BAD_FILES]
    lines = [f"{len(bad)} image files cannot be read:"]
    lines += [f"  - {b['error']}" if b["file"] in b["error"] else f"  - '{b['file']}': {b['error']}"
              for b in shown]
    if len(bad) > len(shown):
        lines.append(f"  ... and {len(bad) - len(shown)} more")
    lines.append(f"Fix: delete or replace these files{skip}")
    return "\n".join(lines)


def class_counts(labels: list[str] | np.ndarray, classes: list[str]) -> dict[str, int]:
    counts = Counter(labels.tolist() if isinstance(labels, np.ndarray) else labels)
    if isinstance(labels, np.ndarray):
        return {c: int(counts.get(i, 0)) for i, c in enumerate(classes)}
    return {c: int(counts.get(c, 0)) for c in classes}
