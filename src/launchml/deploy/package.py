"""The model package: the one artifact that leaves training.

A folder (or the same files in one .zip) holding ``package.json`` (format
version, task, input schema, output spec, fitted preprocessing state, metrics,
provenance), ``weights.safetensors``
and, after the optimize stage, ``model.onnx``. Loading never unpickles: JSON,
safetensors and ONNX only. The format is versioned; older packages are
upgraded on read by the functions in ``UPGRADES``.
"""

from __future__ import annotations

import atexit
import datetime as dt
import importlib.metadata
import shutil
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from launchml.data.schema import Schema
from launchml.errors import PackageError
from launchml.runs import atomic_path, read_json, write_json
from launchml.tasks import Task, create_task

FORMAT = "launchml-package"
FORMAT_VERSION = 1
WEIGHTS = "weights.safetensors"
ONNX = "model.onnx"
# version -> function that turns a package.json dict of that version into the next one
UPGRADES: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {}


def versions() -> dict[str, str]:
    out = {}
    for name in ("launchml", "torch", "timm", "onnxruntime", "numpy"):
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


@dataclass
class Package:
    path: Path
    meta: dict[str, Any]

    @property
    def schema(self) -> Schema:
        return Schema.from_dict(self.meta["schema"])

    @property
    def task(self) -> Task:
        return create_task(self.meta["task"]["name"], self.meta["task"]["labels"])

    @property
    def preprocessing(self) -> dict[str, Any]:
        return self.meta["preprocessing"]

    @property
    def kind(self) -> str:
        """The data adapter that reads this package's inputs (image_folder, table)."""
        return self.meta.get("data_kind", "image_folder")

    @property
    def threshold(self) -> float | None:
        return self.meta["task"].get("threshold")

    @property
    def onnx_path(self) -> Path | None:
        name = self.meta["files"].get("onnx")
        return self.path / name if name and (self.path / name).exists() else None

    def build_torch_model(self) -> torch.nn.Module:
        from launchml.models import create_model

        weights = self.path / WEIGHTS
        if not weights.exists():
            raise PackageError(f"'{weights}' is missing: the package has no PyTorch weights. "
                               "Fix: use engine='onnx', or re-run training.")
        model = create_model(self.meta["model"], self.schema, self.task, self.preprocessing,
                             for_loading=True)
        model.load_state_dict(load_file(weights))
        return model.eval()


def save_package(
    path: str | Path,
    *,
    model: torch.nn.Module | None,
    schema: Schema,
    model_spec: dict[str, Any],
    preprocessing: dict[str, Any],
    metrics: dict[str, Any] | None = None,
    provenance: dict[str, Any] | None = None,
    onnx_file: str | Path | None = None,
    threshold: float | None = None,
    kind: str = "image_folder",
    extra_files: dict[str, str] | None = None,
) -> Package:
    """Write a package folder; ``package.json`` is written last, so it marks a complete one."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    files: dict[str, str | None] = {"weights": None, "onnx": None, **(extra_files or {})}
    if model is not None:
        state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
        with atomic_path(path / WEIGHTS) as tmp:
            save_file(state, str(tmp))
        files["weights"] = WEIGHTS
    if onnx_file is not None:
        if Path(onnx_file).resolve() != (path / ONNX).resolve():
            with atomic_path(path / ONNX) as tmp:
                shutil.copyfile(onnx_file, tmp)
        files["onnx"] = ONNX
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "data_kind": kind,
        "task": {"name": schema.task, "labels": schema.labels, "threshold": threshold},
        "schema": schema.to_dict(),
        "inputs": [
            {"name": c.name, "type": c.type, "shape": c.shape,
             **({"onnx": {"dtype": "float32", "shape": ["N", *c.shape]}}
                if c.type == "image" and c.shape else {})}
            for c in schema.inputs
        ],
        "preprocessing": preprocessing,
        "model": model_spec,
        "files": files,
        "metrics": metrics or {},
        "provenance": {
            **(provenance or {}),
            "versions": versions(),
            "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        },
    }
    write_json(path / "package.json", meta)
    return Package(path, meta)


def update_package(pkg: Package, **changes: Any) -> Package:
    """Merge top-level keys into package.json (atomic rewrite)."""
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(pkg.meta.get(key), dict):
            pkg.meta[key].update(value)
        else:
            pkg.meta[key] = value
    write_json(pkg.path / "package.json", pkg.meta)
    return pkg


def export_zip(package_dir: str | Path, out: str | Path) -> Path:
    """Write a package folder as one .zip file (the files at the archive's top level)."""
    pkg = load_package(package_dir)
    out = Path(out)
    with atomic_path(out, suffix=".zip") as tmp, zipfile.ZipFile(tmp, "w") as zf:
        for name in ["package.json", *(f for f in pkg.meta["files"].values() if f)]:
            zf.write(pkg.path / name, arcname=name)
    return out


def _unzip(path: Path) -> Path:
    """Extract a .zip package into a private temporary folder, refusing unsafe member names."""
    target = Path(tempfile.mkdtemp(prefix="launchml-package-"))
    atexit.register(shutil.rmtree, target, ignore_errors=True)
    try:
        with zipfile.ZipFile(path) as zf:
            for member in zf.namelist():
                if Path(member).is_absolute() or ".." in Path(member).parts or "/" in member:
                    raise PackageError(f"'{path}': archive member '{member}' is not a plain "
                                       "file name; a launchml package zip holds files only.")
            zf.extractall(target)
    except zipfile.BadZipFile as e:
        raise PackageError(f"'{path}' is not a valid zip file ({e}).") from None
    return target


def load_package(path: str | Path) -> Package:
    """Load a package folder, a run folder (its model/) or a package .zip."""
    path = Path(path)
    if path.is_file() and path.suffix == ".zip":
        path = _unzip(path)
    if path.is_dir() and (path / "model" / "package.json").exists():
        path = path / "model"  # a run directory was given
    meta_path = path / "package.json"
    if not meta_path.exists():
        raise PackageError(
            f"'{path}' is not a launchml model package (no package.json). Fix: pass the "
            "model folder of a run, e.g. runs/<name>/model."
        )
    try:
        meta = read_json(meta_path)
    except ValueError as e:
        raise PackageError(f"'{meta_path}' is not valid JSON ({e}); the package is damaged. "
                           "Fix: re-run the deploy stage (launchml run --stages deploy).") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise PackageError(f"'{meta_path}' is not a launchml package "
                           f"(format={meta.get('format') if isinstance(meta, dict) else meta!r})")
    version = meta.get("format_version", 0)
    if version > FORMAT_VERSION:
        raise PackageError(
            f"'{path}' has package format {version}; this launchml reads up to "
            f"{FORMAT_VERSION}. Fix: pip install -U launchml"
        )
    while version < FORMAT_VERSION:
        if version not in UPGRADES:
            raise PackageError(f"'{meta_path}' has package format {version!r}, which this "
                               "launchml cannot upgrade. Fix: re-run training to rebuild it.")
        meta = UPGRADES[version](meta)
        version = meta["format_version"]
    return Package(path, meta)
