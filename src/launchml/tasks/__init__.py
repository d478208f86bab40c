"""What is predicted: output size, loss, metrics and how outputs are decoded.

``TASKS`` maps a schema's task name to its class; a new task is one file here
and one entry in that dict.
"""

from __future__ import annotations

from launchml.tasks.classification import (
    BinaryTask,
    MulticlassTask,
    Task,
    classification_metrics,
)
from launchml.tasks.regression import RegressionTask

TASKS: dict[str, type[Task]] = {
    "binary": BinaryTask,
    "multiclass": MulticlassTask,
    "regression": RegressionTask,
}


def create_task(name: str, labels: list[str] | None = None) -> Task:
    return TASKS[name](labels or [])


__all__ = [
    "TASKS",
    "BinaryTask",
    "MulticlassTask",
    "RegressionTask",
    "Task",
    "classification_metrics",
    "create_task",
]
