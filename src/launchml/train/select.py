"""Stage 2 for every kind of input: fit the families, rank them on validation,
ensemble, refit, package.

``model: auto`` tries every family that fits the data (lightgbm, linear, mlp for
tables, text and molecules, cheapest first; for a lone image column, as an image folder
is, seed_cnn, and with a ``model.time_limit`` also LightGBM on the pixels of small images
and ``timm:small_resnet`` trained from scratch with augmentation, label smoothing, a
cosine schedule and early stopping; any ``timm:<name>`` listed in ``model.families``)
within ``model.time_limit``: each family gets a share of the time left (``SHARE``), so
one that ends early leaves its time to the next; time left at the end, when LightGBM
leads, goes to a second LightGBM configuration (``lightgbm_extra``) for the ensemble. A
neural model of text or molecules is tried only while ``NEURAL_TEXT_SHARE`` of the time
is left. A family auto chose that cannot take the data is skipped with a warning. The leaderboard
(validation loss, accuracy or R2, fit seconds) is printed as it grows, with the time used
and the estimated total, and saved to ``leaderboard.json``; ``timing.json`` records the
limit and the seconds the stage took (fits and refits). A
weighted ensemble (greedy selection with replacement, Caruana et al. 2004) is
kept when it beats the best single family on validation. For binary targets
the decision threshold is tuned on the validation predictions. Then the chosen
members are refit on train + validation with the settings early stopping
found (trees and epochs scaled by the larger row count), as far as
``time_limit`` allows: a member whose refit would overrun it keeps its fit.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from launchml import console
from launchml.data.schema import Prepared, Split
from launchml.errors import ConfigError, ModelError, RunError
from launchml.models import is_network
from launchml.models.families import FAMILIES, FitContext, combine, create_family, family_class
from launchml.models.linear_family import validation_loss as _loss
from launchml.models.network_family import image_column
from launchml.package import save_package
from launchml.privacy import privacy_record, train_hooks
from launchml.runs import RunDir, append_jsonl, write_json
from launchml.tasks import Task, create_task
from launchml.train.trainer import TrainResult

ORDER = ("lightgbm", "linear", "mlp")  # cheapest first, so a time limit keeps the fast ones
# auto's image networks unless model.families lists others: the article's CNN and a small
# ResNet for small images trained from scratch (models/timm_family.py)
IMAGE_DEFAULT = ("seed_cnn", "timm:small_resnet")
EXTRA = "lightgbm_extra"  # a second LightGBM configuration, fit with time left over
EXTRA_SHARE = 0.25  # ... when at least this share of the selection time is left
# a neural model of text/molecule columns is tried only with this share of the selection
# time left after the cheap families: the linear TF-IDF model is hard to beat on less
NEURAL_TEXT_SHARE = 0.4
MIN_WEIGHT = 0.05  # ensemble members below this weight are dropped
SELECT_SHARE = 0.75  # of model.time_limit for fitting and ranking; the rest for refits
# model.cv_folds null: k-fold selection for tables of at most CV_MAX_ROWS train + validation
# rows with only these column types (on 426 rows of breast_cancer an 85-row validation split
# chose the mlp, LightGBM or the linear model by noise across seeds)
CV_FOLDS, CV_MAX_ROWS = 5, 2000
CV_TYPES = ("number", "category", "boolean", "datetime")


def _xy(split: Split | None, target: str):
    if split is None:
        return None
    arrays = dict(split.arrays)
    return arrays, arrays.pop(target)


def _fits(name: str, states: dict[str, Any], task: Task) -> bool:
    return family_class(name).applies(states) and not (
        name == "lightgbm" and task.name == "multilabel")


def choose_families(cfg: Any, states: dict[str, Any], task: Task) -> list[str]:
    name = cfg.model.name
    fits = [f for f in (*ORDER, *IMAGE_DEFAULT) if _fits(f, states, task)]
    if name != "auto":
        if not _fits(name, states, task):
            raise ConfigError(f"model.name: {name} does not fit this data (column types "
                              f"{sorted({s['type'] for s in states.values()})}, task "
                              f"{task.name}). Fix: model.name: auto, or one of {fits}.")
        return [name]
    if image_column(states) is not None and cfg.model.time_limit is None:
        # no budget given: the article's CNN alone, as an image folder always trained; with
        # model.time_limit, auto spends it on the pixels' LightGBM (small images), seed_cnn
        # and the small ResNet
        fits = [f for f in fits if f == IMAGE_DEFAULT[0]]
    elif image_column(states) is not None and _pretrained(cfg) is not None:
        fits.append(_pretrained(cfg)[0])  # weights at hand locally: fine-tune them too
    wanted = cfg.model.families or fits
    unknown = [f for f in wanted if f not in FAMILIES and not is_network(f)]
    if unknown:
        raise ConfigError(f"model.families: unknown {unknown}; the families are "
                          f"{list(FAMILIES)}, seed_cnn and timm:<name>")
    picked = [f for f in ORDER if f in wanted and f in fits]
    picked += [f for f in wanted if is_network(f) and _fits(f, states, task)]
    if not picked:
        raise ConfigError(f"model.families {wanted}: none fits this data; fitting: {fits}")
    return picked


def baseline_loss(task: Task, y_train: np.ndarray, y_valid: np.ndarray) -> float:
    """Validation loss of the constant model fit on train: the class (or label)
    frequencies, or the mean value. A family at or above it learned nothing."""
    n = len(y_valid)
    if task.name == "regression":
        raw = np.full((n, 1), float(np.mean(y_train)))
    elif task.name == "multiclass":
        counts = np.bincount(y_train.astype(np.int64), minlength=task.num_outputs) + 1.0
        raw = np.tile(np.log(counts / counts.sum()), (n, 1))
    else:  # binary, multilabel: per-output logits of the positive rates
        p = np.clip(np.asarray(y_train, dtype=np.float64).reshape(len(y_train), -1).mean(0),
                    1e-6, 1 - 1e-6)
        raw = np.tile(np.log(p / (1 - p)), (n, 1))
    return _loss(task, y_valid, raw.reshape(n, -1) if task.num_outputs > 1 else raw)


def _baseline_name(task: Task) -> str:
    return "the training mean" if task.name == "regression" else "the training class rates"


def _scores(task: Task, y: np.ndarray, raw: np.ndarray) -> dict[str, float]:
    m = task.metrics(y, raw)
    keys = ("accuracy", "log_loss", "roc_auc", "f1_macro") if task.name != "regression" \
        else ("rmse", "mae", "r2")
    return {k: round(float(m[k]), 6) for k in keys if k in m}


def ensemble_pool(ranked: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The ranked families the ensemble may combine: a package holds one neural member (its
    weights.safetensors, ONNX export and optimize variants), so the best network or mlp
    only, beside every other family."""
    neural = [r["family"] for r in ranked if r["family"] == "mlp" or is_network(r["family"])]
    return [r for r in ranked if r["family"] not in neural[1:]]


