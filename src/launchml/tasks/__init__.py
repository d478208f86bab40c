"""What is predicted: output size, loss, metrics and how outputs are decoded.

``TASKS`` maps a schema's task name to its class; a new task is one file here
and one entry in that dict.
"""

from __future__ import annotations

from launchml.tasks.classification import (
    THRESHOLD_METRICS,
    BinaryTask,
    MulticlassTask,
    Task,
    balanced_class_weights,
    classification_metrics,
    tune_threshold,
)
from launchml.tasks.multilabel import MultilabelTask, balanced_label_weights
from launchml.tasks.regression import RegressionTask

TASKS: dict[str, type[Task]] = {
    "binary": BinaryTask,
    "multiclass": MulticlassTask,
    "multilabel": MultilabelTask,
    "regression": RegressionTask,
}


def create_task(name: str, labels: list[str] | None = None) -> Task:
    return TASKS[name](labels or [])


__all__ = [
    "TASKS",
    "THRESHOLD_METRICS",
    "BinaryTask",
    "MulticlassTask",
    "MultilabelTask",
    "RegressionTask",
    "Task",
    "balanced_class_weights",
    "balanced_label_weights",
    "classification_metrics",
    "create_task",
    "tune_threshold",
]
