"""Stage 3: quantize, prune and distill the trained model; measure every variant the
same way; pick the one to deploy.

Variants (``optimize.variants``), each a full model package under ``variants/<name>/``:

- ``onnx``: the network exported to ONNX (fp32), with a parity check;
- ``int8``: ONNX Runtime int8, static (QDQ, per-channel, calibrated on training rows)
  for convolutional and dense networks, dynamic for transformer-like graphs
  (``quantize.int8_method``); ``int8_static`` / ``int8_dynamic`` force one kind;
- ``fp16``: float16 weights and compute, for GPU engines;
- ``pruned``: channels removed (torch-pruning), fine-tuned briefly, exported;
- ``distilled``: a student trained on the teacher's outputs (``distill.py``).

Every variant, and the trained model as the reference (``pytorch``: fp32 eager),
is built by ``build.py`` and measured on the held-out split (test, else
validation) by ``measure.py``: the
task's metric, size on disk, parameters, FLOPs, batch-1 latency p50/p95 and
batch-64 throughput on the engine that serves it, and peak memory. The table goes
to ``variants/summary.json`` (``{"rows": [...], "picked": name, ...}``). The
``pick`` rule chooses the deployed variant; a variant that breaks a bound is
never picked, and its row says why. A variant that cannot be built (an op the
exporter or quantizer does not support, a layer the pruner cannot follow) gets a
row naming the blocking op or layer, and the stage goes on with the others.
"""

from __future__ import annotations

import shutil
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import Field, field_validator, model_validator

from launchml import console
from launchml.configbase import StrictModel
from launchml.data.schema import Prepared, pick_split, split_arrays
from launchml.package import ONNX, WEIGHTS, Package
from launchml.runs import RunDir, atomic_path, write_json

if TYPE_CHECKING:
    import torch

    from launchml.deploy.predictor import Predictor

VARIANTS = ("onnx", "int8", "int8_static", "int8_dynamic", "fp16", "pruned", "distilled")
NEEDS_ONNX = ("onnx", "int8", "int8_static", "int8_dynamic", "fp16")
SUMMARY_VERSION = 2


class PruneConfig(StrictModel):
    """``optimize.prune:`` structured channel pruning."""

    ratio: float = Field(0.5, gt=0.0, lt=1.0, description="share of each layer's channels "
                         "(conv filters, dense units) removed; the output layer is kept")
    finetune_epochs: int = Field(2, ge=0, description="epochs of fine-tuning after pruning, "
                                 "by the normal trainer with the run's train settings")


class DistillConfig(StrictModel):
    """``optimize.distill:`` the student and how it learns from the teacher."""

    student: str = Field("auto", description="auto (seed_cnn_small for an image network, "
                         "lightgbm for a table), seed_cnn_small, seed_cnn, timm:<name>, "
                         "mlp or lightgbm")
    temperature: float = Field(4.0, gt=0.0, description="softens the teacher's outputs")
    alpha: float = Field(0.7, ge=0.0, le=1.0, description="weight of the soft-target loss; "
                         "1 - alpha weights the loss on the labels")
    epochs: int | None = Field(None, ge=1, description="student epochs; null: train.epochs")
    synthetic_rows: float = Field(1.0, ge=0.0, description="lightgbm student: synthetic "
                                  "rows labelled by the teacher, as a multiple of the "
                                  "training rows")

    @field_validator("student")
    @classmethod
    def _known(cls, v: str) -> str:
        from launchml.models import is_network

        if v in ("auto", "mlp", "lightgbm") or is_network(v):
            return v
        raise ValueError("use auto, mlp, lightgbm, seed_cnn_small, seed_cnn or timm:<name>")


# pick.by -> (row key, best is min or max)
PICK_BY: dict[str, tuple[str, Callable[..., Any]]] = {
    "latency_p50": ("latency_p50_ms", min), "latency_p95": ("latency_p95_ms", min),
    "throughput_b64": ("throughput_b64", max), "size_mb": ("size_mb", min),
    "metric": ("metric", max)}


