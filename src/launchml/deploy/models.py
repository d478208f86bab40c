"""The models a server serves, each behind its own micro-batcher, and alias following.

A model is given as a package path or a registry reference (``cancer@champion``). A
reference with an alias is followed: every ``poll_s`` seconds (or on ``refresh``) the
alias is resolved; when it names other files, the new version is loaded in a worker
thread, smoke-tested (it must answer the last inputs the serving version answered,
or a generated input when there has been no traffic yet), and swapped in with one
assignment. Requests already holding the old version finish on it; its batcher then
closes. A version that fails to load or to answer is rejected (logged, counted in
``launchml_model_swaps_total{result="rejected"}``) and the old one keeps serving;
the same files are not tried again until the alias moves on.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from launchml.deploy.batching import MicroBatcher
from launchml.deploy.limits import ServerLimits, decode_limits
from launchml.deploy.predictor import Predictor
from launchml.errors import ConfigError, InputError

log = logging.getLogger("uvicorn.error")  # the server's log, with uvicorn's own lines


@dataclass(frozen=True)
class ServeOptions:
    """How models are served (picklable: each worker process builds its app from it)."""

    engine: str = "auto"  # auto: ONNX Runtime where the package has model.onnx
    max_batch_size: int = 32  # 1: no batching
    max_wait_ms: float = 5.0
    poll_s: float = 2.0  # how often registry aliases are checked
    registry_url: str | None = None
    cors_origins: tuple[str, ...] = ()
    limits: ServerLimits = field(default_factory=ServerLimits)
    api_keys: Any = None  # auth.ApiKeys; None or empty: no keys needed


@dataclass(frozen=True)
class Source:
    """What to serve under ``name``: a package ``path`` or a registry ``ref``."""

    name: str
    ref: str | None = None
    path: str | None = None

    @property
    def follows(self) -> bool:
        return self.ref is not None

    @classmethod
    def parse(cls, text: str, *, registry: bool) -> Source:
        """``name@alias``, ``name:3``, ``name`` (registry) or a package path; an optional
        ``route=`` prefix names the route (``fast=runs/a/model``)."""
        from launchml.registry.store import looks_like_ref, parse_ref

        route, _, spec = text.rpartition("=")
        if registry or (looks_like_ref(spec) and not Path(spec).exists()):
            ref = parse_ref(spec)
            return cls(name=route or ref.name, ref=str(ref))
        path = Path(spec)
        if not path.exists():
            raise ConfigError(f"--models {text!r}: no such package, and --registry is not "
                              "set. Fix: a package path, or --registry with name@alias.")
        name = route or (path.resolve().parent.name if path.resolve().name == "model"
                         else path.stem)
        return cls(name=name, path=str(path))


def serve_engine(package_path: Path, engine: str) -> str:
    """The engine for ``--engine auto``: the optimize stage's picked variant when it is an
    ONNX one (int8 ...), else ONNX Runtime wherever a neural package has model.onnx (no
    PyTorch in the server process: a quarter of the memory, bench/serve_start.py), else
    the package's own choice."""
    if engine != "auto":
        return engine
    from launchml.package import load_package

    pkg = load_package(package_path)
    picked = pkg.meta.get("picked") or {}
    if picked.get("model") and picked.get("engine") == "onnx":
        return "auto"
    neural = any(m["family"] not in ("lightgbm", "lightgbm_extra", "linear")
                 for m in pkg.meta["model"]["members"])
    return "onnx" if neural and pkg.onnx_path is not None else "auto"


