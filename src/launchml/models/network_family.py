"""Image networks as a model family: ``seed_cnn`` (the article's CNN) and ``timm:<name>``.

The family takes the one image column of the data (an image folder is a table
with an ``image`` and a ``label`` column) and trains the network with the same
Fabric loop as the neural combiner. It is the one family that keeps resumable
checkpoints in the run folder (``checkpoints/last.ckpt``), because an image run
is long enough to be killed; ``--resume`` continues it bit-identically.

Member spec in package.json::

    {"family": "seed_cnn", "weight": 1.0, "files": {"weights": "weights.safetensors"},
     "network": {"name": "seed_cnn", "pretrained": false, "dropout": 0.0}}
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from launchml.data.schema import Column, Prepared, Schema, Split
from launchml.errors import PackageError
from launchml.tasks import Task

WEIGHTS = "weights.safetensors"
TARGET = "__target__"


def image_column(states: dict[str, dict[str, Any]]) -> str | None:
    """The data's column when it is exactly one image column, else None."""
    if len(states) == 1:
        (name, state), = states.items()
        if state.get("type") == "image":
            return name
    return None


def _schema(column: str, state: dict[str, Any], task: Task) -> Schema:
    h, w = state["target_size"]
    c = state.get("channels") or (1 if state.get("color_mode") == "grayscale" else 3)
    return Schema(columns=[Column(column, "image", [h, w, c], "uint8"),
                           Column(TARGET, "target", [], "int64")],
                  target=TARGET, task=task.name, labels=task.labels)


def build_network(network: dict[str, Any], column: str, state: dict[str, Any], task: Task, *,
                  for_loading: bool) -> Any:
    """The ``ImageModel`` for a member's ``network`` spec (forward(**{column: pixels}))."""
    from launchml.models import create_model

    schema = _schema(column, state, task)
    norm = network.get("norm")  # "groupnorm": DP-SGD replaced its BatchNorm layers
    model = create_model({k: v for k, v in network.items() if k != "norm"}, schema, task,
                         {column: state}, for_loading=for_loading)
    if norm == "groupnorm":
        from launchml.privacy.layers import batchnorm_to_groupnorm

        model = batchnorm_to_groupnorm(model)
    return model


class NetworkFamily:
    """One image network trained by the Fabric loop, with checkpoints for ``--resume``."""

    @staticmethod
    def applies(states: dict[str, dict[str, Any]]) -> bool:
        return image_column(states) is not None

    def __init__(self, ctx: Any, name: str) -> None:
        self.ctx, self.name = ctx, name
        self.column = image_column(ctx.states)

    def _trainer(self, cfg: Any, sub: str | None) -> Any:
        from launchml.runs import RunDir
        from launchml.train import Trainer, resume_key

        ctx = self.ctx
        run = ctx.run if sub is None else RunDir(ctx.run.root / "families" / sub)
        key = resume_key(ctx.cfg.model_dump(mode="json"), ctx.fingerprint)
        self.hooks = ctx.make_hooks()
        return Trainer(cfg, run=run, seed=ctx.cfg.seed, resume_key=key, hooks=self.hooks)

    def _prepared(self, data: Any, valid: Any) -> Prepared:
        task = self.ctx.task
        splits = {"train": Split("train", {"image": data[0][self.column],
                                           TARGET: np.asarray(data[1], dtype=np.int64)})}
        if valid is not None:
            splits["validation"] = Split("validation", {
                "image": valid[0][self.column], TARGET: np.asarray(valid[1], np.int64)})
        return Prepared(schema=_schema("image", self.ctx.states[self.column], task),
                        splits=splits, preprocessing=self.ctx.states, manifest={})

    def _train(self, data: Any, valid: Any, cfg: Any, sub: str | None, resume: bool,
               time_limit: float | None) -> Any:
        import torch

        ctx = self.ctx
        torch.manual_seed(ctx.cfg.seed)  # the initial weights are part of the seeded run
        spec = {"name": self.name, **ctx.cfg.model.network.model_dump(mode="json")}
        model = build_network(spec, self.column,
                              ctx.states[self.column], ctx.task, for_loading=False)
        self.package_spec = model.package_spec
        threads = torch.get_num_threads()
        if ctx.weights is not None:  # model.class_weight: balanced
            ctx.task.class_weights = torch.as_tensor(ctx.weights, dtype=torch.float32)
        try:
            return self._trainer(cfg, sub).fit(model, ctx.task, self._prepared(data, valid),
                                               resume=resume, time_limit=time_limit)
        finally:
            ctx.task.class_weights = None
            torch.set_num_threads(threads)

    def fit(self, train: Any, valid: Any) -> NetworkFamily:
        ctx = self.ctx
        sub = None if ctx.single else self.name.replace(":", "-")
        result = self._train(train, valid, ctx.cfg.train, sub, ctx.resume, ctx.time_limit)
        self.net, self.best_epoch, self.history = result.model.eval(), result.best_epoch, \
            result.history
        self.settings = result.settings
        return self

    def refit(self, data: Any, grow: float) -> NetworkFamily:
        epochs = max(1, int(math.ceil(self.best_epoch * grow)))
        cfg = self.ctx.cfg.train.model_copy(update={"epochs": epochs, "patience": None})
        sub = self.name.replace(":", "-") + "-refit"
        self.net = self._train(data, None, cfg, sub, False, None).model.eval()
        return self

    def predict_raw(self, arrays: dict[str, np.ndarray]) -> np.ndarray:
        return torch_raw(self.net, {"image": arrays[self.column]}, batch=64)

    def info(self) -> dict[str, Any]:
        return {"best_epoch": self.best_epoch}

    def save(self, folder: Path) -> dict[str, Any]:
        from safetensors.torch import save_file

        from launchml.runs import atomic_path

        # pretrained timm weights bring their own mean/std: part of the column's fitted state
        self.ctx.states[self.column] = {**self.ctx.states[self.column],
                                        **self.net.normalization()}
        state = {k: v.detach().contiguous().cpu() for k, v in self.net.state_dict().items()}
        with atomic_path(folder / WEIGHTS) as tmp:
            save_file(state, str(tmp))
        spec = self.package_spec
        if any(getattr(h, "replaced", None) for h in getattr(self, "hooks", [])):
            spec = {**spec, "norm": "groupnorm"}  # as trained (privacy.dp): served so
        return {"files": {"weights": WEIGHTS}, "network": spec,
                "column": self.column}

    @classmethod
    def load(cls, folder: Path, spec: dict[str, Any], task: Task,
             states: dict[str, Any], engine: str) -> Any:
        from launchml.models.families import OnnxMember

        column = spec.get("column") or image_column(states)
        if engine == "onnx":
            return OnnxMember(folder, lambda arrays: {"image": arrays[column]},
                              file=spec.get("onnx", "model.onnx"))
        return TorchNetwork(folder, spec, task, states)