def ensemble_weights(task: Task, raws: list[np.ndarray], y: np.ndarray,
                     rounds: int = 25) -> np.ndarray:
    """Greedy forward selection with replacement on validation loss."""
    counts = np.zeros(len(raws))
    for _ in range(rounds):
        losses = []
        for m in range(len(raws)):
            trial = counts.copy()
            trial[m] += 1
            keep = trial > 0
            losses.append(_loss(task, y, combine(task, [r for r, k in zip(raws, keep,
                                                                          strict=True) if k],
                                                 list(trial[keep]))))
        counts[int(np.argmin(losses))] += 1
    return counts / counts.sum()


def train_families(cfg: Any, rd: RunDir, prepared: Prepared, *,
                   resume: bool = False, spent: float = 0.0) -> TrainResult:
    """Fit, rank, ensemble and refit the families for ``cfg``; write the model package.
    ``spent``: seconds the prepare stage of the same run took, out of model.time_limit."""
    from launchml.tasks.classification import tune_threshold

    schema, states = prepared.schema, prepared.preprocessing
    task = create_task(schema.task, schema.labels)
    train, valid = _xy(prepared.split("train"), schema.target), \
        _xy(prepared.split("validation"), schema.target)
    if train is None:
        raise RunError("the train split is empty: nothing to train on")
    names = choose_families(cfg, states, task)
    folds = cv_folds(cfg, states, train, valid, names, task)
    pooled = _concat(train, valid) if folds else None
    # what the families are ranked, weighed and thresholded on: the validation split, or
    # every train + validation row predicted by the fold model that did not see it
    scored = pooled if folds else valid
    if not resume:  # a new model: nothing of an earlier one may stay in the package
        shutil.rmtree(rd.model, ignore_errors=True)
        rd.events.unlink(missing_ok=True)
    if valid is None and len(names) > 1:
        console.warn("train: no validation rows, so families cannot be compared; training "
                     f"{names[0]} only. Fix: data.validation_split > 0 to let auto choose.")
        names = names[:1]
    weights = None
    if cfg.model.class_weight == "balanced" and task.name != "regression":
        weights = task.balanced_weights(np.asarray(train[1])).numpy()
    limit = train_budget(cfg.model.time_limit, spent)
    refits = bool(cfg.model.refit) and valid is not None
    # selection gets SELECT_SHARE of the budget and the refits the rest, so a slow family
    # (the mlp, last) cannot leave the chosen ones without their refit
    select = None if limit is None else limit * (SELECT_SHARE if refits else 1.0)
    if folds:
        console.info(f"train: ranking on {len(folds)}-fold cross-validation over the "
                     f"{len(pooled[1])} train + validation rows, then a refit on all of them "
                     "(model.cv_folds; 0: rank on the validation split)")
    if limit is not None:
        console.info(f"train: estimated time {limit:.0f}s at most: {', '.join(names)} within "
                     f"{limit:.0f}s (model.time_limit"
                     + (f": {select:.0f}s to fit and rank, the rest to refit)" if refits
                        else ")"))
    start = time.perf_counter()
    fitted, board = {}, []
    queue = list(names)
    sequences = any(s["type"] in ("text", "molecule", "protein") for s in states.values())
    while queue:
        name = queue.pop(0)
        left = None if select is None else select - (time.perf_counter() - start)
        if left is not None and left <= 0 and fitted:
            board.append({"family": name, "skipped": "time limit reached"})
            console.info(f"train: {name} skipped (time limit {limit:.0f}s reached)")
            continue
        if (name == "mlp" and sequences and fitted and left is not None
                and left < NEURAL_TEXT_SHARE * select):
            board.append({"family": name, "skipped": "too little time for a neural text "
                          "model"})
            console.info(f"train: {name} skipped ({left:.0f}s left of {select:.0f}s: a neural "
                         "model of text needs more to pay for itself)")
            continue
        # this family's share of what is left, by SHARE weights of it and the ones after it
        # (a family that ends early leaves its time to the next ones)
        share = None if left is None else left * _weight(name) / (
            _weight(name) + sum(_weight(q) for q in queue))
        ctx = FitContext(task=task, states=states, cfg=_recipe(cfg, name), run=rd,
                         time_limit=share,
                         weights=weights, resume=resume, single=len(names) == 1,
                         fingerprint=prepared.manifest["fingerprint"],
                         make_hooks=lambda: train_hooks(cfg))
        t0 = time.perf_counter()
        console.info(f"train: fitting {name}")
        try:
            with _smoothing(task, name, cfg):
                if folds:
                    fam, raw = fit_folds(name, ctx, pooled, folds)
                else:
                    fam = create_family(name, ctx).fit(train, valid)
                    raw = None if valid is None else fam.predict_raw(valid[0])
        except ModelError as e:
            if cfg.model.name != "auto" or cfg.model.families or len(names) == 1:
                raise
            # a family auto chose itself that cannot take this data (seed_cnn and images
            # under 22 pixels): the others go on
            board.append({"family": name, "skipped": f"cannot fit: {e}"})
            console.warn(f"train: {name} skipped: {e}")
            continue
        row: dict[str, Any] = {"family": name, "fit_seconds": round(time.perf_counter() - t0, 3),
                               **fam.info()}
        if folds:
            row["validation"] = f"{len(folds)}-fold out-of-fold"
        if scored is not None:
            row["validation_loss"] = round(_loss(task, scored[1], raw), 6)
            row.update(_scores(task, scored[1], raw))
            fam.val_raw = raw
            base = baseline_loss(task, np.asarray(train[1]), np.asarray(scored[1]))
            if row["validation_loss"] >= base:
                row["below_baseline"] = True
                console.warn(f"train: {name} is no better than the constant baseline on "
                             f"validation (loss {row['validation_loss']:.4f} vs "
                             f"{base:.4f} for {_baseline_name(task)}); it learned nothing "
                             "usable. Check the features and train.* settings.")
        fitted[name] = fam
        board.append(row)
        _progress(board, start, limit, queue)
        if (not queue and limit is not None and valid is not None and EXTRA not in fitted
                and _best(board) == "lightgbm" and cfg.model.name == "auto"
                and select - (time.perf_counter() - start) > max(
                    EXTRA_SHARE * select, 2 * row_seconds(board, "lightgbm"))):
            queue.append(EXTRA)  # time left over: another configuration of the best family
    if not fitted:
        raise RunError("train: no family could fit this data: " + "; ".join(
            f"{r['family']}: {r.get('skipped')}" for r in board))
    ranked = sorted((r for r in board if "validation_loss" in r),
                    key=lambda r: r["validation_loss"])
    members = {ranked[0]["family"] if ranked else names[0]: 1.0}
    pool = ensemble_pool(ranked)
    if scored is not None and cfg.model.ensemble and len(pool) > 1:
        raws = [fitted[r["family"]].val_raw for r in pool]
        w = ensemble_weights(task, raws, scored[1])
        w = np.where(w < MIN_WEIGHT, 0.0, w)  # a 4% member is not worth its refit and latency
        w = w / w.sum()
        ens_raw = combine(task, raws, list(w))
        ens = {"family": "ensemble", "validation_loss": round(_loss(task, scored[1], ens_raw),
                                                              6),
               **_scores(task, scored[1], ens_raw),
               "weights": {r["family"]: round(float(x), 4) for r, x in zip(pool, w,
                                                                           strict=True) if x}}
        board.append(ens)
        if ens["validation_loss"] < ranked[0]["validation_loss"] - 1e-9:
            members = dict(ens["weights"])
    threshold = _threshold(cfg, task, scored, fitted, members, tune_threshold)
    _print_board(board, members)
    refit_seconds: dict[str, float] = {}
    if cfg.model.refit and valid is not None:
        data = pooled if folds else _concat(train, valid)
        # the refit's rows over those the kept model was fit on (a fold's, with folds)
        grow = len(data[1]) / (len(data[1]) - len(folds[-1][1]) if folds else len(train[1]))
        # one fit's seconds (a family's row with folds holds all k of them)
        seconds = {r["family"]: r["fit_seconds"] / (len(folds) if folds else 1)
                   for r in board if "fit_seconds" in r}
        for name in members:
            elapsed = time.perf_counter() - start
            # a family that knows its refit costs less than its fit (no search) says so
            estimate = fitted[name].refit_seconds(grow) if hasattr(
                fitted[name], "refit_seconds") else seconds[name] * grow
            if limit is not None and elapsed + estimate > limit:
                console.info(f"train: {name} not refit on train + validation (about "
                             f"{estimate:.0f}s; time limit {limit:.0f}s); it "
                             "keeps the model fit on " + ("one fold's rows" if folds
                                                          else "train"))
                continue
            t0 = time.perf_counter()
            with _smoothing(task, name, cfg):
                fitted[name].refit(data, grow)
            refit_seconds[name] = round(time.perf_counter() - t0, 3)
            console.info(f"train: refit {name} on train + validation "
                         f"({len(data[1])} rows) in {time.perf_counter() - t0:.1f}s")
    rd.model.mkdir(parents=True, exist_ok=True)
    specs, files = [], {}
    for name, weight in members.items():
        spec = fitted[name].save(rd.model)
        files.update(spec["files"])
        specs.append({"family": name, "weight": weight, **spec})
    write_json(rd.root / "leaderboard.json", board)
    timing = {"time_limit": cfg.model.time_limit, "prepare_seconds": round(spent, 3),
              "train_budget": limit, "seconds": round(time.perf_counter() - start, 3),
              "selection": f"{len(folds)}-fold cross-validation" if folds else
              "validation split" if valid is not None else "none",
              "families": {r["family"]: r["fit_seconds"] for r in board if "fit_seconds" in r},
              "refits": refit_seconds}
    write_json(rd.root / "timing.json", timing)  # what the run took, against its limit
    for r in board:  # after any epoch lines a network family's trainer wrote
        append_jsonl(rd.events, {"event": "family", **r})
    cfg_dict = cfg.model_dump(mode="json")
    first = fitted[next(iter(members))]
    history, best_epoch = getattr(first, "history", board), getattr(first, "best_epoch", 0)
    privacy = privacy_record(getattr(first, "hooks", []))  # DP-SGD's epsilon, delta, ...
    if privacy:
        append_jsonl(rd.events, {"event": "privacy", **privacy})
    metrics: dict[str, Any] = {"leaderboard": board}
    if hasattr(first, "history"):  # a network: its best epoch's scores, as before
        metrics["train"] = next((h for h in history if h["epoch"] == best_epoch), {})
        metrics["best_epoch"] = best_epoch
    save_package(
        rd.model, schema=schema, source=cfg.data.kind, threshold=threshold,
        model_spec={"name": cfg.model.name, "members": specs},
        preprocessing=states, metrics=metrics, files=files,
        provenance={"data_fingerprint": prepared.manifest["fingerprint"], "config": cfg_dict,
                    "reader": prepared.manifest.get("reader", {}),
                    "train_settings": getattr(first, "settings", {"families": names})},
        privacy=privacy,
    )
    cfg.save(rd.config)
    console.info(f"train: model package -> {rd.model}")
    return TrainResult(model=getattr(first, "net", None), history=history,
                       best_epoch=best_epoch,
                       best_metric=float(ranked[0]["validation_loss"]) if ranked else
                       float("nan"), settings={**getattr(first, "settings", {}),
                                               "families": names, "members": members})


