"""Model families behind one interface, and the ensemble of them a package holds.

Every family, for every kind of input, has ``applies(states)``, ``fit(train,
valid)``, ``refit(all_rows, grow)``, ``predict_raw(arrays)``, ``info()``,
``save(folder) -> member spec`` and ``load(folder, spec, task, states, engine)``;
arrays are the prepared features (one per column or column part). ``FAMILIES``
maps a name to its class; the image networks (``seed_cnn``, ``timm:<name>``) are
one class, ``NetworkFamily`` (models/network_family.py). ``model: auto`` tries
the families that apply.

A package's ``model`` section is ``{"name", "members": [{"family", "weight",
...spec}]}``; ``Ensemble`` loads the members and averages their probabilities
(values for regression) with those weights.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from launchml.data.schema import (
    SEQUENCE_TYPES,  # noqa: E402
    Column,
    Prepared,
    Schema,
    Split,
)
from launchml.data.schema import TABULAR_TYPES as TABULAR
from launchml.errors import LaunchmlError, PackageError
from launchml.models.linear_family import LinearModel
from launchml.models.network_family import (
    NetworkFamily,
    image_column,
    member_weights,
    torch_raw,
)
from launchml.models.plan import ENCODED, make_plan, pack
from launchml.runs import RunDir
from launchml.tasks import Task

Data = tuple[dict[str, np.ndarray], np.ndarray]


@dataclass
class FitContext:
    """What a family needs besides the data."""

    task: Task
    states: dict[str, dict[str, Any]]
    cfg: Any  # RunConfig
    run: RunDir
    time_limit: float | None = None
    weights: np.ndarray | None = None  # per-class weights (balanced) or None
    resume: bool = False  # an image network continues from the run's last.ckpt
    fingerprint: str = ""  # the prepared data's; part of a checkpoint's resume key
    single: bool = True  # the only family of the run: it keeps the run's checkpoints
    # training-loop plugins (DP-SGD, a federated client's round), made fresh for each fit
    make_hooks: Any = list


class LightGBMFamily:
    """Trees over the number/category/boolean/date arrays (text etc. not used)."""

    name = "lightgbm"

    @staticmethod
    def applies(states: dict[str, dict[str, Any]]) -> bool:
        # tabular columns, molecules with their RDKit features, or small images' pixels
        return any(s["type"] in TABULAR or s.get("chem") or _pixels(s) for s in states.values())

    params: dict[str, Any] = {}  # LightGBM parameters beside the defaults
    files = ("model.lgb.txt", "model.lgb.features.json")

    def __init__(self, ctx: FitContext) -> None:
        from launchml.models.lightgbm_family import LightGBMModel

        self.ctx = ctx
        self.model = LightGBMModel(ctx.task, seed=ctx.cfg.seed, params=self.params)

    def _x(self, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The 1-D tabular arrays, and each column of the 2-D float parts of any column (a
        molecule's fingerprints and descriptors) as '<part>[j]'."""
        skip = {c for c, s in self.ctx.states.items() if s["type"] in ENCODED}
        out = {k: v for k, v in arrays.items() if v.ndim == 1 and k.split(":")[0] not in skip}
        for k, v in arrays.items():
            if v.ndim == 2 and v.dtype.kind == "f" and ":" in k:
                out.update({f"{k}[{j}]": v[:, j] for j in range(v.shape[1])})
            elif _pixels(self.ctx.states.get(k, {})):  # floats: uint8 would read as categories
                flat = np.asarray(v).reshape(len(v), -1).astype(np.float32)
                out.update({f"{k}[{j}]": flat[:, j] for j in range(flat.shape[1])})
        return out

    def _deadline(self) -> float | None:
        import time

        limit = self.ctx.time_limit
        return None if limit is None else time.perf_counter() + limit

    def _sample_weight(self, y: np.ndarray) -> np.ndarray | None:
        w = self.ctx.weights
        return None if w is None or self.ctx.task.name not in ("binary", "multiclass") \
            else w[np.asarray(y, dtype=np.int64)]

    def fit(self, train: Data, valid: Data | None) -> LightGBMFamily:
        v = (self._x(valid[0]), valid[1]) if valid is not None else None
        self.model.fit(self._x(train[0]), train[1], valid=v, weight=self._sample_weight(train[1]),
                       deadline=self._deadline())
        return self

    def refit(self, data: Data, grow: float) -> LightGBMFamily:
        best = self.model.booster_.best_iteration or self.model.booster_.current_iteration()
        self.model.num_boost_round = max(1, int(math.ceil(best * grow)))
        self.model.fit(self._x(data[0]), data[1], valid=None,
                       weight=self._sample_weight(data[1]))
        return self

    def predict_raw(self, arrays: dict[str, np.ndarray]) -> np.ndarray:
        # the booster's own feature names pick the arrays, in training and in serving
        return self.model.predict_raw(arrays)

    def info(self) -> dict[str, Any]:
        b = self.model.booster_
        return {"trees": int(b.best_iteration or b.current_iteration())}

    def save(self, folder: Path) -> dict[str, Any]:
        model, features = self.files
        self.model.save(folder, model, features)
        key = self.name.replace("lightgbm", "")
        return {"files": {f"lightgbm{key}": model, f"lightgbm{key}_features": features}}

    @classmethod
    def load(cls, folder: Path, spec: dict[str, Any], task: Task,
             states: dict[str, Any], engine: str) -> Any:
        from launchml.models.lightgbm_family import LightGBMModel

        return _served(cls, LightGBMModel.load(folder, task, *cls.files))


