"""Stage 1 for image folders: scan, split, decode once, cache, report.

Writes ``prepared/<split>.image.npy`` (uint8, N x H x W x C, memory-mapped),
``prepared/<split>.label.npy`` and ``prepared/manifest.json``. The manifest is
written last, so its presence marks a complete cache; a second run with the
same files and settings reuses the arrays.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any

import numpy as np

from launchml import console
from launchml.data.images import (
    IMAGE_EXTENSIONS,
    ImageFolderConfig,
    bad_files_message,
    class_counts,
    decode_files,
    load_image,
    scan_folder,
)
from launchml.data.schema import Column, Prepared, Schema, load_prepared
from launchml.errors import ConfigError, DataError
from launchml.runs import (
    RunDir,
    create_npy,
    finish_npy,
    read_json,
    save_npy,
    write_json,
)

MANIFEST_VERSION = 1


def stratified_split(
    labels: list[str], frac: float, rng: np.random.Generator
) -> tuple[list[int], list[int]]:
    """Split row indices into (keep, take) with ``frac`` of every class in ``take``.

    Not scikit-learn's StratifiedShuffleSplit, for behaviour: it refuses a class
    with one member and may hold out no row of a small class, where this keeps
    every class in train and puts at least one row of each class of two or more
    in ``take``; and one Generator draws all of a run's splits from its seed.
    """
    if frac <= 0:
        return list(range(len(labels))), []
    by_class: dict[str, list[int]] = {}
    for i, label in enumerate(labels):
        by_class.setdefault(label, []).append(i)
    keep: list[int] = []
    take: list[int] = []
    for name in sorted(by_class):
        idx = rng.permutation(by_class[name]).tolist()
        k = int(round(len(idx) * frac))
        k = min(max(k, 1 if len(idx) > 1 else 0), len(idx) - 1)
        take += idx[:k]
        keep += idx[k:]
    return sorted(keep), sorted(take)


def _scan_all(cfg: ImageFolderConfig, seed: int) -> tuple[dict[str, tuple[list, list]], list, list]:
    files, labels, ignored = scan_folder(cfg.train, "train")
    classes = sorted(set(labels))
    if len(classes) < 2:
        raise DataError(
            f"data.train: folder '{cfg.train}' has one class ('{classes[0]}'); classification "
            "needs at least two. Fix: add a sub-folder per class (e.g. 'normal' beside "
            f"'{classes[0]}')."
        )
    rng = np.random.default_rng(seed)
    splits: dict[str, tuple[list, list]] = {}
    for key in ("test", "validation"):
        folder = getattr(cfg, key)
        if folder is not None:
            f2, l2, ign2 = scan_folder(folder, key)
            unknown = sorted(set(l2) - set(classes))
            if unknown:
                raise DataError(
                    f"data.{key}: folder '{folder}' has classes {unknown} that data.train "
                    f"('{cfg.train}') lacks; train has {classes}. Fix: rename or remove them."
                )
            splits[key] = (f2, l2)
            ignored += ign2
        else:
            frac = cfg.test_split if key == "test" else cfg.validation_split
            keep, take = stratified_split(labels, frac, rng)
            splits[key] = ([files[i] for i in take], [labels[i] for i in take])
            files, labels = [files[i] for i in keep], [labels[i] for i in keep]
    splits["train"] = (files, labels)
    return splits, classes, ignored


def _fingerprint(cfg: ImageFolderConfig, seed: int, splits: dict[str, tuple[list, list]]) -> str:
    h = hashlib.sha256()
    h.update(json.dumps({"cfg": cfg.model_dump(mode="json"), "seed": seed}).encode())
    for name in sorted(splits):
        for path in splits[name][0]:
            try:
                st = os.stat(path)
                h.update(f"{name}\0{path}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
            except OSError as e:  # a symlink loop, a dangling link: decoding reports it
                h.update(f"{name}\0{path}\0{e.errno}\n".encode())
    return h.hexdigest()


def _task(cfg: ImageFolderConfig, classes: list[str]) -> str:
    mode = cfg.class_mode
    if mode == "auto":
        mode = "binary" if len(classes) == 2 else "categorical"
    if mode == "binary" and len(classes) != 2:
        raise ConfigError(
            f"data.class_mode: 'binary' needs exactly 2 classes; '{cfg.train}' has "
            f"{len(classes)} ({', '.join(classes)}). Fix: set data.class_mode: categorical."
        )
    return "binary" if mode == "binary" else "multiclass"


def prepare_image_folder(cfg: ImageFolderConfig, run: RunDir, seed: int) -> Prepared:
    splits, classes, ignored = _scan_all(cfg, seed)
    h, w = cfg.target_size
    c = 1 if cfg.color_mode == "grayscale" else 3
    state = {**cfg.state(), "channels": c}
    schema = Schema(
        columns=[Column("image", "image", [h, w, c], "uint8"),
                 Column("label", "label", [], "int64")],
        target="label",
        task=_task(cfg, classes),
        labels=classes,
    )
    fingerprint = _fingerprint(cfg, seed, splits)
    out = run.prepared
    manifest_path = out / "manifest.json"
    if manifest_path.exists():
        manifest = read_json(manifest_path)
        if manifest.get("fingerprint") == fingerprint:
            console.info(f"prepare: reusing decoded arrays in {out}")
            return load_prepared(run)

    manifest_path.unlink(missing_ok=True)  # arrays change below: the old manifest is void
    index = {name: i for i, name in enumerate(classes)}
    manifest: dict[str, Any] = {
        "version": MANIFEST_VERSION,
        "fingerprint": fingerprint,
        "schema": schema.to_dict(),
        "preprocessing": {"image": state},
        "splits": {},
        "skipped": [],
        "ignored_files": ignored,
        "leakage": {},
    }
    digests: dict[str, list[str]] = {}
    unreadable: list[dict[str, str]] = []  # on_bad_file: error: the bad files of every split
    for name in ("train", "validation", "test"):
        files, labels = splits[name]
        arr = create_npy(out / f"{name}.image.npy", (len(files), h, w, c), np.uint8)
        dig, skipped = decode_files(files, state, arr, "skip")
        if skipped and cfg.on_bad_file == "error":
            unreadable += skipped  # reported below, with the other splits' bad files, in one error
            _discard(arr)
            continue
        if skipped:
            bad = {s["file"] for s in skipped}
            good = [i for i, f in enumerate(files) if f not in bad]
            kept = np.array(arr[good])
            _discard(arr)
            arr = create_npy(out / f"{name}.image.npy", (len(good), h, w, c), np.uint8)
            arr[:] = kept
            files = [files[i] for i in good]
            labels = [labels[i] for i in good]
            dig = [dig[i] for i in good]
            manifest["skipped"] += [{**s, "split": name} for s in skipped]
        finish_npy(out / f"{name}.image.npy", arr)
        save_npy(out / f"{name}.label.npy", np.array([index[x] for x in labels], dtype=np.int64))
        digests[name] = dig
        manifest["splits"][name] = {
            "count": len(files),
            "features": ["image"],
            "mmap": ["image"],  # decoded pixels stay on disk; epochs gather batches
            "files": files,
            "class_counts": class_counts(labels, classes),
        }
    if unreadable:
        raise DataError(bad_files_message(unreadable))
    empty = [c for c, n in manifest["splits"]["train"]["class_counts"].items() if n == 0]
    if empty:
        raise DataError(
            f"data.train: class(es) {empty} have no training images left after "
            f"{len(manifest['skipped'])} unreadable files were skipped (on_bad_file: skip). "
            "Fix: replace the bad files (listed with on_bad_file: error) or remove the class."
        )
    _report(manifest, digests, classes, ignored)
    write_json(manifest_path, manifest)
    return load_prepared(run)


def _discard(arr: np.memmap) -> None:
    """Drop an array made by ``create_npy`` that will not be finished, and its file."""
    name = arr.filename
    del arr
    if name:
        os.unlink(name)


def _report(manifest: dict[str, Any], digests: dict, classes: list[str], ignored: list) -> None:
    for name, info in manifest["splits"].items():
        if info["count"]:
            counts = ", ".join(f"{k}={v}" for k, v in info["class_counts"].items())
            console.info(f"prepare: {name}: {info['count']} images ({counts})")
    train_counts = manifest["splits"]["train"]["class_counts"]
    if min(train_counts.values()) * 3 < max(train_counts.values()):
        console.warn(f"classes are imbalanced in train: {train_counts}")
    if manifest["skipped"]:
        listed = "; ".join(s["file"] for s in manifest["skipped"][:5])
        console.warn(
            f"skipped {len(manifest['skipped'])} unreadable files (on_bad_file: skip), "
            f"listed in prepared/manifest.json: {listed}"
        )
    loose = [f for f in ignored if f.lower().endswith(IMAGE_EXTENSIONS)]
    other = [f for f in ignored if f not in loose]
    if loose:  # beside the class folders: in no class
        console.warn(f"ignored {len(loose)} images outside any class sub-folder, e.g. "
                     f"'{loose[0]}': an image is used only inside a class sub-folder "
                     "(<folder>/<class>/image.png). Fix: move each into its class's folder "
                     "(all are listed in prepared/manifest.json).")
    if other:
        console.info(f"prepare: ignored {len(other)} files that are not images (not "
                     f"{', '.join(e[1:] for e in IMAGE_EXTENSIONS)}), e.g. {other[0]}")
    train_files = manifest["splits"]["train"]["files"]
    train = {d: f for d, f in zip(digests["train"], train_files, strict=True)}
    for other in ("validation", "test"):
        pairs = [
            {"train": train[d], other: f}
            for d, f in zip(digests[other], manifest["splits"][other]["files"], strict=True)
            if d and d in train
        ]
        if pairs:
            manifest["leakage"][other] = pairs
            console.warn(
                f"leakage: {len(pairs)} images in {other} are exact duplicates of train images, "
                f"e.g. '{pairs[0][other]}' = '{pairs[0]['train']}'. Their {other} scores are "
                "optimistic; remove the duplicates (all pairs are in prepared/manifest.json)."
            )


def decode_images(sources: list[Any], state: dict[str, Any],
                  names: list[Any] | None = None) -> np.ndarray:
    """Image sources (paths, bytes, PIL images, arrays) -> N x H x W x C uint8 with an
    image column's fitted state (serving side); errors name each input by ``names``."""
    names = names if names is not None else [None] * len(sources)
    return np.stack([load_image(s, state, name=None if n is None else str(n))
                     for s, n in zip(sources, names, strict=True)])


__all__ = ["decode_images", "prepare_image_folder", "stratified_split"]
