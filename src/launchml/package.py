"""The model package: the one artifact that leaves training.

A folder (or the same files in one .zip) holding ``package.json`` (format
version, task, input schema, output spec, fitted preprocessing state, the model
members, metrics, provenance) and the members' files: ``weights.safetensors`` for
a neural member, a LightGBM text model, linear arrays, and after the optimize
stage ``model.onnx``. Every kind of input is packaged the same way: the
``model`` section lists members (``{"family", "weight", ...}``), one or several.
Loading never unpickles: JSON, safetensors, LightGBM text and ONNX only. The
format is versioned; older packages are upgraded on read by ``UPGRADES``.
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
from typing import TYPE_CHECKING, Any

from launchml.data.schema import Schema
from launchml.errors import ConfigError, PackageError
from launchml.runs import atomic_path, read_json, write_json
from launchml.state import check_package

if TYPE_CHECKING:
    from launchml.tasks import Task

FORMAT = "launchml-package"
FORMAT_VERSION = 2
WEIGHTS = "weights.safetensors"
ONNX = "model.onnx"
# version -> function that turns a package.json dict of that version into the next one
UPGRADES: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {}


def _v1_to_v2(meta: dict[str, Any]) -> dict[str, Any]:
    """Format 1 image packages held one network (``model: {name, pretrained, dropout}``)
    and table packages from before ensembles one LightGBM model: both become members."""
    model = dict(meta["model"])
    if "members" not in model:
        if meta.get("data_kind", "image_folder") == "table":  # its model section also
            # held the image network keys (pretrained, dropout), unused by LightGBM
            model = {"name": model["name"], "members": [{"family": "lightgbm", "weight": 1.0}]}
        else:
            model = {"name": model["name"], "members": [{
                "family": model["name"], "weight": 1.0, "column": "image",
                "files": {"weights": meta["files"].get("weights") or WEIGHTS},
                "network": model}]}
    pre = dict(meta["preprocessing"])
    for name, state in pre.items():
        if state.get("type") == "image" and "channels" not in state:
            pre[name] = {**state, "channels": 1 if state["color_mode"] == "grayscale" else 3}
    out = {**meta, "format_version": 2, "model": model, "preprocessing": pre,
           "source": meta.get("data_kind", "image_folder")}
    out.pop("data_kind", None)
    return out


UPGRADES[1] = _v1_to_v2


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
        from launchml.tasks import create_task

        return create_task(self.meta["task"]["name"], self.meta["task"]["labels"])

    @property
    def preprocessing(self) -> dict[str, Any]:
        return self.meta["preprocessing"]

    @property
    def source(self) -> str:
        """The kind of source it was trained from (image_folder, table): where a
        prediction file is read as training read it; nothing else depends on it."""
        return self.meta.get("source", "table")

    @property
    def kind(self) -> str:
        """Deprecated name of ``source``."""
        return self.source

    @property
    def threshold(self) -> float | None:
        return self.meta["task"].get("threshold")

    @property
    def onnx_path(self) -> Path | None:
        name = self.meta["files"].get("onnx")
        return self.path / name if name and (self.path / name).exists() else None



def save_package(
    path: str | Path,
    *,
    schema: Schema,
    model_spec: dict[str, Any],
    preprocessing: dict[str, Any],
    metrics: dict[str, Any] | None = None,
    provenance: dict[str, Any] | None = None,
    onnx_file: str | Path | None = None,
    threshold: float | None = None,
    source: str = "table",
    files: dict[str, str] | None = None,
    privacy: dict[str, Any] | None = None,
) -> Package:
    """Write ``package.json`` for the member files already in ``path`` (``files``: role ->
    file name) and copy ``onnx_file`` in; package.json is written last, so it marks a
    complete package."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    files = {"weights": None, "onnx": None, **(files or {})}
    if onnx_file is not None:
        if Path(onnx_file).resolve() != (path / ONNX).resolve():
            with atomic_path(path / ONNX) as tmp:
                shutil.copyfile(onnx_file, tmp)
        files["onnx"] = ONNX
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "source": source,
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
        # optional: how the model was trained privately ({"dp": ...}, {"federated": ...})
        **({"privacy": privacy} if privacy else {}),
    }
    check_package(meta, str(path / "package.json"))  # a bug here never ships a package
    write_json(path / "package.json", meta)
    return Package(path, meta)


def update_package(pkg: Package, **changes: Any) -> Package:
    """Merge top-level keys into package.json (atomic rewrite)."""
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(pkg.meta.get(key), dict):
            pkg.meta[key].update(value)
        else:
            pkg.meta[key] = value
    check_package(pkg.meta, str(pkg.path / "package.json"))
    write_json(pkg.path / "package.json", pkg.meta)
    return pkg


def export_zip(package_dir: str | Path, out: str | Path) -> Path:
    """Write a package folder as one compressed .zip file (the files at the archive's top
    level); ``out`` must end in .zip, the one archive ``load_package`` reads."""
    out = Path(out)
    if out.suffix != ".zip":
        stem = out.name.split(".")[0] or "model"
        raise ConfigError(f"'{out}': a package is exported as a .zip file, the archive that "
                          f"predict, serve and launchml.load read. Fix: name it '{stem}.zip'.")
    pkg = load_package(package_dir)
    with atomic_path(out, suffix=".zip") as tmp, \
            zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
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
        archive, path = path, _unzip(path)
        try:
            return load_package(path)
        except PackageError as e:  # name the zip the user gave, not a temporary folder
            raise PackageError(str(e).replace(str(path), f"{archive}:")) from None
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
    check_package(meta, str(meta_path))
    return Package(path, meta)
