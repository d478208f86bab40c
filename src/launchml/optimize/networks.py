"""The neural member of a package as the optimize stage sees it, for every family.

One path whatever the input kind: a package's neural member (an image network of
``NetworkFamily``, the table combiner ``mlp``) is a torch module whose forward
takes named inputs, plus the function that maps prepared arrays to those inputs
(``member.inputs``, also the ONNX graph's inputs). Pruning fine-tunes and
distillation trains such a module through the normal ``Trainer``, on a
``Prepared`` whose columns are the module's inputs (image inputs typed ``image``,
so the trainer augments and lays them out as in training).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from launchml.data.schema import Column, Prepared, Schema, Split
from launchml.errors import PackageError

TEACHER = "__teacher__"  # the teacher's raw outputs, an input of the distillation wrapper
TARGET = "__target__"


@dataclass
class NeuralMember:
    """The package's neural member: its module, its spec and its inputs' column types."""

    net: Any  # torch.nn.Module
    spec: dict[str, Any]  # the member's package.json entry
    loaded: Any  # TorchNetwork / TorchMember (``inputs(arrays)``)
    types: dict[str, str]  # model input name -> column type

    def feeds(self, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return self.loaded.inputs(arrays)


def neural_member(predictor: Any) -> NeuralMember:
    """The torch-engine predictor's neural member (PackageError when it has none)."""
    members = predictor._model.members
    for spec, loaded in zip(predictor._members, members, strict=True):
        if hasattr(loaded, "net"):
            states = predictor.package.preprocessing
            plan = spec.get("plan")
            if plan is None:  # an image network: its one input is named image
                types = {"image": "image"}
            else:  # the combiner: its encoded columns keep their types
                types = {"numbers": "number", "categories": "category",
                         **{key: states[col]["type"] for key, col in plan["encoders"]}}
            return NeuralMember(loaded.net, spec, loaded, types)
    raise PackageError(f"'{predictor.package.path}' has no neural member (its families: "
                       f"{[m['family'] for m in predictor._members]}); pruning, quantization "
                       "and network distillation apply to seed_cnn, timm:<name> and mlp.")


def target_array(task: Any, y: np.ndarray) -> np.ndarray:
    if task.name in ("binary", "multiclass"):
        return np.asarray(y, dtype=np.int64)
    return np.asarray(y, dtype=np.float32)


def trainer_data(types: dict[str, str], task: Any, train: tuple[dict, np.ndarray],
                 valid: tuple[dict, np.ndarray] | None,
                 states: dict[str, Any]) -> Prepared:
    """A ``Prepared`` whose columns are a module's named inputs (``feeds``) plus the target."""
    def split(name: str, feeds: dict[str, np.ndarray], y: np.ndarray) -> Split:
        return Split(name, {**feeds, TARGET: target_array(task, y)})

    cols = [Column(k, types.get(k, "number")) for k in train[0]]
    schema = Schema(columns=[*cols, Column(TARGET, "target")], target=TARGET,
                    task=task.name, labels=task.labels)
    splits = {"train": split("train", *train)}
    if valid is not None:
        splits["validation"] = split("validation", *valid)
    return Prepared(schema=schema, splits=splits, preprocessing=states, manifest={})


def fit_network(net: Any, task: Any, data: Prepared, *, train_cfg: Any, run_root: Path,
                seed: int, name: str) -> Any:
    """Train ``net`` with the normal trainer (no checkpoint files: the best epoch's
    weights kept in memory); returns the trained module in eval mode."""
    import torch

    from launchml.runs import RunDir
    from launchml.train import Trainer

    threads = torch.get_num_threads()
    trainer = Trainer(train_cfg, run=RunDir(run_root / name), seed=seed,
                      resume_key={"optimize": name}, checkpoints=False)
    try:
        result = trainer.fit(net, task, data)
    finally:
        torch.set_num_threads(threads)
    return result.model.eval()