class PickConfig(StrictModel):
    """``optimize.pick:`` which measured variant is deployed."""

    by: Literal["latency_p50", "latency_p95", "throughput_b64", "size_mb", "metric"] = Field(
        "latency_p50", description="what the picked variant is best at")
    max_accuracy_drop: float | None = Field(
        0.01, ge=0.0, description="largest drop of the task's metric (accuracy; R2 for "
        "regression) below the trained model's, on the held-out split; null: any")
    max_size_mb: float | None = Field(None, gt=0.0, description="largest size on disk (MB); "
                                      "null: any")


class OptimizeConfig(StrictModel):
    """``optimize:`` which variants to build, how to measure them, which to deploy."""

    variants: list[str] = Field(["onnx", "int8"], description=f"any of {', '.join(VARIANTS)}")
    prune: PruneConfig = Field(default_factory=PruneConfig)
    distill: DistillConfig = Field(default_factory=DistillConfig)
    # opt-in: a picked variant answers differently from the trained model (int8 rounds),
    # so a run deploys one only when its config asks (pick: {by: latency_p50, ...})
    pick: PickConfig | None = Field(None, description="which variant to deploy, e.g. {by: "
                                    "latency_p50, max_accuracy_drop: 0.01}; null: the trained "
                                    "model as it is (the table is still measured)")
    calibration_rows: int = Field(128, ge=1, description="training rows that calibrate "
                                  "static int8 activation ranges")
    parity_tolerance: float = Field(
        1e-3, gt=0.0, description="max abs logit difference ONNX vs PyTorch before a warning"
    )
    parity_rows: int = Field(64, ge=1, description="rows of the evaluation split compared")
    latency_runs: int = Field(20, ge=1, description="timed batch-1 calls per variant")
    warmup: int = Field(3, ge=0, description="untimed calls before timing, per variant")
    throughput_runs: int = Field(5, ge=1, description="timed batch-64 calls per variant")
    memory: bool = Field(True, description="measure each variant's peak memory in a fresh "
                         "process (about a second per variant)")

    @model_validator(mode="before")
    @classmethod
    def _old_switches(cls, data: Any) -> Any:
        """``onnx: false`` / ``int8: false`` (before variants lists) drop those variants."""
        if not isinstance(data, dict) or not {"onnx", "int8"} & set(data):
            return data
        data = dict(data)
        variants = list(data.get("variants", ["onnx", "int8"]))
        for key in ("onnx", "int8"):
            if key in data and not data.pop(key):
                variants = [v for v in variants if v != key]
        data["variants"] = variants
        return data

    @field_validator("variants")
    @classmethod
    def _variants(cls, v: list[str]) -> list[str]:
        import difflib

        for name in v:
            if name not in VARIANTS:
                hint = difflib.get_close_matches(name, VARIANTS, n=1)
                raise ValueError(f"unknown variant {name!r}; the variants are "
                                 f"{', '.join(VARIANTS)}"
                                 + (f". Did you mean {hint[0]!r}?" if hint else ""))
        return list(dict.fromkeys(v))

    @property
    def onnx(self) -> bool:
        """Whether the fp32 ONNX variant is built (kept for older readers)."""
        return "onnx" in self.variants

    @property
    def int8(self) -> bool:
        return any(v.startswith("int8") for v in self.variants)


def export_onnx(model: torch.nn.Module, sample: dict[str, np.ndarray], path: Path) -> Path:
    """Export with a dynamic batch dimension (torch.export based exporter)."""
    import torch

    model = model.eval()
    # integer ids stay int64; pixels (uint8) and numbers go in as float32
    kwargs = {k: torch.from_numpy(np.array(v[:2], dtype=np.int64 if v.dtype.kind == "i"
                                           else np.float32)) for k, v in sample.items()}
    batch = torch.export.Dim("batch", min=1)
    with atomic_path(path, suffix=".onnx") as tmp:
        torch.onnx.export(
            model, (), str(tmp), kwargs=kwargs, input_names=list(kwargs),
            output_names=["logits"], dynamic_shapes={k: {0: batch} for k in kwargs},
            dynamo=True, external_data=False, verbose=False,
        )
    return path


def quantize_int8(src: Path, dst: Path) -> Path:
    """Dynamic int8 (the variant before static calibration existed)."""
    from launchml.optimize.quantize import quantize_dynamic

    return quantize_dynamic(src, dst)


