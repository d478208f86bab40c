"""The report's charts: matplotlib figures on their own Agg canvas, as PNG data URIs.

Every chart has a title and labelled axes. Curves are computed with numpy on
sorted scores (one pass), so a 10,000-row test split costs milliseconds.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

DPI = 72


@contextmanager
def figure(width: float = 4.6, height: float = 3.4, ncols: int = 1) -> Iterator[tuple[Any, Any]]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width * ncols, height))
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, ncols)
    yield fig, axes


def png_uri(fig: Any) -> str:
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def confusion(matrix: list[list[int]], labels: list[str]) -> str:
    m = np.asarray(matrix)
    size = min(9.0, max(3.6, 0.45 * len(labels) + 2))
    with figure(size, size) as (fig, ax):
        ax.imshow(m, cmap="Blues")
        ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
        ax.set_yticks(range(len(labels)), labels)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        if len(labels) <= 20:
            for i in range(m.shape[0]):
                for j in range(m.shape[1]):
                    ax.text(j, i, str(m[i, j]), ha="center", va="center", fontsize=8,
                            color="white" if m[i, j] > m.max() / 2 else "black")
        ax.set_title("confusion matrix")
        return png_uri(fig)


def roc_pr_points(y: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, ...]:
    """(fpr, tpr, recall, precision) of binary ``y`` (0/1) ranked by ``score``."""
    order = np.argsort(-score, kind="stable")
    ys = y[order].astype(np.float64)
    tp = np.concatenate([[0.0], np.cumsum(ys)])
    fp = np.concatenate([[0.0], np.cumsum(1 - ys)])
    pos, neg = max(tp[-1], 1.0), max(fp[-1], 1.0)
    precision = np.where(tp + fp > 0, tp / np.maximum(tp + fp, 1), 1.0)
    return fp / neg, tp / pos, tp / pos, precision


def roc_pr(y: np.ndarray, probs: np.ndarray, labels: list[str]) -> str:
    """ROC and precision-recall curves: the positive class (binary) or one-vs-rest
    per class (at most 10)."""
    classes = [1] if probs.shape[1] == 2 else list(range(min(10, probs.shape[1])))
    with figure(ncols=2) as (fig, (a, b)):
        for c in classes:
            yc = (y == c).astype(np.int64)
            if yc.min() == yc.max():
                continue
            fpr, tpr, rec, prec = roc_pr_points(yc, probs[:, c])
            auc = float(np.trapezoid(tpr, fpr))
            name = labels[c] if len(classes) > 1 else f"{labels[c]} vs {labels[0]}"
            a.plot(fpr, tpr, label=f"{name} (AUC {auc:.3f})")
            b.plot(rec, prec, label=name)
        a.plot([0, 1], [0, 1], "k:", lw=1)
        a.set(title="ROC curve", xlabel="false positive rate", ylabel="true positive rate")
        b.set(title="precision-recall curve", xlabel="recall", ylabel="precision",
              ylim=(0, 1.02))
        a.legend(fontsize=7, loc="lower right")
        return png_uri(fig)


def calibration(y_hit: np.ndarray, confidence: np.ndarray, bins: int = 10
                ) -> tuple[str, float, list[dict[str, float]]]:
    """Reliability diagram of ``confidence`` against how often it is right (``y_hit``),
    and the expected calibration error (equal-width bins, weighted by count)."""
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1]), 0, bins - 1)
    table, ece = [], 0.0
    for k in range(bins):
        m = which == k
        if m.any():
            conf, acc = float(confidence[m].mean()), float(y_hit[m].mean())
            ece += m.mean() * abs(conf - acc)
            table.append({"bin": k, "confidence": conf, "observed": acc, "count": int(m.sum())})
    with figure() as (fig, ax):
        ax.plot([0, 1], [0, 1], "k:", lw=1, label="perfect calibration")
        ax.plot([t["confidence"] for t in table], [t["observed"] for t in table], "o-",
                label=f"model (ECE {ece:.3f})")
        ax.set(title="calibration", xlabel="predicted probability",
               ylabel="observed frequency", xlim=(0, 1), ylim=(0, 1))
        ax.legend(fontsize=8, loc="upper left")
        return png_uri(fig), float(ece), table


def thresholds(y: np.ndarray, p: np.ndarray, stored: float | None) -> tuple[str, list[dict]]:
    """Precision, recall and F1 of the positive class at each threshold; the stored
    (served) threshold marked."""
    grid = np.linspace(0.02, 0.98, 49)
    rows = []
    for t in grid:
        pred = p >= t
        tp = float(np.sum(pred & (y == 1)))
        prec = tp / max(1.0, float(pred.sum()))
        rec = tp / max(1.0, float((y == 1).sum()))
        f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
        rows.append({"threshold": float(t), "precision": prec, "recall": rec, "f1": f1,
                     "accuracy": float(np.mean(pred == (y == 1)))})
    with figure(5.6, 3.4) as (fig, ax):
        for key in ("precision", "recall", "f1", "accuracy"):
            ax.plot(grid, [r[key] for r in rows], label=key)
        if stored is not None:
            ax.axvline(stored, color="k", ls="--", lw=1, label=f"served threshold {stored:.3g}")
        ax.set(title="threshold analysis (positive class)", xlabel="threshold on the "
               "positive probability", ylabel="score", ylim=(0, 1.02))
        ax.legend(fontsize=7, loc="lower left")
        return png_uri(fig), rows


def regression(y: np.ndarray, pred: np.ndarray) -> str:
    n = len(y)
    pick = np.random.default_rng(0).choice(n, 3000, replace=False) if n > 3000 else slice(None)
    ys, ps = y[pick], pred[pick]
    with figure(ncols=2) as (fig, (a, b)):
        a.scatter(ys, ps, s=6, alpha=0.5)
        lo, hi = float(min(ys.min(), ps.min())), float(max(ys.max(), ps.max()))
        a.plot([lo, hi], [lo, hi], "k:", lw=1)
        a.set(title="predicted vs actual", xlabel="actual", ylabel="predicted")
        b.scatter(ps, ys - ps, s=6, alpha=0.5)
        b.axhline(0, color="k", lw=1)
        b.set(title="residuals", xlabel="predicted", ylabel="actual - predicted")
        return png_uri(fig)


def learning_curves(curves: dict[str, list[dict[str, Any]]]) -> str | None:
    """Loss per epoch of each trained network (train and validation)."""
    curves = {k: v for k, v in curves.items() if v}
    if not curves:
        return None
    with figure(5.6, 3.4) as (fig, ax):
        for name, epochs in curves.items():
            x = [e["epoch"] for e in epochs]
            for key, style in (("train_loss", "-"), ("val_loss", "--")):
                ys = [e.get(key) for e in epochs]
                if any(v is not None for v in ys):
                    ax.plot(x, [np.nan if v is None else v for v in ys], style,
                            label=f"{name} {key.replace('_', ' ')}")
        ax.set(title="learning curves", xlabel="epoch", ylabel="loss")
        ax.legend(fontsize=7)
        return png_uri(fig)


def thumbnail(image: np.ndarray, side: int = 96) -> str:
    from PIL import Image

    img = np.asarray(image)
    if img.ndim == 3 and img.shape[-1] == 1:
        img = img[..., 0]
    pic = Image.fromarray(img.astype(np.uint8))
    k = max(1, side // max(pic.size))
    if k > 1:
        pic = pic.resize((pic.size[0] * k, pic.size[1] * k), Image.NEAREST)
    else:
        pic.thumbnail((side, side))
    buf = io.BytesIO()
    pic.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