class Loaded:
    """One loaded version: its predictor and its batcher."""

    def __init__(self, name: str, predictor: Predictor, *, version: int | None, ref: str,
                 content_hash: str | None, options: ServeOptions, metrics: Any) -> None:
        self.name, self.predictor, self.version = name, predictor, version
        self.ref, self.content_hash = ref, content_hash
        self.images = predictor.image_column is not None
        self.image_state = predictor.package.preprocessing.get(predictor.image_column or "")
        self.limits = options.limits
        self.last_good: list[Any] = []  # the last inputs answered: the next smoke test
        on_batch = (lambda n, s: metrics.batch(name, n, s)) if metrics is not None else None
        self.batcher = MicroBatcher(self.score, max_batch_size=options.max_batch_size,
                                    max_wait_ms=options.max_wait_ms, on_batch=on_batch)

    def score(self, items: list[Any]) -> list[dict[str, Any]]:
        """Score inputs (records, or (bytes, name) for images): one row each."""
        with decode_limits(self.limits, self.image_state):
            if self.images:
                rows = self.predictor.predict_rows([b for b, _ in items], [n for _, n in items])
            else:
                rows = self.predictor.predict_rows(items)
        self.last_good = items[:4]
        return rows

    def smoke_input(self) -> list[Any]:
        if self.images:
            import io

            from PIL import Image

            size = (self.image_state or {}).get("target_size") or [32, 32]
            buf = io.BytesIO()
            Image.new("RGB", (int(size[1]), int(size[0]))).save(buf, format="PNG")
            return [(buf.getvalue(), "smoke.png")]
        return [{c.name: None for c in self.predictor.package.schema.inputs}]

    def info(self) -> dict[str, Any]:
        meta = self.predictor.package.meta
        return {"name": self.name, "ref": self.ref, "version": self.version,
                "content_hash": self.content_hash, "engine": self.predictor.engines,
                "task": meta["task"], "inputs": meta["inputs"],
                "model": meta["model"]["name"], "metrics": {
                    k: v for k, v in meta.get("metrics", {}).items() if k != "leaderboard"}}


class Slot:
    """A served name: its current version (swapped atomically) and what was refused."""

    def __init__(self, source: Source) -> None:
        self.source = source
        self.current: Loaded | None = None
        self.rejected: dict[str, str] = {}  # content hash -> why
        self.failing: str | None = None  # why the alias could not be checked, while it lasts
        self.lock = asyncio.Lock()


