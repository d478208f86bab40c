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

WIDE = 500  # features above which trees sample half of them and learn faster
MODEL_FILE = "model.lgb.txt"
FEATURES_FILE = "model.lgb.features.json"  # our feature names; LightGBM's must avoid ':,[]{}"


def _lgb():
    try:
        import lightgbm
    except ImportError as e:  # pragma: no cover - a core dependency
        raise MissingDependencyError("lightgbm is not installed. Fix: pip install lightgbm") from e
    return lightgbm


def _stop_at(deadline: float) -> Any:
    """A callback that ends boosting after the round that passes ``deadline``: the model
    keeps its best round so far (the early-stopping callback's, when there is one)."""
    import time

    def callback(env: Any) -> None:
        if time.perf_counter() > deadline:
            best = env.model.best_iteration or env.iteration + 1
            raise _lgb().callback.EarlyStopException(best - 1, env.evaluation_result_list
                                                     or [])
    callback.order = 40  # after early stopping (30), which records the best round
    return callback


def _objective(task: Task) -> dict[str, Any]:
    if task.name == "binary":
        return {"objective": "binary"}
    if task.name == "multiclass":
        return {"objective": "multiclass", "num_class": len(task.labels)}
    return {"objective": "regression"}


class LightGBMModel:
    """Constructor stores; ``fit`` learns ``booster_`` and ``feature_names_``."""

    def __init__(self, task: Task, *, num_boost_round: int = 2000, early_stopping: int = 100,
                 learning_rate: float = 0.05, num_leaves: int = 31, seed: int = 0,
                 params: dict[str, Any] | None = None) -> None:
        self.task = task
        self.num_boost_round = num_boost_round
        self.early_stopping = early_stopping
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.seed = seed
        self.params = dict(params or {})  # more LightGBM parameters (a second configuration)

    def _matrix(self, arrays: dict[str, np.ndarray]) -> np.ndarray:
        """The features in training order; ``'<part>[j]'`` is column j of a 2-D part (a
        molecule's fingerprint bits), taken from the part itself when it is not given."""
        cols, missing = [], []
        for f in self.feature_names_:
            if f in arrays:
                cols.append(np.asarray(arrays[f], dtype=np.float64))
                continue
            base, _, j = f[:-1].rpartition("[") if f.endswith("]") else ("", "", "")
            if base in arrays and j.isdigit():  # a 2-D part, or an image's pixels
                a = arrays[base]
                cols.append(np.asarray(a.reshape(len(a), -1)[:, int(j)], dtype=np.float64))
            else:
                missing.append(f)
        if missing:
            raise PackageError(f"LightGBM model expects features {missing} that the input lacks")
        return np.column_stack(cols)

    def fit(self, arrays: dict[str, np.ndarray], y: np.ndarray,
            valid: tuple[dict[str, np.ndarray], np.ndarray] | None = None,
            weight: np.ndarray | None = None, deadline: float | None = None) -> LightGBMModel:
        """``deadline`` (time.perf_counter()): boosting stops at the first round after it."""
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
        if len(self.feature_names_) > WIDE:  # pixels, fingerprints: half the features a
            # tree and twice the step, half the time per round and fewer rounds, which a
            # time limit otherwise cuts short
            params.update({"feature_fraction": 0.5, "learning_rate": 0.1})
        params.update(self.params)
        sets, callbacks = [], []
        if valid is not None and len(valid[1]):
            sets = [lgb.Dataset(self._matrix(valid[0]), label=valid[1], reference=train)]
            callbacks = [lgb.early_stopping(self.early_stopping, verbose=False)]
        if deadline is not None:
            callbacks.append(_stop_at(deadline))
        self.booster_ = lgb.train(params, train, num_boost_round=self.num_boost_round,
                                  valid_sets=sets, callbacks=callbacks)
        return self

    def predict_raw(self, arrays: dict[str, np.ndarray]) -> np.ndarray:
        """Raw scores (logits for classification, values for regression), N x outputs."""
        out = self.booster_.predict(self._matrix(arrays), raw_score=True,
                                    num_iteration=self.booster_.best_iteration or None)
        return np.asarray(out, dtype=np.float64).reshape(len(out), -1)

    def save(self, folder: str | Path, model_file: str = MODEL_FILE,
             features_file: str = FEATURES_FILE) -> Path:
        path = Path(folder) / model_file
        with atomic_path(path, suffix=".txt") as tmp:
            self.booster_.save_model(str(tmp), num_iteration=self.booster_.best_iteration or None)
        write_json(Path(folder) / features_file, self.feature_names_)
        return path

    @classmethod
    def load(cls, folder: str | Path, task: Task, model_file: str = MODEL_FILE,
             features_file: str = FEATURES_FILE) -> LightGBMModel:
        path = Path(folder) / model_file
        if not path.exists():
            raise PackageError(f"'{path}' is missing: the package has no LightGBM model.")
        model = cls(task)
        model.booster_ = _lgb().Booster(model_file=str(path))
        model.feature_names_ = read_json(Path(folder) / features_file)
        return model
