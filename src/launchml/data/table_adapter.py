"""Stage 1 for tables: read, infer column types, split, fit preprocessing on
the training rows only, and cache one array per feature.

Splits carved from the training table are stratified by class (classification),
by group (``group_column``: a group never crosses splits) or by time
(``time_column``: validation and test are the latest rows). A multilabel
target (several 0/1 columns, or label sets in one column) becomes an N x K
float32 multi-hot array.

Writes ``prepared/<split>.<feature>.npy``, ``prepared/<split>.__target__.npy``
and ``prepared/manifest.json`` (written last; it marks a complete cache).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np
from pydantic import Field, PrivateAttr, field_validator

from launchml import console
from launchml.configbase import StrictModel
from launchml.data.image_folder import stratified_split
from launchml.data.schema import Column, Prepared, Schema, load_prepared
from launchml.errors import ConfigError, DataError
from launchml.runs import RunDir, save_npy, write_json

if TYPE_CHECKING:
    import pandas as pd

# pandas, and the column / table modules that need it, are imported by the functions that
# use them: ``TableConfig`` (and so ``launchml.config``) loads without pandas

TARGET = "__target__"


class TableConfig(StrictModel):
    """``data:`` for a table (CSV, TSV, Parquet, JSON Lines) with a target column."""

    kind: ClassVar[str] = "table"
    unused_model_sections: ClassVar[tuple[str, ...]] = ()
    train: str = Field(description="the training table")
    target: str | list[str] = Field(
        description="the column to predict; a list of 0/1 (true/false, yes/no) columns: "
        "multilabel over those column names")
    validation: str | None = Field(None, description="optional separate validation table")
    # set by privacy.config.private_data for a private run (privacy.min_token_rows): words
    # and category values seen in fewer distinct training rows stay out of the vocabularies
    _min_rows: int = PrivateAttr(1)
    test: str | None = Field(None, description="optional separate test table")
    validation_split: float = Field(0.2, ge=0.0, lt=1.0, description="used when no validation")
    test_split: float = Field(
        0.2, ge=0.0, lt=1.0, description="held out for evaluate when no test table; 0: none "
        "(evaluate then scores validation rows, which a refit model has trained on)")
    task: Literal["auto", "classification", "binary", "multiclass", "multilabel",
                  "regression"] = Field(
        "auto", description="auto: numbers with > 20 values or fractions -> regression; "
        "multilabel: the target column holds label sets ('a|b', empty: no labels)")
    label_separator: str = Field(
        "|", min_length=1, description="multilabel with one target column: between labels")
    group_column: str | None = Field(
        None, description="split by group: rows sharing a value (e.g. a patient id) stay in "
        "one split; the split fractions count groups; the column is not a feature")
    time_column: str | None = Field(
        None, description="split by time (a datetime or number column): validation and test "
        "are the latest rows, train the earliest; rows with the same time stay together")
    column_types: dict[str, str] = Field(
        default_factory=dict, description="override inferred types: {column: type}")
    delimiter: str | None = Field(None, description="CSV delimiter; default: sniffed")
    encoding: str | None = Field(None, description="text encoding; default: detected")
    decimal: Literal[".", ","] | None = Field(
        None, description="CSV numbers' decimal separator; default: detected (',' when every "
        "value of a column is a number with a decimal comma, as in '23,5')")
    tokenizer: str = Field(
        "trained", description="text columns: 'trained' (a WordPiece tokenizer fitted on the "
        "training text) or a Hugging Face model name / local folder whose tokenizer to use")
    text_max_length: int | None = Field(
        None, ge=4, le=4096, description="tokens kept per text; null: 95th percentile of train, "
        "at most 256")
    vocab_size: int = Field(8000, ge=100, description="trained tokenizer's vocabulary size")
    image_size: tuple[int, int] = Field(
        (64, 64), description="image-path columns: [height, width] images are resized to")

    @field_validator("target")
    @classmethod
    def _target_list(cls, v: str | list[str]) -> str | list[str]:
        if isinstance(v, list):
            if not v:
                raise ValueError("an empty list names no target column")
            dupes = sorted({c for c in v if v.count(c) > 1})
            if dupes:
                raise ValueError(f"columns named twice: {dupes}")
        return v


def _targets(cfg: TableConfig) -> list[str]:
    return list(cfg.target) if isinstance(cfg.target, list) else [cfg.target]


def _is_multilabel(cfg: TableConfig) -> bool:
    return isinstance(cfg.target, list) or cfg.task == "multilabel"


def _check_config(cfg: TableConfig) -> None:
    """What one field cannot say alone: the fields that exclude each other."""
    if cfg.group_column is not None and cfg.time_column is not None:
        raise ConfigError(f"data.group_column ('{cfg.group_column}') and data.time_column "
                          f"('{cfg.time_column}') are both set; a split is by group or by time. "
                          "Fix: remove one of them.")
    if isinstance(cfg.target, list) and cfg.task not in ("auto", "multilabel"):
        raise ConfigError(f"data.target is a list of columns (multilabel) but data.task is "
                          f"'{cfg.task}'. Fix: set data.task: multilabel (or auto), or name "
                          "one target column.")
    for key in ("group_column", "time_column"):
        col = getattr(cfg, key)
        if col is not None and col in _targets(cfg):
            raise ConfigError(f"data.{key}: '{col}' is the target. Fix: name another column.")


def _read(cfg: TableConfig, path: str, key: str) -> pd.DataFrame:
    from launchml.data.tables import read_table

    df, info = read_table(path, delimiter=cfg.delimiter, encoding=cfg.encoding,
                          decimal=cfg.decimal)
    targets = _targets(cfg)
    absent = [t for t in targets if t not in df.columns]
    if absent:
        what = (f"target column '{absent[0]}'" if len(absent) == 1
                else f"target columns {absent}")
        raise DataError(f"data.{key}: '{path}' has no {what}. Columns: "
                        f"{list(df.columns)}. Fix: set data.target to one of them.")
    # one label-set column: an empty value is a row without labels, not a missing target
    checked = [] if _is_multilabel(cfg) and not isinstance(cfg.target, list) else targets
    for target in checked:
        missing = df[target].isna()
        if missing.any():
            rows = np.flatnonzero(missing.to_numpy())
            raise DataError(f"data.{key}: '{path}' has {len(rows)} rows without a target "
                            f"('{target}'), first at data row {rows[0] + 1}. Fix: fill them "
                            "in or remove those rows (launchml does not drop rows silently).")
    # how the file was read, so prediction files are read the same way (package.json)
    df.attrs["launchml_reader"] = {k: info.get(k) for k in ("delimiter", "encoding",
                                                             "decimal")}
    console.info(f"prepare: {path}: {info['rows']} rows, {info['columns']} columns"
                 + (f" ({info['encoding']}, delimiter {info['delimiter']!r})"
                    if "delimiter" in info else ""))
    return df


def group_split(groups: Sequence[str], frac: float,
                rng: np.random.Generator) -> tuple[list[int], list[int]]:
    """Row indices (keep, take): ``frac`` of the distinct groups, drawn with ``rng``, go to take.

    Every row of a group lands on the same side, so the row fraction only
    approximates ``frac`` (like scikit-learn's GroupShuffleSplit). Not that class:
    it takes a fresh integer seed per call, where one Generator draws all of a
    run's splits, and it keeps no group in train when ``frac`` rounds up to all.
    """
    if frac <= 0:
        return list(range(len(groups))), []
    names, inverse = np.unique(np.asarray(groups, dtype=str), return_inverse=True)
    if len(names) < 2:
        raise DataError(f"data.group_column: {len(names)} group(s) in the rows to split; a "
                        "split by group needs two or more. Fix: use another column or "
                        "remove data.group_column.")
    k = min(max(int(round(len(names) * frac)), 1), len(names) - 1)
    chosen = rng.permutation(len(names))[:k]
    take = np.isin(inverse.reshape(-1), chosen)
    return np.flatnonzero(~take).tolist(), np.flatnonzero(take).tolist()


def time_split(times: np.ndarray, frac: float) -> tuple[list[int], list[int]]:
    """Row indices (keep, take): the latest ``frac`` of the rows go to take.

    Rows with the same time stay on one side: the cut falls before or after
    the tied rows, whichever leaves the take count closer to ``frac``.
    """
    t = np.asarray(times)
    n = len(t)
    if frac <= 0:
        return list(range(n)), []
    k = min(max(int(round(n * frac)), 1), max(n - 1, 1))
    cut = np.sort(t)[n - k]
    options = [m for m in (t >= cut, t > cut) if 0 < int(m.sum()) < n]
    if not options:
        raise DataError("data.time_column: every row to split has the same time; a split by "
                        "time needs two or more. Fix: use another column or remove "
                        "data.time_column.")
    take = min(options, key=lambda m: abs(int(m.sum()) - k))  # first (>=) wins a tie
    return np.flatnonzero(~take).tolist(), np.flatnonzero(take).tolist()


def _split_values(cfg: TableConfig, df: pd.DataFrame) -> np.ndarray | None:
    """Group keys (str) or times (datetime64 or float64) per row; None without such a column."""
    import pandas as pd

    from launchml.data.columns import category_key, parse_dates, parse_numbers

    col = cfg.group_column or cfg.time_column
    if col is None:
        return None
    key = "group_column" if cfg.group_column else "time_column"
    if col not in df.columns:
        raise DataError(f"data.{key}: the training table has no column '{col}'. Columns: "
                        f"{list(df.columns)}. Fix: set data.{key} to one of them.")
    values = df[col]
    missing = values.isna().to_numpy()
    if missing.any():
        rows = np.flatnonzero(missing)
        raise DataError(f"data.{key}: column '{col}' is empty in {len(rows)} rows, first at "
                        f"data row {rows[0] + 1}; every row needs a "
                        f"{'group' if cfg.group_column else 'time'} to be split. Fix: fill "
                        "them in or remove those rows.")
    if cfg.group_column:
        return np.asarray([category_key(v) for v in values], dtype=str)
    if pd.api.types.is_bool_dtype(values):
        parsed = pd.Series(np.nan, index=values.index)
    elif pd.api.types.is_numeric_dtype(values):
        return values.to_numpy(dtype=np.float64)
    elif pd.api.types.is_datetime64_any_dtype(values):
        parsed = parse_dates(values)
    else:
        numeric = parse_numbers(values)
        if numeric.notna().all():
            return numeric.to_numpy(dtype=np.float64)
        parsed = parse_dates(values)
    bad = parsed.isna().to_numpy()
    if bad.any():
        rows = np.flatnonzero(bad)
        raise DataError(f"data.time_column: column '{col}' holds {values.iloc[rows[0]]!r} at "
                        f"data row {rows[0] + 1} ({len(rows)} such rows), which is neither a "
                        "date/time nor a number. Fix: correct those values.")
    return parsed.to_numpy(dtype="datetime64[ns]")


def _show(v: Any) -> str:
    import pandas as pd

    return str(pd.Timestamp(v)) if isinstance(v, np.datetime64) else f"{float(v):g}"


def _report_split(cfg: TableConfig, carved: dict[str, np.ndarray]) -> None:
    if len(carved) < 2:
        key = "group_column" if cfg.group_column else "time_column"
        console.info(f"  data.{key} unused: no rows were split off the training table "
                     "(validation and test are separate files, or their fractions are 0)")
    elif cfg.group_column:
        parts = [f"{name} {len(np.unique(v))} groups ({len(v)} rows)"
                 for name, v in carved.items()]
        console.info(f"  split by group '{cfg.group_column}': " + ", ".join(parts))
    elif cfg.time_column:
        parts = [f"{name} {_show(v.min())} to {_show(v.max())} ({len(v)} rows)"
                 for name, v in carved.items() if len(v)]
        console.info(f"  split by time '{cfg.time_column}': " + ", ".join(parts))


def _splits(cfg: TableConfig, train: pd.DataFrame, seed: int,
            stratify: bool) -> dict[str, pd.DataFrame]:
    from launchml.data.columns import category_key

    rng = np.random.default_rng(seed)
    values = _split_values(cfg, train)
    carved: dict[str, np.ndarray] = {}
    out: dict[str, pd.DataFrame] = {}
    for key in ("test", "validation"):
        path = getattr(cfg, key)
        if path is not None:
            out[key] = _read(cfg, path, key)
            continue
        frac = cfg.test_split if key == "test" else cfg.validation_split
        if values is not None and cfg.group_column:
            keep, take = group_split(values.tolist(), frac, rng)
        elif values is not None:
            keep, take = time_split(values, frac)
        else:  # stratified by class; multilabel and regression: one stratum (a seeded split)
            labels = (train[cfg.target].map(category_key).tolist() if stratify
                      else ["all"] * len(train))
            keep, take = stratified_split(labels, frac, rng)
        out[key] = train.iloc[take]
        train = train.iloc[keep]
        if values is not None:
            carved[key], values = values[take], values[keep]
    out["train"] = train
    if values is not None:
        _report_split(cfg, {"train": values, **{k: carved[k] for k in ("validation", "test")
                                                 if k in carved and len(carved[k])}})
    return out


def _label_sets(col: pd.Series, sep: str) -> list[list[str]]:
    """One column of label sets ('a|b'; empty or missing: no labels) -> a list per row."""
    import pandas as pd

    from launchml.data.columns import category_key

    return [[] if pd.isna(v) else [p.strip() for p in category_key(v).split(sep) if p.strip()]
            for v in col]


def target_array(df: pd.DataFrame, target: str | list[str], task: str, labels: list[str], *,
                 separator: str = "|", where: str) -> np.ndarray:
    """The target of ``df`` in the task's encoding: class indices (int64), values
    (float32) or an N x K multi-hot (float32); the same code for training splits
    (``prepare``) and for new labelled data (``evaluate_package``).

    ``where`` starts each error ("data.validation", "evaluate: 'new.csv'").
    """
    import pandas as pd

    from launchml.data.columns import BOOL_WORDS, TRUE_WORDS, category_key
    from launchml.data.preprocess import numbers

    if task == "multilabel" and isinstance(target, list):  # one 0/1 column per label
        y = np.zeros((len(df), len(labels)), dtype=np.float32)
        for k, col in enumerate(target):
            words = df[col].map(lambda v: category_key(v).lower())
            bad = ~words.isin(BOOL_WORDS).to_numpy()
            if bad.any():
                r = int(np.flatnonzero(bad)[0])
                raise DataError(f"{where}: target column '{col}' holds {df[col].iloc[r]!r} at "
                                f"data row {int(df.index[r]) + 1}; a multilabel target column "
                                "holds 0/1, true/false or yes/no. Fix: correct the value or "
                                "leave the column out of data.target.")
            y[:, k] = words.isin(TRUE_WORDS).to_numpy()
        return y
    col = df[target]
    if task != "multilabel":  # there, an empty label set is a row without labels
        missing = np.flatnonzero(col.isna().to_numpy())
        if len(missing):
            raise DataError(f"{where}: {len(missing)} rows without a target ('{target}'), first "
                            f"at data row {int(df.index[missing[0]]) + 1}. Fix: fill them in or "
                            "remove those rows (launchml does not drop rows silently).")
    if task == "regression":
        return numbers(col, str(target)).astype(np.float32)
    if task == "multilabel":
        sets = [[] if pd.isna(v) else [p.strip() for p in category_key(v).split(separator)
                                        if p.strip()] for v in col]
        unseen = sorted({lab for row in sets for lab in row} - set(labels))
    else:
        keys = col.map(category_key)
        unseen = sorted(set(keys) - set(labels))
    if unseen:
        raise DataError(f"{where}: labels {unseen} never occur in train (the model's labels "
                        f"are {labels}). Fix: add rows with them to train, or remove or "
                        "relabel those rows.")
    if task != "multilabel":
        return keys.map(labels.index).to_numpy(dtype=np.int64)
    y = np.zeros((len(df), len(labels)), dtype=np.float32)
    index = {lab: k for k, lab in enumerate(labels)}
    for i, row in enumerate(sets):
        y[i, [index[lab] for lab in row]] = 1.0
    return y


def _check_labels(y: np.ndarray, labels: list[str], target: Any) -> None:
    """Each label needs a positive and a negative training row to be learned."""
    pos = y.sum(axis=0)
    bad = [f"'{lab}' ({'no' if p == 0 else 'every'} row has it)"
           for lab, p in zip(labels, pos, strict=True) if p == 0 or p == len(y)]
    if bad:
        raise DataError(f"multilabel target {target!r}: label(s) {', '.join(bad)} in train; "
                        "each label needs rows with and rows without it. Fix: remove those "
                        "labels or add training rows.")


def prepare_table(cfg: TableConfig, run: RunDir, seed: int) -> Prepared:
    import pandas as pd

    from launchml.data.columns import (
        DROPPED,
        FEATURE_TYPES,
        category_key,
        infer_columns,
        target_task,
    )
    from launchml.data.preprocess import fit_table, transform_table

    _check_config(cfg)
    head = _read(cfg, cfg.train, "train")
    targets = _targets(cfg)
    multilabel = _is_multilabel(cfg)
    if isinstance(cfg.target, list):
        task, why = "multilabel", f"{len(targets)} label columns"
    elif multilabel:
        task, why = "multilabel", f"label sets separated by {cfg.label_separator!r}"
    else:
        task, why = target_task(head[cfg.target], cfg.task)
    classify = task != "regression"
    # the train file is read once; label sets cannot be stratified: a plain seeded split
    splits = _splits(cfg, head, seed, stratify=classify and not multilabel)
    train = splits["train"]
    infos = infer_columns(train, target=None if multilabel else cfg.target,
                          overrides=cfg.column_types)
    if isinstance(cfg.target, list):
        labels = targets
    elif multilabel:
        labels = sorted({lab for row in _label_sets(train[cfg.target], cfg.label_separator)
                         for lab in row})
        if not labels:
            raise DataError(f"multilabel target '{cfg.target}' has no labels in train (every "
                            f"value is empty). Fix: check data.label_separator "
                            f"({cfg.label_separator!r}) and the column.")
    else:
        labels = sorted(train[cfg.target].map(category_key).unique()) if classify else []
    if multilabel:
        _check_labels(target_array(train, cfg.target, task, labels,
                                   separator=cfg.label_separator, where="data.train"),
                      labels, cfg.target)
    elif classify and len(labels) < 2:
        raise DataError(f"target '{cfg.target}' has one class in train ({labels}); "
                        "classification needs two or more.")
    kept = [i for i in infos if i.name not in targets and i.name != cfg.group_column
            and i.type in FEATURE_TYPES]
    if not kept:  # say what each column is and why it cannot be a feature
        roles = {**{t: "the target" for t in targets}, cfg.group_column: "the group column"}
        why = [f"'{i.name}' ({roles.get(i.name, i.type)}: {i.reason})" for i in infos][:20]
        raise DataError(f"data.train: '{cfg.train}' has no column to learn from: "
                        f"{'; '.join(why)}. Fix: add feature columns, or set their type "
                        "with data.column_types (e.g. {zip_code: category}).")
    for i in infos:
        mark = ("dropped" if i.type in DROPPED else "target" if i.name in targets
                else "group, not a feature" if i.name == cfg.group_column else "")
        console.info(f"  {i.name}: {i.type} {('(' + mark + ')') if mark else ''} - {i.reason}")
    console.info(f"  target {cfg.target!r}: {task} ({why})"
                 + (f", labels: {', '.join(labels)}" if multilabel else ""))
    states = fit_table(kept, train, targets[0], cfg)  # training rows only: no leakage
    out = run.prepared
    (out / "manifest.json").unlink(missing_ok=True)
    manifest: dict[str, Any] = {"version": 1, "kind": "table", "fingerprint": "", "splits": {},
                                "columns": [i.to_dict() for i in infos]}
    for name, df in splits.items():
        y = target_array(df, cfg.target, task, labels, separator=cfg.label_separator,
                         where=f"data.{name}")
        arrays = transform_table(states, df, base_dir=Path(cfg.train).parent) if len(df) else {}
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
                    + [Column(TARGET, "target", [len(labels)], "float32") if multilabel
                       else Column(TARGET, "target", [], "int64" if classify else "float32")],
                    target=TARGET, task=task, labels=labels)
    manifest["schema"] = schema.to_dict()
    manifest["preprocessing"] = states
    manifest["source_target"] = cfg.target
    manifest["reader"] = head.attrs.get("launchml_reader", {})
    write_json(out / "manifest.json", manifest)
    return load_prepared(run)


def load_table_rows(sources: Any, preprocessing: dict[str, Any],
                    names: list[Any] | None = None,
                    base_dir: Path | None = None) -> dict[str, np.ndarray]:
    """Serving side: a DataFrame (or records) -> feature arrays with the fitted states.

    ``base_dir``: where relative image paths are resolved (default: the working folder).
    """
    import pandas as pd

    from launchml.data.preprocess import transform_table

    df = sources if isinstance(sources, pd.DataFrame) else pd.DataFrame.from_records(sources)
    return transform_table(preprocessing, df, base_dir=base_dir)