MIN_TRAIN_SHARE = 0.1  # of model.time_limit, for training however long prepare took


def train_budget(limit: float | None, spent: float) -> float | None:
    """The train stage's seconds: what prepare (``spent``) left of model.time_limit, which
    bounds the two together (AutoGluon's time_limit includes its preprocessing), and at
    least ``MIN_TRAIN_SHARE`` of it."""
    if limit is None or spent <= 0:
        return limit
    left = limit - spent
    if left < MIN_TRAIN_SHARE * limit:
        console.warn(f"train: prepare took {spent:.0f}s of model.time_limit {limit:.0f}s; "
                     f"training gets {MIN_TRAIN_SHARE * limit:.0f}s (the run will end about "
                     f"{spent + MIN_TRAIN_SHARE * limit - limit:.0f}s late). Fix: a larger "
                     "model.time_limit")
        return MIN_TRAIN_SHARE * limit
    if spent >= 1:
        console.info(f"train: {left:.0f}s of model.time_limit {limit:.0f}s left after "
                     f"prepare ({spent:.0f}s)")
    return left


def cv_folds(cfg: Any, states: dict[str, Any], train: Any, valid: Any, names: list[str],
             task: Task) -> list[tuple[np.ndarray, np.ndarray]] | None:
    """The (fit rows, held-out rows) index pairs of k-fold selection over train +
    validation, or None for selection on the validation split (``model.cv_folds``)."""
    asked = cfg.model.cv_folds
    if asked == 0:
        return None
    why = ("no validation rows" if valid is None else "one family to train" if len(names) < 2
           else "model.refit is false (the folds' choice is refit on all rows)"
           if not cfg.model.refit else None)
    y = None if valid is None else np.concatenate([train[1], valid[1]])
    k = asked or CV_FOLDS
    if why is None and y is not None:
        counts = np.unique(np.asarray(y, dtype=np.int64), return_counts=True)[1] \
            if task.name in ("binary", "multiclass") else None
        if len(y) < 4 * k:
            why = f"{len(y)} rows are too few for {k} folds"
        elif task.name == "multilabel":
            why = "multilabel targets (a label can be constant within a fold)"
        elif counts is not None and counts.min() < 2:
            why = "a class has a single row (a fold would train without it)"
        elif asked is None and (len(y) > CV_MAX_ROWS or any(
                s["type"] not in CV_TYPES for s in states.values())):
            return None  # the default: small tables of plain columns only
    if why is not None:
        if asked:
            console.warn(f"train: model.cv_folds {asked} does not apply ({why}); ranking on "
                         "the validation split")
        return None
    from sklearn.model_selection import KFold, StratifiedKFold

    rows = np.arange(len(y))
    if counts is not None:  # stratified: a class with c < k rows is in c - 1 fits at least
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "least populated class ..."
            return list(StratifiedKFold(k, shuffle=True, random_state=cfg.seed).split(rows, y))
    return list(KFold(k, shuffle=True, random_state=cfg.seed).split(rows))


