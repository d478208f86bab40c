"""Knowledge distillation: a smaller or faster model trained on the teacher's outputs.

(a) A student network (``seed_cnn_small`` for an image network, the ``mlp`` combiner
    for a table) learns from the teacher's soft targets through the normal trainer:
    loss = alpha * T^2 * soft loss(student / T, teacher / T) + (1 - alpha) * the
    task's loss on the labels (Hinton et al. 2015). The teacher's raw outputs travel
    as one more input array (``__teacher__``), batched by the trainer like any input;
    ``Distilled`` hands them to ``DistillTask`` next to the student's outputs, so the
    trainer needs no distillation code.
(b) For tables, the trained package (``model: auto``'s ensemble) distilled into one
    LightGBM model, as AutoGluon's ``distill`` does: the training rows plus as many
    synthetic rows (each column's value taken from another random row with
    probability 0.3, a simplified MUNGE) are labelled by the teacher, and LightGBM
    learns those outputs (its hard labels for classes: LightGBM has no soft-label
    multiclass objective; its values for regression). The same family trained
    directly on the labels is the reference: ``gain_kept`` is the share of the
    teacher's gain over it that the student keeps.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from launchml.optimize.networks import TEACHER


def distilled(student: Any) -> Any:
    """The student wrapped so its forward returns [student outputs | teacher outputs]."""
    import torch

    class Distilled(torch.nn.Module):
        def __init__(self, net: torch.nn.Module) -> None:
            super().__init__()
            self.student = net
            if hasattr(net, "channels_last"):  # an image network: the trainer's layout switch
                self.channels_last = False

        def forward(self, **inputs: torch.Tensor) -> torch.Tensor:
            teacher = inputs.pop(TEACHER)
            out = self.student(**inputs)
            return torch.cat([out, teacher.to(out.dtype)], dim=1)

    return Distilled(student)


class DistillTask:
    """The task's loss blended with the soft-target loss; the task's accuracy."""

    def __init__(self, task: Any, temperature: float, alpha: float) -> None:
        self.task, self.t, self.alpha = task, temperature, alpha

    def __getattr__(self, name: str) -> Any:  # labels, num_outputs, class_weights ...
        return getattr(self.task, name)

    def _split(self, out: Any) -> tuple[Any, Any]:
        k = self.task.num_outputs
        return out[:, :k], out[:, k:]

    def loss(self, out: Any, target: Any) -> Any:
        import torch.nn.functional as F

        s, t = self._split(out)
        t = t.float()
        temp = self.t
        if self.task.name == "multiclass":
            soft = F.kl_div(F.log_softmax(s.float() / temp, 1), F.softmax(t / temp, 1),
                            reduction="batchmean") * temp * temp
        elif self.task.name in ("binary", "multilabel"):
            soft = F.binary_cross_entropy_with_logits(s.float() / temp,
                                                      (t / temp).sigmoid()) * temp * temp
        else:  # regression: the teacher's values
            soft = F.mse_loss(s.float(), t)
        return self.alpha * soft + (1 - self.alpha) * self.task.loss(s, target)

    def correct(self, out: Any, target: Any) -> Any:
        return self.task.correct(self._split(out)[0], target)


def munge(arrays: dict[str, np.ndarray], n: int, seed: int,
          p: float = 0.3) -> dict[str, np.ndarray]:
    """``n`` synthetic rows: each starts as a random row, and each column's value is taken
    from another random row with probability ``p`` (whole columns, every input kind)."""
    rng = np.random.default_rng(seed)
    rows = len(next(iter(arrays.values())))
    base = rng.integers(0, rows, n)
    out = {}
    for k, v in arrays.items():
        other = rng.integers(0, rows, n)
        take = rng.random(n) < p
        out[k] = np.asarray(v)[np.where(take, other, base)]
    return out


def teacher_targets(task: Any, raw: np.ndarray, threshold: float | None) -> np.ndarray:
    """What a LightGBM student learns from the teacher's raw outputs: its decided labels
    for classes (the package threshold for binary), its values for regression."""
    if task.name == "regression":
        return np.asarray(raw, dtype=np.float64).reshape(-1)
    probs = task.probabilities(raw)
    return np.asarray(task.predict_index(probs, threshold), dtype=np.int64)


def gain_kept(teacher: float, direct: float, student: float) -> float | None:
    """Share of the teacher's gain over the directly trained student that distillation
    keeps (1: all of it, 0: none); None when the teacher gains nothing."""
    gain = teacher - direct
    return None if gain <= 1e-12 else round((student - direct) / gain, 4)