class LightGBMExtraFamily(LightGBMFamily):
    """A second LightGBM configuration (smaller leaves, row and feature sampling, L2):
    what ``auto`` fits with the time the other families leave over, for the ensemble."""

    name = "lightgbm_extra"
    params = {"num_leaves": 15, "learning_rate": 0.03, "feature_fraction": 0.7,
              "bagging_fraction": 0.8, "bagging_freq": 1, "lambda_l2": 1.0,
              "min_data_in_leaf": 10}
    files = ("model.lgb_extra.txt", "model.lgb_extra.features.json")


class LinearFamily:
    name = "linear"

    @staticmethod
    def applies(states: dict[str, dict[str, Any]]) -> bool:
        return any(s["type"] in TABULAR or s["type"] in SEQUENCE_TYPES for s in states.values())

    def __init__(self, ctx: FitContext) -> None:
        self.ctx = ctx
        self.model = LinearModel(ctx.task, _linear_states(ctx.states), seed=ctx.cfg.seed,
                                 class_weight=ctx.cfg.model.class_weight)

    def fit(self, train: Data, valid: Data | None) -> LinearFamily:
        import time

        limit = self.ctx.time_limit
        # most of the family's time for trying strengths (the last fit needs the rest; the
        # refit is estimated apart, ``refit_seconds``)
        self.model.fit(*train, valid=valid, deadline=None if limit is None else
                       time.perf_counter() + limit * 0.75)
        return self

    def refit(self, data: Data, grow: float) -> LinearFamily:
        self.model.refit(*data)
        return self

    def refit_seconds(self, grow: float) -> float:
        """About what ``refit`` takes: the features and one fit, not the strength search."""
        return self.model.fit_cost_ * grow

    def predict_raw(self, arrays: dict[str, np.ndarray]) -> np.ndarray:
        return self.model.predict_raw(arrays)

    def info(self) -> dict[str, Any]:
        return {"strength": self.model.strength}

    def save(self, folder: Path) -> dict[str, Any]:
        return self.model.save(folder)

    @classmethod
    def load(cls, folder: Path, spec: dict[str, Any], task: Task,
             states: dict[str, Any], engine: str) -> Any:
        return _served(cls, LinearModel.load(folder, spec, task, _linear_states(states)))


MAX_PIXELS = 4096  # an image column with at most this many values feeds LightGBM too


def _pixels(state: dict[str, Any]) -> bool:
    """A small image column, whose pixels LightGBM reads as features (as a pixel baseline
    would); larger images are the networks' alone."""
    if state.get("type") != "image":
        return False
    h, w = state["target_size"]
    return h * w * int(state.get("channels") or 3) <= MAX_PIXELS


def _served(cls: Any, model: Any) -> Any:
    """A family object around a loaded model: serving calls the same ``predict_raw``
    as training did (one class per family, not a training and a serving one)."""
    family = cls.__new__(cls)
    family.model = model
    return family