def fit_folds(name: str, ctx: FitContext, pooled: Any,
              folds: list[tuple[np.ndarray, np.ndarray]]) -> tuple[Any, np.ndarray]:
    """Fit ``name`` once per fold (each within its part of the family's time); returns the
    last fold's model (its early-stopping settings drive the refit on all rows) and the
    out-of-fold raw outputs of every row."""
    import dataclasses

    def rows(idx: np.ndarray) -> Any:
        return {k: v[idx] for k, v in pooled[0].items()}, pooled[1][idx]

    # a fresh start per fold: a network resuming a checkpoint of another fold would score
    # rows it trained on
    fold_ctx = dataclasses.replace(ctx, single=False, resume=False,
                                   time_limit=None if ctx.time_limit is None
                                   else ctx.time_limit / len(folds))
    oof = None
    for fit_rows, held in folds:
        fam = create_family(name, fold_ctx).fit(rows(fit_rows), rows(held))
        raw = fam.predict_raw(rows(held)[0])
        if oof is None:
            oof = np.zeros((len(pooled[1]), *raw.shape[1:]), dtype=raw.dtype)
        oof[held] = raw
    fam.ctx = ctx  # the refit runs as the family's own
    return fam, oof


def _threshold(cfg: Any, task: Task, valid: Any, fitted: dict, members: dict[str, float],
               tune: Any) -> float | None:
    choice = cfg.model.threshold
    if task.name != "binary" or choice == "none":
        return None
    if not isinstance(choice, str):
        return float(choice)
    if valid is None:
        return None
    raw = combine(task, [fitted[n].val_raw for n in members], list(members.values()))
    t = float(tune(np.asarray(valid[1]), task.probabilities(raw)[:, 1], choice))
    console.info(f"train: decision threshold {t:.3f} (tuned for {choice} on the "
                 f"{len(valid[1])} rows the families were ranked on)")
    return t


