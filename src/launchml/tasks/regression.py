"""Regression: one output, mean squared error, RMSE/MAE/R2."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from launchml.errors import ConfigError
from launchml.tasks.classification import Task

if TYPE_CHECKING:
    import torch


class RegressionTask(Task):
    name = "regression"

    def __init__(self, labels: list[str] | None = None) -> None:
        super().__init__(labels or [])

    @property
    def num_outputs(self) -> int:
        return 1

    def balanced_weights(self, y: np.ndarray) -> torch.Tensor:
        raise ConfigError("class weights are for classification; this task is regression. "
                          "Fix: set model.class_weight: none")

    def loss(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        import torch.nn.functional as F

        return F.mse_loss(logits.float().squeeze(1), target.float())

    def correct(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        import torch

        return torch.zeros((), dtype=torch.long, device=logits.device)  # no accuracy

    def decode(self, logits: np.ndarray, threshold: float | None = None) -> list[dict[str, Any]]:
        return [{"value": float(v)} for v in np.asarray(logits, dtype=np.float64).reshape(-1)]

    def metrics(self, y_true: np.ndarray, raw: np.ndarray,
                threshold: float | None = None) -> dict[str, Any]:
        from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

        pred = np.asarray(raw, dtype=np.float64).reshape(-1)
        y = np.asarray(y_true, dtype=np.float64)
        return {"n": int(len(y)), "rmse": float(np.sqrt(mean_squared_error(y, pred))),
                "mae": float(mean_absolute_error(y, pred)), "r2": float(r2_score(y, pred))}