def _linear_states(states: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {c: s for c, s in states.items() if s["type"] != "image"}


class MLPFamily:
    """The neural combiner (``TableNet``) trained by the Fabric loop."""

    name = "mlp"

    @staticmethod
    def applies(states: dict[str, dict[str, Any]]) -> bool:
        # a lone image column is the image networks' (the combiner would add a head)
        return bool(states) and image_column(states) is None

    def __init__(self, ctx: FitContext) -> None:
        self.ctx = ctx

    def _train_cfg(self, **override: Any) -> Any:
        # train.* as the saved config says (RunConfig fills the table defaults in)
        return self.ctx.cfg.train.model_copy(update=override)

    def _prepared(self, train: Data, valid: Data | None) -> Prepared:
        task = self.ctx.task
        # the model's named inputs as columns: the trainer augments those of type image
        inputs = [Column(key, self.ctx.states[col]["type"]) for key, col in self.plan["encoders"]]
        schema = Schema(columns=[*inputs, Column("__target__", "target")], target="__target__",
                        task=task.name, labels=task.labels)
        splits = {"train": Split("train", {**pack(self.plan, train[0]),
                                           "__target__": _target(task, train[1])})}
        if valid is not None:
            splits["validation"] = Split("validation", {**pack(self.plan, valid[0]),
                                                        "__target__": _target(task, valid[1])})
        return Prepared(schema=schema, splits=splits, preprocessing=self.ctx.states,
                        manifest={})

    def _train(self, data: Prepared, cfg: Any, sub: str, time_limit: float | None) -> Any:
        import torch

        from launchml.train import Trainer

        ctx = self.ctx
        torch.manual_seed(ctx.cfg.seed)
        from launchml.models.table_net import TableNet

        net = TableNet(self.plan, ctx.states, ctx.cfg.model.mlp, ctx.task.num_outputs)
        task = ctx.task
        if ctx.weights is not None:
            task.class_weights = torch.as_tensor(ctx.weights, dtype=torch.float32)
        if ctx.cfg.train.num_threads is None and not self.plan["encoders"]:
            # numbers and embeddings only: a small net, where a second thread costs more
            # in synchronization than it gains (and oversubscribes shared machines)
            cfg = cfg.model_copy(update={"num_threads": 1})
        self.hooks = ctx.make_hooks()
        trainer = Trainer(cfg, run=RunDir(ctx.run.root / "families" / sub), seed=ctx.cfg.seed,
                          resume_key={"family": sub}, checkpoints=False, hooks=self.hooks)
        threads = torch.get_num_threads()
        try:
            result = trainer.fit(net, task, data, time_limit=time_limit)
        finally:
            task.class_weights = None
            torch.set_num_threads(threads)  # the trainer's choice ends with this fit
        return result

    def fit(self, train: Data, valid: Data | None) -> MLPFamily:
        self.plan = make_plan(self.ctx.states, train[0])
        result = self._train(self._prepared(train, valid), self._train_cfg(), "mlp",
                             self.ctx.time_limit)
        self.net, self.best_epoch = result.model.eval(), result.best_epoch
        return self

    def refit(self, data: Data, grow: float) -> MLPFamily:
        epochs = max(1, int(math.ceil(self.best_epoch * grow)))
        cfg = self._train_cfg(epochs=epochs, patience=None)
        result = self._train(self._prepared(data, None), cfg, "mlp-refit", None)
        self.net = result.model.eval()
        return self

    def predict_raw(self, arrays: dict[str, np.ndarray]) -> np.ndarray:
        return torch_raw(self.net, pack(self.plan, arrays))

    def info(self) -> dict[str, Any]:
        return {"best_epoch": self.best_epoch}

    def save(self, folder: Path) -> dict[str, Any]:
        from safetensors.torch import save_file

        from launchml.package import WEIGHTS
        from launchml.runs import atomic_path

        self.net.finalize()
        # an image encoder's mean/std (pretrained timm weights bring their own) are
        # non-persistent buffers: keep them in the column's state, which the package saves
        # and ``build_encoder(..., for_loading=True)`` reads
        for key, col in self.plan["encoders"]:
            enc = self.net.encoders[key]
            if hasattr(enc, "normalization"):
                self.ctx.states[col] = {**self.ctx.states[col], **enc.normalization()}
        state = {k: v.detach().contiguous().cpu() for k, v in self.net.state_dict().items()}
        with atomic_path(folder / WEIGHTS) as tmp:
            save_file(state, str(tmp))
        return {"files": {"weights": WEIGHTS}, "plan": self.plan,
                "config": self.ctx.cfg.model.model_dump(mode="json")}

    @classmethod
    def load(cls, folder: Path, spec: dict[str, Any], task: Task,
             states: dict[str, Any], engine: str) -> Any:
        if engine == "onnx":
            plan = spec["plan"]
            return OnnxMember(folder, lambda arrays: pack(plan, arrays),
                              file=spec.get("onnx", "model.onnx"))
        return TorchMember(folder, spec, task, states)


class TorchMember:
    def __init__(self, folder: Path, spec: dict[str, Any], task: Task,
                 states: dict[str, Any]) -> None:
        from launchml.models import ModelConfig

        weights = member_weights(folder, spec)
        self.plan = spec["plan"]
        from launchml.models.table_net import TableNet

        self.net = TableNet(self.plan, states, ModelConfig.model_validate(spec["config"]).mlp,
                            task.num_outputs, for_loading=True)
        from launchml.models.shapes import check_state_dict

        check_state_dict(self.net, weights, spec["files"]["weights"])
        self.net.load_state_dict(weights)
        self.net.eval()

    def inputs(self, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return pack(self.plan, arrays)

    def predict_raw(self, arrays: dict[str, np.ndarray]) -> np.ndarray:
        return torch_raw(self.net, pack(self.plan, arrays))


class OnnxMember:
    """The neural member of a package served by ONNX Runtime (``model.onnx``)."""

    def __init__(self, folder: Path, inputs: Any, batch: int = 1024,
                 file: str = "model.onnx") -> None:
        import onnxruntime as ort

        path = folder / file  # another graph of the member: a picked variant's (optimize)
        if not path.exists():
            raise PackageError(f"'{folder}' has no model.onnx. Fix: run the optimize stage "
                               "(launchml run) or use engine='torch'.")
        self.inputs, self.batch = inputs, batch  # prepared arrays -> the graph's inputs
        self.session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])

    def predict_raw(self, arrays: dict[str, np.ndarray]) -> np.ndarray:
        feed = self.inputs(arrays)
        n = len(next(iter(feed.values())))
        return np.concatenate([onnx_run(self.session, {k: v[s:s + self.batch]
                                                       for k, v in feed.items()})
                               for s in range(0, n, self.batch)]).astype(np.float64)