def _concat(a: Any, b: Any) -> tuple[dict[str, np.ndarray], np.ndarray]:
    arrays = {k: np.concatenate([a[0][k], b[0][k]]) for k in a[0]}
    return arrays, np.concatenate([a[1], b[1]])


# LightGBM and the linear model: the strong learners that pay for their time on every kind
# (the linear TF-IDF model on text); the neural ones 1
SHARE = {"lightgbm": 2.0, "linear": 2.0}


def _weight(name: str) -> float:
    return SHARE.get(name, 1.0)


def _auto_network(cfg: Any, name: str) -> bool:
    """auto's own from-scratch image network (not one the user listed in model.families)."""
    return (name == IMAGE_DEFAULT[1] and cfg.model.name == "auto"
            and not cfg.model.families)


def _pretrained(cfg: Any) -> tuple[str, str] | None:
    """auto's pretrained timm backbone: one whose weights are in the local cache (never
    downloaded), unless model.network.pretrained already names weights."""
    from launchml.models.timm_family import local_pretrained

    return local_pretrained() if cfg.model.network.pretrained is False else None


def _recipe(cfg: Any, name: str) -> Any:
    """The run config for one family: auto's small ResNet, and the timm backbone whose
    weights are in the local cache (``_pretrained``: fine-tuned from them), train with what
    small image sets need where train.* leaves it open (``_schedule``): a cosine schedule
    over up to 30 epochs, early stopping after 5 epochs without a better validation loss
    (the best weights are restored), pad-and-crop augmentation (label smoothing:
    ``_smoothing``)."""
    local = _pretrained(cfg) if cfg.model.name == "auto" and not cfg.model.families \
        and is_network(name) and name not in IMAGE_DEFAULT else None
    if local is not None and name == local[0]:  # its cached weights, fine-tuned
        network = cfg.model.network.model_copy(update={"pretrained": local[1]})
        cfg = cfg.model_copy(update={"model": cfg.model.model_copy(update={"network": network})})
        return cfg.model_copy(update={"train": _schedule(cfg.train)})
    if not _auto_network(cfg, name):
        return cfg
    return cfg.model_copy(update={"train": _schedule(cfg.train)})


