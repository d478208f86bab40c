"""Metrics on the test split (or validation when there is no test split)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import Field

from launchml import console
from launchml.configbase import StrictModel
from launchml.data.schema import Prepared, pick_split, split_arrays
from launchml.runs import RunDir, write_json

if TYPE_CHECKING:
    from launchml.deploy.predictor import Predictor


class EvaluateConfig(StrictModel):
    """``evaluate:`` which split to score."""

    split: Literal["auto", "test", "validation"] = Field(
        "auto", description="auto: test if there is one, else validation"
    )


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
    metrics = predictor.task.metrics(y, predictor.logits(inputs), predictor.package.threshold)
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
    shown = [k for k in ("accuracy", "f1_macro", "roc_auc", "roc_auc_ovr_macro", "rmse", "mae",
                         "r2") if k in metrics]
    console.info(f"evaluate: {name} " + " ".join(f"{k}={metrics[k]:.4f}" for k in shown)
                 + f" -> {run.evaluation / 'metrics.json'}")
    return metrics
