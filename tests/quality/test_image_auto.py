"""model: auto on an image folder with a time limit: LightGBM on the pixels of small
images, seed_cnn and the small ResNet trained from scratch, ranked and ensembled."""

from __future__ import annotations

import json

import numpy as np
import pytest

import launchml
from launchml.models.timm_family import small_resnet


def test_small_resnet_keeps_small_images_large_enough_and_rebuilds_the_same():
    import torch

    for side, stride in ((16, 1), (32, 2)):
        net = small_resnet(height=side, width=side, channels=1, num_outputs=10, drop_rate=0.0)
        assert net.conv1.stride == (stride, stride)
        assert isinstance(net.maxpool, torch.nn.Identity)
        out = net(torch.zeros(2, 1, side, side))
        assert out.shape == (2, 10)
        again = small_resnet(height=side, width=side, channels=1, num_outputs=10,
                             drop_rate=0.0)
        again.load_state_dict(net.state_dict())  # the package rebuilds it from its size


@pytest.mark.slow
def test_auto_tries_pixels_seed_cnn_and_the_small_resnet(digits_dir, tmp_path):
    run = launchml.run({"name": "img", "output_dir": str(tmp_path),
                        "data": {"train": str(digits_dir / "train"), "target_size": [24, 24],
                                 "color_mode": "grayscale", "validation_split": 0.2},
                        "model": {"name": "auto", "time_limit": 30},
                        "train": {"epochs": 2}},
                       stages=["prepare", "train"])
    board = {r["family"]: r for r in json.loads(
        (run.dir.root / "leaderboard.json").read_text())}
    assert {"lightgbm", "seed_cnn", "timm:small_resnet"} <= set(board)
    assert board["lightgbm"]["accuracy"] > 0.8  # 576 pixels: trees read digits well
    assert all("fit_seconds" in board[f] or "skipped" in board[f]
               for f in ("seed_cnn", "timm:small_resnet"))
    predictor = launchml.Predictor.load(run.model_dir)
    files = sorted((digits_dir / "test" / "3").glob("*.png"))[:3]
    labels = predictor.predict([str(f) for f in files])
    assert len(labels) == 3 and np.mean([lab == "3" for lab in labels]) >= 2 / 3


def test_a_timm_backbone_in_the_local_cache_is_found_without_the_network(tmp_path,
                                                                         monkeypatch):
    from huggingface_hub import constants

    from launchml.models.timm_family import local_pretrained
    from launchml.train import select

    assert local_pretrained(tmp_path) is None
    for name, size in (("resnet18.a1_in1k", 3000), ("resnet10t.c3_in1k", 1000)):
        snap = tmp_path / f"models--timm--{name}" / "snapshots" / "0123abcd"
        snap.mkdir(parents=True)
        (snap / "model.safetensors").write_bytes(b"0" * size)
    (tmp_path / "models--timm--convnext_atto.d2_in1k" / "snapshots").mkdir(parents=True)
    assert local_pretrained(tmp_path) == ("timm:resnet10t", "timm/resnet10t.c3_in1k")

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    from launchml.config import RunConfig
    from launchml.tasks import create_task

    cfg = RunConfig.model_validate({"name": "x", "data": {"train": str(tmp_path)},
                                    "model": {"name": "auto", "time_limit": 30}})
    states = {"image": {"type": "image", "target_size": [32, 32], "channels": 1}}
    task = create_task("multiclass", ["a", "b", "c"])
    names = select.choose_families(cfg, states, task)
    assert names[-1] == "timm:resnet10t" and "seed_cnn" in names
    tuned = select._recipe(cfg, "timm:resnet10t")
    assert tuned.model.network.pretrained == "timm/resnet10t.c3_in1k"
    assert tuned.train.scheduler == "cosine" and tuned.train.patience == 5
    # without a time limit an image folder trains the article's CNN alone, as before
    plain = RunConfig.model_validate({"name": "x", "data": {"train": str(tmp_path)}})
    assert select.choose_families(plain, states, task) == ["seed_cnn"]