def _schedule(train: Any) -> Any:
    """What training from scratch (or fine-tuning) on small image sets needs, where train.*
    leaves it open."""
    given = train.model_fields_set
    update: dict[str, Any] = {}
    if "scheduler" not in given:
        update["scheduler"] = "cosine"
    if "patience" not in given:
        update["patience"] = 5
    if "epochs" not in given:
        update["epochs"] = max(train.epochs, 30)
    if "augment" not in given:
        update["augment"] = train.augment.model_copy(update={"crop": CROP})
    return train.model_copy(update=update)


CROP = 2  # pixels of pad-and-crop for auto's small ResNet (images of 16-64 pixels)
LABEL_SMOOTHING = 0.1


@contextmanager
def _smoothing(task: Task, name: str, cfg: Any) -> Iterator[None]:
    """Label smoothing for auto's small ResNet while it fits or refits."""
    if not _auto_network(cfg, name) or task.name not in ("binary", "multiclass"):
        yield
        return
    task.label_smoothing = LABEL_SMOOTHING
    try:
        yield
    finally:
        task.label_smoothing = 0.0


def _best(board: list[dict[str, Any]]) -> str | None:
    ranked = sorted((r for r in board if "validation_loss" in r),
                    key=lambda r: r["validation_loss"])
    return ranked[0]["family"] if ranked else None


