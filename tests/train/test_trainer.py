from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file
from tests.conftest import digits_config

import launchml
from launchml import RunError
from launchml.train import Trainer
from launchml.train.augment import AugmentConfig, augment
from launchml.train.speed import tune_allocator


def _weights(run) -> dict[str, torch.Tensor]:
    return load_file(run.dir.model / "weights.safetensors")


def _train(digits_dir, out, **train):
    return launchml.run(digits_config(digits_dir, out, **train), stages=["prepare", "train"])


def test_events_checkpoints_and_package(digits_dir, tmp_path):
    run = _train(digits_dir, tmp_path, epochs=2)
    lines = [json.loads(x) for x in run.dir.events.read_text().splitlines()]
    assert lines[0]["event"] == "start" and "mallopt" in lines[0]["settings"]
    epochs = [x for x in lines if x["event"] == "epoch"]
    assert [x["epoch"] for x in epochs] == [1, 2]
    for key in ("train_loss", "val_loss", "val_accuracy", "train_images_per_s", "lr"):
        assert key in epochs[0]
    assert (run.dir.checkpoints / "last.ckpt").exists()
    assert (run.dir.checkpoints / "best.ckpt").exists()
    assert epochs[-1]["val_accuracy"] > 0.5  # learns in two epochs


def test_same_seed_same_weights(digits_dir, tmp_path):
    a = _weights(_train(digits_dir, tmp_path / "a", epochs=1))
    b = _weights(_train(digits_dir, tmp_path / "b", epochs=1))
    assert all(torch.equal(a[k], b[k]) for k in a)


class Killed(BaseException):
    pass


def test_resume_continues_to_the_same_result(digits_dir, tmp_path, monkeypatch):
    """A run killed after epoch 1 and resumed ends with exactly the uninterrupted weights."""
    kw = {"scheduler": "cosine", "augment": {"flip": True, "crop": 2}, "monitor": "val_accuracy"}
    full = _weights(_train(digits_dir, tmp_path / "full", epochs=3, **kw))
    cfg = digits_config(digits_dir, tmp_path / "part", epochs=3, **kw)
    original = Trainer._write_events

    def kill_after_first_epoch(self, history, settings):
        original(self, history, settings)
        raise Killed  # like SIGKILL right after the epoch-1 checkpoint

    monkeypatch.setattr(Trainer, "_write_events", kill_after_first_epoch)
    with pytest.raises(Killed):
        launchml.run(cfg, stages=["prepare", "train"])
    monkeypatch.setattr(Trainer, "_write_events", original)
    resumed = launchml.run(cfg, stages=["prepare", "train"], resume=True)
    got = _weights(resumed)
    assert all(torch.equal(full[k], got[k]) for k in full)
    assert [r["epoch"] for r in resumed.train.history] == [1, 2, 3]
    events = [json.loads(x) for x in resumed.dir.events.read_text().splitlines()]
    assert [e["epoch"] for e in events if e["event"] == "epoch"] == [1, 2, 3]


def test_resume_may_extend_epochs_without_a_scheduler(digits_dir, tmp_path):
    cfg = digits_config(digits_dir, tmp_path, epochs=1)
    launchml.run(cfg, stages=["prepare", "train"])
    cfg["train"]["epochs"] = 2
    resumed = launchml.run(cfg, stages=["prepare", "train"], resume=True)
    assert [r["epoch"] for r in resumed.train.history] == [1, 2]


def test_existing_checkpoints_need_resume_or_overwrite(digits_dir, tmp_path):
    cfg = digits_config(digits_dir, tmp_path, epochs=1)
    launchml.run(cfg, stages=["prepare", "train"])
    with pytest.raises(RunError, match="--resume"):
        launchml.run(cfg, stages=["prepare", "train"])
    cfg["train"]["learning_rate"] = 0.01
    with pytest.raises(RunError, match="other settings"):
        launchml.run(cfg, stages=["prepare", "train"], resume=True)
    launchml.run(cfg, stages=["prepare", "train"], overwrite=True)


def test_early_stopping(digits_dir, tmp_path):
    run = _train(digits_dir, tmp_path, epochs=30, learning_rate=0.5, optimizer="sgd",
                 patience=1)
    assert len(run.train.history) < 30
    assert run.train.best_epoch == min(run.train.history, key=lambda r: r["val_loss"])["epoch"]


@pytest.mark.parametrize("opt,sched", [("adamw", "onecycle"), ("sgd", "none")])
def test_optimizers_schedulers_and_bf16(digits_dir, tmp_path, opt, sched):
    run = _train(digits_dir, tmp_path, epochs=1, optimizer=opt, scheduler=sched,
                 precision="bf16", augment={"color_jitter": 0.2})
    assert run.train.settings["precision"] == "bf16"
    assert run.train.history[0]["train_loss"] > 0


def test_augment_is_seeded_and_keeps_shape():
    x = torch.randint(0, 256, (4, 10, 12, 3), dtype=torch.uint8)
    cfg = AugmentConfig(flip=True, crop=2, color_jitter=0.3)
    a = augment(x, cfg, torch.Generator().manual_seed(1))
    b = augment(x, cfg, torch.Generator().manual_seed(1))
    assert a.shape == (4, 10, 12, 3) and a.dtype == torch.float32
    assert torch.equal(a, b) and not torch.equal(a, x.float())
    flip_only = augment(x, AugmentConfig(flip=True), torch.Generator().manual_seed(0))
    for i in range(4):
        assert torch.equal(flip_only[i], x[i].float()) or torch.equal(flip_only[i],
                                                                      x[i].flip(1).float())


def test_allocator_fix_applies_on_linux():
    import sys

    assert tune_allocator()["mallopt"] is sys.platform.startswith("linux")


def test_resume_after_early_stop_trains_nothing_more(digits_dir, tmp_path):
    cfg = digits_config(digits_dir, tmp_path, epochs=30, learning_rate=0.5, optimizer="sgd",
                        patience=1)
    first = launchml.run(cfg, stages=["prepare", "train"])
    again = launchml.run(cfg, stages=["prepare", "train"], resume=True)
    assert again.train.history == first.train.history
    assert again.train.best_epoch == first.train.best_epoch


def test_resume_names_what_changed(digits_dir, tmp_path):
    cfg = digits_config(digits_dir, tmp_path, epochs=1)
    launchml.run(cfg, stages=["prepare", "train"])
    saved = (tmp_path / "digits" / "config.yaml").read_text()
    cfg["train"]["learning_rate"] = 0.01
    cfg["train"]["num_threads"] = 1  # speed-only settings may change
    with pytest.raises(RunError, match=r"train.learning_rate: 0.001 -> 0.01") as e:
        launchml.run(cfg, stages=["prepare", "train"], resume=True)
    assert "num_threads" not in str(e.value)
    assert (tmp_path / "digits" / "config.yaml").read_text() == saved  # not overwritten


def test_data_on_device_or_not_trains_the_same(digits_dir, tmp_path):
    kw = {"epochs": 1, "augment": {"flip": True, "crop": 2}}
    a = _weights(_train(digits_dir, tmp_path / "a", data_on_device=True, **kw))
    b = _weights(_train(digits_dir, tmp_path / "b", data_on_device=False, **kw))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_crop_larger_than_the_image_is_a_config_error(digits_dir, tmp_path):
    with pytest.raises(launchml.ConfigError, match="augment.crop"):
        _train(digits_dir, tmp_path, epochs=1, augment={"crop": 24})
