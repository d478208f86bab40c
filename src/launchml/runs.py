"""Run-directory layout and atomic file IO.

A run is a folder a person can open (see DESIGN.md). Every write goes to a
temporary file in the same folder and is renamed into place, so a killed run
never leaves a half-written file behind.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np


@contextmanager
def atomic_path(path: str | os.PathLike[str], suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it over ``path`` on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp" + suffix, dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        # mkstemp makes the file 0600; give it the mode open() would (0666 less the umask),
        # so a package copied to another user (a container, a server) stays readable
        os.chmod(tmp_path, 0o666 & ~current_umask())
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


_UMASK_LOCK = threading.Lock()


def current_umask() -> int:
    """The process umask, read without changing it where the OS allows.

    Linux reports it in /proc/self/status; elsewhere it is set and restored at
    once (under a lock, so two launchml threads never race on it).
    """
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    with _UMASK_LOCK:
        mask = os.umask(0o077)  # the strictest mask for the instant it is read
        os.umask(mask)
    return mask


def write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: str | os.PathLike[str], text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike[str], obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def read_json(path: str | os.PathLike[str]) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def append_jsonl(path: str | os.PathLike[str], obj: Any) -> None:
    """Append one JSON line and flush it to disk (events survive a kill)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(obj, default=_json_default) + "\n")
        f.flush()
        os.fsync(f.fileno())


def read_jsonl(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    path = Path(path)
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def create_npy(path: str | os.PathLike[str], shape: tuple[int, ...], dtype: Any) -> np.memmap:
    """Create a memory-mapped .npy file to fill in place (call ``finish_npy`` after); its
    temporary name is unique (process and a random part), so two writers never share it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp.npy",
                               dir=path.parent)
    os.close(fd)
    return np.lib.format.open_memmap(tmp, mode="w+", dtype=dtype, shape=shape)


def finish_npy(path: str | os.PathLike[str], array: np.memmap) -> None:
    """Flush a memmap made by ``create_npy`` and rename it into place."""
    path = Path(path)
    array.flush()
    tmp = array.filename
    del array
    os.chmod(tmp, 0o666 & ~current_umask())
    os.replace(tmp, path)


def is_temp_file(name: str) -> bool:
    """A temporary file of launchml's atomic writes ('.<name>.<random>.tmp[.suffix]')."""
    return name.startswith(".") and (".tmp." in name or name.endswith(".tmp"))


def remove_orphan_temp_files(root: str | os.PathLike[str]) -> list[Path]:
    """Remove the temporary files a killed run left in ``root`` (call it holding the
    run's lock: no other writer is in the folder then)."""
    removed = []
    for dirpath, _dirnames, filenames in os.walk(root):
        for name in filenames:
            if is_temp_file(name):
                path = Path(dirpath) / name
                try:
                    path.unlink()
                    removed.append(path)
                except OSError:
                    pass
    return removed


class RunLock:
    """An exclusive lock on a run folder, held while a run writes it: a second run of the
    same name refuses, naming the holder's PID. The lock file sits beside the folder
    (``.<name>.lock``: an --overwrite may delete the folder); the OS releases it when
    the holder exits, even killed."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self.path = self.root.parent / f".{self.root.name}.lock"
        self._fd: int | None = None

    def acquire(self) -> RunLock:
        import fcntl

        from launchml.errors import RunError

        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise RunError(f"run '{self.root}' is in use by another launchml process (PID "
                           f"{holder}). Fix: wait for it to finish, or give this run another "
                           "name.") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            os.close(self._fd)  # closing releases the flock
            self._fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()


def save_npy(path: str | os.PathLike[str], array: np.ndarray) -> None:
    with atomic_path(path, suffix=".npy") as tmp:
        np.save(tmp, array)


def load_npy(path: str | os.PathLike[str], mmap: bool = True) -> np.ndarray:
    return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot write {type(obj).__name__} as JSON")


@dataclass(frozen=True)
class RunDir:
    """The paths of one run directory (``<output_dir>/<name>``)."""

    root: Path

    @property
    def config(self) -> Path:
        return self.root / "config.yaml"

    @property
    def prepared(self) -> Path:
        return self.root / "prepared"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def events(self) -> Path:
        return self.root / "events.jsonl"

    @property
    def model(self) -> Path:
        return self.root / "model"

    @property
    def variants(self) -> Path:
        return self.root / "variants"

    @property
    def evaluation(self) -> Path:
        return self.root / "evaluation"

    @property
    def explanations(self) -> Path:
        return self.root / "explanations"

    def mkdir(self) -> RunDir:
        self.root.mkdir(parents=True, exist_ok=True)
        return self
