"""Quantized and half-precision ONNX graphs, made by ONNX Runtime's tools.

- ``int8_static``: QDQ format, per-channel int8 weights and uint8 activations whose
  ranges are calibrated on a sample of the training split, after ONNX Runtime's
  pre-processing (shape inference and graph optimization). The fast path for
  convolutions and dense layers (MLPs), whose activation ranges are stable.
- ``int8_dynamic``: int8 weights, activation ranges computed per call. For
  transformers and other MatMul-heavy graphs, whose activation ranges vary too much
  per input for one calibrated range.
- ``fp16``: weights and compute in float16, inputs and outputs kept float32 (a GPU
  engine's format; ONNX Runtime's CPU provider lacks fp16 kernels for most ops).

``int8_method`` chooses between the two int8 kinds for the variant named ``int8``.
Why ONNX Runtime and not torchao: see bench/RESULTS.md (torchao is not installed
in the project's environment, and ``torch.ao.quantization`` is deprecated).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from launchml.runs import atomic_path

_DTYPES = {1: np.float32, 7: np.int64, 2: np.uint8, 6: np.int32}  # onnx TensorProto codes


def _preprocessed(src: Path, dst: Path) -> Path:
    """ONNX Runtime's quantization pre-processing (shape inference, graph fusions)."""
    from onnxruntime.quantization import quant_pre_process

    pre = dst.with_name(dst.stem + ".pre.onnx")
    quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
    return pre


def quantize_dynamic(src: Path, dst: Path) -> Path:
    """int8 weights (convolutions, dense and MatMul layers), activations per call."""
    from onnxruntime.quantization import QuantType
    from onnxruntime.quantization import quantize_dynamic as ort_dynamic

    dst.parent.mkdir(parents=True, exist_ok=True)
    pre = _preprocessed(src, dst)
    try:
        with atomic_path(dst, suffix=".onnx") as tmp:
            ort_dynamic(pre, tmp, weight_type=QuantType.QInt8)
    finally:
        pre.unlink(missing_ok=True)
    return dst


class _Calibration:
    """ONNX Runtime's CalibrationDataReader over prepared rows, ``batch`` at a time."""

    def __init__(self, feeds: dict[str, np.ndarray], input_types: dict[str, Any],
                 batch: int = 16) -> None:
        n = len(next(iter(feeds.values())))
        self._it: Iterator[dict[str, np.ndarray]] = iter([
            {k: np.ascontiguousarray(v[s:s + batch], dtype=input_types.get(k, np.float32))
             for k, v in feeds.items()} for s in range(0, n, batch)])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._it, None)

    def rewind(self) -> None:  # pragma: no cover - called by some calibration methods
        raise NotImplementedError


def graph_input_types(path: Path) -> dict[str, Any]:
    """The numpy dtype of each graph input (what a calibration batch must be fed as)."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return {i.name: _DTYPES.get(i.type.tensor_type.elem_type, np.float32)
            for i in model.graph.input}


def quantize_static(src: Path, dst: Path, feeds: dict[str, np.ndarray]) -> Path:
    """QDQ int8, per-channel weights, activations calibrated (min-max) on ``feeds``
    (the graph's named inputs for a sample of training rows)."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
    )
    from onnxruntime.quantization import quantize_static as ort_static

    dst.parent.mkdir(parents=True, exist_ok=True)
    pre = _preprocessed(src, dst)
    reader = type("Reader", (_Calibration, CalibrationDataReader), {})(
        feeds, graph_input_types(src))
    try:
        with atomic_path(dst, suffix=".onnx") as tmp:
            ort_static(pre, tmp, reader, quant_format=QuantFormat.QDQ, per_channel=True,
                       activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    finally:
        pre.unlink(missing_ok=True)
    return dst


def to_fp16(src: Path, dst: Path) -> Path:
    """Weights and compute in float16; float32 inputs and outputs (same feeds as fp32)."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    dst.parent.mkdir(parents=True, exist_ok=True)
    model = convert_float_to_float16(onnx.load(str(src)), keep_io_types=True)
    with atomic_path(dst, suffix=".onnx") as tmp:
        onnx.save(model, str(tmp))
    return dst


ATTENTION_OPS = {"Attention", "MultiHeadAttention", "Softmax", "LayerNormalization"}


def int8_method(path: Path) -> tuple[str, str]:
    """('static' | 'dynamic', why) for a graph: dynamic where it multiplies activations by
    activations (attention: a transformer), static for convolutions and dense layers."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    weights = {i.name for i in graph.initializer}
    ops = {n.op_type for n in graph.node}
    act_matmuls = [n.name for n in graph.node if n.op_type == "MatMul"
                   and not any(i in weights for i in n.input)]
    if act_matmuls or ops & ATTENTION_OPS - {"Softmax"}:
        why = (f"activation x activation MatMul ({act_matmuls[0]})" if act_matmuls
               else f"{sorted(ops & ATTENTION_OPS)[0]} layers")
        return "dynamic", f"transformer-like graph: {why}; activation ranges vary per input"
    convs = sum(n.op_type == "Conv" for n in graph.node)
    dense = sum(n.op_type in ("Gemm", "MatMul") for n in graph.node)
    return "static", f"{convs} convolution and {dense} dense layers: calibrated ranges"
