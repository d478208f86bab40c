"""Explanations of the model as it is served: one path for every kind of package.

    ex = launchml.load("runs/credit/model").explain(df.head(5))
    ex[0].contributions          # [(column, shown value, contribution), ...]
    ex.to_frame()                # one row per input and column

What is explained is the package's served output (``Predictor.logits``: every
member, the ensemble, the fitted preprocessing) for one output: the log-odds of
the positive label (binary), the raw score of the predicted class (multiclass,
the ensemble's log-probability), the value (regression) or the most probable
label's log-odds (multilabel). The threshold is reported beside it.

Methods, chosen by what the package holds (``method="auto"``), never by kind of
source; each names its baseline and its cost:

    tree_shap             a lone LightGBM: LightGBM's own exact TreeSHAP
                          (``pred_contrib``), the columns' parts summed
    shapley               any model: Shapley values of the input columns, exact
                          (2^k coalitions) up to ``EXACT_MAX`` columns, else
                          antithetic permutation sampling; absent columns take
                          the baseline row (every input missing: numbers at the
                          training median, categories 'missing', text empty) or
                          the mean over ``background`` rows
    integrated_gradients  image networks (Captum), baseline a black image
    grad_cam              convolutional image networks (Captum's LayerGradCam) at the
                          activations after the last convolution with a map of 7x7
                          or more
    hires_cam             the same layer, gradient x activation per position (HiResCAM)

Sequence columns (text, SMILES, protein) also get attributions per token or
character: layer integrated gradients on the embeddings when every member is a
neural network, the exact n-gram contributions of a lone linear model, and
Shapley values of the tokens (absent ones replaced by padding) otherwise.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from launchml.data.schema import SEQUENCE_TYPES
from launchml.errors import InputError

if TYPE_CHECKING:
    from launchml.deploy.predictor import Predictor

EXACT_MAX = 10  # columns up to which Shapley values are exact (2^10 coalitions)
PERMUTATIONS = 16  # antithetic pairs beyond that, and for tokens
BATCH_ROWS = 16384  # model rows evaluated per call
METHODS = ("auto", "tree_shap", "shapley", "integrated_gradients", "grad_cam", "hires_cam")


@dataclass
class Explanation:
    """Why one input gets its answer. ``value`` = ``base_value`` + the contributions
    (exactly for tree_shap, shapley and the linear tokens; within the integral's
    error for integrated gradients)."""

    input: Any
    prediction: dict[str, Any]
    output: str  # what is explained, in its units
    method: str
    baseline: str
    value: float
    base_value: float
    contributions: list[tuple[str, Any, float]] = field(default_factory=list)
    tokens: dict[str, list[tuple[str, float]]] = field(default_factory=dict)
    token_method: str | None = None
    heatmap: np.ndarray | None = None  # images: H x W attribution per pixel
    image: np.ndarray | None = None  # images: the decoded input (H x W x C uint8)
    cost: dict[str, Any] = field(default_factory=dict)

    def top(self, n: int = 5) -> list[tuple[str, Any, float]]:
        return sorted(self.contributions, key=lambda c: -abs(c[2]))[:n]

    def summary(self, n: int = 3) -> str:
        """One line: the answer and its main reasons."""
        said = answer(self.prediction)
        parts = [f"{c}={_short(v)} ({w:+.3g})" for c, v, w in self.top(n)]
        for col, toks in self.tokens.items():
            best = sorted(toks, key=lambda t: -abs(t[1]))[:n]
            parts.append(f"{col}: " + ", ".join(f"{t!r} ({a:+.3g})" for t, a in best))
        if self.heatmap is not None:
            h, w = self.heatmap.shape
            y, x = np.unravel_index(int(np.argmax(np.abs(self.heatmap))), self.heatmap.shape)
            parts.append(f"strongest at x={x}, y={y} of {w}x{h}")
        return f"{self.input}: {said} - {self.method}: " + "; ".join(parts)

    def to_dict(self, *, heatmap: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            "input": self.input, "prediction": self.prediction, "output": self.output,
            "method": self.method, "baseline": self.baseline, "value": self.value,
            "base_value": self.base_value, "cost": self.cost,
            "contributions": [{"column": c, "value": _jsonable(v), "contribution": w}
                              for c, v, w in self.top(len(self.contributions))]}
        if self.tokens:
            out["token_method"] = self.token_method
            out["tokens"] = {c: [{"token": t, "attribution": a} for t, a in toks]
                             for c, toks in self.tokens.items()}
        if self.heatmap is not None:
            out["heatmap_shape"] = list(self.heatmap.shape)
            if heatmap:
                out["heatmap"] = np.round(self.heatmap, 6).tolist()
        return out


class Explanations(list):
    """A list of ``Explanation``, with table and file views."""

    def to_records(self) -> list[dict[str, Any]]:
        """One record per input and column (tables) / token (sequences)."""
        out = []
        for e in self:
            head = {"input": e.input, "prediction": answer(e.prediction), "output": e.output,
                    "method": e.method, "base_value": e.base_value, "value": e.value}
            for c, v, w in e.contributions:
                out.append({**head, "column": c, "shown": _jsonable(v), "contribution": w})
            for c, toks in e.tokens.items():
                for i, (t, a) in enumerate(toks):
                    out.append({**head, "method": e.token_method, "column": f"{c}[{i}]",
                                "shown": t, "contribution": a})
        return out

    def to_frame(self) -> Any:
        import pandas as pd

        return pd.DataFrame(self.to_records())


def answer(pred: dict[str, Any]) -> str:
    if "label" in pred:
        return f"{pred['label']} ({max(pred.get('probabilities', {1: 1.0}).values()):.2f})"
    if "value" in pred:
        return f"{pred['value']:.4g}"
    return str(pred.get("labels"))


def _short(v: Any) -> str:
    s = f"{v:.4g}" if isinstance(v, float) else str(v)
    return s if len(s) <= 24 else s[:21] + "..."


def _jsonable(v: Any) -> Any:
    if isinstance(v, np.generic):
        return v.item()
    if v is None or isinstance(v, bool | int | float | str):
        return None if isinstance(v, float) and math.isnan(v) else v
    return str(v)


# -- what is explained ---------------------------------------------------------------
def targets(predictor: Predictor, raw: np.ndarray, target: str | None) -> np.ndarray:
    """Which output column of the raw outputs is explained, per row."""
    task = predictor.task
    labels = task.labels
    if target is not None:
        if task.name == "regression" or target not in labels:
            raise InputError(f"target {target!r} is not a label of this model"
                             + (f"; its labels are {labels}" if labels else
                                " (a regression model has one output)")
                             + ". Fix: pass one of them, or no target.")
        i = labels.index(target)
        return np.full(len(raw), 0 if task.name == "binary" else i)
    if task.name == "multiclass":
        return np.argmax(raw, axis=1)
    if task.name == "multilabel":
        return np.argmax(raw, axis=1)
    return np.zeros(len(raw), dtype=np.int64)


def output_name(predictor: Predictor, t: int) -> str:
    task = predictor.task
    if task.name == "regression":
        return "predicted value"
    if task.name == "binary":
        thr = predictor.package.threshold
        return (f"log-odds of '{task.labels[1]}'" +
                (f" (decision threshold {thr:.3g} on its probability)" if thr is not None
                 else ""))
    if task.name == "multilabel":
        return f"log-odds of label '{task.labels[t]}'"
    members = predictor.package.meta["model"]["members"]
    return (f"log-probability of '{task.labels[t]}' (ensemble)" if len(members) > 1 else
            f"raw score (logit) of '{task.labels[t]}'")


def column_keys(states: dict[str, Any], arrays: dict[str, np.ndarray]) -> dict[str, list[str]]:
    """Input column -> the names of its prepared arrays ('age', 'age:missing', ...)."""
    return {c: [k for k in arrays if k == c or k.startswith(c + ":")] for c in states}


def baseline_arrays(predictor: Predictor) -> dict[str, np.ndarray]:
    """The prepared arrays of one row with every input missing: numbers at their
    training median, categories 'missing', booleans half-way, text empty."""
    import pandas as pd

    from launchml.data.preprocess import transform_column

    out: dict[str, np.ndarray] = {}
    for name, state in predictor.package.preprocessing.items():
        if state["type"] == "image":  # a missing image is an error in predict; black here
            h, w = state["target_size"]
            out[name] = np.zeros((1, h, w, state.get("channels", 3)), dtype=np.uint8)
            continue
        out.update(transform_column(name, state, pd.Series([None], dtype=object)))
    return out


# -- Shapley values (the one model-agnostic engine) ----------------------------------
def n_coalitions(k: int, *, exact_max: int = EXACT_MAX, permutations: int = PERMUTATIONS
                 ) -> int:
    """How many coalitions ``shapley`` evaluates for ``k`` players."""
    return 2 ** k if k <= exact_max else 2 * permutations * (k + 1)


def shapley(value: Callable[[np.ndarray], np.ndarray], k: int, *, exact_max: int = EXACT_MAX,
            permutations: int = PERMUTATIONS, seed: int = 0) -> tuple[Any, Any, Any, int, str]:
    """Shapley values of ``k`` players for the game ``value(masks (M, k) bool) -> (M,)``,
    or of several games at once (``-> (R, M)``, one row per game: phi is then R x k).

    Exact up to ``exact_max`` players; beyond, ``permutations`` antithetic pairs of
    random orders (the same for every game). Both add up exactly to value(all) -
    value(none). Returns (phi, value(all), value(none), evaluations, 'exact' | 'sampled').
    """
    if k == 0:
        v = np.asarray(value(np.zeros((1, 0), dtype=bool)), dtype=np.float64)
        return np.zeros(v.shape[:-1] + (0,)), v[..., 0], v[..., 0], 1, "exact"
    if k <= exact_max:
        ids = np.arange(2 ** k)
        masks = ((ids[:, None] >> np.arange(k)) & 1).astype(bool)
        v = np.asarray(value(masks), dtype=np.float64)
        size = masks.sum(1)
        w = np.array([math.factorial(s) * math.factorial(k - s - 1) / math.factorial(k)
                      for s in range(k)])
        phi = np.zeros(v.shape[:-1] + (k,))
        for i in range(k):
            without = ids[~masks[:, i]]
            phi[..., i] = np.sum(w[size[without]] * (v[..., without | (1 << i)]
                                                     - v[..., without]), axis=-1)
        return phi, v[..., -1], v[..., 0], len(masks), "exact"
    rng = np.random.default_rng(seed)
    orders = []
    for _ in range(permutations):
        p = rng.permutation(k)
        orders += [p, p[::-1]]
    masks = np.zeros((len(orders) * (k + 1), k), dtype=bool)
    for o, order in enumerate(orders):
        for step in range(1, k + 1):
            masks[o * (k + 1) + step, order[:step]] = True
    v = np.asarray(value(masks), dtype=np.float64)
    v = v.reshape(v.shape[:-1] + (len(orders), k + 1))
    phi = np.zeros(v.shape[:-2] + (k,))
    for o, order in enumerate(orders):
        phi[..., order] += np.diff(v[..., o, :], axis=-1)
    phi /= len(orders)
    return phi, v[..., 0, -1], v[..., 0, 0], len(masks), "sampled"


def batched(f: Callable[[dict[str, np.ndarray]], np.ndarray], arrays: dict[str, np.ndarray],
            n: int) -> np.ndarray:
    """``f`` over ``n`` rows of ``arrays``, ``BATCH_ROWS`` at a time."""
    return np.concatenate([f({k: v[s:s + BATCH_ROWS] for k, v in arrays.items()})
                           for s in range(0, n, BATCH_ROWS)])


def column_game(f: Callable[[dict[str, np.ndarray]], np.ndarray], rows: dict[str, np.ndarray],
                background: dict[str, np.ndarray], groups: list[list[str]],
                targets: np.ndarray | None = None) -> Callable[[np.ndarray], np.ndarray]:
    """The games of the input columns of ``rows`` (R rows, evaluated together): present
    columns from the row, absent ones from each background row, the output averaged over
    the background rows. ``f`` gives one output per row, or all of them (N x outputs),
    of which ``targets`` picks one per explained row. value(masks) -> (R, M); (M,) when
    R is 1 and no targets are given."""
    b = len(next(iter(background.values())))
    r = len(next(iter(rows.values())))

    def value(masks: np.ndarray) -> np.ndarray:
        m = len(masks)
        arrays = {}
        for j, keys in enumerate(groups):
            take = np.tile(np.repeat(masks[:, j], b), r)  # R*M*B rows
            for key in keys:
                x, z = rows[key], background[key]
                tail = (1,) * (z.ndim - 1)
                arrays[key] = np.where(take.reshape((-1,) + tail),
                                       np.repeat(x, m * b, axis=0), np.tile(z, (r * m,) + tail))
        out = batched(f, arrays, r * m * b)
        if out.ndim == 2:
            pick = np.zeros(r, dtype=np.int64) if targets is None else targets
            out = out.reshape(r, m * b, -1)[np.arange(r), :, pick]
        v = out.reshape(r, m, b).mean(2)
        return v[0] if r == 1 and targets is None else v

    return value


def _rows(inputs: Any, rows: slice | None) -> Any:
    if rows is None:
        return inputs
    import pandas as pd

    if isinstance(inputs, pd.DataFrame):
        return inputs.iloc[rows]
    if isinstance(inputs, list | tuple):
        return list(inputs)[rows]
    return inputs  # a table file: sliced after reading (iter_table)


def parse_rows(text: str | None) -> slice | None:
    """'a:b' (as in Python) -> slice; 'a' -> that one row."""
    if not text:
        return None
    try:
        if ":" in text:
            a, b = text.split(":", 1)
            return slice(int(a) if a else None, int(b) if b else None)
        i = int(text)
        return slice(i, i + 1)
    except ValueError:
        raise InputError(f"--rows {text!r} is not a range. Fix: e.g. --rows 0:20 (rows 0 to "
                         "19) or --rows 5") from None


def _select(predictor: Predictor, inputs: Any, rows: slice | None,
            names: list[Any] | None = None
            ) -> Iterator[tuple[list[Any], dict[str, np.ndarray], list[Any]]]:
    """(shown inputs, prepared arrays, names) of the rows to explain, chunk by chunk."""
    import pandas as pd

    start = 0
    table_file = rows is not None and not isinstance(inputs, pd.DataFrame | list | tuple)
    for chunk, arrays, found in predictor.iter_arrays(_rows(inputs, rows), names):
        n = len(next(iter(arrays.values())))
        if isinstance(chunk, pd.DataFrame):
            index = list(range(start, start + n))
            if rows is not None and not table_file:
                index = list(range(*rows.indices(10 ** 12)))[start:start + n]
            shown = chunk.to_dict(orient="records")
            if table_file:  # a file is read in chunks: keep the rows asked for
                keep = [i for i, r in enumerate(index)
                        if r in range(*rows.indices(10 ** 12))]
                arrays = {k: v[keep] for k, v in arrays.items()}
                shown, index = [shown[i] for i in keep], [index[i] for i in keep]
            start += n
            if index:
                yield shown, arrays, index
            if table_file and rows.stop is not None and start >= rows.stop:
                return  # the rows asked for are read: the rest of the file is not
        else:
            yield list(chunk), arrays, list(found or range(start, start + n))
            start += n


def applicable(predictor: Predictor) -> list[str]:
    """The methods that apply to this package."""
    members = predictor.package.meta["model"]["members"]
    if predictor.image_column is not None:
        from launchml.explain.gradients import conv_layers

        ms = ["integrated_gradients"]
        if torch_members(predictor) and all(conv_layers(m.net) for m in
                                             torch_members(predictor)):
            ms += ["grad_cam", "hires_cam"]
        return ms
    ms = ["shapley"]
    if len(members) == 1 and members[0]["family"] == "lightgbm":
        ms.insert(0, "tree_shap")
    return ms


_TORCH: dict[int, Any] = {}


def torch_members(predictor: Predictor) -> list[Any]:
    """The members served by PyTorch (loaded once per predictor if it serves by ONNX)."""
    members = predictor._model.members
    if all(hasattr(m, "net") or not _neural(m) for m in members):
        return [m for m in members if hasattr(m, "net")]
    hit = _TORCH.get(id(predictor))
    if hit is None:
        from launchml.errors import PackageError
        from launchml.models.families import Ensemble

        pkg = predictor.package
        weights = pkg.meta["files"].get("weights")
        if not weights or not (pkg.path / weights).exists():
            raise PackageError(f"'{pkg.path}' holds only model.onnx; gradient explanations "
                               "need the PyTorch weights. Fix: explain the run's model/ "
                               "package, or use method='shapley'.")
        hit = _TORCH[id(predictor)] = Ensemble(pkg.path, pkg.meta["model"], predictor.task,
                                               pkg.preprocessing, "torch")
    return [m for m in hit.members if hasattr(m, "net")]


def _neural(member: Any) -> bool:
    return hasattr(member, "net") or hasattr(member, "session")


def explain(predictor: Predictor, inputs: Any, *, method: str = "auto",
            rows: slice | None = None, target: str | None = None,
            background: Any = None, names: list[Any] | None = None) -> Explanations:
    """Explain the served model's answer for each input (see the module docstring).

    ``inputs``: whatever ``Predictor.predict`` takes. ``rows``: a slice of a table's rows.
    ``target``: the label whose output is explained (default: as the module says).
    ``background``: rows (DataFrame, records or a table file) whose mean output is the
    baseline of ``shapley`` instead of the all-missing row. ``names``: the images'
    names in the explanations (default: their paths or positions).
    """
    if method not in METHODS:
        raise InputError(f"method {method!r} is not one of {', '.join(METHODS)}. Fix: "
                         f"method='auto' picks the one that applies "
                         f"({', '.join(applicable(predictor))}).")
    ok = applicable(predictor)
    if method == "auto":
        method = ok[0]
    elif method not in ok:
        raise InputError(_not_applicable(predictor, method, ok))
    out = Explanations()
    for shown, arrays, found in _select(predictor, inputs, rows, names):
        if method in ("integrated_gradients", "grad_cam", "hires_cam"):
            from launchml.explain.gradients import explain_images

            out += explain_images(predictor, arrays, found, method, target)
        else:
            out += explain_table(predictor, shown, arrays, found, method, target, background)
    return out


def _not_applicable(predictor: Predictor, method: str, ok: list[str]) -> str:
    model = predictor.package.meta["model"]
    families = "+".join(m["family"] for m in model["members"])
    why = {"grad_cam": "Grad-CAM needs a convolutional image network",
           "hires_cam": "HiResCAM needs a convolutional image network",
           "integrated_gradients": "integrated gradients here explain image networks "
           "(text columns get layer integrated gradients with method='shapley')",
           "tree_shap": "TreeSHAP (LightGBM's pred_contrib) explains a lone LightGBM "
           "model"}[method]
    return (f"method {method!r} does not apply to this model ({families}): {why}. "
            f"Fix: use method={ok[0]!r}" + (f" (or {', '.join(map(repr, ok[1:]))})"
                                             if len(ok) > 1 else "") + ".")


def explain_table(predictor: Predictor, shown: list[Any], arrays: dict[str, np.ndarray],
                  names: list[Any], method: str, target: str | None,
                  background: Any = None, *, tokens: bool = True) -> list[Explanation]:
    """Per-column contributions (tree_shap or shapley) and, for sequence columns,
    per-token attributions, one ``Explanation`` per row."""
    states = predictor.package.preprocessing
    raw = predictor.logits(arrays)
    t = targets(predictor, raw, target)
    preds = predictor.task.decode(raw, predictor.package.threshold)
    groups = column_keys(states, arrays)
    cols = [c for c in states if groups[c]]
    out = []
    if method == "tree_shap":
        from launchml.explain.tabular import tree_shap

        start = time.perf_counter()
        phi, base = tree_shap(predictor, arrays, cols, groups)
        each = (time.perf_counter() - start) / max(1, len(raw))
        for i in range(len(raw)):
            out.append(Explanation(
                input=names[i], prediction=preds[i], output=output_name(predictor, t[i]),
                method="tree_shap", baseline="the trees' expected output over the training "
                "rows (LightGBM pred_contrib, path-dependent TreeSHAP)",
                value=float(raw[i, t[i]]), base_value=float(base[i, t[i]]),
                contributions=[(c, _display(shown[i], c), float(phi[i, t[i], j]))
                               for j, c in enumerate(cols)],
                cost={"seconds": each, "evaluations": 1, "exact": True}))
    else:
        bg, bg_name = _background(predictor, background)
        nb = len(next(iter(bg.values())))
        # rows explained together: one model call for many rows' coalitions
        step = max(1, 4 * BATCH_ROWS // (n_coalitions(len(cols)) * nb))
        for s0 in range(0, len(raw), step):
            start = time.perf_counter()
            part = {k: v[s0:s0 + step] for k, v in arrays.items()}
            tr = np.asarray(t[s0:s0 + step], dtype=np.int64)
            phi, full, none, evals, kind = shapley(
                column_game(predictor.logits, part, bg, [groups[c] for c in cols], tr),
                len(cols))
            each = (time.perf_counter() - start) / len(tr)
            for r, i in enumerate(range(s0, s0 + len(tr))):
                out.append(Explanation(
                    input=names[i], prediction=preds[i], output=output_name(predictor, t[i]),
                    method="shapley", baseline=bg_name, value=float(full[r]),
                    base_value=float(none[r]),
                    contributions=[(c, _display(shown[i], c), float(phi[r, j]))
                                   for j, c in enumerate(cols)],
                    cost={"seconds": each, "evaluations": evals * nb,
                          "exact": kind == "exact", "batch": len(tr)}))
    seq = [c for c in cols if states[c]["type"] in SEQUENCE_TYPES]
    if seq and tokens:
        from launchml.explain.tokens import explain_tokens

        texts = {c: [_display(r, c) for r in shown] for c in seq}
        explain_tokens(predictor, arrays, seq, t, out, texts)
    return out


def _display(row: Any, column: str) -> Any:
    return row.get(column) if isinstance(row, dict) else None


def _background(predictor: Predictor, background: Any) -> tuple[dict[str, np.ndarray], str]:
    if background is None:
        return baseline_arrays(predictor), ("a row with every input missing (numbers at "
                                            "their training median, categories 'missing', "
                                            "text empty)")
    parts = [a for _, a, _ in predictor.iter_arrays(background)]
    arrays = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    n = len(next(iter(arrays.values())))
    if n > 64:  # the mean over 64 rows drawn at random (seeded): the cost grows with it
        pick = np.random.default_rng(0).choice(n, 64, replace=False)
        arrays, n = {k: v[pick] for k, v in arrays.items()}, 64
    return arrays, f"the mean output over {n} background rows"
