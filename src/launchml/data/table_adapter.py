"""Stage 1 for tables: read, infer column types, split, fit preprocessing on
the training rows only, and cache one array per feature.

Writes ``prepared/<split>.<feature>.npy``, ``prepared/<split>.__target__.npy``
and ``prepared/manifest.json`` (written last; it marks a complete cache).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, ClassVar, Literal

import numpy as np
import pandas as pd
from pydantic import Field

from launchml import console
from launchml.configbase import StrictModel
from launchml.data.columns import DROPPED, category_key, infer_columns, target_task
from launchml.data.image_folder import stratified_split
from launchml.data.preprocess import fit_table, numbers, transform_table
from launchml.data.schema import Column, Prepared, Schema, Split
from launchml.data.tables import read_table
from launchml.errors import DataError
from launchml.runs import RunDir, load_npy, read_json, save_npy, write_json

TARGET = "__target__"
TABLE_TYPES = ("number", "category", "boolean", "datetime", "text", "molecule", "protein", "image")


class TableConfig(StrictModel):
    """``data:`` for a table (CSV, TSV, Parquet, JSON Lines) with a target column."""

    kind: ClassVar[str] = "table"
    train: str = Field(description="the training table")
    target: str = Field(description="the column to predict")
    validation: str | None = Field(None, description="optional separate validation table")
    test: str | None = Field(None, description="optional separate test table")
    validation_split: float = Field(0.2, ge=0.0, lt=1.0, description="used when no validation")
    test_split: float = Field(0.0, ge=0.0, lt=1.0, description="used when no test table")
    task: Literal["auto", "classification", "binary", "multiclass", "regression"] = Field(
        "auto", description="auto: numbers with > 20 values or fractions -> regression")
    column_types: dict[str, str] = Field(
        default_factory=dict, description="override inferred types: {column: type}")
    delimiter: str | None = Field(None, description="CSV delimiter; default: sniffed")
    encoding: str | None = Field(None, description="text encoding; default: detected")
    tokenizer: str = Field(
        "trained", description="text columns: 'trained' (a WordPiece tokenizer fitted on the "
        "training text) or a Hugging Face model name / local folder whose tokenizer to use")
    text_max_length: int | None = Field(
        None, ge=4, le=4096, description="tokens kept per text; null: 95th percentile of train, "
        "at most 256")
    vocab_size: int = Field(8000, ge=100, description="trained tokenizer's vocabulary size")
    image_size: tuple[int, int] = Field(
        (64, 64), description="image-path columns: [height, width] images are resized to")


def _read(cfg: TableConfig, path: str, key: str) -> pd.DataFrame:
    df, info = read_table(path, delimiter=cfg.delimiter, encoding=cfg.encoding)
    if cfg.target not in df.columns:
        raise DataError(f"data.{key}: '{path}' has no target column '{cfg.target}'. Columns: "
                        f"{list(df.columns)}. Fix: set data.target to one of them.")
    missing = df[cfg.target].isna()
    if missing.any():
        rows = np.flatnonzero(missing.to_numpy())
        raise DataError(f"data.{key}: '{path}' has {len(rows)} rows without a target "
                        f"('{cfg.target}'), first at data row {rows[0] + 1}. Fix: fill them "
                        "in or remove those rows (launchml does not drop rows silently).")
    console.info(f"prepare: {path}: {info['rows']} rows, {info['columns']} columns"
                 + (f" ({info['encoding']}, delimiter {info['delimiter']!r})"
                    if "delimiter" in info else ""))
    return df


def _splits(cfg: TableConfig, train: pd.DataFrame, seed: int,
            classify: bool) -> dict[str, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    out: dict[str, pd.DataFrame] = {}
    for key in ("test", "validation"):
        path = getattr(cfg, key)
        if path is not None:
            out[key] = _read(cfg, path, key)
            continue
        labels = (train[cfg.target].map(category_key).tolist() if classify
                  else ["all"] * len(train))
        frac = cfg.test_split if key == "test" else cfg.validation_split
        keep, take = stratified_split(labels, frac, rng)
        out[key] = train.iloc[take]
        train = train.iloc[keep]
    out["train"] = train
    return out


def prepare_table(cfg: TableConfig, run: RunDir, seed: int) -> Prepared:
    head = _read(cfg, cfg.train, "train")
    task, why = target_task(head[cfg.target], cfg.task)
    classify = task != "regression"
    splits = _splits(cfg, head, seed, classify)  # the train file is read once
    train = splits["train"]
    infos = infer_columns(train, target=cfg.target, overrides=cfg.column_types)
    labels = sorted(train[cfg.target].map(category_key).unique()) if classify else []
    if classify and len(labels) < 2:
        raise DataError(f"target '{cfg.target}' has one class in train ({labels}); "
                        "classification needs two or more.")
    kept = [i for i in infos if i.name != cfg.target and i.type in TABLE_TYPES]
    for i in infos:
        mark = "dropped" if i.type in DROPPED else ("target" if i.name == cfg.target else "")
        console.info(f"  {i.name}: {i.type} {('(' + mark + ')') if mark else ''} - {i.reason}")
    console.info(f"  target '{cfg.target}': {task} ({why})")
    states = fit_table(kept, train, cfg.target, cfg)  # training rows only: no leakage
    out = run.prepared
    (out / "manifest.json").unlink(missing_ok=True)
    manifest: dict[str, Any] = {"version": 1, "kind": "table", "fingerprint": "", "splits": {},
                                "columns": [i.to_dict() for i in infos]}
    for name, df in splits.items():
        unseen = set(df[cfg.target].map(category_key)) - set(labels) if classify else set()
        if unseen:
            raise DataError(f"data.{name}: target values {sorted(unseen)} never occur in "
                            f"train. Fix: add such rows to train or remove them from {name}.")
        arrays = transform_table(states, df) if len(df) else {}
        y = (df[cfg.target].map(category_key).map(labels.index).to_numpy(dtype=np.int64)
             if classify else numbers(df[cfg.target], cfg.target).astype(np.float32))
        features = list(arrays)
        for feat, arr in arrays.items():
            save_npy(out / f"{name}.{feat}.npy", arr)
        save_npy(out / f"{name}.{TARGET}.npy", y)
        manifest["splits"][name] = {"count": len(df), "features": features,
                                    "rows": [int(r) for r in df.index]}
    manifest["fingerprint"] = hashlib.sha256(json.dumps(
        [cfg.model_dump(mode="json"), seed, pd.util.hash_pandas_object(head).sum().item()]
    ).encode()).hexdigest()
    schema = Schema(columns=[Column(i.name, i.type, None, "float32") for i in kept]
                    + [Column(TARGET, "target", [], "int64" if classify else "float32")],
                    target=TARGET, task=task, labels=labels)
    manifest["schema"] = schema.to_dict()
    manifest["preprocessing"] = states
    manifest["source_target"] = cfg.target
    write_json(out / "manifest.json", manifest)
    return load_table_prepared(run)


def load_table_prepared(run: RunDir) -> Prepared:
    manifest = read_json(run.prepared / "manifest.json")
    splits = {}
    for name, info in manifest["splits"].items():
        arrays = {f: load_npy(run.prepared / f"{name}.{f}.npy", mmap=False)
                  for f in info["features"]}
        arrays[TARGET] = load_npy(run.prepared / f"{name}.{TARGET}.npy", mmap=False)
        splits[name] = Split(name, arrays, ids=[str(r) for r in info["rows"]])
    return Prepared(schema=Schema.from_dict(manifest["schema"]), splits=splits,
                    preprocessing=manifest["preprocessing"], manifest=manifest)


def load_table_rows(sources: Any, preprocessing: dict[str, Any],
                    names: list[Any] | None = None) -> dict[str, np.ndarray]:
    """Serving side: a DataFrame (or records) -> feature arrays with the fitted states."""
    df = sources if isinstance(sources, pd.DataFrame) else pd.DataFrame.from_records(sources)
    return transform_table(preprocessing, df)
