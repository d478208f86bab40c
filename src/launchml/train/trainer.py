"""The training loop on Lightning Fabric.

``Trainer.fit`` calls ``train_loop`` and ``val_loop`` once per epoch, steps
the scheduler, checks early stopping and saves ``last.ckpt`` / ``best.ckpt``.
Batches are gathered from the prepared uint8 array (moved to the device whole
when it fits) in an order drawn from ``seed`` and the epoch number, so a run
resumed from ``last.ckpt`` continues exactly as an uninterrupted run would.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from lightning_fabric import Fabric

from launchml import console
from launchml.data.schema import Prepared, Split
from launchml.errors import ConfigError, RunError
from launchml.runs import RunDir, atomic_path, write_text
from launchml.tasks import Task
from launchml.train.augment import augment
from launchml.train.config import TrainConfig
from launchml.train.progress import EpochProgress
from launchml.train.speed import (
    FABRIC_PRECISION,
    resolve_accelerator,
    speed_settings,
    tune_allocator,
)


@dataclass
class TrainResult:
    model: torch.nn.Module
    history: list[dict[str, Any]]
    best_epoch: int
    best_metric: float
    settings: dict[str, Any] = field(default_factory=dict)


# config keys that do not change what training computes, so they may differ on --resume
_RESUME_FREE = {"version", "name", "output_dir", "optimize", "evaluate"}
_RESUME_FREE_TRAIN = {"accelerator", "data_on_device", "num_threads", "compile"}


def resume_key(cfg_dict: dict[str, Any], data_fingerprint: str) -> dict[str, Any]:
    """The settings a resumed run must share with its checkpoint, as dotted keys.

    ``train.epochs`` may change (train longer), unless a scheduler's length
    depends on it; the prepared data must be the same files and settings.
    """
    d = {k: v for k, v in json.loads(json.dumps(cfg_dict)).items() if k not in _RESUME_FREE}
    train = {k: v for k, v in d.get("train", {}).items() if k not in _RESUME_FREE_TRAIN}
    if train.get("scheduler", "none") == "none":
        train.pop("epochs", None)
    d["train"] = train
    flat: dict[str, Any] = {}

    def walk(node: Any, prefix: str) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, f"{prefix}.{k}" if prefix else k)
        else:
            flat[prefix] = node

    walk(d, "")
    flat["prepared data (files and sizes)"] = data_fingerprint
    return flat


def upgrade_resume_key(saved: dict[str, Any], current: dict[str, Any]) -> dict[str, Any]:
    """A checkpoint's key from before per-family model sections, in today's names: the
    flat ``model.<key>`` settings where they live now, and the sections' other keys at
    their defaults (they did not exist, so the run had them at their defaults). A flat
    dropout/pretrained meant both families and only one trained: it matches when one of
    the two sections still holds its value."""
    from launchml.models import LEGACY_KEYS, MLPConfig, NetworkConfig

    flat = [k for k in LEGACY_KEYS if f"model.{k}" in saved]
    if not flat:
        return saved
    out = {k: v for k, v in saved.items() if k.removeprefix("model.") not in LEGACY_KEYS}
    for section, cls in (("mlp", MLPConfig), ("network", NetworkConfig)):
        for key, value in cls().model_dump(mode="json").items():
            out[f"model.{section}.{key}"] = value
    for k in flat:
        value = saved[f"model.{k}"]
        names = [f"model.{section}.{key}" for section, key in LEGACY_KEYS[k]]
        kept = any(current.get(n) == value for n in names)  # by the family that trained
        for n in names:
            out[n] = current.get(n, value) if kept else value
    return out


class TrainHook:
    """A plugin of the loop (DP-SGD, a federated client's round): no-op methods, called
    in this order by ``fit`` and ``train_loop``; ``Trainer(hooks=[...])``."""

    def settings(self, settings: dict[str, Any]) -> dict[str, Any]:
        return settings  # the speed settings it cannot run with, changed

    def setup(self, model: torch.nn.Module) -> torch.nn.Module:
        return model  # before the optimizer is built (replace layers, load weights)

    def attach(self, model, opt, n: int, batch_size: int, seed: int):
        return model, opt  # before Fabric wraps them

    def batches(self, epoch: int):
        return None  # an iterable of row-index tensors, or None: the shuffled batches

    def stepped(self) -> bool:
        return True  # after opt.step(): False when it only accumulated (a partial batch)

    def epoch_end(self, epoch: int) -> dict[str, Any]:
        return {}  # added to the epoch's row in events.jsonl

    def close(self, model: torch.nn.Module) -> None:
        pass


def _fits(nbytes: int, device: torch.device) -> bool:
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return nbytes < 0.5 * free
    avail = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    return nbytes < 0.25 * avail


class Trainer:
    """Constructors store; ``fit`` computes."""

    def __init__(self, cfg: TrainConfig, *, run: RunDir, seed: int,
                 resume_key: dict[str, Any], checkpoints: bool = True,
                 hooks: list[TrainHook] | tuple[TrainHook, ...] = ()) -> None:
        """``checkpoints=False``: keep the best weights in memory, write no files (a
        family inside ``model: auto`` that is never resumed; saves a write per epoch)."""
        self.cfg = cfg
        self.run = run
        self.seed = seed
        self.resume_key = resume_key
        self.checkpoints = checkpoints
        self.hooks = list(hooks)
        self._best_state: dict[str, torch.Tensor] | None = None
        self._images: list[str] = []  # input columns of type image (set by fit)

    # -- setup -------------------------------------------------------------
    def _settings(self, steps: int, images: bool) -> dict[str, Any]:
        """The speed settings, chosen per accelerator and CPU kind (``speed``), with why."""
        cfg = self.cfg
        accel = resolve_accelerator(cfg.accelerator)
        compile_ = cfg.compile if cfg.compile != "auto" else (accel == "cuda" and steps >= 500)
        speed = speed_settings(cfg, accel, images)
        return {"accelerator": accel, "precision": speed.pop("precision"),
                "compile": bool(compile_), **speed, **tune_allocator()}

    def _optimizer(self, model: torch.nn.Module, fused: bool) -> torch.optim.Optimizer:
        cfg = self.cfg
        params = [p for p in model.parameters() if p.requires_grad]
        extra = {"fused": True} if fused else {}
        if cfg.optimizer == "sgd":
            return torch.optim.SGD(params, lr=cfg.learning_rate, momentum=cfg.momentum,
                                   weight_decay=cfg.weight_decay, **extra)
        cls = torch.optim.Adam if cfg.optimizer == "adam" else torch.optim.AdamW
        return cls(params, lr=cfg.learning_rate, weight_decay=cfg.weight_decay, **extra)

    def _scheduler(self, opt: torch.optim.Optimizer, total: int):
        if self.cfg.scheduler == "cosine":
            return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total)
        if self.cfg.scheduler == "onecycle":
            return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=self.cfg.learning_rate,
                                                       total_steps=total)
        return None

    def _to_device(self, split: Split | None, target: str,
                   device: torch.device) -> tuple[Any, Any] | None:
        """(inputs by name, targets): each input moved whole to the device when it fits."""
        if split is None:
            return None
        inputs = {k: v for k, v in split.arrays.items() if k != target}
        on_device = self.cfg.data_on_device
        if on_device == "auto":
            on_device = _fits(sum(v.nbytes for v in inputs.values()), device)
        y_t = torch.from_numpy(np.asarray(split.arrays[target])).to(device)
        if on_device:
            return {k: torch.from_numpy(np.array(v)).to(device) for k, v in inputs.items()}, y_t
        return inputs, y_t  # memmaps: batches are gathered from disk

    # -- the loop ----------------------------------------------------------
    def fit(self, model: torch.nn.Module, task: Task, prepared: Prepared, *,
            resume: bool = False, time_limit: float | None = None) -> TrainResult:
        """Train on the ``train`` split; ``time_limit`` seconds stop it after an epoch."""
        cfg = self.cfg
        train = prepared.split("train")
        if train is None:
            raise RunError("the train split is empty: nothing to train on")
        val = prepared.split("validation")
        target = prepared.schema.target
        # the image inputs (N x H x W x C pixels), by column type: augmented, size-checked
        images = [c.name for c in prepared.schema.inputs if c.type == "image"]
        self._images = images
        side = min((min(train.arrays[k].shape[1:3]) for k in images), default=math.inf)
        if cfg.augment.crop >= side:
            raise ConfigError(f"train.augment.crop: {cfg.augment.crop} pixels must be smaller "
                              f"than the image side ({side}). Fix: use e.g. {max(side // 8, 1)}.")
        steps = math.ceil(len(train) / cfg.batch_size)
        # an image network (ImageModel: its ``channels_last`` switch) gets the CPU's
        # channels-last and bf16 defaults; tables, text and mixed inputs keep NCHW fp32 on CPUs
        settings = self._settings(steps * cfg.epochs, images=hasattr(model, "channels_last"))
        for h in self.hooks:
            settings = h.settings(settings)
            model = h.setup(model)
        torch.set_num_threads(settings["num_threads"])
        torch.manual_seed(self.seed)
        fabric = Fabric(accelerator=settings["accelerator"], devices=1,
                        precision=FABRIC_PRECISION[settings["precision"]])
        if settings["channels_last"]:
            model = model.to(memory_format=torch.channels_last)
            for m in model.modules():
                if hasattr(m, "channels_last"):
                    m.channels_last = True
        raw_model = model
        opt = self._optimizer(model, fused=settings["fused_optimizer"])
        sched = self._scheduler(opt, steps * cfg.epochs)
        for h in self.hooks:
            model, opt = h.attach(model, opt, len(train), cfg.batch_size, self.seed)
        model, opt = fabric.setup(model, opt)
        if settings["compile"]:
            model = torch.compile(model)
        monitor = cfg.monitor if val is not None else "train_loss"
        sign = -1.0 if monitor.endswith("accuracy") else 1.0  # lower is better after sign
        state = {"epoch": 0, "best": math.inf, "best_epoch": 0, "bad_epochs": 0,
                 "stopped": False, "history": []}
        if resume:
            state = self._load(raw_model, opt, sched, fabric.device)
            if state.get("stopped"):
                console.info(f"train: the run had stopped early at epoch {state['epoch']}; "
                             "nothing left to train")
        self.run.checkpoints.mkdir(parents=True, exist_ok=True)
        data = self._to_device(train, target, fabric.device)
        val_data = self._to_device(val, target, fabric.device)
        started = time.perf_counter()
        console.info(
            f"train: {len(train)} rows, {cfg.epochs} epochs on {settings['accelerator']} "
            f"({settings['precision']}, {settings['num_threads']} "
            f"thread{'s' if settings['num_threads'] != 1 else ''}"
            f"{', compiled' if settings['compile'] else ''})"
        )
        progress = EpochProgress(cfg.epochs, len(train), unit="img" if images else "rows")
        first = cfg.epochs + 1 if state.get("stopped") else state["epoch"] + 1
        for epoch in range(first, cfg.epochs + 1):
            torch.manual_seed(self.seed * 1000 + epoch)  # dropout etc., resumable
            t0 = time.perf_counter()
            deadline = None if time_limit is None else started + time_limit
            train_metrics = self.train_loop(fabric, model, opt, sched, task, data, epoch, progress,
                                            deadline)
            seconds = time.perf_counter() - t0
            row = {"event": "epoch", "epoch": epoch, **train_metrics,
                   **self.val_loop(fabric, model, task, val_data),
                   "lr": opt.param_groups[0]["lr"], "seconds": round(seconds, 3),
                   "train_images_per_s": round(len(train) / seconds, 1)}
            for h in self.hooks:
                row.update(h.epoch_end(epoch))
            score = sign * row[monitor]
            improved = score < state["best"]
            state["best"], state["best_epoch"] = ((score, epoch) if improved
                                                  else (state["best"], state["best_epoch"]))
            state["bad_epochs"] = 0 if improved else state["bad_epochs"] + 1
            state["epoch"] = epoch
            state["history"].append(row)
            stop = cfg.patience is not None and state["bad_epochs"] >= cfg.patience
            out_of_time = (time_limit is not None and epoch < cfg.epochs
                           and time.perf_counter() - started > time_limit)
            state["stopped"] = stop or out_of_time
            self._save(raw_model, opt, sched, state, best=improved)
            self._write_events(state["history"], settings)
            progress.epoch_done(row)
            if stop:
                console.info(f"train: early stop at epoch {epoch}: {monitor} did not improve "
                             f"for {cfg.patience} epochs (best epoch {state['best_epoch']})")
                break
            if out_of_time:
                console.info(f"train: time limit ({time_limit:.0f}s) reached after epoch "
                             f"{epoch} (best epoch {state['best_epoch']})")
                break
        progress.close()
        for h in self.hooks:
            h.close(raw_model)
        self._restore_best(raw_model, fabric.device)
        return TrainResult(model=raw_model, history=state["history"],
                           best_epoch=state["best_epoch"], best_metric=sign * state["best"],
                           settings=settings)

    def train_loop(self, fabric, model, opt, sched, task: Task, data, epoch: int,
                   progress: EpochProgress, deadline: float | None = None) -> dict[str, float]:
        """One epoch; past ``deadline`` (a time limit) it ends after the current batch."""
        model.train()
        x, y = data
        n = len(y)
        images = self._images if self.cfg.augment.active else []
        gen = torch.Generator().manual_seed(self.seed * 7919 + epoch)
        perm = torch.randperm(n, generator=gen)
        aug = self.cfg.augment
        loss_sum = torch.zeros((), device=fabric.device)
        correct = torch.zeros((), device=fabric.device, dtype=torch.long)
        progress.start_epoch(epoch)
        seen = 0
        batches = next((b for h in self.hooks if (b := h.batches(epoch)) is not None),
                       None) or (perm[s:s + self.cfg.batch_size]
                                 for s in range(0, n, self.cfg.batch_size))
        for idx in batches:
            if deadline is not None and seen and time.perf_counter() > deadline:
                break
            if not len(idx):
                continue  # an empty Poisson batch (DP): nothing to learn from
            seen += len(idx)
            xb, yb = self._batch(x, y, idx, fabric.device)
            for k in images:  # an image folder's 'image', or a table's image columns
                xb[k] = augment(xb[k], aug, gen)
            logits = model(**xb)
            loss = task.loss(logits, yb)
            fabric.backward(loss)
            opt.step()
            opt.zero_grad(set_to_none=True)
            if all([h.stepped() for h in self.hooks]) and sched is not None:
                sched.step()
            loss_sum += loss.detach() * len(idx)
            correct += task.correct(logits.detach(), yb)
            progress.advance(len(idx))
        return {"train_loss": round(loss_sum.item() / seen, 6),
                "train_accuracy": round(correct.item() / seen, 6)}

    @torch.inference_mode()
    def val_loop(self, fabric, model, task: Task, data) -> dict[str, float]:
        if data is None:
            return {}
        model.eval()
        x, y = data
        n = len(y)
        loss_sum = torch.zeros((), device=fabric.device)
        correct = torch.zeros((), device=fabric.device, dtype=torch.long)
        bs = max(self.cfg.batch_size, 256)
        for start in range(0, n, bs):
            idx = torch.arange(start, min(start + bs, n))
            xb, yb = self._batch(x, y, idx, fabric.device)
            logits = model(**xb)
            loss_sum += task.loss(logits, yb) * len(idx)
            correct += task.correct(logits, yb)
        return {"val_loss": round(loss_sum.item() / n, 6),
                "val_accuracy": round(correct.item() / n, 6)}

    @staticmethod
    def _batch(x: dict[str, Any], y, idx: torch.Tensor, device: torch.device):
        # sorted in every path: sequential memmap reads, and the same row order (hence
        # the same augmentation draws) whether or not the data sits on the device
        idx, _ = idx.sort()
        out = {}
        for k, v in x.items():
            if isinstance(v, torch.Tensor):
                out[k] = v[idx.to(v.device)]
            else:
                out[k] = torch.from_numpy(np.ascontiguousarray(v[idx.numpy()])).to(
                    device, non_blocking=True)
        return out, y[idx.to(y.device)]

    # -- checkpoints -------------------------------------------------------
    def _save(self, model, opt, sched, state: dict[str, Any], best: bool) -> None:
        # torch.save into a temporary file renamed into place, not Fabric.save: with one
        # device Fabric.save is torch.save underneath, but it writes the checkpoint in
        # place, so a kill during the write (tested: SIGKILL, full disk) would leave a
        # broken last.ckpt where --resume must find the previous epoch's
        if not self.checkpoints:
            if best:
                self._best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            return
        ckpt = {"model": model.state_dict(), "optimizer": opt.state_dict(),
                "scheduler": sched.state_dict() if sched is not None else None,
                "state": {**state, "history": json.dumps(state["history"])},
                "resume_key": json.dumps(self.resume_key)}
        if best:  # best first: a kill between the two writes leaves last.ckpt consistent
            with atomic_path(self.run.checkpoints / "best.ckpt") as tmp:
                torch.save({"model": model.state_dict(), "epoch": state["epoch"]}, tmp)
        with atomic_path(self.run.checkpoints / "last.ckpt") as tmp:
            torch.save(ckpt, tmp)

    def _load(self, model, opt, sched, device) -> dict[str, Any]:
        path = self.run.checkpoints / "last.ckpt"
        if not path.exists():
            raise RunError(f"--resume: '{path}' does not exist; nothing to resume. "
                           "Fix: run without --resume to start training.")
        ckpt = torch.load(path, map_location=device, weights_only=True)
        saved = upgrade_resume_key(json.loads(ckpt.get("resume_key", "{}")), self.resume_key)
        diff = sorted(k for k in set(saved) | set(self.resume_key)
                      if saved.get(k) != self.resume_key.get(k))
        if diff:
            shown = "; ".join(f"{k}: {saved.get(k)!r} -> {self.resume_key.get(k)!r}"
                              if not k.startswith("prepared") else f"{k} changed"
                              for k in diff)
            raise RunError(
                f"--resume: '{path}' was trained with other settings: {shown}. "
                "(train.epochs may change when no scheduler is set.) Fix: restore them, "
                "or run with --overwrite (overwrite=True in Python) to start again."
            )
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        if sched is not None and ckpt["scheduler"] is not None:
            sched.load_state_dict(ckpt["scheduler"])
        state = dict(ckpt["state"])
        state["history"] = json.loads(state["history"])
        console.info(f"train: resuming after epoch {state['epoch']} from {path}")
        return state

    def _restore_best(self, model, device) -> None:
        if not self.checkpoints:
            if self._best_state is not None:
                model.load_state_dict(self._best_state)
            return
        best = self.run.checkpoints / "best.ckpt"
        if best.exists():
            model.load_state_dict(torch.load(best, map_location=device,
                                             weights_only=True)["model"])

    def _write_events(self, history: list[dict[str, Any]], settings: dict[str, Any]) -> None:
        lines = [{"event": "start", "settings": settings}] + history
        write_text(self.run.events, "".join(json.dumps(r) + "\n" for r in lines))