def _latency_ms(predictor: Predictor, one: dict[str, np.ndarray], runs: int,
                warmup: int = 3) -> dict[str, Any]:
    """Batch-1 latency over ``runs`` timed calls (after ``warmup`` calls): p50, p95, runs.

    One median hides a noisy machine; p95 shows the spread. ``latency_ms_batch1``
    (the p50) stays for readers of older summaries.
    """
    for _ in range(warmup):
        predictor.logits(one)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        predictor.logits(one)
        times.append((time.perf_counter() - t0) * 1000)
    p50, p95 = (round(float(q), 3) for q in np.percentile(times, [50, 95]))
    return {"latency_ms_batch1": p50, "latency_ms_p50": p50, "latency_ms_p95": p95,
            "latency_p50_ms": p50, "latency_p95_ms": p95, "latency_runs": len(times)}


def _measure(predictor: Predictor, inputs, y, size: int, cfg: OptimizeConfig,
             reference: np.ndarray | None) -> tuple[dict[str, Any], np.ndarray]:
    """The task's metric on all rows, size and batch-1 latency of one variant."""
    logits = predictor.logits(inputs)
    metrics = predictor.task.metrics(y, logits, predictor.package.threshold)
    row: dict[str, Any] = {
        "engine": predictor.engine,
        "size_bytes": size,
        "size_mb": round(size / 1e6, 4),
        **_latency_ms(predictor, {k: v[:1] for k, v in inputs.items()}, cfg.latency_runs,
                      cfg.warmup),
        **{k: round(metrics[k], 6) for k in ("accuracy", "rmse", "r2") if k in metrics},
    }
    if reference is not None:
        n = min(cfg.parity_rows, len(reference))
        row["max_abs_diff"] = float(np.abs(logits[:n] - reference[:n]).max())
    return row, logits


def _measure_row(builder: Any, name: str, pkg: Package, engine: str,
                 inputs: dict[str, np.ndarray], y: np.ndarray, ref: np.ndarray | None
                 ) -> tuple[dict[str, Any], np.ndarray]:
    """The whole measurement of one variant on its serving engine."""
    from launchml.deploy.predictor import Predictor
    from launchml.optimize import measure

    cfg = builder.cfg
    predictor = Predictor(pkg, engine=engine)  # type: ignore[arg-type]
    neural_file = WEIGHTS if engine == "torch" else ONNX
    row, logits = _measure(predictor, inputs, y, _size(pkg, neural_file), cfg, ref)
    row["engines"] = predictor.engines  # what serves each member, e.g. lightgbm+onnx
    if not predictor.neural:  # trees/linear only: served by their own predictors
        row["engine"] = "lightgbm"  # the Predictor engine name that loads them
    batch = measure.batch_of(inputs, 64)
    row["throughput_b64"] = measure.throughput(predictor, batch, cfg.throughput_runs,
                                               cfg.warmup)
    row["threads"] = measure.engine_threads(predictor.engine)
    row["warmup"], row["repeats"] = cfg.warmup, cfg.latency_runs
    row["throughput_repeats"] = cfg.throughput_runs
    net = builder.nets.get(name)
    if net is not None:
        feeds = builder.feeds_of.get(name) or builder.member.feeds
        row["flops"], row["params"] = measure.flops_and_params(
            net, feeds({k: np.asarray(v[:1]) for k, v in inputs.items()}))
    if cfg.memory:
        row["peak_memory_mb"] = measure.peak_memory_mb(pkg.path, predictor.engine,
                                                       measure.batch_of(inputs, 64))
    return row, logits


