"""LightGBM for tables: gradient-boosted trees over the ``transform_table`` arrays.

Not a torch module: it has its own fit / predict_raw / save / load, and the
package stores the booster as LightGBM's text model (never a pickle). Category
columns arrive as integer codes and are declared categorical to LightGBM.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from launchml.errors import MissingDependencyError, PackageError
from launchml.runs import atomic_path, read_json, write_json
from launchml.tasks import Task

MODEL_FILE = "model.lgb.txt"
FEATURES_FILE = "model.lgb.features.json"  # our feature names; LightGBM's must avoid ':,[]{}"


def _lgb():
    try:
        import lightgbm
    except ImportError as e:  # pragma: no cover - a core dependency
        raise MissingDependencyError("lightgbm is not installed. Fix: pip install lightgbm") from e
    return lightgbm


def _objective(task: Task) -> dict[str, Any]:
    if task.name == "binary":
        return {"objective": "binary"}
    if task.name == "multiclass":
        return {"objective": "multiclass", "num_class": len(task.labels)}
    return {"objective": "regression"}


class LightGBMModel:
    """Constructor stores; ``fit`` learns ``booster_`` and ``feature_names_``."""

    def __init__(self, task: Task, *, num_boost_round: int = 2000, early_stopping: int = 100,
                 learning_rate: float = 0.05, num_leaves: int = 31, seed: int = 0) -> None:
        self.task = task
        self.num_boost_round = num_boost_round
        self.early_stopping = early_stopping
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.seed = seed

    def _matrix(self, arrays: dict[str, np.ndarray]) -> np.ndarray:
        missing = [f for f in self.feature_names_ if f not in arrays]
        if missing:
            raise PackageError(f"LightGBM model expects features {missing} that the input lacks")
        return np.column_stack([arrays[f].astype(np.float64) for f in self.feature_names_])

    def fit(self, arrays: dict[str, np.ndarray], y: np.ndarray,
            valid: tuple[dict[str, np.ndarray], np.ndarray] | None = None,
            weight: np.ndarray | None = None) -> LightGBMModel:
        lgb = _lgb()
        self.feature_names_ = list(arrays)
        categorical = [f for f, a in arrays.items() if a.dtype.kind in "iu"]
        params = {**_objective(self.task), "learning_rate": self.learning_rate,
                  "num_leaves": self.num_leaves, "seed": self.seed, "deterministic": True,
                  "force_row_wise": True, "verbosity": -1, "min_data_in_leaf": 5,
                  # small tables: one thread beats several (OpenMP overhead and, on shared
                  # machines, oversubscription: 17 s -> 1.5 s for 569 rows measured here)
                  "num_threads": 1 if len(y) < 20_000 else 0}
        safe = [f"f{i}" for i in range(len(self.feature_names_))]
        cats = [safe[self.feature_names_.index(f)] for f in categorical]
        train = lgb.Dataset(self._matrix(arrays), label=y, feature_name=safe, weight=weight,
                            categorical_feature=cats, free_raw_data=False)
        sets, callbacks = [], []
        if valid is not None and len(valid[1]):
            sets = [lgb.Dataset(self._matrix(valid[0]), label=valid[1], reference=train)]
            callbacks = [lgb.early_stopping(self.early_stopping, verbose=False)]
        self.booster_ = lgb.train(params, train, num_boost_round=self.num_boost_round,
                                  valid_sets=sets, callbacks=callbacks)
        return self

    def predict_raw(self, arrays: dict[str, np.ndarray]) -> np.ndarray:
        """Raw scores (logits for classification, values for regression), N x outputs."""
        out = self.booster_.predict(self._matrix(arrays), raw_score=True,
                                    num_iteration=self.booster_.best_iteration or None)
        return np.asarray(out, dtype=np.float64).reshape(len(out), -1)

    def save(self, folder: str | Path) -> Path:
        path = Path(folder) / MODEL_FILE
        with atomic_path(path, suffix=".txt") as tmp:
            self.booster_.save_model(str(tmp), num_iteration=self.booster_.best_iteration or None)
        write_json(Path(folder) / FEATURES_FILE, self.feature_names_)
        return path

    @classmethod
    def load(cls, folder: str | Path, task: Task) -> LightGBMModel:
        path = Path(folder) / MODEL_FILE
        if not path.exists():
            raise PackageError(f"'{path}' is missing: the package has no LightGBM model.")
        model = cls(task)
        model.booster_ = _lgb().Booster(model_file=str(path))
        model.feature_names_ = read_json(Path(folder) / FEATURES_FILE)
        return model
