"""``Predictor``: one way to score inputs, used by Python, the CLI and the server alike.

Inputs are decoded with ``launchml.data.load_rows`` and the package's fitted
preprocessing state — the same code and state ``prepare`` used in training.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from PIL import Image

from launchml.data import load_rows
from launchml.data.images import IMAGE_EXTENSIONS
from launchml.deploy.package import Package, load_package
from launchml.errors import ConfigError, InputError, PackageError

Engine = Literal["auto", "torch", "onnx", "lightgbm"]
TABLE_CHUNK = 4096  # rows scored at a time for tables


def expand_paths(items: Iterable[str | Path]) -> list[str]:
    """Files stay; folders become their image files (recursive, sorted)."""
    out: list[str] = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            found = sorted(str(f) for f in p.rglob("*") if f.suffix.lower() in IMAGE_EXTENSIONS
                           and not f.name.startswith("."))  # macOS '._x.png' and the like
            if not found:
                raise InputError(f"folder '{p}' holds no images ({', '.join(IMAGE_EXTENSIONS)})")
            out += found
        elif p.exists():
            out.append(str(p))
        else:
            raise InputError(f"'{p}' does not exist. Fix: pass image files or a folder of them.")
    return out


class Predictor:
    def __init__(self, package: Package, *, engine: Engine = "auto", batch_size: int = 64) -> None:
        self.package = package
        self.task = package.task
        self.batch_size = batch_size
        if engine not in ("auto", "torch", "onnx", "lightgbm"):
            raise ConfigError(f"engine must be 'auto', 'torch', 'onnx' or 'lightgbm'; "
                              f"got {engine!r}")
        files = package.meta["files"]
        self.kind = package.kind
        self._table = None
        if self.kind == "table":  # an ensemble of members; 'onnx' serves the neural one by ONNX
            from launchml.models.table_families import Ensemble

            engine = "onnx" if engine == "onnx" else "torch"
            model = _members(package.meta["model"])
            weights = files.get("weights")  # None in a variant package (variants/onnx, int8)
            neural = any(m["family"] == "mlp" for m in model["members"])
            if engine == "torch" and neural and package.onnx_path and not (
                    weights and (package.path / weights).exists()):
                engine = "onnx"  # an ONNX-only variant package
            self._table = Ensemble(package.path, model, self.task, package.preprocessing, engine)
        elif engine == "auto":
            engine = "torch" if (package.path / "weights.safetensors").exists() else "onnx"
        self.engine = engine
        if self._table is not None:
            pass
        elif engine == "onnx":
            if package.onnx_path is None:
                raise PackageError(f"'{package.path}' has no model.onnx. Fix: run the optimize "
                                   "stage (launchml run) or use engine='torch'.")
            import onnxruntime as ort

            self._session = ort.InferenceSession(str(package.onnx_path),
                                                 providers=["CPUExecutionProvider"])
        else:
            self._model = package.build_torch_model()

    @classmethod
    def load(cls, path: str | Path, *, engine: Engine = "auto") -> Predictor:
        return cls(load_package(path), engine=engine)

    @property
    def labels(self) -> list[str]:
        return self.task.labels

    def exportable(self, arrays: dict[str, np.ndarray]) -> tuple[torch.nn.Module, dict]:
        """The torch module to export to ONNX and its inputs for ``arrays`` (torch engine)."""
        if self._table is None:
            return self._model, arrays
        from launchml.models.table_families import TorchMember

        member = next(m for m in self._table.members if isinstance(m, TorchMember))
        return member.net, member.inputs(arrays)

    def logits(self, arrays: dict[str, np.ndarray]) -> np.ndarray:
        """Raw model outputs for prepared arrays (``image``: N x H x W x C uint8)."""
        if self._table is not None:
            return self._table.predict_raw(arrays)
        n = len(next(iter(arrays.values())))
        outs = []
        for s in range(0, n, self.batch_size):
            batch = {k: np.ascontiguousarray(v[s:s + self.batch_size]) for k, v in arrays.items()}
            if self.engine == "onnx":
                from launchml.models.table_families import onnx_run

                outs.append(onnx_run(self._session, batch))  # each input in its graph dtype
            else:
                with torch.inference_mode():
                    t = {k: torch.from_numpy(v.astype(np.float32)) for k, v in batch.items()}
                    outs.append(self._model(**t).float().numpy())
        return np.concatenate(outs) if outs else np.zeros((0, self.task.num_outputs))

    def predict(self, inputs: Any, names: list[str] | None = None) -> list[dict[str, Any]]:
        """Label and class probabilities for each input.

        ``inputs``: a path (file or folder), a PIL image, an image array (H, W[, C]),
        a batch array (N, H, W, C), raw bytes, or a list of any of these.
        """
        return list(self.iter_predict(inputs, names))

    def iter_predict(self, inputs: Any, names: list[str] | None = None
                     ) -> Iterator[dict[str, Any]]:
        """Like ``predict``, one batch at a time: memory stays bounded for large folders.

        ``names`` replaces the ``input`` field (and names the input in errors).
        For a table model, ``inputs`` is a table file, a DataFrame, a record (dict)
        or a list of records, and ``input`` is the row number.
        """
        if self.kind == "table":
            yield from self._iter_table(inputs)
            return
        sources, found = self._normalize(inputs)
        if names is None:
            names = found
        elif len(names) != len(sources):
            raise InputError(f"{len(names)} names for {len(sources)} inputs")
        for s in range(0, len(sources), self.batch_size):
            chunk = slice(s, s + self.batch_size)
            arrays = load_rows(sources[chunk], self.package.preprocessing, names[chunk])
            rows = self.task.decode(self.logits(arrays), self.package.threshold)
            for name, row in zip(names[s:s + self.batch_size], rows, strict=True):
                yield {"input": name, **row}

    def _iter_table(self, inputs: Any) -> Iterator[dict[str, Any]]:
        start = 0  # row numbers run on across chunks
        for chunk, rows in self._table_chunks(inputs):
            for i, row in enumerate(rows, start=start):
                yield {"input": i, **row}
            start += len(chunk)

    def _table_chunks(self, inputs: Any) -> Iterator[tuple[Any, list[dict[str, Any]]]]:
        """(rows, their predictions) ``TABLE_CHUNK`` rows at a time.

        A table file is read in chunks too (``iter_table``), as the training table
        was read, so a file of any size is scored in bounded memory.
        """
        import pandas as pd

        from launchml.data.table_adapter import load_table_rows
        from launchml.data.tables import iter_table

        if isinstance(inputs, str | Path):  # read as the training table was read
            data_cfg = self.package.meta["provenance"].get("config", {}).get("data", {})
            chunks = iter_table(inputs, chunk_rows=TABLE_CHUNK,
                                delimiter=data_cfg.get("delimiter"),
                                encoding=data_cfg.get("encoding"))
        else:
            if isinstance(inputs, pd.DataFrame):
                df = inputs
            else:
                records = [inputs] if isinstance(inputs, dict) else list(inputs)
                inputs_ = [c.name for c in self.package.schema.inputs]
                if len(inputs_) == 1 and all(isinstance(r, str) for r in records):
                    records = [{inputs_[0]: r} for r in records]  # e.g. texts for a text model
                if not all(isinstance(r, dict) for r in records):
                    raise InputError("a table model takes records ({column: value} objects), "
                                     "a DataFrame or a table file" + (
                                         f", or plain values of its one column '{inputs_[0]}'"
                                         if len(inputs_) == 1 else ""))
                df = pd.DataFrame.from_records(records)
            chunks = (df.iloc[s:s + TABLE_CHUNK] for s in range(0, len(df), TABLE_CHUNK))
        # relative image paths in a table file are relative to that file's folder
        base = Path(inputs).parent if isinstance(inputs, str | Path) else None
        for chunk in chunks:
            arrays = load_table_rows(chunk, self.package.preprocessing, base_dir=base)
            yield chunk, self.task.decode(self.logits(arrays), self.package.threshold)

    def _normalize(self, inputs: Any) -> tuple[list[Any], list[Any]]:
        if isinstance(inputs, np.ndarray) and inputs.ndim == 4:
            return list(inputs), list(range(len(inputs)))
        if isinstance(inputs, str | Path | bytes | Image.Image | np.ndarray):
            inputs = [inputs]
        sources: list[Any] = []
        names: list[Any] = []
        for i, item in enumerate(inputs):
            if isinstance(item, str | Path):
                files = expand_paths([item])
                sources += files
                names += files
            else:
                sources.append(item)
                names.append(i)
        return sources, names


def _members(model: dict[str, Any]) -> dict[str, Any]:
    """Table packages from before ensembles held one LightGBM model."""
    if "members" in model:
        return model
    return {**model, "members": [{"family": "lightgbm", "weight": 1.0}]}


def load(path: str | Path, *, engine: Engine = "auto") -> Predictor:
    """Load a model package (or a run directory) for prediction."""
    return Predictor.load(path, engine=engine)
