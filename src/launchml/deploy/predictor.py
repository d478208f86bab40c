"""``Predictor``: one way to score inputs, used by Python, the CLI and the server alike.

Inputs are decoded with the package's fitted preprocessing state and the same
code ``prepare`` used in training (``data.images.decode_images`` for image
sources, ``data.preprocess.transform_table`` for records and table files).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Literal

import numpy as np
from PIL import Image

from launchml.data.image_folder import decode_images
from launchml.data.images import IMAGE_EXTENSIONS
from launchml.errors import ConfigError, InputError, PackageError
from launchml.package import Package, load_package

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
    """Scores inputs with a package's members, whatever kind of data it was trained on.

    One path for every package: inputs -> per-column arrays (the fitted
    preprocessing of package.json) -> each member's raw outputs -> the ensemble
    -> the task's decoding. What differs between an image model and a table
    model is only how inputs are read: image sources for a package whose one
    input column is an image, records / DataFrames / table files otherwise.
    """

    def __init__(self, package: Package, *, engine: Engine = "auto", batch_size: int = 64) -> None:
        from launchml.models.families import Ensemble

        self.package = package
        self.task = package.task
        self.batch_size = batch_size
        if engine not in ("auto", "torch", "onnx", "lightgbm"):
            raise ConfigError(f"engine must be 'auto', 'torch', 'onnx' or 'lightgbm'; "
                              f"got {engine!r}")
        model = package.meta["model"]
        weights = package.meta["files"].get("weights")  # None in an ONNX variant package
        has_weights = bool(weights) and (package.path / weights).exists()
        # the variant the optimize stage picked (int8, pruned ...) serves by default, on the
        # engine it was measured on; engine='torch' / 'onnx' ask for the trained model
        picked = package.meta.get("picked") or {}
        picked = picked if engine == "auto" and picked.get("model") else None
        self.variant = picked["variant"] if picked else None
        if picked:
            engine, model = picked["engine"], picked["model"]
        self._members = model["members"]
        if engine in ("auto", "lightgbm"):
            engine = "onnx" if self.neural and not has_weights and package.onnx_path else "torch"
        if engine == "onnx" and self.neural and package.onnx_path is None:
            raise PackageError(f"'{package.path}' has no model.onnx. Fix: run the optimize "
                               "stage (launchml run) or use engine='torch'.")
        self.engine = engine
        self._model = Ensemble(package.path, model, self.task, package.preprocessing, engine)

    @property
    def neural(self) -> bool:
        """Whether a member is a neural network (served by PyTorch or ONNX Runtime)."""
        return any(m["family"] not in ("lightgbm", "lightgbm_extra", "linear")
                   for m in getattr(self, "_members", self.package.meta["model"]["members"]))

    @property
    def engines(self) -> str:
        """What serves the members, e.g. 'lightgbm+linear' or 'onnx'."""
        names = [self.engine if m["family"] not in ("lightgbm", "lightgbm_extra", "linear")
                 else m["family"] for m in self._members]
        return "+".join(dict.fromkeys(names))

    @property
    def image_column(self) -> str | None:
        """The input column when the model takes one image (an image-folder model)."""
        inputs = self.package.schema.inputs
        return inputs[0].name if len(inputs) == 1 and inputs[0].type == "image" else None

    @classmethod
    def load(cls, path: str | Path, *, engine: Engine = "auto") -> Predictor:
        """A package folder, run folder or .zip; or a registry reference (cancer@champion,
        cancer:3) in the project's registry (LAUNCHML_REGISTRY_URL)."""
        from launchml.registry.store import resolve_model

        return cls(load_package(resolve_model(path)), engine=engine)

    @property
    def labels(self) -> list[str]:
        return self.task.labels

    def exportable(self, arrays: dict[str, np.ndarray]) -> tuple[Any, dict]:
        """The neural member's torch module and its inputs for ``arrays`` (torch engine)."""
        member = next((m for m in self._model.members if hasattr(m, "net")), None)
        if member is None:
            raise PackageError(f"'{self.package.path}' has no neural member to export.")
        return member.net, member.inputs(arrays)

    def logits(self, arrays: dict[str, np.ndarray]) -> np.ndarray:
        """Raw model outputs for prepared arrays (one per column or column part)."""
        if not len(next(iter(arrays.values()), ())):
            return np.zeros((0, self.task.num_outputs))
        return self._model.predict_raw(arrays)

    def predict(self, inputs: Any, names: list[str] | None = None) -> list[Any]:
        """One answer per input, the same shape for every task: the label
        (classification), the value (regression) or the list of labels (multilabel).
        ``predict_proba`` gives the probabilities, ``predict_rows`` both with the inputs.

        An image model takes a path (file or folder), a PIL image, an image array
        (H, W[, C]), a batch array (N, H, W, C), raw bytes, or a list of these. Any
        model takes a table file, a DataFrame, a record (dict) or a list of records
        (and plain values for a model with one input column).
        """
        key = {"regression": "value", "multilabel": "labels"}.get(self.task.name, "label")
        return [row[key] for row in self.iter_predict(inputs, names)]

    def predict_proba(self, inputs: Any) -> Any:
        """A DataFrame of probabilities, one column per label, one row per input."""
        import pandas as pd

        if self.task.name == "regression":
            raise InputError("predict_proba: a regression model predicts values, not "
                             "probabilities. Fix: use predict().")
        parts = [self.task.probabilities(raw) for _, raw, _ in self._chunks(inputs, None)]
        probs = np.concatenate(parts) if parts else np.zeros((0, len(self.labels)))
        return pd.DataFrame(probs, columns=self.labels)

    def predict_rows(self, inputs: Any, names: list[str] | None = None
                     ) -> list[dict[str, Any]]:
        """``{"input", "label", "probabilities"}`` (``value`` for regression, ``labels``
        for multilabel) per input: what the CLI prints and the server returns."""
        return list(self.iter_predict(inputs, names))

    def leaderboard(self) -> Any:
        """The families ranked on validation when this package was trained (a DataFrame)."""
        import pandas as pd

        return pd.DataFrame(self.package.meta.get("metrics", {}).get("leaderboard", []))

    def iter_predict(self, inputs: Any, names: list[str] | None = None
                     ) -> Iterator[dict[str, Any]]:
        """Like ``predict_rows``, one chunk at a time: memory stays bounded.

        ``names`` replaces the ``input`` field (and names the input in errors); by
        default an image's path or position, or a table row's number.
        """
        start = 0  # row numbers run on across chunks
        for chunk, raw, chunk_names in self._chunks(inputs, names):
            rows = self.task.decode(raw, self.package.threshold)
            for i, row in enumerate(rows):
                yield {"input": chunk_names[i] if chunk_names else start + i, **row}
            start += len(chunk)

    def explain(self, inputs: Any, *, method: str = "auto", rows: slice | None = None,
                target: str | None = None, background: Any = None) -> Any:
        """Why the model, as served, gives its answer for each input: an ``Explanations``
        (per input: the method, its baseline, its cost, and the attributions: per
        column for tables, per token / character for text and sequences, a heat map for
        images). Same inputs as ``predict``; see ``launchml.explain.explain``."""
        from launchml.explain import explain

        return explain(self, inputs, method=method, rows=rows, target=target,
                       background=background)

    def iter_arrays(self, inputs: Any, names: list[Any] | None = None
                    ) -> Iterator[tuple[Any, dict[str, np.ndarray], list[Any] | None]]:
        """(inputs, their prepared arrays, their names) a chunk at a time: what ``predict``
        feeds the members, through the package's fitted preprocessing."""
        column = self.image_column
        if column is not None and _image_sources(inputs):
            sources, found = self._normalize(inputs)
            if names is None:
                names = found
            elif len(names) != len(sources):
                raise InputError(f"{len(names)} names for {len(sources)} inputs")
            state = self.package.preprocessing[column]
            for s in range(0, len(sources), self.batch_size):
                part = sources[s:s + self.batch_size]
                arrays = {column: decode_images(part, state, names[s:s + self.batch_size])}
                yield part, arrays, names[s:s + self.batch_size]
            return
        for chunk, arrays in self._table_arrays(inputs):
            yield chunk, arrays, None

    def _chunks(self, inputs: Any, names: list[Any] | None
                ) -> Iterator[tuple[Any, np.ndarray, list[Any] | None]]:
        """(inputs, their raw outputs, their names) a chunk at a time."""
        for part, arrays, part_names in self.iter_arrays(inputs, names):
            yield part, self.logits(arrays), part_names

    def table_chunks(self, inputs: Any) -> Iterator[tuple[Any, list[dict[str, Any]]]]:
        """(rows, their predictions) ``TABLE_CHUNK`` rows at a time.

        A table file is read in chunks too (``iter_table``), as the training table
        was read, so a file of any size is scored in bounded memory.
        """
        for chunk, raw in self._table_raw(inputs):
            yield chunk, self.task.decode(raw, self.package.threshold)

    def _table_raw(self, inputs: Any) -> Iterator[tuple[Any, np.ndarray]]:
        """(rows, their raw outputs) ``TABLE_CHUNK`` rows at a time."""
        for chunk, arrays in self._table_arrays(inputs):
            yield chunk, self.logits(arrays)

    def _table_arrays(self, inputs: Any) -> Iterator[tuple[Any, dict[str, np.ndarray]]]:
        """(rows, their prepared arrays) ``TABLE_CHUNK`` rows at a time."""
        import pandas as pd

        from launchml.data.preprocess import transform_table
        from launchml.data.tables import iter_table

        if isinstance(inputs, str | Path):  # read as the training table was read
            provenance = self.package.meta["provenance"]
            # how the training file was read (detected values included), else the config
            reader = provenance.get("reader") or provenance.get("config", {}).get("data", {})
            chunks = iter_table(inputs, chunk_rows=TABLE_CHUNK,
                                delimiter=reader.get("delimiter"),
                                encoding=reader.get("encoding"), decimal=reader.get("decimal"))
        else:
            if isinstance(inputs, pd.DataFrame):
                df = inputs
            else:
                records = [inputs] if isinstance(inputs, dict) else list(inputs)
                inputs_ = [c.name for c in self.package.schema.inputs]
                if len(inputs_) == 1 and all(isinstance(r, str) for r in records):
                    records = [{inputs_[0]: r} for r in records]  # e.g. texts for a text model
                if not all(isinstance(r, dict) for r in records):
                    raise InputError("this model takes records ({column: value} objects), "
                                     "a DataFrame or a table file" + (
                                         f", or plain values of its one column '{inputs_[0]}'"
                                         if len(inputs_) == 1 else ""))
                df = pd.DataFrame.from_records(records)
            chunks = (df.iloc[s:s + TABLE_CHUNK] for s in range(0, len(df), TABLE_CHUNK))
        # relative image paths in a table file are relative to that file's folder
        base = Path(inputs).parent if isinstance(inputs, str | Path) else None
        for chunk in chunks:
            yield chunk, transform_table(self.package.preprocessing, chunk, base_dir=base)

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


TABLE_SUFFIXES = (".csv", ".tsv", ".txt", ".parquet", ".pq", ".jsonl", ".ndjson", ".json")


def _image_sources(inputs: Any) -> bool:
    """Whether ``inputs`` are images (paths, bytes, arrays) rather than records or a table."""
    import sys

    pd = sys.modules.get("pandas")  # a DataFrame means pandas is loaded: never import it here
    if isinstance(inputs, dict) or (pd is not None and isinstance(inputs, pd.DataFrame)):
        return False
    if isinstance(inputs, str | Path):
        return Path(inputs).suffix.lower() not in TABLE_SUFFIXES
    return not (isinstance(inputs, list | tuple) and inputs and isinstance(inputs[0], dict))


def load(path: str | Path, *, engine: Engine = "auto") -> Predictor:
    """Load a model package (or a run directory) for prediction."""
    return Predictor.load(path, engine=engine)
