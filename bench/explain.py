"""Seconds per explanation for each method and kind of input, and the evaluation report's
build time for a 10,000-row table, in one run.

    python bench/explain.py                          # prints the table
    python bench/explain.py --json bench/out/explain.json

Trains small models in a temporary folder (nothing is downloaded): a table with numbers
and categories (LightGBM alone: TreeSHAP; linear: exact Shapley values over the
columns), reviews with a text column (linear: exact n-gram token contributions; the
neural combiner: layer integrated gradients; token Shapley values of the served output),
drug-target pairs (SMILES + protein characters), and the article's CNN on 150x150
images (integrated gradients, Grad-CAM, HiResCAM). Explanations run batched (all rows of
a call together); each figure is the best of ``--repeat`` calls divided by the rows
explained. The report figure builds ``evaluation/report.html`` for a run whose scored
(test) split has 10,000 rows, with the ``auto`` families (LightGBM + linear).

``--json PATH`` writes {"rows": [{"input_kind", "method", "seconds_per_explanation",
"batch"}], "report_seconds_10k_rows", "cpu": {...}}. The CPU's torch capability and
flags are printed with the figures; the machine may be shared (load average printed).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from machine import cpu_info  # bench/machine.py: one copy for every bench script

os.environ.setdefault("LAUNCHML_QUIET", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.tables_data


def best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def table(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({f"x{i}": rng.normal(size=n).round(4) for i in range(6)})
    df["city"] = rng.choice(["north", "south", "east", "west"], n)
    df["plan"] = rng.choice(["basic", "pro"], n)
    score = df.x0 + 0.5 * df.x1 * df.x2 + (df.city == "north") - 0.5 * (df.plan == "pro")
    df["label"] = np.where(score + rng.normal(0, 0.5, n) > 0, "yes", "no")
    return df


def run_table(root: Path, name: str, df: pd.DataFrame, model: dict, *, test: Path | None = None,
              stages: list[str] | None = None, **train) -> object:
    import launchml

    path = root / f"{name}.csv"
    df.to_csv(path, index=False)
    data = {"train": str(path), "target": "label"}
    if test is not None:
        data["test"] = str(test)
    cfg = {"name": name, "output_dir": str(root / "runs"), "seed": 0, "data": data,
           "model": model, "train": {"epochs": 3, **train},
           "optimize": {"onnx": False, "int8": False}, "evaluate": {"report": False}}
    return launchml.run(cfg, stages=stages or ["prepare", "train"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--batch", type=int, default=32, help="rows or images per call")
    args = ap.parse_args()

    from tests.tables_data import drug_target_pairs, reviews

    import launchml
    from launchml.data.samples import write_shapes_folder
    from launchml.explain.tokens import token_shapley

    cpu = cpu_info()
    print(f"CPU: torch capability {cpu['capability']}; flags {', '.join(cpu['flags'])}; "
          f"{cpu['cores']} cores; load average {cpu['load_1min']} at the start")
    rows: list[dict] = []

    def record(kind: str, method: str, seconds: float, batch: int) -> None:
        rows.append({"input_kind": kind, "method": method,
                     "seconds_per_explanation": seconds / batch, "batch": batch})
        print(f"  {kind:<9} {method:<27} {seconds / batch * 1000:9.2f} ms / explanation "
              f"(batch {batch})", flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        b = args.batch
        # tables
        df = table(3000)
        rows_in = table(b, seed=1).drop(columns=["label"])
        for family, method in (("lightgbm", "tree_shap"), ("linear", "shapley")):
            pred = launchml.load(run_table(root, family, df, {"name": family}).dir.model)
            record("table", method, best(lambda p=pred, m=method: p.explain(rows_in, method=m),
                                         args.repeat), b)
        # text: linear tokens; the neural combiner's layer integrated gradients; token
        # Shapley values of the served output
        text = reviews(600)
        text_in = reviews(b, seed=3).drop(columns=["label"])
        lin = launchml.load(run_table(root, "text_linear", text, {"name": "linear"}).dir.model)
        record("text", "shapley + linear tokens",
               best(lambda: lin.explain(text_in), args.repeat), b)
        mlp = launchml.load(run_table(root, "text_mlp", text, {
            "name": "mlp", "mlp": {"text_encoder": "bag", "hidden": [32]}}).dir.model)
        record("text", "shapley + layer IG tokens",
               best(lambda: mlp.explain(text_in), args.repeat), b)
        arrays = next(lin.iter_arrays(text_in))[1]

        def shap_tokens(p=lin, a=arrays):
            for i in range(b):
                token_shapley(p, {k: v[i:i + 1] for k, v in a.items()}, "review", 0, 0)
        record("text", "token_shapley (tokens only)", best(shap_tokens, args.repeat), b)
        # SMILES + protein pairs: linear character contributions
        pairs = drug_target_pairs(600)
        pairs_in = drug_target_pairs(b, seed=4).drop(columns=["binds"]).rename(columns={})
        pairs = pairs.rename(columns={"binds": "label"})
        chem = launchml.load(run_table(root, "pairs", pairs, {"name": "linear"}).dir.model)
        record("sequence", "shapley + linear characters",
               best(lambda: chem.explain(pairs_in), args.repeat), b)
        # images: the article's CNN on 150x150 pictures
        folder = write_shapes_folder(root / "shapes", n_train=32, n_test=b)
        cfg = {"name": "shapes", "output_dir": str(root / "runs"), "seed": 0,
               "data": {"train": str(folder / "train"), "test": str(folder / "test")},
               "model": {"name": "seed_cnn"}, "train": {"epochs": 1, "batch_size": 16},
               "optimize": {"onnx": False, "int8": False}, "evaluate": {"report": False}}
        cnn = launchml.load(launchml.run(cfg, stages=["prepare", "train"]).dir.model)
        images = sorted(str(p) for p in (folder / "test").rglob("*.jpg"))[:b]
        for method in ("integrated_gradients", "grad_cam", "hires_cam"):
            record("image", method, best(lambda m=method: cnn.explain(images, method=m),
                                         args.repeat), len(images))
        # the report of a 10,000-row scored split
        test_path = root / "report_test.csv"
        table(10_000, seed=7).to_csv(test_path, index=False)
        run = run_table(root, "report", table(4000, seed=8),
                        {"name": "auto", "families": ["lightgbm", "linear"]}, test=test_path)
        from launchml.data import load_prepared
        from launchml.data.schema import split_arrays
        from launchml.evaluate.evaluate import evaluate

        prepared = load_prepared(run.dir)
        n_test = len(split_arrays(prepared, "test")[1])
        pred = launchml.load(run.dir.model)
        cfg_eval = run.config.evaluate.model_copy(update={"report": True})
        start = time.perf_counter()
        evaluate(cfg_eval, pred, prepared, run.dir)
        total = time.perf_counter() - start
        members = "+".join(m["family"] for m in pred.package.meta["model"]["members"])
        print(f"  report    {n_test} scored rows ({members}): {total:.2f} s "
              "(metrics + report.html + MODEL_CARD.md)")
    out = {"rows": rows, "report_seconds_10k_rows": round(total, 3), "report_rows": n_test,
           "report_model": members, "cpu": {**cpu, "load_1min_end": round(os.getloadavg()[0],
                                                                          2)}}
    print(f"load average at the end: {out['cpu']['load_1min_end']}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=2))
        print(f"-> {args.json}")


if __name__ == "__main__":
    main()
