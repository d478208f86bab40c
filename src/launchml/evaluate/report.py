"""The evaluation report: one self-contained ``evaluation/report.html`` per run (inline
CSS, charts as inline PNG data or SVG, no script, no network) and ``MODEL_CARD.md``.

    write_report(run, predictor, prepared, split, metrics, raw)

Built from what the run folder holds, the same way for every kind of input: the
held-out split's prepared arrays and the served model's outputs on them
(``Predictor.logits``), ``events.jsonl`` (learning curves), ``leaderboard.json``
(the ``auto`` families), ``variants/summary.json`` (the optimize stage's
variants), the package's ``privacy`` settings and ``prepared/manifest.json``
(column types and why, skipped files). Explanations come from
``launchml.explain``, of the model as served.
"""

from __future__ import annotations

import hashlib
import html
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from launchml.data.preprocess import readable_rows
from launchml.runs import RunDir, read_json, read_jsonl, write_text

if TYPE_CHECKING:
    from launchml.data.schema import Prepared
    from launchml.deploy.predictor import Predictor

BOOTSTRAP = 400  # resamples of the headline metric's 95% interval
EXPLAIN_ROWS = 100  # rows whose Shapley values give the mean |contribution| (not TreeSHAP)
GALLERY = 8  # most confident mistakes shown

CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#222;
background:#f6f7f9}
main{max-width:1100px;margin:0 auto;padding:16px 24px 48px}
h1{font-size:22px;margin:8px 0}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #ddd}
section{background:#fff;border:1px solid #e3e5e8;border-radius:6px;padding:8px 16px 14px;
margin:14px 0}
table{border-collapse:collapse;margin:6px 0;font-size:13px}
td,th{border:1px solid #dde;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#f0f2f5}.num{text-align:right;font-variant-numeric:tabular-nums}
.cards{display:flex;flex-wrap:wrap;gap:10px}.card{background:#f0f4fa;border-radius:6px;
padding:8px 12px;min-width:150px}.card b{display:block;font-size:20px}
.warn{background:#fff4e0;border-left:4px solid #e8a200;padding:6px 10px;margin:6px 0}
.tok{padding:0 2px;border-radius:3px}img{max-width:100%}nav a{margin-right:10px}
.explained{border-top:1px dashed #ccc;padding-top:6px;margin-top:6px}
.gallery{display:flex;flex-wrap:wrap;gap:12px}.gallery figure{margin:0;max-width:420px}
code{background:#f0f2f5;padding:0 3px}
"""


def esc(x: Any) -> str:
    return html.escape(str(x))


def fmt(v: Any) -> str:
    if isinstance(v, bool) or v is None:
        return esc(v)
    if isinstance(v, float | np.floating):
        return f"{v:.4g}"
    return esc(v)


def table(rows: list[dict[str, Any]], columns: list[str] | None = None) -> str:
    if not rows:
        return "<p>none</p>"
    columns = columns or list(dict.fromkeys(k for r in rows for k in r))
    head = "".join(f"<th>{esc(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(
            f'<td class="num">{fmt(r.get(c))}</td>' if isinstance(r.get(c), int | float)
            and not isinstance(r.get(c), bool) else f"<td>{fmt(r.get(c, ''))}</td>"
            for c in columns) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def img(uri: str | None, alt: str) -> str:
    return f'<img src="{uri}" alt="{esc(alt)}">' if uri else ""


# -- numbers ------------------------------------------------------------------------
def headline(task_name: str, y: np.ndarray, raw: np.ndarray, probs: np.ndarray | None,
             pred: np.ndarray) -> tuple[str, np.ndarray, bool]:
    """(metric name, per-row values whose mean (or root mean) is the metric, root?)."""
    if task_name == "regression":
        return "rmse", (np.asarray(raw).reshape(-1) - y) ** 2, True
    if task_name == "multilabel":
        return "accuracy (exact label sets)", np.all(pred == (y >= 0.5), axis=1) * 1.0, False
    return "accuracy", (pred == y) * 1.0, False


def bootstrap(per_row: np.ndarray, root: bool, *, resamples: int = BOOTSTRAP,
              seed: int = 0) -> tuple[float, float]:
    """95% percentile interval of mean(per_row) (sqrt of it when ``root``)."""
    n = len(per_row)
    if n == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    stats = []
    for s in range(0, resamples, 50):
        idx = rng.integers(0, n, size=(min(50, resamples - s), n), dtype=np.int64)
        stats.append(per_row[idx].mean(1))
    v = np.concatenate(stats)
    if root:
        v = np.sqrt(v)
    return float(np.percentile(v, 2.5)), float(np.percentile(v, 97.5))


def baseline_score(task_name: str, y_train: np.ndarray, y: np.ndarray) -> tuple[str, float]:
    """What a model that ignores its inputs scores: the training majority class (mean)."""
    if task_name == "regression":
        mean = float(np.mean(y_train))
        return f"mean predictor ({mean:.4g})", float(np.sqrt(np.mean((y - mean) ** 2)))
    if task_name == "multilabel":
        major = np.mean(y_train >= 0.5, axis=0) >= 0.5
        return "majority per label", float(np.mean(np.all((y >= 0.5) == major, axis=1)))
    values, counts = np.unique(y_train, return_counts=True)
    major = values[np.argmax(counts)]
    return "majority class", float(np.mean(y == major))


def row_hashes(arrays: dict[str, np.ndarray]) -> list[bytes]:
    keys = sorted(arrays)
    n = len(arrays[keys[0]]) if keys else 0
    if n == 0:  # an empty split (no test rows): nothing to hash
        return []
    flat = []
    for k in keys:
        a = np.asarray(arrays[k])
        if a.dtype.kind == "O":  # Python objects (strings): hashed by their text
            a = np.array([str(v).encode() for v in a.reshape(n, -1).tolist()])
        flat.append(np.ascontiguousarray(a).reshape(n, -1).view(np.uint8))
    joined = np.concatenate(flat, axis=1) if flat else np.zeros((n, 0), np.uint8)
    return [hashlib.blake2b(r.tobytes(), digest_size=12).digest() for r in joined]


# -- the report ---------------------------------------------------------------------
class Report:
    """Gathers the sections; ``html()`` and ``card()`` render them."""

    def __init__(self, run: RunDir, predictor: Predictor, prepared: Prepared, split: str,
                 metrics: dict[str, Any], raw: np.ndarray) -> None:
        from launchml.data.schema import split_arrays

        self.run, self.predictor, self.prepared = run, predictor, prepared
        self.split, self.metrics = split, metrics
        self.pkg = predictor.package
        self.task = predictor.task
        self.inputs, y = split_arrays(prepared, split)
        self.inputs = dict(self.inputs)
        self.y = np.asarray(y)
        self.raw = np.asarray(raw, dtype=np.float64)
        thr = self.pkg.threshold
        if self.task.name == "regression":
            self.probs, self.pred = None, self.raw.reshape(-1)
        else:
            self.probs = self.task.probabilities(self.raw)
            self.pred = (self.task.predict(self.probs, thr) if self.task.name == "multilabel"
                         else self.task.predict_index(self.probs, thr))
        self.sections: list[tuple[str, str, str]] = []  # (id, title, html)
        self.card_parts: dict[str, Any] = {}
        self.seconds: dict[str, float] = {}

    def add(self, key: str, title: str, body: str) -> None:
        self.sections.append((key, title, body))

    def timed(self, name: str, fn: Any) -> None:
        """Build one section; one that fails is reported (a warning and a section that
        says so) instead of costing the run its metrics and the other sections."""
        start = time.perf_counter()
        try:
            fn()
        except Exception as e:  # noqa: BLE001 - any failure of one section, named
            from launchml import console

            why = f"{type(e).__name__}: {str(e)[:300]}"
            console.warn(f"evaluate: the report's '{name}' section could not be built ({why})")
            self.add(f"error-{name}", f"{name} (not built)",
                     f'<p class="warn">This section could not be built: {esc(why)}</p>')
        self.seconds[name] = round(time.perf_counter() - start, 3)

    def build(self) -> Report:
        for name in ("summary", "classes", "curves", "regression", "learning", "data",
                     "slices", "gallery", "leaderboard", "variants", "importance",
                     "explained", "privacy"):
            self.timed(name, getattr(self, f"_{name}"))
        return self

    # -- sections --------------------------------------------------------------
    def _summary(self) -> None:
        task, y = self.task, self.y
        name, per_row, root = headline(task.name, y, self.raw, self.probs, self.pred)
        value = float(np.sqrt(per_row.mean()) if root else per_row.mean()) if len(y) else 0.0
        lo, hi = bootstrap(per_row, root)
        from launchml.data.schema import split_arrays

        if "train" in self.prepared.splits:
            _, y_train = split_arrays(self.prepared, "train")
            base_name, base = baseline_score(task.name, np.asarray(y_train), y)
        else:  # new labelled data scored alone (evaluate_package): its own majority (mean)
            base_name, base = baseline_score(task.name, y, y)
            base_name += " of the scored rows"
        sizes = {s: len(sp) for s, sp in self.prepared.splits.items()}
        members = self.pkg.meta["model"]["members"]
        better = base > value if root else base < value
        self.card_parts.update(headline=(name, value, lo, hi), baseline=(base_name, base),
                               sizes=sizes, beats=better)
        cards = [("task", task.name), ("scored split", f"{self.split} ({len(y)} rows)"),
                 (name, f"{value:.4f}"), ("95% interval (bootstrap)", f"{lo:.4f} - {hi:.4f}"),
                 (f"baseline: {base_name}", f"{base:.4f}"),
                 ("model", "+".join(m["family"] for m in members)),
                 ("data sizes", ", ".join(f"{k} {v}" for k, v in sizes.items()))]
        if self.pkg.threshold is not None:
            cards.append(("decision threshold", f"{self.pkg.threshold:.4g}"))
        body = '<div class="cards">' + "".join(
            f'<div class="card">{esc(k)}<b>{esc(v)}</b></div>' for k, v in cards) + "</div>"
        warn = []
        if not better:
            warn.append(f"The model does not beat the baseline ({base_name}: {base:.4f}).")
        if self.metrics.get("optimistic") or self.metrics.get("in_sample"):
            warn.append("These are validation scores (no test split): optimistic.")
        if len(y) < 100:
            warn.append(f"Only {len(y)} rows were scored: the interval is wide.")
        body += "".join(f'<p class="warn">{esc(w)}</p>' for w in warn)
        self.card_parts["warnings"] = warn
        main = {k: v for k, v in self.metrics.items() if isinstance(v, int | float)
                and not isinstance(v, bool)}
        body += "<p>All metrics of the scored split:</p>" + table(
            [{"metric": k, "value": v} for k, v in main.items()])
        self.add("summary", "Summary", body)

    def _classes(self) -> None:
        per = self.metrics.get("per_class") or self.metrics.get("per_label")
        if not per:
            return
        rows = [{"class" if "per_class" in self.metrics else "label": k, **v}
                for k, v in per.items()]
        body = table(rows)
        if "confusion_matrix" in self.metrics:
            from launchml.evaluate.charts import confusion

            body += img(confusion(self.metrics["confusion_matrix"], self.task.labels),
                        "confusion matrix")
        self.add("classes", "Per class" if "per_class" in self.metrics else "Per label", body)

    def _curves(self) -> None:
        if self.probs is None or self.task.name == "multilabel":
            return
        from launchml.evaluate import charts

        y = self.y.astype(np.int64)
        body = img(charts.roc_pr(y, self.probs, self.task.labels), "ROC and PR curves")
        conf = self.probs.max(1) if self.task.name == "multiclass" else self.probs[:, 1]
        hit = (self.pred == y) if self.task.name == "multiclass" else (y == 1)
        uri, ece, _ = charts.calibration(hit * 1.0, conf)
        self.metrics_ece = ece
        body += img(uri, "calibration curve") + (
            f"<p>Expected calibration error: <b>{ece:.4f}</b> (10 equal-width bins of the "
            + ("top-class probability" if self.task.name == "multiclass" else
               "positive-class probability") + ").</p>")
        self.card_parts["ece"] = ece
        if self.task.name == "binary":
            uri, rows = charts.thresholds(y, self.probs[:, 1], self.pkg.threshold)
            body += img(uri, "threshold analysis") + "<p>At chosen thresholds:</p>" + table(
                [r for r in rows if round(r["threshold"] * 50) % 5 == 0])
        self.add("curves", "ROC, precision-recall, calibration and threshold", body)

    def _regression(self) -> None:
        if self.task.name != "regression":
            return
        from launchml.evaluate.charts import regression

        self.add("regression", "Predicted vs actual",
                 img(regression(self.y.astype(np.float64), self.pred), "predicted vs actual"))

    def _learning(self) -> None:
        from launchml.evaluate.charts import learning_curves

        curves = {}
        paths = [("model", self.run.events)] + [
            (p.parent.name, p) for p in sorted((self.run.root / "families").glob("*/events.jsonl"))]
        for name, path in paths:
            if path.exists():
                curves[name] = [e for e in read_jsonl(path) if e.get("event") == "epoch"]
        uri = learning_curves(curves)
        if uri:
            self.add("learning", "Learning curves", img(uri, "learning curves"))

    def _data(self) -> None:
        man = self.prepared.manifest
        parts = []
        if man.get("columns"):
            parts.append("<p>Column types and why:</p>" + table(
                man["columns"], ["name", "type", "reason", "missing", "unique"]))
        balance = []
        for s, sp in self.prepared.splits.items():
            y = np.asarray(sp.arrays[self.prepared.schema.target])
            if self.task.name == "regression":
                balance.append({"split": s, "rows": len(y), "mean": float(np.mean(y)) if len(y)
                                else None, "std": float(np.std(y)) if len(y) else None})
            elif self.task.name == "multilabel":
                balance.append({"split": s, "rows": len(y), **{
                    lab: int((y[:, k] >= 0.5).sum()) for k, lab in enumerate(self.task.labels)}})
            else:
                counts = np.bincount(y.astype(np.int64), minlength=len(self.task.labels))
                balance.append({"split": s, "rows": len(y), **dict(zip(
                    self.task.labels, map(int, counts), strict=True))})
        parts.append("<p>Class balance (target distribution) per split:</p>" + table(balance))
        warns = []
        hashes = {s: row_hashes({k: v for k, v in sp.arrays.items()
                                 if k != self.prepared.schema.target})
                  for s, sp in self.prepared.splits.items()}
        train = set(hashes.get("train", []))
        dup = len(hashes.get("train", [])) - len(train)
        if dup:
            warns.append(f"{dup} training rows repeat another training row exactly.")
        for s, hs in hashes.items():
            if s != "train":
                leak = sum(h in train for h in hs)
                if leak:
                    warns.append(f"leakage: {leak} of {len(hs)} {s} rows are exact duplicates "
                                 "of training rows; their scores are optimistic.")
        for s, pairs in (man.get("leakage") or {}).items():
            if pairs and not any(w.startswith("leakage") and s in w for w in warns):
                warns.append(f"leakage: {len(pairs)} {s} images duplicate training images.")
        if man.get("skipped"):
            warns.append(f"{len(man['skipped'])} unreadable files were skipped, e.g. "
                         f"{man['skipped'][0].get('file')}.")
        if man.get("ignored_files"):
            warns.append(f"{len(man['ignored_files'])} files were ignored (outside class "
                         "folders or not images).")
        self.card_parts["data_warnings"] = warns
        parts += [f'<p class="warn">{esc(w)}</p>' for w in warns] or [
            "<p>No duplicate, leakage or skipped-file warnings.</p>"]
        self.add("data", "Data", "".join(parts))

    def _per_row_score(self) -> tuple[np.ndarray, str, bool]:
        name, per_row, root = headline(self.task.name, self.y, self.raw, self.probs, self.pred)
        return per_row, name, root

    def _slices(self) -> None:
        per_row, name, root = self._per_row_score()
        states = self.pkg.preprocessing
        rows = []
        groups: list[tuple[str, np.ndarray, list[str]]] = []
        if self.task.name in ("binary", "multiclass"):
            groups.append(("true class", self.y.astype(np.int64), self.task.labels))
        for col, st in states.items():
            if st["type"] == "category" and col in self.inputs:
                cats = ["missing", *st["categories"], "other"]
                groups.append((col, np.asarray(self.inputs[col], dtype=np.int64), cats))
            elif st["type"] == "boolean" and col in self.inputs:
                codes = np.round(np.asarray(self.inputs[col]) * 2).astype(np.int64)
                groups.append((col, codes, ["false", "missing", "true"]))
        for col, codes, names in groups:
            for v in np.unique(codes)[:50]:
                m = codes == v
                score = per_row[m].mean()
                rows.append({"slice": col, "value": names[v] if v < len(names) else str(v),
                             "rows": int(m.sum()),
                             name: float(np.sqrt(score) if root else score)})
        if not rows:
            return
        rows.sort(key=lambda r: (-r[name] if root else r[name]))
        self.card_parts["worst_slice"] = rows[0]
        self.add("slices", "Slices (worst first)",
                 f"<p>{esc(name)} per value of each category column and per class, with "
                 "counts; small slices are noisy.</p>" + table(rows[:60]))

    def _mistakes(self) -> np.ndarray:
        """Row indices of the most confident mistakes (largest errors for regression)."""
        if self.task.name == "regression":
            err = np.abs(self.pred - self.y)
            return np.argsort(-err)[:GALLERY]
        if self.task.name == "multilabel":
            wrong = np.flatnonzero(~np.all(self.pred == (self.y >= 0.5), axis=1))
            conf = np.abs(self.probs[wrong] - 0.5).max(1)
            return wrong[np.argsort(-conf)][:GALLERY]
        wrong = np.flatnonzero(self.pred != self.y)
        return wrong[np.argsort(-self.probs[wrong].max(1))][:GALLERY]

    def _gallery(self) -> None:
        from launchml.evaluate.charts import thumbnail

        idx = self._mistakes()
        if not len(idx):
            self.add("gallery", "Error gallery", "<p>No mistakes on the scored split.</p>")
            return
        labels = self.task.labels
        items = []
        image_col = self.predictor.image_column
        shown = readable_rows(self.pkg.preprocessing, self.inputs, idx)
        for i, row in zip(idx, shown, strict=True):
            if self.task.name == "regression":
                what = f"actual {self.y[i]:.4g}, predicted {self.pred[i]:.4g}"
            elif self.task.name == "multilabel":
                what = (f"true {[lab for k, lab in enumerate(labels) if self.y[i, k] >= 0.5]}, "
                        f"predicted {[lab for k, lab in enumerate(labels) if self.pred[i, k]]}")
            else:
                what = (f"true {labels[int(self.y[i])]}, predicted {labels[int(self.pred[i])]} "
                        f"({self.probs[i].max():.2f})")
            pic = (img(thumbnail(self.inputs[image_col][i]), f"row {i}") if image_col else "")
            text = "" if image_col else table([row])
            items.append(f"<figure>{pic}<figcaption>row {i}: {esc(what)}</figcaption>{text}"
                         "</figure>")
        self.add("gallery", "Error gallery (most confident mistakes)",
                 f'<div class="gallery">{"".join(items)}</div>')

    def _leaderboard(self) -> None:
        path = self.run.root / "leaderboard.json"
        members = self.pkg.meta["model"]["members"]
        body = ""
        if path.exists():
            board = read_json(path)
            if board:
                body += "<p>Families ranked on validation:</p>" + table(board)
        body += "<p>Served members and ensemble weights:</p>" + table(
            [{"family": m["family"], "weight": float(m["weight"])} for m in members])
        self.card_parts["members"] = members
        self.add("leaderboard", "Model selection", body)

    def _variants(self) -> None:
        path = self.run.variants / "summary.json"
        if not path.exists():
            return
        summary = read_json(path)
        rows = summary.get("rows", []) if isinstance(summary, dict) else []
        if not rows:
            return
        picked = summary.get("picked")
        body = (f"<p>Picked for serving: <b>{esc(picked)}</b>.</p>" if picked else "") + table(
            [{**r, "picked": r.get("variant") == picked} for r in rows])
        self.card_parts["variants"] = (rows, picked)
        self.add("variants", "Optimized variants", body)

    def _importance(self) -> None:
        if self.predictor.image_column is not None:
            return
        from launchml.explain.core import applicable, explain_table
        from launchml.explain.render import bars_svg
        from launchml.explain.tabular import mean_abs, permutation_importance

        n = len(self.y)
        method = applicable(self.predictor)[0]
        pick = np.arange(n)
        if method != "tree_shap" and n > EXPLAIN_ROWS:
            pick = np.sort(np.random.default_rng(0).choice(n, EXPLAIN_ROWS, replace=False))
        sub = {k: np.asarray(v)[pick] for k, v in self.inputs.items()}
        start = time.perf_counter()
        found = explain_table(self.predictor, [{}] * len(pick), sub, [int(i) for i in pick],
                              method, None, tokens=False)
        spent = time.perf_counter() - start
        mean = mean_abs(found)
        perm = permutation_importance(self.predictor, self.inputs, self.y)
        self.card_parts["importance"] = list(mean.items())[:5]
        e = found[0] if found else None
        body = bars_svg(list(mean.items()), title="mean |contribution|",
                        xlabel=f"mean |contribution| to the {e.output if e else 'output'}")
        body += (f"<p>Method <code>{method}</code> on {len(pick)} rows of the {self.split} "
                 f"split; baseline: {esc(e.baseline if e else '')}; {spent:.2f} s.</p>")
        body += bars_svg(list(perm["importance"].items()), title="permutation importance",
                         xlabel=f"increase of the {perm['loss']} when the column is shuffled")
        body += (f"<p>Permutation importance on {perm['rows']} rows, {perm['repeats']} "
                 f"shuffles per column ({perm['loss']} {perm['base_loss']:.4g} unshuffled); "
                 f"{perm['seconds']:.2f} s.</p>")
        self.add("importance", "Global importance", body)

    def _explained(self) -> None:
        from launchml.explain.core import applicable, explain_table
        from launchml.explain.render import explanation_html

        n = len(self.y)
        if not n:
            return
        wrong = self._mistakes()[:2]
        if self.task.name == "regression":
            right = np.argsort(np.abs(self.pred - self.y))[:2]
        elif self.task.name == "multilabel":
            right = np.flatnonzero(np.all(self.pred == (self.y >= 0.5), axis=1))[:2]
        else:
            ok = np.flatnonzero(self.pred == self.y)
            right = ok[np.argsort(-self.probs[ok].max(1))][:2]
        blocks = []
        for kind, idx in (("right", right), ("wrong", wrong)):
            if not len(idx):
                continue
            sub = {k: np.asarray(v)[idx] for k, v in self.inputs.items()}
            names = [f"{self.split} row {i} ({kind})" for i in idx]
            if self.predictor.image_column is not None:
                from launchml.explain.gradients import explain_images

                found = []
                for m in applicable(self.predictor):
                    found += explain_images(self.predictor, sub, names, m, None)
            else:
                shown = readable_rows(self.pkg.preprocessing, self.inputs, idx)
                found = explain_table(self.predictor, shown, sub, names,
                                      applicable(self.predictor)[0], None)
            blocks += [explanation_html(e) for e in found]
        self.add("explained", "Explained examples (right and wrong)",
                 "<p>Red pushes towards the explained output, blue against it.</p>"
                 + "".join(blocks))

    def _privacy(self) -> None:
        privacy = privacy_settings(self.pkg.meta, self.metrics)
        if not privacy:
            return
        self.card_parts["privacy"] = privacy
        self.add("privacy", "Privacy", table([{"setting": k, "value": v}
                                              for k, v in flatten(privacy).items()]))

    # -- rendering -------------------------------------------------------------
    def html(self) -> str:
        nav = " ".join(f'<a href="#{k}">{esc(t)}</a>' for k, t, _ in self.sections)
        body = "".join(f'<section id="{k}"><h2>{esc(t)}</h2>{b}</section>'
                       for k, t, b in self.sections)
        body += f'<section id="card"><h2>Model card</h2>{card_html(self.card())}</section>'
        title = f"launchml report: {self.run.root.name}"
        return ("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
                '<meta name="viewport" content="width=device-width, initial-scale=1">'
                f"<title>{esc(title)}</title><style>{CSS}</style></head><body><main>"
                f"<h1>{esc(title)}</h1><nav>{nav} <a href=\"#card\">Model card</a></nav>"
                f"{body}<p>Built in {sum(self.seconds.values()):.1f} s.</p></main></body></html>")

    def card(self) -> str:
        from launchml.evaluate.card import model_card

        return model_card(self)


def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def privacy_settings(meta: dict[str, Any], metrics: dict[str, Any]) -> dict[str, Any]:
    """The ``privacy`` section of package.json, its metrics, or the run's metrics."""
    for source in (meta, meta.get("metrics", {}), metrics):
        value = source.get("privacy") if isinstance(source, dict) else None
        if isinstance(value, dict) and value:
            return value
    return {}


def card_html(markdown: str) -> str:
    """The model card's Markdown, shown as preformatted text (no Markdown renderer)."""
    return f'<pre style="white-space:pre-wrap">{esc(markdown)}</pre>'


def write_report(run: RunDir, predictor: Predictor, prepared: Prepared, split: str,
                 metrics: dict[str, Any], raw: np.ndarray, *,
                 path: Path | None = None) -> Path:
    """Write ``evaluation/report.html`` (or ``path``) and ``MODEL_CARD.md`` beside it;
    return the report's path."""
    report = Report(run, predictor, prepared, split, metrics, raw).build()
    path = run.evaluation / "report.html" if path is None else Path(path)
    write_text(path, report.html())
    write_text(path.with_name("MODEL_CARD.md"), report.card())
    return path
