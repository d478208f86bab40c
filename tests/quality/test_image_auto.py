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