def onnx_run(session: Any, inputs: dict[str, np.ndarray]) -> np.ndarray:
    """Feed each ONNX input in the dtype the graph declares."""
    dtypes = {"tensor(float)": np.float32, "tensor(int64)": np.int64, "tensor(uint8)": np.uint8}
    feed = {i.name: np.ascontiguousarray(inputs[i.name], dtype=dtypes.get(i.type, np.float32))
            for i in session.get_inputs()}
    return session.run(None, feed)[0]


def _target(task: Task, y: np.ndarray) -> np.ndarray:
    if task.name in ("binary", "multiclass"):
        return np.asarray(y, dtype=np.int64)
    return np.asarray(y, dtype=np.float32)


FAMILIES: dict[str, Any] = {"lightgbm": LightGBMFamily, "linear": LinearFamily,
                            "mlp": MLPFamily, "lightgbm_extra": LightGBMExtraFamily}


def family_class(name: str) -> Any:
    """The class of a family name; seed_cnn and timm:<name> are ``NetworkFamily``."""
    from launchml.models import is_network

    return NetworkFamily if is_network(name) else FAMILIES[name]


def create_family(name: str, ctx: FitContext) -> Any:
    cls = family_class(name)
    return cls(ctx, name) if cls is NetworkFamily else cls(ctx)


def combine(task: Task, raws: list[np.ndarray], weights: list[float]) -> np.ndarray:
    """Weighted average of members in probability space, returned as raw outputs."""
    if len(raws) == 1:
        return raws[0]
    w = np.asarray(weights, dtype=np.float64) / sum(weights)
    if task.name == "regression":
        return sum(wi * r for wi, r in zip(w, raws, strict=True))
    if task.name == "multiclass":
        p = sum(wi * task.probabilities(r) for wi, r in zip(w, raws, strict=True))
        return np.log(np.clip(p, 1e-12, None))
    # binary and multilabel: per-output sigmoid probabilities -> logits
    from scipy.special import expit

    p = sum(wi * expit(np.asarray(r, dtype=np.float64))
            for wi, r in zip(w, raws, strict=True))
    p = np.clip(p, 1e-12, 1 - 1e-12)
    from scipy.special import logit

    return logit(p)


def _load_member(folder: Path, i: int, member: dict[str, Any], task: Task,
                 states: dict[str, Any], engine: str) -> Any:
    """One member, or a one-line PackageError naming it when its files do not fit it
    (missing tensors, wrong shapes, an unreadable model file)."""
    from launchml.models.shapes import MemberFilesError

    try:
        return family_class(member["family"]).load(folder, member, task, states, engine)
    except MemberFilesError as e:  # a tensor that does not fit: name the member
        raise PackageError(f"model.members[{i}] ({member['family']}): {e}") from None
    except LaunchmlError:
        raise
    except Exception as e:  # noqa: BLE001 - a damaged file fails in many library ways
        first = (str(e).strip().splitlines() or [""])[0][:300]
        raise PackageError(f"'{folder}': model.members[{i}] ({member['family']}) cannot be "
                           f"loaded: {type(e).__name__}: {first}. The package is damaged. "
                           "Fix: re-run training to rebuild it.") from None


class Ensemble:
    """The members of a table package, loaded for one engine."""

    def __init__(self, folder: Path, model: dict[str, Any], task: Task,
                 states: dict[str, Any], engine: str) -> None:
        self.task = task
        self.members = [_load_member(folder, i, m, task, states, engine)
                        for i, m in enumerate(model["members"])]
        self.weights = [m["weight"] for m in model["members"]]

    def predict_raw(self, arrays: dict[str, np.ndarray]) -> np.ndarray:
        return combine(self.task, [m.predict_raw(arrays) for m in self.members], self.weights)
