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
import json
import os
import shutil
import signal
import stat
import struct
import tempfile
import threading
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

MB = 1 << 20
# What a package may hold (a hostile or damaged one is refused before it costs memory/disk)
MAX_META_BYTES = 64 * MB  # package.json (fitted vocabularies and categories included)
MAX_ZIP_FILES = 64  # files in a package .zip
MAX_ZIP_BYTES = 16 * 1024 * MB  # all files of a .zip, uncompressed
# one zip member's uncompressed size: at most this plus 100 x its compressed size (weights
# and ONNX compress ~1.1x, JSON ~10x; a zip bomb ~1000x)
ZIP_SLACK_BYTES, MAX_ZIP_RATIO = 64 * MB, 100
TEMP_PREFIX = "launchml-package-"  # + "<pid>-": the process that extracted it


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
    preprocessing, origins = portable_states(preprocessing)
    if origins:  # where a pretrained text model came from: a record, never opened
        provenance = {**(provenance or {}), "pretrained": origins}
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


_EXTRACTED: list[Path] = []  # this process's extracted packages, removed at exit
_LOCK = threading.Lock()


def _remove_extracted() -> None:
    with _LOCK:
        while _EXTRACTED:
            shutil.rmtree(_EXTRACTED.pop(), ignore_errors=True)


def _on_signal(signum: int, frame: Any) -> None:
    """SIGTERM / SIGINT: remove the extracted packages, then do what was done before."""
    _remove_extracted()
    previous = _PREVIOUS.get(signum, signal.SIG_DFL)
    if callable(previous):
        previous(signum, frame)
    elif previous != signal.SIG_IGN:
        signal.signal(signum, signal.SIG_DFL)
        signal.raise_signal(signum)


_PREVIOUS: dict[int, Any] = {}


def _clean_on_exit() -> None:
    """Remove extracted packages at exit, also on SIGTERM / SIGINT (uvicorn re-raises
    them after its shutdown, and a signal's default action skips atexit)."""
    if _PREVIOUS or threading.current_thread() is not threading.main_thread():
        return
    atexit.register(_remove_extracted)
    for sig in (signal.SIGTERM, signal.SIGINT):
        _PREVIOUS[sig] = signal.getsignal(sig)
        signal.signal(sig, _on_signal)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_extractions(folder: str | None = None) -> list[Path]:
    """Remove extracted packages (ours: this user's) whose process is gone, e.g. killed
    with SIGKILL; returns them."""
    removed = []
    root = Path(folder or tempfile.gettempdir())
    for d in root.glob(f"{TEMP_PREFIX}*-*"):
        pid = d.name[len(TEMP_PREFIX):].split("-", 1)[0]
        try:
            owned = d.lstat().st_uid == os.getuid() and stat.S_ISDIR(d.lstat().st_mode)
        except OSError:
            continue
        if pid.isdigit() and owned and int(pid) != os.getpid() and not _alive(int(pid)):
            shutil.rmtree(d, ignore_errors=True)
            removed.append(d)
    return removed


def _check_zip(path: Path, zf: zipfile.ZipFile) -> int:
    """Refuse unsafe or oversized members before anything is written; the total size."""
    infos = zf.infolist()
    if len(infos) > MAX_ZIP_FILES:
        raise PackageError(f"'{path}' holds {len(infos)} files; a package holds at most "
                           f"{MAX_ZIP_FILES}. It is not a launchml package zip.")
    names = [i.filename for i in infos]
    if len(set(names)) != len(names):
        raise PackageError(f"'{path}' holds the same file name twice; it is damaged.")
    total = 0
    for info in infos:
        name = info.filename
        mode = info.external_attr >> 16
        if Path(name).is_absolute() or ".." in Path(name).parts or "/" in name or \
                "\\" in name or info.is_dir() or stat.S_IFMT(mode) not in (0, stat.S_IFREG):
            raise PackageError(f"'{path}': archive member '{name[:200]}' is not a plain file "
                               "name; a launchml package zip holds regular files only.")
        if info.file_size > ZIP_SLACK_BYTES + MAX_ZIP_RATIO * info.compress_size:
            raise PackageError(
                f"'{path}': '{name}' would unpack to {info.file_size / MB:.0f} MiB from "
                f"{info.compress_size / MB:.1f} MiB (a zip bomb?); a package file compresses "
                f"at most {MAX_ZIP_RATIO}x. It is refused.")
        total += info.file_size
    if total > MAX_ZIP_BYTES:
        raise PackageError(f"'{path}' would unpack to {total / MB:.0f} MiB; a package zip "
                           f"unpacks to at most {MAX_ZIP_BYTES / MB:.0f} MiB.")
    return total