class TorchNetwork:
    """A packaged image network served by PyTorch."""

    def __init__(self, folder: Path, spec: dict[str, Any], task: Task,
                 states: dict[str, Any]) -> None:
        self.column = spec.get("column") or image_column(states)
        self.net = build_network(spec["network"], self.column, states[self.column], task,
                                 for_loading=True)
        from launchml.models.shapes import check_state_dict

        weights = member_weights(folder, spec)
        check_state_dict(self.net, weights, spec["files"]["weights"])
        try:
            self.net.load_state_dict(weights)
        except RuntimeError as e:  # missing, extra or misshaped weights: one line each
            lines = [x.strip().rstrip('.') for x in str(e).splitlines()[1:4] if x.strip()]
            raise PackageError(f"'{folder / spec['files']['weights']}' does not fit the "
                               f"package's {spec['network'].get('name')} network: "
                               f"{'; '.join(x[:200] for x in lines)}. The package is damaged. "
                               "Fix: re-run training to rebuild it.") from None
        self.net.eval()

    def inputs(self, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The network's one input is named ``image`` (also in ONNX), whatever the column."""
        return {"image": arrays[self.column]}

    def predict_raw(self, arrays: dict[str, np.ndarray]) -> np.ndarray:
        return torch_raw(self.net, self.inputs(arrays), batch=64)


def member_weights(folder: Path, spec: dict[str, Any]) -> dict[str, Any]:
    """A neural member's weights (safetensors), or a PackageError saying what to do."""
    from safetensors.torch import load_file

    path = folder / spec["files"]["weights"]
    if not path.exists():
        raise PackageError(f"'{path}' is missing: the package has no PyTorch weights. "
                           "Fix: use engine='onnx', or re-run training.")
    try:
        return load_file(path)
    except Exception as e:  # safetensors' own error type: a damaged file
        raise PackageError(f"'{path}' cannot be read as safetensors ({str(e)[:200]}); the "
                           "package is damaged. Fix: re-run training.") from None


def torch_raw(net: Any, inputs: dict[str, np.ndarray], batch: int = 1024) -> np.ndarray:
    """Raw outputs of ``net`` for named input arrays, ``batch`` rows at a time (float64)."""
    import torch

    n = len(next(iter(inputs.values())))
    outs = []
    with torch.inference_mode():
        for s in range(0, n, batch):
            # a copy where the rows are read-only (memory-mapped prepared arrays)
            t = {k: torch.from_numpy(np.array(v[s:s + batch], copy=not v.flags.writeable,
                                              order="C")) for k, v in inputs.items()}
            outs.append(net(**t).float().numpy())
    return np.concatenate(outs).astype(np.float64)