def optimize(cfg: OptimizeConfig, package: Package, prepared: Prepared, run: RunDir, *,
             run_config: Any = None) -> dict[str, dict[str, Any]]:
    """Build, measure and pick; returns the rows by variant name (also written to
    ``variants/summary.json`` with the pick)."""
    from launchml.deploy.predictor import Predictor
    from launchml.optimize.build import Blocked, Builder, blocking_op
    from launchml.optimize.measure import cpu_info
    from launchml.optimize.pick import pick

    if run_config is None:  # the config the package was trained with
        from launchml.config import RunConfig

        run_config = RunConfig.load(package.meta["provenance"]["config"])
    split = pick_split(prepared, "auto")
    inputs, y = split_arrays(prepared, split)
    base = Predictor(package, engine="torch")
    builder = Builder(cfg, package, prepared, run, run_config, base)
    wanted = [v for v in cfg.variants if builder.member is not None or v == "distilled"]
    shutil.rmtree(run.variants, ignore_errors=True)  # a new table: no stale variant stays
    if not wanted:
        reason = no_variants_reason(package, cfg.variants)
        console.info(f"optimize: {reason}")
        # an empty table that says why: `launchml optimize --list` and the report read it
        write_json(run.variants / "summary.json", {
            "version": SUMMARY_VERSION, "split": split, "metric": None, "reference": None,
            "picked": None, "pick": None if cfg.pick is None
            else cfg.pick.model_dump(mode="json"), "reason": reason, **cpu_info(),
            "rows": []})
        return {}
    base_name = "pytorch" if base.neural else "trained"
    console.info(f"optimize: measuring the trained model on {len(y)} {split} rows")
    builder.nets[base_name] = builder.member.net if builder.member else None
    table: dict[str, dict[str, Any]] = {}
    table[base_name], ref = _measure_row(builder, base_name, package, "torch", inputs, y, None)
    table[base_name]["method"] = "fp32, eager PyTorch" if base.neural else "as trained"
    for name in wanted:
        console.info(f"optimize: building {name}, then measuring it")
        try:
            pkg, engine, extra = builder.build(name)
            row, _ = _measure_row(builder, name, pkg, engine, inputs, y, ref)
            table[name] = {**row, **extra}
        except Exception as e:  # noqa: BLE001 - one variant's failure never ends the stage
            reason = str(e) if isinstance(e, Blocked) else \
                f"{type(e).__name__} at {blocking_op(e)}"
            console.warn(f"optimize: variant {name} not built: {reason}")
            if not isinstance(e, Blocked):
                console.logger.debug("".join(traceback.format_exception(e)))
            table[name] = {"variant": name, "error": reason}
            shutil.rmtree(run.variants / name, ignore_errors=True)
    if "onnx" not in cfg.variants:  # exported for int8/fp16 only
        shutil.rmtree(run.variants / "onnx", ignore_errors=True)
    _distill_report(builder, table, inputs, y)
    rows = _finish_rows(table, base_name, split)
    picked = pick(rows, cfg.pick, base_name, package, run.variants)
    summary = {"version": SUMMARY_VERSION, "split": split, "metric": _metric_name(rows),
               "reference": base_name, "picked": picked, "pick": None if cfg.pick is None
               else cfg.pick.model_dump(mode="json"), **cpu_info(), "rows": rows}
    write_json(run.variants / "summary.json", summary)
    _print_table({r["variant"]: r for r in rows})
    if picked != base_name:
        console.info(f"optimize: picked {picked} (pick.by {cfg.pick.by}); deploy serves it")
    return {r["variant"]: r for r in rows}


def no_variants_reason(package: Package, variants: list[str]) -> str:
    """Why a package without a neural member gets none of ``variants``."""
    families = ", ".join(dict.fromkeys(m["family"] for m in package.meta["model"]["members"]))
    return (f"no neural member (this package serves {families}): LightGBM and linear members "
            f"serve through their own predictors; variants need a network "
            f"(seed_cnn, timm:<name> or mlp), so {', '.join(variants)} "
            f"{'was' if len(variants) == 1 else 'were'} not built. distilled (a student "
            "trained on this model's outputs) needs none: --set optimize.variants=[distilled]")


def _metric_name(rows: list[dict[str, Any]]) -> str:
    return "accuracy" if any("accuracy" in r for r in rows) else "r2"


def _finish_rows(table: dict[str, dict[str, Any]], base_name: str,
                 split: str) -> list[dict[str, Any]]:
    """Ratios against the reference row, the metric under one name, the variant's name."""
    base = table[base_name]
    metric = "accuracy" if "accuracy" in base else "r2"
    rows = []
    for name, row in table.items():
        row = {"variant": name, **row, "split": split}
        if "error" not in row:
            row["metric_name"] = metric
            row["metric"] = row.get(metric)
            if row["metric"] is not None and base.get(metric) is not None:
                row["metric_drop"] = round(base[metric] - row["metric"], 6)
            row["size_ratio"] = round(row["size_bytes"] / base["size_bytes"], 4)
            row["speedup"] = round(base["latency_ms_p50"] / row["latency_ms_p50"], 3)
            if row.get("flops") and base.get("flops"):
                row["flops_ratio"] = round(row["flops"] / base["flops"], 4)
        rows.append(row)
    return rows