def row_seconds(board: list[dict[str, Any]], family: str) -> float:
    return next((r["fit_seconds"] for r in board if r["family"] == family), 0.0)


def _progress(board: list[dict[str, Any]], start: float, limit: float | None,
              queue: list[str]) -> None:
    """After each family: the leaderboard so far (best first), the time used and the
    estimated time of the rest (the families still to fit at the mean time per family so
    far, within the limit)."""
    done = sorted((r for r in board if "validation_loss" in r),
                  key=lambda r: r["validation_loss"])
    elapsed = time.perf_counter() - start
    fits = [r["fit_seconds"] for r in board if "fit_seconds" in r]
    estimate = elapsed + len(queue) * (sum(fits) / max(len(fits), 1))
    if limit is not None:
        estimate = max(min(estimate, limit), elapsed)
    console.info(f"train: {elapsed:.0f}s used, about {estimate:.0f}s in all"
                 + (f" (limit {limit:.0f}s)" if limit is not None else "")
                 + (f"; next {', '.join(queue)}" if queue else "") + "; leaderboard so far: "
                 + ", ".join(f"{r['family']} {r['validation_loss']:.4f}" for r in done)
                 + " (validation loss)")


def _print_board(board: list[dict[str, Any]], members: dict[str, float]) -> None:
    keys = [k for k in ("validation_loss", "accuracy", "roc_auc", "rmse", "r2", "fit_seconds")
            if any(k in r for r in board)]
    console.info("train: leaderboard (validation)\n  " + f"{'family':10s}" +
                 "".join(f"{k:>17s}" for k in keys))
    for r in board:
        cells = "".join(f"{r[k]:>17.4f}" if isinstance(r.get(k), float | int) else
                        f"{str(r.get(k, r.get('skipped', '-'))):>17s}" for k in keys)
        console.info(f"  {r['family']:10s}{cells}")
    console.info("train: chosen " + " + ".join(f"{n} ({w:.2f})" for n, w in members.items()))
