"""launchml: from raw data to a deployed, explained, compressed model.

    import launchml
    run = launchml.run("cancer.yaml")          # prepare -> train -> optimize -> evaluate -> deploy
    predictor = launchml.load("runs/cancer/model")
    predictor.predict(["scan1.png", "scan2.png"])        # labels; predict_proba, predict_rows

    run = launchml.fit("reviews.csv", target="label")   # a table, no config file
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from launchml.errors import (
    ConfigError,
    DataError,
    InputError,
    LaunchmlError,
    ModelError,
    PackageError,
    RunError,
)

if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any

    from launchml.config import RunConfig
    from launchml.deploy.predictor import Predictor, load
    from launchml.estimators import Classifier, Regressor
    from launchml.package import Package, load_package
    from launchml.pipeline import STAGES, Run, run

__version__ = "0.1.0"

# public name -> the module that defines it, imported on first access (PEP 562), so that
# ``import launchml`` and the CLI start without torch, pandas, scikit-learn ...
_LAZY = {
    "RunConfig": "launchml.config",
    "Package": "launchml.package",
    "load_package": "launchml.package",
    "Predictor": "launchml.deploy.predictor",
    "load": "launchml.deploy.predictor",
    "Classifier": "launchml.estimators",
    "Regressor": "launchml.estimators",
    "STAGES": "launchml.pipeline",
    "Run": "launchml.pipeline",
    "run": "launchml.pipeline",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = globals()[name] = getattr(importlib.import_module(module), name)
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})

__all__ = [
    "STAGES",
    "Classifier",
    "ConfigError",
    "DataError",
    "InputError",
    "LaunchmlError",
    "ModelError",
    "Package",
    "PackageError",
    "Predictor",
    "Regressor",
    "Run",
    "RunConfig",
    "RunError",
    "__version__",
    "fit",
    "load",
    "load_package",
    "run",
]

# fit()'s own options; every TableConfig field but train and target is one too
_FIT_OPTIONS = ("name", "output_dir", "seed", "model", "time_limit", "overwrite", "verbose")


def fit(data: str | Path | Any, target: str, **options: Any) -> Run:
    """Train, evaluate and package a model for a table in one call; return the ``Run``.

        run = launchml.fit("reviews.csv", target="label")
        run.predictor.predict([{"text": "Great value", "stars": 5}])
        run = launchml.fit(df, target="price", model="lightgbm", test_split=0.2)

    ``data``: a CSV/TSV/Parquet/JSON Lines path, or a pandas DataFrame (saved as
    ``<output_dir>/<name>/data/train.parquet`` so the run can be repeated). All five
    stages run, as ``launchml.run`` runs them. Options:

    - ``name``: the run folder's name; default the file's stem (or "dataframe").
    - ``output_dir``: where run folders go (default "runs").
    - ``seed``: splits and training (default 42).
    - ``model``: the family, e.g. "lightgbm" (default "auto"), or a ``model:`` dict.
    - ``time_limit``: seconds for model selection (``model.time_limit``).
    - ``verbose``: 0 prints no progress, 1 prints it (default: LAUNCHML_QUIET decides).
    - ``overwrite``: start over when the run folder exists (default False: a run
      folder that already holds a model or checkpoints is an error).
    - any ``data:`` field of a table config: ``task``, ``test_split``,
      ``validation_split``, ``column_types``, ``test``, ``validation``, ...
    """
    from pathlib import Path

    import pandas as pd

    from launchml.config import RunConfig
    from launchml.data.table_adapter import TableConfig
    from launchml.errors import RunError
    from launchml.pipeline import run

    table_fields = [f for f in TableConfig.model_fields if f not in ("train", "target")]
    unknown = sorted(set(options) - {*_FIT_OPTIONS, *table_fields})
    if unknown:
        import difflib

        accepted = [*_FIT_OPTIONS, *table_fields]
        hints = [m for u in unknown for m in difflib.get_close_matches(u, accepted, n=1)]
        raise TypeError(f"fit() got unknown option(s) {unknown}"
                        f"{f' (did you mean {hints}?)' if hints else ''}. Accepted: "
                        f"{', '.join(accepted)}.")
    is_frame = isinstance(data, pd.DataFrame)
    if not is_frame and not isinstance(data, str | Path):
        raise TypeError(f"fit() takes a table file path or a pandas DataFrame; got "
                        f"{type(data).__name__}")
    output_dir = str(options.get("output_dir", "runs"))
    overwrite = bool(options.get("overwrite", False))
    name = options.get("name")
    if not name:  # like AutoGluon: a second fit makes a new folder and says where
        stem = _folder_name("dataframe" if is_frame else Path(data).stem)
        name, k = stem, 1
        while not overwrite and (Path(output_dir) / name).exists():
            k += 1
            name = f"{stem}-{k}"
        if k > 1:
            from launchml import console

            console.info(f"fit: '{Path(output_dir) / stem}' exists; this run is "
                         f"'{Path(output_dir) / name}' (name=... to choose one)")
    model = options.get("model", "auto")
    model = dict(model) if isinstance(model, dict) else {"name": model}
    if options.get("time_limit") is not None:
        model["time_limit"] = options["time_limit"]
    root = Path(output_dir) / name
    created = overwrite or not root.exists()
    saved = root / "data" / "train.parquet"  # a DataFrame is kept in the run folder
    config: dict[str, Any] = {
        "name": name, "output_dir": output_dir, "model": model,
        "data": {"train": str(saved if is_frame else data), "target": target,
                 **{k: v for k, v in options.items() if k in table_fields}},
    }
    if "seed" in options:
        config["seed"] = options["seed"]
    cfg = RunConfig.load(config)  # a bad option value fails here, before anything is written
    if not overwrite and (root / "model" / "package.json").exists():
        # a table run keeps no checkpoints/last.ckpt, so run() would replace it silently
        raise RunError(f"run '{root}' already holds a trained model. Fix: overwrite=True to "
                       "replace it, or name='...' for a new run.")
    if is_frame:
        import shutil

        if overwrite and root.exists():
            shutil.rmtree(root)
        elif (root / "checkpoints" / "last.ckpt").exists():
            raise RunError(f"run '{root}' already has checkpoints. Fix: overwrite=True to "
                           "start again, or choose another name.")
        saved.parent.mkdir(parents=True, exist_ok=True)
        _absolute_image_paths(data.rename(columns=str), cfg.data.column_types).to_parquet(saved)
        overwrite = False  # done above: run() would delete the table just saved
    try:
        return run(cfg, overwrite=overwrite, verbose=options.get("verbose"))
    except LaunchmlError:
        # the folder this call made (with the saved DataFrame) goes with the failed run
        if created and not (root / "model" / "package.json").exists():
            import shutil

            shutil.rmtree(root, ignore_errors=True)
        raise


def _absolute_image_paths(df: Any, types: dict[str, str]) -> Any:
    """Image-path columns with relative paths made absolute (from the working folder).

    The DataFrame is saved into the run folder, and prepare reads relative image
    paths from the training table's folder; the user meant them from the cwd.
    """
    from pathlib import Path

    from launchml.data.columns import infer_column

    for col in df.columns:
        if (types.get(col) or infer_column(col, df[col]).type) == "image":
            df[col] = df[col].map(lambda v: str(Path(v).expanduser().resolve())
                                  if isinstance(v, str) and v.strip() else v)
    return df


def _folder_name(stem: str) -> str:
    """A run name from a file name: letters, digits, '-', '_', '.'; others become '-'."""
    import re

    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", stem).strip("-._")
    return name or "run"
