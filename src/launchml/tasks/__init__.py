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

TASKS: dict[str, type[Task]] = {"binary": BinaryTask, "multiclass": MulticlassTask}


def create_task(name: str, labels: list[str]) -> Task:
    return TASKS[name](labels)


__all__ = [
    "TASKS",
    "BinaryTask",
    "MulticlassTask",
    "Task",
    "classification_metrics",
    "create_task",
]
