"""ONNX export with a parity check, and a dynamic int8 ONNX Runtime variant.

Each variant is a full model package under ``variants/<name>/`` (package.json
+ model.onnx), so any of them can be served. ``variants/summary.json`` holds
the trade-off table: size, batch-1 latency (p50, p95), accuracy on the evaluation
split, and the largest output difference from the PyTorch model.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import Field

from launchml import console
from launchml.configbase import StrictModel
from launchml.data.schema import Prepared, pick_split, split_arrays
from launchml.package import ONNX, WEIGHTS, Package, save_package
from launchml.runs import RunDir, atomic_path, write_json

if TYPE_CHECKING:
    import torch

    from launchml.deploy.predictor import Predictor


class OptimizeConfig(StrictModel):
    """``optimize:`` which variants to build and how to check them."""

    onnx: bool = Field(True, description="export model.onnx (needed by the int8 variant)")
    int8: bool = Field(True, description="dynamic int8 quantization with ONNX Runtime")
    parity_tolerance: float = Field(
        1e-3, gt=0.0, description="max abs logit difference ONNX vs PyTorch before a warning"
    )
    parity_rows: int = Field(64, ge=1, description="rows of the evaluation split compared")
    latency_runs: int = Field(20, ge=1, description="timed batch-1 calls per variant")


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
    from onnxruntime.quantization import QuantType, quant_pre_process, quantize_dynamic

    dst.parent.mkdir(parents=True, exist_ok=True)
    pre = dst.with_name("preprocessed.onnx")
    quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
    with atomic_path(dst, suffix=".onnx") as tmp:
        # weights int8 (convolutions and dense layers), activations quantized per call
        quantize_dynamic(pre, tmp, weight_type=QuantType.QInt8)
    pre.unlink()
    return dst


def _latency_ms(predictor: Predictor, one: dict[str, np.ndarray], runs: int) -> dict[str, Any]:
    """Batch-1 latency over ``runs`` timed calls (after 3 warm-up calls): p50, p95 and runs.

    One median hides a noisy machine; p95 shows the spread. ``latency_ms_batch1``
    (the p50) stays for readers of older summaries.
    """
    for _ in range(3):
        predictor.logits(one)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        predictor.logits(one)
        times.append((time.perf_counter() - t0) * 1000)
    p50, p95 = (round(float(q), 3) for q in np.percentile(times, [50, 95]))
    return {"latency_ms_batch1": p50, "latency_ms_p50": p50, "latency_ms_p95": p95,
            "latency_runs": len(times)}


def _measure(predictor: Predictor, inputs, y, size: int, cfg: OptimizeConfig,
             reference: np.ndarray | None) -> dict[str, Any]:
    logits = predictor.logits(inputs)
    metrics = predictor.task.metrics(y, logits, predictor.package.threshold)
    row: dict[str, Any] = {
        "engine": predictor.engine,
        "size_bytes": size,
        **_latency_ms(predictor, {k: v[:1] for k, v in inputs.items()}, cfg.latency_runs),
        **{k: round(metrics[k], 6) for k in ("accuracy", "rmse", "r2") if k in metrics},
    }
    if reference is not None:
        n = min(cfg.parity_rows, len(reference))
        row["max_abs_diff"] = float(np.abs(logits[:n] - reference[:n]).max())
    return row, logits


def optimize(cfg: OptimizeConfig, package: Package, prepared: Prepared,
             run: RunDir) -> dict[str, dict[str, Any]]:
    from launchml.deploy.predictor import Predictor

    split = pick_split(prepared, "auto")
    inputs, y = split_arrays(prepared, split)
    base = Predictor(package, engine="torch")
    table: dict[str, dict[str, Any]] = {}
    console.info(f"optimize: measuring the PyTorch model on {len(y)} {split} rows")
    table["pytorch"], ref = _measure(base, inputs, y, _size(package, WEIGHTS), cfg, None)
    if cfg.onnx or cfg.int8:
        out = run.variants / "onnx"
        console.info("optimize: exporting to ONNX, then measuring it")
        onnx_file = export_onnx(*base.exportable(inputs), out / ONNX)
        pkg = _variant_package(package, out, onnx_file, "onnx")
        table["onnx"], _ = _measure(Predictor(pkg, engine="onnx"), inputs, y,
                                    _size(pkg, ONNX), cfg, ref)
        if table["onnx"]["max_abs_diff"] > cfg.parity_tolerance:
            console.warn(f"ONNX parity: max abs difference {table['onnx']['max_abs_diff']:.2e} "
                         f"> optimize.parity_tolerance {cfg.parity_tolerance:.0e}")
        if cfg.int8:
            q_out = run.variants / "int8"
            console.info("optimize: quantizing to int8 (ONNX Runtime), then measuring it")
            q_file = quantize_int8(onnx_file, q_out / ONNX)
            qpkg = _variant_package(package, q_out, q_file, "int8")
            table["int8"], _ = _measure(Predictor(qpkg, engine="onnx"), inputs, y,
                                        _size(qpkg, ONNX), cfg, ref)
        if not cfg.onnx:
            shutil.rmtree(out)
            del table["onnx"]
    for row in table.values():
        row["split"] = split
        base_row = table["pytorch"]
        row["size_ratio"] = round(row["size_bytes"] / base_row["size_bytes"], 4)
        row["speedup"] = round(base_row["latency_ms_p50"] / row["latency_ms_p50"], 3)
    write_json(run.variants / "summary.json", table)
    _print_table(table)
    return table


def _size(package: Package, neural_file: str) -> int:
    """Bytes of the package's model files: the neural one (weights or ONNX) plus the others."""
    files = {k: v for k, v in package.meta["files"].items() if v and k not in ("weights", "onnx")}
    names = [neural_file, *files.values()]
    return sum((package.path / n).stat().st_size for n in names if (package.path / n).exists())