class ModelManager:
    def __init__(self, sources: list[Source], options: ServeOptions, metrics: Any = None
                 ) -> None:
        names = [s.name for s in sources]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ConfigError(f"two models are served as {dupes}; name them: "
                              "--models fast=cancer@champion,slow=cancer@challenger")
        self.options, self.metrics = options, metrics
        self.slots = {s.name: Slot(s) for s in sources}
        self._registry: Any = None
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="launchml-load")
        self._follower: asyncio.Task | None = None
        self.stopping = False
        self.generation = 0  # counts installed versions: what the OpenAPI page is made from

    # -- loading ---------------------------------------------------------------------

    def _resolve(self, source: Source) -> tuple[Path, int | None, str, str | None]:
        """(files, version, ref, content hash) the source names now (in a thread)."""
        if not source.follows:
            return Path(source.path or ""), None, str(source.path), None
        if self._registry is None:
            from launchml.registry import Registry

            self._registry = Registry(self.options.registry_url)
        info = self._registry.get(source.ref)
        return info.path, info.version, info.ref, info.content_hash

    def _load(self, source: Source, found: tuple[Path, int | None, str, str | None]
              ) -> Loaded:
        path, version, ref, digest = found
        if digest is not None:
            self._registry.verify(self._registry.get(ref))
        predictor = Predictor.load(path, engine=serve_engine(path, self.options.engine))
        return Loaded(source.name, predictor, version=version, ref=ref, content_hash=digest,
                      options=self.options, metrics=self.metrics)

    def load_all(self) -> None:
        """Load every model now (before the server listens)."""
        for slot in self.slots.values():
            loaded = self._load(slot.source, self._resolve(slot.source))
            self._smoke(loaded, loaded.smoke_input(), synthetic=True)
            self._install(slot, loaded)

    def _smoke(self, loaded: Loaded, inputs: list[Any], *, synthetic: bool) -> None:
        """Raise unless ``loaded`` answers ``inputs`` (a generated input may be refused as
        bad input: the model still answered)."""
        try:
            rows = loaded.score(inputs)
        except InputError:
            if synthetic:
                return
            raise
        if len(rows) != len(inputs):
            raise RuntimeError(f"answered {len(rows)} of {len(inputs)} smoke-test inputs")

    def _install(self, slot: Slot, loaded: Loaded) -> None:
        slot.current = loaded  # one assignment: requests see the old or the new version
        self.generation += 1
        if self.metrics is not None:
            self.metrics.set_loaded(slot.source.name, str(loaded.version or ""), loaded.ref)

    # -- following aliases -----------------------------------------------------------

    async def refresh(self, name: str) -> dict[str, Any]:
        """Check ``name``'s alias now; load, smoke-test and swap in a new version."""
        slot = self.slots[name]
        if not slot.source.follows:
            return {"model": name, "result": "fixed", "ref": slot.current.ref}
        loop = asyncio.get_running_loop()
        async with slot.lock:
            found = await loop.run_in_executor(self._pool, self._resolve, slot.source)
            old = slot.current
            digest = found[3]
            if old is not None and digest == old.content_hash:
                return {"model": name, "result": "unchanged", "version": old.version}
            if digest in slot.rejected:
                return {"model": name, "result": "rejected", "version": found[1],
                        "error": slot.rejected[digest]}
            try:
                new = await loop.run_in_executor(self._pool, self._load, slot.source, found)
                smoke = old.last_good if old is not None and old.last_good else None
                await loop.run_in_executor(self._pool, lambda: self._smoke(
                    new, smoke or new.smoke_input(), synthetic=smoke is None))
            except Exception as e:  # any failure to load or answer: the old one keeps serving
                why = f"{type(e).__name__}: {str(e)[:300]}"
                slot.rejected[digest] = why
                log.error("%s: version %s (%s) rejected, %s keeps serving: %s", name,
                          found[1], found[2], old.ref if old else "nothing", why)
                if self.metrics is not None:
                    self.metrics.swaps.labels(name, "rejected").inc()
                return {"model": name, "result": "rejected", "version": found[1],
                        "error": why}
            self._install(slot, new)
            log.info("%s: now serving %s (was %s)", name, new.ref, old.ref if old else None)
            if self.metrics is not None:
                self.metrics.swaps.labels(name, "swapped").inc()
            if old is not None:
                loop.create_task(old.batcher.close())  # after its queued inputs are answered
            return {"model": name, "result": "swapped", "version": new.version,
                    "previous": old.version if old else None}

    async def _follow(self) -> None:
        while not self.stopping:
            await asyncio.sleep(self.options.poll_s)
            for name, slot in self.slots.items():
                if slot.source.follows and not self.stopping:
                    await self._check(name)

    async def _check(self, name: str) -> None:
        """One poll of ``name``'s alias; a failure is logged when it starts or changes
        (not every poll_s for as long as it lasts) and its end is logged too."""
        slot = self.slots[name]
        try:
            await self.refresh(name)
        except Exception as e:  # the registry unreachable: keep serving
            if str(e) != slot.failing:
                log.warning("%s: could not check %s: %s", name, slot.source.ref, e)
            slot.failing = str(e)
            return
        if slot.failing is not None:
            log.info("%s: %s can be checked again", name, slot.source.ref)
            slot.failing = None

    def start(self) -> None:
        if any(s.source.follows for s in self.slots.values()) and self.options.poll_s > 0:
            self._follower = asyncio.get_running_loop().create_task(self._follow())

    async def stop(self) -> None:
        """Stop following; answer what is queued; close the batchers."""
        self.stopping = True
        if self._follower is not None:
            self._follower.cancel()
        for slot in self.slots.values():
            if slot.current is not None:
                await slot.current.batcher.close()
        self._pool.shutdown(wait=False)
        if self._registry is not None:
            self._registry.close()