def _distill_report(builder: Any, table: dict[str, dict[str, Any]],
                    inputs: dict[str, np.ndarray], y: np.ndarray) -> None:
    """For a lightgbm student: the directly trained lightgbm's metric and the share of
    the teacher's gain the student keeps."""
    from launchml.optimize.distill import gain_kept

    direct = builder.direct
    row = table.get("distilled")
    if direct is None or row is None or "error" in row:
        return
    raw = direct.predict_raw(inputs)
    key = "accuracy" if "accuracy" in row else "r2"
    value = builder.task.metrics(y, raw, builder.package.threshold)[key]
    teacher = next(iter(table.values()))[key]
    row["direct_metric"] = round(float(value), 6)
    row["teacher_metric"] = teacher
    row["gain_kept"] = gain_kept(teacher, float(value), row[key])


def _size(package: Package, neural_file: str) -> int:
    """Bytes of the package's model files: the neural one (weights or ONNX) plus the others."""
    files = {k: v for k, v in package.meta["files"].items()
             if v and k not in ("weights", "onnx") and not k.startswith("picked")}
    names = [neural_file, *files.values()]
    return sum((package.path / n).stat().st_size for n in names if (package.path / n).exists())

def _print_table(table: dict[str, dict[str, Any]]) -> None:
    from rich.table import Table

    from launchml.console import console as rich_console
    from launchml.console import quiet

    if quiet():
        return
    rich_console.print(trade_off_table(table, Table, wide=False))
    for name, row in table.items():
        why = row.get("rejected") or (f"not built: {row['error']}" if "error" in row else None)
        if why:
            rich_console.print(f"  {name}: {why}", highlight=False, markup=False)


def trade_off_table(table: dict[str, dict[str, Any]], table_cls: Any, wide: bool = True) -> Any:
    """The rich table of the variants: ``wide`` (``launchml optimize --list``) adds
    throughput, FLOPs and the pick/rejection column to what the stage prints."""
    ok = [r for r in table.values() if "latency_ms_p50" in r]
    runs = ok[0].get("latency_runs", 0) if ok else 0
    warm = ok[0].get("warmup", 3) if ok else 3
    t = table_cls(title="optimize: variants",
                  caption=f"latency: batch 1, {runs} timed call{'s' * (runs != 1)} per variant "
                          f"after {warm} warm-up calls (p50 = median; speedup from p50)")
    metric = "accuracy" if any("accuracy" in r for r in ok) else "r2"
    cols = ["variant", "size MB", "x size", "p50 ms", "p95 ms", "speedup", metric,
            "max |diff|"]
    if wide:
        cols[1:1] = ["engine"]
        cols[7:7] = ["rows/s b64", "x FLOPs"]
        cols.append("note")
    for col in cols:
        t.add_column(col, justify="right")
    for name, row in table.items():
        if "latency_ms_p50" not in row:
            t.add_row(name, *["-"] * (len(cols) - 2),
                      f"not built: {row.get('error', '')}"[:80] if wide else "-")
            continue
        diff = row.get("max_abs_diff")
        cells = {"variant": name, "engine": str(row.get("engine", "")),
                 "size MB": f"{row['size_bytes'] / 1e6:.2f}",
                 "x size": f"{row.get('size_ratio', 1.0):.2f}",
                 "p50 ms": f"{row['latency_ms_p50']:.2f}",
                 "p95 ms": f"{row['latency_ms_p95']:.2f}",
                 "speedup": f"{row.get('speedup', 1.0):.2f}",
                 "rows/s b64": f"{row['throughput_b64']:.0f}" if row.get("throughput_b64")
                 else "-",
                 "x FLOPs": f"{row['flops_ratio']:.2f}" if row.get("flops_ratio") else "-",
                 metric: f"{row.get(metric, float('nan')):.4f}",
                 "max |diff|": "-" if diff is None else f"{diff:.1e}",
                 "note": str(row.get("rejected") or ("picked" if row.get("picked") else ""))[
                     :80]}
        t.add_row(*(cells[c] for c in cols))
    return t
