"""The ``pick`` rule, and deploying the picked variant into the model package.

``pick`` marks every row: a variant that was not built, drops the task's metric by
more than ``max_accuracy_drop`` or is larger than ``max_size_mb`` is rejected with
the reason; of the others (the trained model included) the best ``by`` wins.

``deploy_pick`` records the winner in ``model/package.json`` (``picked``: the
variant, its engine, the model section that serves it and its table row) and
copies the graph it serves into the package as ``model.<variant>.onnx``; the
trained model's files stay, so ``engine='torch'`` / ``'onnx'`` still serve the
trained model and ``engine='auto'`` (predict, serve) serves the picked variant.
"""

from __future__ import annotations

import copy
import filecmp
import shutil
from pathlib import Path
from typing import Any

from launchml.errors import PackageError
from launchml.package import ONNX, Package, load_package, update_package
from launchml.runs import atomic_path


def _not_deployable(row: dict[str, Any], package: Package | None,
                    variants: Path | None) -> str | None:
    """Why a variant served by its own non-neural members cannot join the package."""
    if package is None or variants is None or row.get("engine") == "onnx" or "error" in row:
        return None
    variant = variants / row["variant"]
    if not (variant / "package.json").exists():
        return None
    files = [f for f in load_package(variant).meta["files"].values() if f]
    clash = [f for f in files if (package.path / f).exists()
             and not filecmp.cmp(package.path / f, variant / f, shallow=False)]
    if clash:
        return (f"its files ({', '.join(clash)}) would replace the trained model's in the "
                f"package; serve it from variants/{row['variant']} instead")
    return None


def pick(rows: list[dict[str, Any]], rule: Any, reference: str,
         package: Package | None = None, variants: Path | None = None) -> str:
    """Mark each row ``rejected`` (a reason, or None) and ``picked``; return the winner."""
    from launchml.optimize.onnx_variants import PICK_BY

    base = next(r for r in rows if r["variant"] == reference)
    for row in rows:
        reason = None
        if "error" in row:
            reason = f"not built: {row['error']}"
        elif rule is not None and row["variant"] != reference:
            drop = row.get("metric_drop")
            if rule.max_accuracy_drop is not None and drop is not None \
                    and drop > rule.max_accuracy_drop + 1e-12:
                reason = (f"{row['metric_name']} drops {drop:.4f} > pick.max_accuracy_drop "
                          f"{rule.max_accuracy_drop}")
            elif rule.max_size_mb is not None and row["size_mb"] > rule.max_size_mb:
                reason = f"{row['size_mb']:.2f} MB > pick.max_size_mb {rule.max_size_mb}"
            else:
                reason = _not_deployable(row, package, variants)
        row["rejected"] = reason
    if rule is None:
        winner = base
    else:
        key, best = PICK_BY[rule.by]
        ok = [r for r in rows if r["rejected"] is None and r.get(key) is not None]
        sign = 1.0 if best is min else -1.0  # ties: the trained model
        winner = min(ok, key=lambda r: (sign * r[key], r is not base)) if ok else base
    for row in rows:
        row["picked"] = row is winner
    return winner["variant"]


def deploy_pick(model_dir: Path, variants_dir: Path, summary: dict[str, Any]) -> Package:
    """Record the picked variant in the package and add the files that serve it."""
    pkg = load_package(model_dir)
    files = {k: v for k, v in pkg.meta["files"].items() if not k.startswith("picked")}
    for key, name in pkg.meta["files"].items():  # the previous pick's files go
        if key.startswith("picked") and name and name not in files.values():
            (pkg.path / name).unlink(missing_ok=True)
    pkg.meta["files"] = files
    name = summary.get("picked")
    row = next((r for r in summary.get("rows", []) if r["variant"] == name), None)
    if name is None or row is None:
        pkg.meta.pop("picked", None)
        return update_package(pkg)
    record: dict[str, Any] = {"variant": name, "engine": row.get("engine"), "row": row}
    if name != summary.get("reference"):
        variant = load_package(variants_dir / name)
        model = copy.deepcopy(variant.meta["model"])
        if row.get("engine") == "onnx":
            if variant.onnx_path is None:
                raise PackageError(f"'{variants_dir / name}' has no model.onnx to deploy")
            graph = f"model.{name}.onnx" if name != "onnx" else ONNX
            if name != "onnx":  # the fp32 graph is the package's model.onnx already
                with atomic_path(pkg.path / graph, suffix=".onnx") as tmp:
                    shutil.copyfile(variant.onnx_path, tmp)
            for member in model["members"]:
                if member["family"] not in ("lightgbm", "lightgbm_extra", "linear"):
                    member["onnx"] = graph
            if graph != ONNX:
                files["picked"] = graph
        for key, file in variant.meta["files"].items():  # non-neural members' files
            if file and key not in ("weights", "onnx") and not (pkg.path / file).exists():
                with atomic_path(pkg.path / file, suffix=Path(file).suffix) as tmp:
                    shutil.copyfile(variant.path / file, tmp)
                files[f"picked_{key}"] = file
        record["model"] = model
    return update_package(pkg, picked=record)
