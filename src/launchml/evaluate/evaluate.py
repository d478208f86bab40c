"""Metrics on the test split (or validation when there is no test split)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import Field

from launchml import console
from launchml.configbase import StrictModel
from launchml.data.schema import Prepared, pick_split, split_arrays
from launchml.errors import DataError, PackageError
from launchml.runs import RunDir, write_json

if TYPE_CHECKING:
    from launchml.deploy.predictor import Predictor


class EvaluateConfig(StrictModel):
    """``evaluate:`` which split to score."""

    split: Literal["auto", "test", "validation"] = Field(
        "auto", description="auto: test if there is one, else validation"
    )
    report: bool = Field(True, description="write evaluation/report.html (metrics, charts, "
                         "slices, errors, explanations) and evaluation/MODEL_CARD.md")


def plot_confusion(matrix: list[list[int]], labels: list[str], path: Path) -> None:
    # a Figure with its own Agg canvas: the caller's pyplot backend is left alone
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    m = np.asarray(matrix)
    size = max(4.0, 0.5 * len(labels) + 2)
    fig = Figure(figsize=(size, size))
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    ax.imshow(m, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(m.shape[0]):
        for j in range(m.shape[1]):
            ax.text(j, i, str(m[i, j]), ha="center", va="center",
                    color="white" if m[i, j] > m.max() / 2 else "black")
    ax.set_title("confusion matrix")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name("." + path.name)
    fig.savefig(tmp, format="png", dpi=100)
    tmp.replace(path)


def evaluate(cfg: EvaluateConfig, predictor: Predictor, prepared: Prepared,
             run: RunDir, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    name = pick_split(prepared, cfg.split)
    inputs, y = split_arrays(prepared, name)
    raw = predictor.logits(inputs)
    metrics = predictor.task.metrics(y, raw, predictor.package.threshold)
    metrics = {"split": name, **metrics, **(extra or {})}
    refit = predictor.package.meta["provenance"].get("config", {}).get("model", {}).get("refit")
    if name == "validation" and refit:
        metrics["in_sample"] = True
        console.warn("evaluate: no test rows, and the model was refit on train + validation, "
                     "so these validation scores are in-sample (optimistic). Fix: "
                     "data.test_split > 0 or a data.test table.")
    elif name == "validation":
        metrics["optimistic"] = True
        console.warn("evaluate: no test split, so these are validation scores; validation "
                     "also chose the best epoch (and family), so they are optimistic. Fix: "
                     "data.test (a folder or table) or data.test_split > 0.")
    write_json(run.evaluation / "metrics.json", metrics)
    if "confusion_matrix" in metrics:
        plot_confusion(metrics["confusion_matrix"], predictor.labels,
                       run.evaluation / "plots" / "confusion_matrix.png")
    if cfg.report:
        from launchml.evaluate.report import write_report

        write_report(run, predictor, prepared, name, metrics, raw)
    console.info(f"evaluate: {name} {summary(metrics)} -> {run.evaluation / 'metrics.json'}"
                 + (f", {run.evaluation / 'report.html'}" if cfg.report else ""))
    return metrics


MAIN_METRICS = ("accuracy", "f1_macro", "roc_auc", "roc_auc_ovr_macro", "f1_micro", "rmse",
                "mae", "r2")


def summary(metrics: dict[str, Any]) -> str:
    """The main metrics on one line: 'accuracy=0.9500 f1_macro=0.9487 ...'."""
    return " ".join(f"{k}={metrics[k]:.4f}" for k in MAIN_METRICS
                    if isinstance(metrics.get(k), int | float))


def evaluate_package(model: str | Path | Predictor, data: str | Path, *,
                     out: str | Path | None = None,
                     report: str | Path | None = None) -> dict[str, Any]:
    """Score a model package on new labelled data; return the task's metrics.

    ``model``: a package folder, run folder, package .zip or a loaded ``Predictor``.
    ``data``: for an image package, a folder with one sub-folder per class (every
    class among the package's labels); for a table package, a table file (CSV, TSV,
    Parquet, JSON Lines) with the target column the package was trained on. Inputs
    go through the package's fitted preprocessing, as in prediction; the metrics are
    those ``launchml run`` reports. ``out``: also write them there as JSON.
    ``report``: also write the HTML report a run's evaluate stage writes (the same
    ``evaluate/report.py``, on these rows) to this path, and ``MODEL_CARD.md`` beside it.
    """
    import tempfile

    from launchml.deploy.predictor import Predictor

    predictor = model if isinstance(model, Predictor) else Predictor.load(model)
    data = Path(data)
    # the report needs the rows as arrays; an image folder's pixels go to a scratch file
    with tempfile.TemporaryDirectory(prefix="launchml-evaluate-") as tmp:
        scratch = Path(tmp) if report is not None else None  # None: keep no arrays
        if predictor.package.source == "image_folder":
            y, raw, arrays = _image_folder_scores(predictor, data, scratch)
        else:
            y, raw, arrays = _table_scores(predictor, data, scratch)
        metrics = {"data": str(data),
                   **predictor.task.metrics(y, raw, predictor.package.threshold)}
        if out is not None:
            write_json(Path(out), metrics)
        if report is not None:
            _write_package_report(predictor, data, Path(report), metrics, arrays, y, raw)
    console.info(f"evaluate: {data}: {summary(metrics)}"
                 + (f" -> {out}" if out is not None else "")
                 + (f", {report}" if report is not None else ""))
    return metrics


def _write_package_report(predictor: Predictor, data: Path, path: Path,
                          metrics: dict[str, Any], arrays: dict[str, np.ndarray],
                          y: np.ndarray, raw: np.ndarray) -> Path:
    """The run's report on new labelled rows: they are the one scored split (named after
    the data); the package's run folder, when it sits in one, adds its learning curves,
    leaderboard and variants."""
    from launchml.data.schema import Split
    from launchml.evaluate.report import write_report

    pkg = predictor.package
    schema = pkg.schema
    name = data.name or str(data)
    prepared = Prepared(schema=schema,
                        splits={name: Split(name, {**arrays, schema.target: y})},
                        preprocessing=pkg.preprocessing, manifest={})
    parent = pkg.path.parent
    in_run = (parent / "config.yaml").exists() and RunDir(parent).model == pkg.path
    run = RunDir(parent if in_run else pkg.path)
    return write_report(run, predictor, prepared, name, metrics, raw, path=path)


EVALUATE_BATCH = 256  # images decoded and scored at a time


def _image_folder_scores(predictor: Predictor, data: Path, scratch: Path | None = None
                         ) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """(class indices, raw outputs, the decoded images when ``scratch``: a folder
    they are memory-mapped in) of a folder with one sub-folder per class."""
    from launchml.data.images import IMAGE_EXTENSIONS, bad_files_message, decode_files, scan_folder

    labels = predictor.labels
    if data.is_file():
        raise DataError(f"evaluate: '{data}' is a file, but this model was trained on an image "
                        "folder. Fix: pass a folder with one sub-folder per class "
                        f"({', '.join(labels)}).")
    files, classes, ignored = scan_folder(str(data), "data", where="evaluate data")
    unknown = sorted(set(classes) - set(labels))
    if unknown:
        raise DataError(f"evaluate: '{data}' has class folder(s) {unknown} that the model does "
                        f"not know; its labels are {labels}. Fix: rename or remove those "
                        "folders.")
    loose = [f for f in ignored if f.lower().endswith(IMAGE_EXTENSIONS)]
    if loose:
        console.warn(f"evaluate: ignored {len(loose)} images outside any class sub-folder, "
                     f"e.g. '{loose[0]}': only images inside a class sub-folder are scored.")
    column = predictor.image_column
    state = predictor.package.preprocessing[column]
    h, w = state["target_size"]
    shape = (h, w, state.get("channels", 1 if state["color_mode"] == "grayscale" else 3))
    kept = None if scratch is None else np.lib.format.open_memmap(
        scratch / f"{column}.npy", mode="w+", dtype=np.uint8, shape=(len(files), *shape))
    raws, ys, bad = [], [], []
    for s in range(0, len(files), EVALUATE_BATCH):
        part = files[s:s + EVALUATE_BATCH]
        arr = np.zeros((len(part), *shape), dtype=np.uint8) if kept is None \
            else kept[s:s + EVALUATE_BATCH]
        _, skipped = decode_files(part, state, arr, "skip")
        bad += skipped
        failed = {b["file"] for b in skipped}
        keep = [i for i, f in enumerate(part) if f not in failed]
        if keep and not bad:  # once a file is bad, the rest are only decoded (to list all)
            raws.append(predictor.logits({column: arr[keep]}))
            ys += [labels.index(classes[s + i]) for i in keep]
    if bad:
        raise DataError(bad_files_message(bad, skip=""))
    return (np.asarray(ys, dtype=np.int64), np.concatenate(raws),
            {} if kept is None else {column: kept})


# the words a 0/1 target column holds for 1, as prepare reads them (data.table_adapter)


def _table_scores(predictor: Predictor, data: Path, scratch: Path | None = None
                  ) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """(targets, raw outputs, the transformed columns when ``scratch``) of a table file with
    the package's target column."""
    from launchml.data.preprocess import transform_table
    from launchml.data.tables import iter_table

    if data.is_dir():
        raise DataError(f"evaluate: '{data}' is a folder, but this model was trained on a "
                        "table. Fix: pass a table file (CSV, TSV, Parquet or JSON Lines) with "
                        "the target column.")
    provenance = predictor.package.meta["provenance"]
    data_cfg = provenance.get("config", {}).get("data", {})
    reader = provenance.get("reader") or data_cfg  # as training read its table, as predict
    target = data_cfg.get("target")
    if not target:
        raise PackageError(f"'{predictor.package.path}' records no target column "
                           "(provenance.config.data.target), so labelled rows cannot be "
                           "matched to it. Fix: re-train the model with this launchml.")
    chunks = iter_table(data, delimiter=reader.get("delimiter"),
                        encoding=reader.get("encoding"), decimal=reader.get("decimal"))
    ys, raws, parts = [], [], []
    for chunk in chunks:
        ys.append(_target(predictor, chunk, target, data_cfg, data))
        arrays = transform_table(predictor.package.preprocessing, chunk, base_dir=data.parent)
        raws.append(predictor.logits(arrays))
        if scratch is not None:
            parts.append(arrays)
    if not ys or not sum(len(y) for y in ys):
        raise DataError(f"evaluate: '{data}' has no rows.")
    kept = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]} if parts else {}
    return np.concatenate(ys), np.concatenate(raws), kept


def _target(predictor: Predictor, chunk: Any, target: str | list[str],
            data_cfg: dict[str, Any], data: Path) -> np.ndarray:
    """The chunk's target in the task's encoding, by the code prepare uses."""
    from launchml.data.table_adapter import target_array

    targets = target if isinstance(target, list) else [target]
    absent = [t for t in targets if t not in chunk.columns]
    if absent:
        raise DataError(f"evaluate: '{data}' has no target column {absent[0]!r} (the column "
                        f"the model was trained to predict). Columns: {list(chunk.columns)}. "
                        "Fix: add it, or rename the column holding the true values.")
    return target_array(chunk, target, predictor.task.name, predictor.labels,
                        separator=data_cfg.get("label_separator", "|"),
                        where=f"evaluate: '{data}'")