def _variant_package(package: Package, out: Path, onnx_file: Path, name: str) -> Package:
    """A servable package of the variant: model.onnx, plus the package's non-neural members."""
    others = {k: v for k, v in package.meta["files"].items() if v and k not in ("weights", "onnx")}
    for file in others.values():
        with atomic_path(out / file, suffix=Path(file).suffix) as tmp:
            shutil.copyfile(package.path / file, tmp)
    return save_package(
        out, schema=package.schema, model_spec=package.meta["model"],
        preprocessing=package.preprocessing, metrics={"variant": name},
        provenance=package.meta["provenance"], onnx_file=onnx_file, threshold=package.threshold,
        source=package.source, files=others,
    )


def _print_table(table: dict[str, dict[str, Any]]) -> None:
    from rich.table import Table

    from launchml.console import console as rich_console
    from launchml.console import quiet

    if quiet():
        return
    runs = table["pytorch"]["latency_runs"]
    t = Table(title="optimize: variants",
              caption=f"latency: batch 1, {runs} timed call{'s' * (runs != 1)} per variant "
                      "after 3 warm-up calls (p50 = median; speedup from p50)")
    metric = "accuracy" if "accuracy" in table["pytorch"] else "r2"
    for col in ("variant", "size MB", "x size", "p50 ms", "p95 ms", "speedup",
                metric, "max |diff|"):
        t.add_column(col, justify="right")
    for name, row in table.items():
        diff = row.get("max_abs_diff")
        t.add_row(name, f"{row['size_bytes'] / 1e6:.2f}", f"{row['size_ratio']:.2f}",
                  f"{row['latency_ms_p50']:.2f}", f"{row['latency_ms_p95']:.2f}",
                  f"{row['speedup']:.2f}", f"{row.get(metric, float('nan')):.4f}",
                  "-" if diff is None else f"{diff:.1e}")
    rich_console.print(t)