def _unzip(path: Path) -> Path:
    """Extract a .zip package into a private temporary folder (removed at exit, also on
    SIGTERM/SIGINT; one left by a killed process is removed at the next start), after
    checking every member: plain regular files, bounded count and sizes."""
    remove_stale_extractions()
    try:
        with zipfile.ZipFile(path) as zf:
            total = _check_zip(path, zf)
            free = shutil.disk_usage(tempfile.gettempdir()).free
            if total > free:
                raise PackageError(f"'{path}' unpacks to {total / MB:.0f} MiB but the temp "
                                   f"folder has {free / MB:.0f} MiB free. Fix: free space or "
                                   "set TMPDIR, or unzip it yourself and pass the folder.")
            _clean_on_exit()
            target = Path(tempfile.mkdtemp(prefix=f"{TEMP_PREFIX}{os.getpid()}-"))
            with _LOCK:
                _EXTRACTED.append(target)
            for info in zf.infolist():  # zipfile stops at each member's declared size
                with zf.open(info) as src, open(target / info.filename, "xb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError) as e:
        raise PackageError(f"'{path}' is not a valid zip file ({e}).") from None
    except NotImplementedError as e:  # an unsupported compression method
        raise PackageError(f"'{path}' cannot be unpacked ({e}).") from None
    return target


def _regular(path: Path, what: str, max_bytes: int | None = None) -> None:
    """Refuse a symlink, a device, a FIFO or a folder where a package file should be."""
    try:
        st = path.lstat()
    except OSError:
        return  # a missing file is reported where it is needed
    if stat.S_ISLNK(st.st_mode):
        raise PackageError(f"'{path}' ({what}) is a symbolic link; a package's files must "
                           "be regular files inside it. Fix: copy the real file in.")
    if not stat.S_ISREG(st.st_mode):
        raise PackageError(f"'{path}' ({what}) is not a regular file.")
    if max_bytes is not None and st.st_size > max_bytes:
        raise PackageError(f"'{path}' ({what}) is {st.st_size / MB:.0f} MiB; at most "
                           f"{max_bytes / MB:.0f} MiB is read.")


def _local_name(name: str) -> bool:
    """A pretrained model named by a path of this machine (absolute, ~, ./, ..), not by a
    Hugging Face Hub id or a plain name inside the package."""
    return Path(name).expanduser().is_absolute() or name.startswith((".", "~")) or \
        ".." in Path(name).parts or "\\" in name


def portable_states(states: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """The column states a package stores, and {column: local folder} of the pretrained
    text models read from a folder of this machine. Such a folder is not part of the
    package (its fine-tuned weights and ``hf_config`` are), so the package does not name
    it: ``pretrained`` is kept only for a Hub id."""
    out, origins = {}, {}
    for col, st in states.items():
        name = st.get("pretrained") if isinstance(st, dict) else None
        if st.get("type") == "text" and isinstance(name, str) and _local_name(name):
            st, origins[col] = {**st, "pretrained": None}, name
        out[col] = st
    return out, origins


def _named_files(meta: dict[str, Any]) -> list[tuple[str, Any]]:
    """(field, file name) of every file package.json names."""
    out = [(f"files.{k}", v) for k, v in (meta.get("files") or {}).items()]
    for i, member in enumerate((meta.get("model") or {}).get("members") or []):
        if isinstance(member, dict):
            files = member.get("files") if isinstance(member.get("files"), dict) else {}
            out += [(f"model.members[{i}].files.{k}", v) for k, v in files.items()]
            if "onnx" in member:
                out.append((f"model.members[{i}].onnx", member["onnx"]))
    return out


def _check_pretrained(path: Path, meta: dict[str, Any]) -> None:
    """A text column's ``pretrained`` names no path outside the package: a Hub id, or a
    plain relative name of a real folder inside it (no symlink)."""
    root = path.resolve()
    for col, st in (meta.get("preprocessing") or {}).items():
        name = st.get("pretrained") if isinstance(st, dict) else None
        if not isinstance(name, str):
            continue
        field = f"preprocessing.{col}.pretrained"
        inside = (root / name).resolve().is_relative_to(root) if name else False
        if not name or _local_name(name) or not inside:
            raise PackageError(f"'{path / 'package.json'}': {field} is {name[:200]!r}; a "
                               "package names no file or folder outside itself (a pretrained "
                               "text model is kept in its weights and hf_config). The package "
                               "is damaged or hostile; it is refused. Fix: re-run training "
                               "with this launchml to rebuild it.")
        entry = path / name
        if entry.is_symlink() or (entry.exists() and not entry.is_dir()):
            raise PackageError(f"'{entry}' ({field}) is a symbolic link or not a folder; a "
                               "package's files must be regular files and folders inside "
                               "it. The package is refused.")


def check_files(path: Path, meta: dict[str, Any]) -> None:
    """Every file ``meta`` names is a plain relative name inside ``path``, and a regular
    file (no symlink); safetensors and ONNX files are checked to be what they claim."""
    _check_pretrained(path, meta)
    root = path.resolve()
    for field, name in _named_files(meta):
        if name is None:
            continue
        plain = isinstance(name, str) and name and not Path(name).is_absolute() and \
            ".." not in Path(name).parts and "\\" not in name
        if plain:
            _regular(path / name, field)  # a symlink is named as such
        if not plain or not (root / name).resolve().is_relative_to(root):
            raise PackageError(f"'{path / 'package.json'}': {field} is {str(name)[:200]!r}; "
                               "a package names its files by plain relative names inside "
                               "it. The package is damaged or hostile; it is refused.")
        if (path / name).is_file():
            if name.endswith(".safetensors"):
                _check_safetensors(path / name, field)
            elif name.endswith(".onnx"):
                _check_onnx(path / name, field)


_DTYPE_BYTES = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1, "I16": 2, "U16": 2,
                "F16": 2, "BF16": 2, "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8,
                "F64": 8}


def _check_safetensors(path: Path, field: str) -> None:
    """The safetensors header: a bounded JSON table of tensors that fit the file."""
    size = path.stat().st_size

    def bad(why: str) -> PackageError:
        return PackageError(f"'{path}' ({field}) is not a valid safetensors file ({why}); "
                            "the package is damaged. Fix: re-run training to rebuild it.")

    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise bad("too short")
        n = struct.unpack("<Q", head)[0]
        if n > min(100 * MB, size - 8):
            raise bad("its header length is out of range")
        try:
            table = json.loads(f.read(n))
        except (ValueError, RecursionError):
            raise bad("its header is not JSON") from None
    if not isinstance(table, dict):
        raise bad("its header is not a table")
    data = size - 8 - n
    for key, t in table.items():
        if key == "__metadata__":
            continue
        try:
            count = 1
            for d in t["shape"]:
                if not isinstance(d, int) or d < 0:
                    raise ValueError
                count *= d
            begin, end = t["data_offsets"]
            ok = 0 <= begin <= end <= data and end - begin == count * _DTYPE_BYTES[t["dtype"]]
        except (KeyError, TypeError, ValueError):
            ok = False
        if not ok:
            raise bad(f"tensor '{str(key)[:100]}' does not fit the file")


def _check_onnx(path: Path, field: str) -> None:
    """An ONNX file is a protobuf ModelProto: walk its top-level fields (cheap, no onnx
    import) and require a graph; text or random bytes fail at once."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        buf = f.read(4 * MB)  # the graph field starts early: this is enough to walk to it

        def varint(i: int) -> tuple[int, int]:
            value = shift = 0
            while True:
                if i >= len(buf) or shift > 63:
                    raise ValueError
                b = buf[i]
                value |= (b & 0x7F) << shift
                i += 1
                if not b & 0x80:
                    return value, i
                shift += 7

        i, seen = 0, set()
        try:
            while i < min(len(buf), size):
                key, i = varint(i)
                number, wire = key >> 3, key & 7
                if not 1 <= number <= 30:
                    raise ValueError
                if wire == 0:
                    _, i = varint(i)
                elif wire == 2:
                    length, i = varint(i)
                    if i + length > size:
                        raise ValueError
                    if number == 7:
                        seen.add("graph")
                    if i + length > len(buf):  # past what was read: the rest is trusted
                        break
                    i += length
                else:
                    raise ValueError
        except ValueError:
            seen = set()
    if "graph" not in seen:
        raise PackageError(f"'{path}' ({field}) is not an ONNX model; the package is "
                           "damaged. Fix: re-run the optimize stage (launchml run --stages "
                           "optimize,deploy).")


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
    if not meta_path.exists() and not meta_path.is_symlink():
        raise PackageError(
            f"'{path}' is not a launchml model package (no package.json). Fix: pass the "
            "model folder of a run, e.g. runs/<name>/model."
        )
    _regular(meta_path, "package.json", MAX_META_BYTES)
    try:
        meta = read_json(meta_path)
    except (ValueError, RecursionError) as e:
        raise PackageError(f"'{meta_path}' is not valid JSON ({str(e)[:200]}); the package is "
                           "damaged. Fix: re-run the deploy stage (launchml run --stages "
                           "deploy).") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        found = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
        raise PackageError(f"'{meta_path}' is not a launchml package "
                           f"(format={str(found)[:100]!r})")
    version = meta.get("format_version", 0)
    if not isinstance(version, int) or isinstance(version, bool) or version < 0:
        raise PackageError(f"'{meta_path}': format_version is {str(version)[:50]!r}; it must "
                           f"be a whole number (this launchml writes {FORMAT_VERSION}). The "
                           "package is damaged. Fix: re-run training to rebuild it.")
    if version > FORMAT_VERSION:
        raise PackageError(
            f"'{path}' has package format {version}; this launchml reads up to "
            f"{FORMAT_VERSION}. Fix: pip install -U launchml"
        )
    while version < FORMAT_VERSION:
        if version not in UPGRADES:
            raise PackageError(f"'{meta_path}' has package format {version!r}, which this "
                               "launchml cannot upgrade. Fix: re-run training to rebuild it.")
        try:
            meta = UPGRADES[version](meta)
        except (KeyError, TypeError, AttributeError) as e:
            raise PackageError(f"'{meta_path}' (format {version}) lacks or mangles the field "
                               f"{str(e)[:100]}; it cannot be upgraded. Fix: re-run training "
                               "to rebuild it.") from None
        version = meta["format_version"]
    check_package(meta, str(meta_path))
    check_members(meta, str(meta_path))
    check_files(path, meta)
    return Package(path, meta)


def check_members(meta: dict[str, Any], where: str) -> None:
    """Each member's family (and image network) is one this launchml knows."""
    from launchml.models import OTHER_FAMILIES, is_network

    for i, member in enumerate(meta["model"]["members"]):
        family = member.family if hasattr(member, "family") else member["family"]
        if family not in OTHER_FAMILIES[1:] and not is_network(family):
            raise PackageError(f"'{where}': model.members[{i}].family is {family[:100]!r}, not "
                               "a model family this launchml knows (lightgbm, linear, mlp, "
                               "seed_cnn, timm:<name>). Fix: pip install -U launchml, or "
                               "re-run training.")
        network = member.get("network") if isinstance(member, dict) else None
        name = network.get("name") if isinstance(network, dict) else None
        if network is not None and (not isinstance(name, str) or not is_network(name)):
            raise PackageError(f"'{where}': model.members[{i}].network.name is "
                               f"{str(name)[:100]!r}, not an image network this launchml "
                               "knows (seed_cnn, timm:<name>). Fix: re-run training.")
