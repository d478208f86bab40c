"""Which prepared arrays feed which part of the neural combiner (numpy only).

The ``plan`` is computed once from the training arrays and the fitted
preprocessing and stored in the package; ``pack`` turns prepared arrays into the
model's named inputs (``numbers``, ``categories``, ``col0``...), which are also the
ONNX input names. Kept apart from ``table_net`` so that serving a package by ONNX
Runtime never imports torch.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from launchml.data.schema import ENCODED_TYPES as ENCODED  # noqa: E402


def make_plan(states: dict[str, dict[str, Any]], arrays: dict[str, np.ndarray]) -> dict[str, Any]:
    """Which prepared arrays go where; JSON-able."""
    numbers, categories, encoders = [], [], []
    for col, state in states.items():
        ctype = state["type"]
        if ctype == "category":
            cardinality = len(state["categories"]) + 2  # 0 missing/unseen, +1 'other'
            categories.append([col, cardinality, int(min(32, (cardinality + 1) // 2 + 1))])
        elif ctype in ENCODED:
            encoders.append([f"col{len(encoders)}", col])
        else:
            numbers += [k for k in arrays if k == col or k.startswith(col + ":")]
    return {"numbers": numbers, "categories": categories, "encoders": encoders}


def pack(plan: dict[str, Any], arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Prepared arrays (one per feature) -> the model's named inputs."""
    out: dict[str, np.ndarray] = {}
    if plan["numbers"]:
        out["numbers"] = np.column_stack(
            [np.asarray(arrays[k], dtype=np.float32) for k in plan["numbers"]])
    if plan["categories"]:
        out["categories"] = np.column_stack(
            [np.asarray(arrays[c], dtype=np.int64) for c, _, _ in plan["categories"]])
    for key, col in plan["encoders"]:
        out[key] = np.asarray(arrays[col])
    return out
