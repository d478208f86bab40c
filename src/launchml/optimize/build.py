"""Building the variants of one package (``optimize.variants``), each a full package.

``Builder.build(name)`` returns the variant's package, the engine that serves it and
extra fields for its table row; a variant that cannot be built raises ``Blocked``
with the op or layer that blocks it (``blocking_op`` reads it out of an exporter's or
quantizer's error), and the stage goes on with the others.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from launchml import console
from launchml.data.schema import Prepared, pick_split, split_arrays
from launchml.optimize.onnx_variants import OptimizeConfig, export_onnx
from launchml.package import ONNX, WEIGHTS, Package, save_package
from launchml.runs import RunDir, atomic_path

if TYPE_CHECKING:
    from launchml.deploy.predictor import Predictor


class Builder:
    """Builds the variants of one package; each method returns (package, engine,
    extra row fields); the network a variant was made from sets FLOPs/params."""

    def __init__(self, cfg: OptimizeConfig, package: Package, prepared: Prepared,
                 run: RunDir, run_config: Any, base: Predictor) -> None:
        self.cfg, self.package, self.prepared, self.run = cfg, package, prepared, run
        self.run_config, self.base = run_config, base
        self.task = package.task
        self.member = None
        if base.neural:
            from launchml.optimize.networks import neural_member

            self.member = neural_member(base)
        self._onnx: Path | Exception | None = None
        self.nets: dict[str, Any] = {}  # variant -> the torch network it runs
        self.feeds_of: dict[str, Any] = {}  # variant -> its network's inputs, where not the
        # trained member's (a student with another plan)
        self.direct: Any = None  # a lightgbm student's reference, trained on the labels

    # -- data ----------------------------------------------------------------
    def split(self, name: str) -> tuple[dict[str, np.ndarray], np.ndarray] | None:
        if self.prepared.split(name) is None:
            return None
        return split_arrays(self.prepared, name)

    def calibration_feeds(self) -> dict[str, np.ndarray]:
        x, _ = self.split("train")
        n = len(next(iter(x.values())))
        idx = np.sort(np.random.default_rng(self.run_config.seed).choice(
            n, size=min(self.cfg.calibration_rows, n), replace=False))
        return self.member.feeds({k: np.asarray(v[idx]) for k, v in x.items()})

    def needs_neural(self, name: str) -> None:
        if self.member is None:
            fams = [m["family"] for m in self.package.meta["model"]["members"]]
            raise Blocked(f"{name} needs a neural member (seed_cnn, timm:<name> or mlp); "
                           f"this package holds {', '.join(fams)}")

    # -- ONNX ----------------------------------------------------------------
    def onnx_file(self) -> Path:
        if self._onnx is None:
            out = self.run.variants / "onnx"
            try:
                x, _ = self.split(pick_split(self.prepared, "auto"))
                self._onnx = export_onnx(self.member.net, self.member.feeds(x), out / ONNX)
            except Exception as e:  # noqa: BLE001 - every variant that needs it says why
                self._onnx = Blocked(f"ONNX export failed at {blocking_op(e)}")
        if isinstance(self._onnx, Exception):
            raise self._onnx
        return self._onnx

    def onnx_variant(self, name: str, graph: Path) -> Package:
        return variant_package(self.package, self.run.variants / name, graph, name)

    def build(self, name: str) -> tuple[Package, str, dict[str, Any]]:
        privacy = getattr(self.run_config, "privacy", None)
        if name in ("pruned", "distilled") and getattr(privacy, "dp", None) is not None:
            raise Blocked(f"privacy.dp: {name} would train on the rows again without DP-SGD "
                           "noise, outside the package's privacy budget. Fix: leave it out of "
                           "optimize.variants (int8 and fp16 do not train)")
        if name == "distilled":
            return self.distilled()
        self.needs_neural(name)
        self.nets[name] = self.member.net
        if name == "onnx":
            return self.onnx_variant("onnx", self.onnx_file()), "onnx", {}
        if name == "pruned":
            return self.pruned()
        from launchml.optimize import quantize as q

        src = self.onnx_file()
        out = self.run.variants / name / ONNX
        extra: dict[str, Any] = {}
        if name.startswith("int8"):
            method = name.removeprefix("int8_") if name != "int8" else None
            why = "as configured"
            if method is None:
                method, why = q.int8_method(src)
            extra = {"method": f"int8 {method}", "method_reason": why}
            try:
                if method == "static":
                    q.quantize_static(src, out, self.calibration_feeds())
                    extra["calibration_rows"] = min(self.cfg.calibration_rows,
                                                    len(self.prepared.splits["train"]))
                else:
                    q.quantize_dynamic(src, out)
            except Exception as e:  # noqa: BLE001
                raise Blocked(f"int8 {method} quantization failed at {blocking_op(e)}") from e
        elif name == "fp16":
            q.to_fp16(src, out)
            extra = {"method": "fp16 (inputs and outputs float32)"}
        return self.onnx_variant(name, out), "onnx", extra

    # -- pruning -------------------------------------------------------------
    def pruned(self) -> tuple[Package, str, dict[str, Any]]:
        import copy

        from launchml.optimize.networks import fit_network, trainer_data
        from launchml.optimize.prune import prune_network

        m = self.member
        net = copy.deepcopy(m.net)
        x, y = self.split("train")
        feeds = m.feeds({k: np.asarray(v[:2]) for k, v in x.items()})
        try:
            prune_network(net, feeds, self.cfg.prune.ratio)
        except Exception as e:  # noqa: BLE001 - the message names the layer
            raise Blocked(str(e)) from e
        epochs = self.cfg.prune.finetune_epochs
        if epochs:
            valid = self.split("validation")
            data = trainer_data(m.types, self.task, (m.feeds(x), y),
                                None if valid is None else (m.feeds(valid[0]), valid[1]),
                                self.package.preprocessing)
            train_cfg = self.run_config.train.model_copy(update={"epochs": epochs,
                                                                 "patience": None})
            console.info(f"optimize: fine-tuning the pruned network for {epochs} epoch(s)")
            net = fit_network(net, self.task, data, train_cfg=train_cfg,
                              run_root=self.run.root / "optimize", seed=self.run_config.seed,
                              name="pruned")
        self.nets["pruned"] = net
        out = self.run.variants / "pruned"
        graph = self._export(net, out, "pruned")
        return self.onnx_variant("pruned", graph), "onnx", {
            "method": f"channels pruned {self.cfg.prune.ratio:.0%}, fine-tuned {epochs} "
                      f"epoch(s)"}

    def _export(self, net: Any, out: Path, name: str) -> Path:
        x, _ = self.split(pick_split(self.prepared, "auto"))
        try:
            return export_onnx(net, self.member_feeds_for(x), out / ONNX)
        except Exception as e:  # noqa: BLE001
            raise Blocked(f"ONNX export of the {name} network failed at "
                           f"{blocking_op(e)}") from e

    def member_feeds_for(self, x: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return self.member.feeds({k: np.asarray(v[:2]) for k, v in x.items()})

    # -- distillation --------------------------------------------------------
    def student_name(self) -> str:
        student = self.cfg.distill.student
        if student != "auto":
            return student
        return "seed_cnn_small" if self.member is not None and \
            self.member.types == {"image": "image"} else "lightgbm"

    def distilled(self) -> tuple[Package, str, dict[str, Any]]:
        student = self.student_name()
        if student == "lightgbm":
            return self.distilled_lightgbm()
        return self.distilled_network(student)

    def teacher_raw(self, x: dict[str, np.ndarray]) -> np.ndarray:
        return self.base.logits(x)

    def distilled_network(self, student: str) -> tuple[Package, str, dict[str, Any]]:
        import torch
        from safetensors.torch import save_file

        from launchml.models import is_network
        from launchml.optimize.distill import DistillTask, distilled
        from launchml.optimize.networks import TEACHER, fit_network, trainer_data

        d = self.cfg.distill
        states = self.package.preprocessing
        x, y = self.split("train")
        valid = self.split("validation")
        torch.manual_seed(self.run_config.seed)
        if is_network(student):
            column = next((c.name for c in self.package.schema.inputs if c.type == "image"),
                          None)
            if self.member is None or self.member.types != {"image": "image"}:
                raise Blocked(f"student {student} takes one image column; this model's "
                               "inputs are not one image. Fix: optimize.distill.student: mlp "
                               "or lightgbm")
            from launchml.models.network_family import build_network

            net = build_network({"name": student}, column, states[column], self.task,
                                for_loading=False)
            spec = {"family": student, "weight": 1.0, "files": {"weights": WEIGHTS},
                    "network": net.package_spec, "column": column}
            def feeds(a: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
                return {"image": a[column]}

            types = {"image": "image"}
        elif student == "mlp":
            from launchml.models.plan import make_plan, pack
            from launchml.models.table_net import TableNet

            plan = make_plan(states, x)
            mlp_cfg = self.run_config.model.mlp
            net = TableNet(plan, states, mlp_cfg, self.task.num_outputs)
            spec = {"family": "mlp", "weight": 1.0, "files": {"weights": WEIGHTS},
                    "plan": plan, "config": self.run_config.model.model_dump(mode="json")}
            def feeds(a: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
                return pack(plan, a)

            types = {"numbers": "number", "categories": "category",
                     **{k: states[c]["type"] for k, c in plan["encoders"]}}
        else:  # pragma: no cover - validated by DistillConfig
            raise Blocked(f"unknown student {student}")

        def with_teacher(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
            return {**feeds(arrays), TEACHER: self.teacher_raw(arrays).astype(np.float32)}

        data = trainer_data({**types, TEACHER: "number"}, self.task, (with_teacher(x), y),
                            None if valid is None else (with_teacher(valid[0]), valid[1]),
                            states)
        epochs = d.epochs or self.run_config.train.epochs
        train_cfg = self.run_config.train.model_copy(update={"epochs": epochs})
        console.info(f"optimize: distilling into {student} for {epochs} epoch(s) "
                     f"(T={d.temperature}, alpha={d.alpha})")
        wrapped = fit_network(distilled(net), DistillTask(self.task, d.temperature, d.alpha),
                              data, train_cfg=train_cfg, run_root=self.run.root / "optimize",
                              seed=self.run_config.seed, name="distilled")
        net = wrapped.student.eval()
        self.nets["distilled"] = net
        out = self.run.variants / "distilled"
        out.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().contiguous().cpu() for k, v in net.state_dict().items()}
        with atomic_path(out / WEIGHTS) as tmp:
            save_file(state, str(tmp))
        ex = {k: np.asarray(v[:2]) for k, v in feeds(x).items()}
        try:
            graph = export_onnx(net, ex, out / ONNX)
        except Exception as e:  # noqa: BLE001
            raise Blocked(f"ONNX export of the student failed at {blocking_op(e)}") from e
        self.feeds_of["distilled"] = feeds
        pkg = save_package(
            out, schema=self.package.schema, model_spec={"name": student, "members": [spec]},
            preprocessing=states, metrics={"variant": "distilled"},
            provenance=self.package.meta["provenance"], onnx_file=graph,
            threshold=self.package.threshold, source=self.package.source,
            files={"weights": WEIGHTS})
        return pkg, "onnx", {"method": f"student {student} on the teacher's soft targets "
                             f"(T={d.temperature}, alpha={d.alpha}, {epochs} epochs)",
                             "student": student}

    def distilled_lightgbm(self) -> tuple[Package, str, dict[str, Any]]:
        from launchml.models.families import FitContext, LightGBMFamily
        from launchml.optimize.distill import munge, teacher_targets

        task, states = self.task, self.package.preprocessing
        if task.name == "multilabel":
            raise Blocked("a lightgbm student cannot learn multilabel outputs. Fix: "
                           "optimize.distill.student: mlp")
        if not LightGBMFamily.applies(states):
            raise Blocked("a lightgbm student needs number/category columns. Fix: "
                           "optimize.distill.student: auto or a network")
        x, y = self.split("train")
        valid = self.split("validation")
        extra = int(round(self.cfg.distill.synthetic_rows * len(y)))
        rows = {k: np.asarray(v) for k, v in x.items()}
        if extra:
            fake = munge(rows, extra, self.run_config.seed)
            rows = {k: np.concatenate([rows[k], fake[k]]) for k in rows}
        labels = teacher_targets(task, self.teacher_raw(rows), self.package.threshold)
        ctx = FitContext(task=task, states=states, cfg=self.run_config, run=self.run)
        console.info(f"optimize: distilling into lightgbm on {len(labels)} teacher-labelled "
                     f"rows ({extra} synthetic)")
        student = LightGBMFamily(ctx).fit((rows, labels), valid)
        direct = LightGBMFamily(ctx).fit((x, y), valid)  # the reference: labels only
        out = self.run.variants / "distilled"
        out.mkdir(parents=True, exist_ok=True)
        spec = student.save(out)
        pkg = save_package(
            out, schema=self.package.schema,
            model_spec={"name": "lightgbm", "members": [{"family": "lightgbm", "weight": 1.0,
                                                         **spec}]},
            preprocessing=states, metrics={"variant": "distilled"},
            provenance=self.package.meta["provenance"], threshold=self.package.threshold,
            source=self.package.source, files=spec["files"])
        self.direct = direct
        return pkg, "lightgbm", {"method": f"lightgbm on the teacher's outputs ({extra} "
                                 "synthetic rows)", "student": "lightgbm"}


class Blocked(Exception):
    """A variant that cannot be built; the message names the blocking op or layer."""


_OP = re.compile(r"(aten(?:::|\.)[A-Za-z_]\w*|onnx::\w+|\b[A-Z]\w+\(\d+\) node with name "
                 r"'[^']*'|node '[^']+'|op(?:erator)? '[\w.:]+')")


def blocking_op(err: BaseException) -> str:
    """The op or node an exporter/quantizer error names (the deepest cause first), and
    that cause's first line."""
    chain = _chain(err)[::-1]  # the root cause names the op most precisely
    found = next((m.group(0) for e in chain if (m := _OP.search(str(e)))), None)
    root = next((e for e in chain if str(e).strip()), err)
    first = str(root).strip().splitlines()[0] if str(root).strip() else type(err).__name__
    return f"{found or type(root).__name__}: {first[:300]}"


def _chain(err: BaseException) -> list[BaseException]:
    out, e = [], err
    while e is not None and e not in out:
        out.append(e)
        e = e.__cause__ or e.__context__
    return out


def variant_package(package: Package, out: Path, onnx_file: Path, name: str) -> Package:
    """A servable package of the variant: model.onnx, plus the package's non-neural members."""
    others = {k: v for k, v in package.meta["files"].items()
              if v and k not in ("weights", "onnx") and not k.startswith("picked")}
    for file in others.values():
        with atomic_path(out / file, suffix=Path(file).suffix) as tmp:
            shutil.copyfile(package.path / file, tmp)
    return save_package(
        out, schema=package.schema, model_spec=package.meta["model"],
        preprocessing=package.preprocessing, metrics={"variant": name},
        provenance=package.meta["provenance"], onnx_file=onnx_file, threshold=package.threshold,
        source=package.source, files=others,
    )
