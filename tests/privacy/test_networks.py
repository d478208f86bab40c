"""``dp_linear`` and ``dp_cnn``: the small image networks for DP-SGD, on scikit-learn's
digits at their own 8x8 size."""

from __future__ import annotations

import json

import numpy as np
import pytest

import launchml
from launchml.errors import ModelError


def build(network: str, height: int, width: int, channels: int = 1):
    from launchml.models import NETWORKS, NetworkSpec

    net, mean, std, name = NETWORKS[network](
        spec=NetworkSpec(name=network), height=height, width=width, channels=channels,
        num_outputs=10, for_loading=False)
    assert name == network and mean == [0.0] * channels and std == [1.0] * channels
    return net


@pytest.mark.parametrize("network", ["dp_linear", "dp_cnn"])
def test_the_dp_networks_are_small_and_opacus_trains_them_as_they_are(network):
    import torch
    from opacus.validators import ModuleValidator

    from launchml.models import is_network

    assert is_network(network)
    weights = {}
    for h, w, c in [(8, 8, 1), (4, 4, 1), (7, 9, 1), (24, 24, 1), (150, 150, 3)]:
        net = build(network, h, w, c)
        assert net(torch.rand(2, c, h, w)).shape == (2, 10)
        assert ModuleValidator.validate(net, strict=True) == []  # no layer to replace
        weights[(h, w, c)] = sum(p.numel() for p in net.parameters())
    # digits at 8x8: 650 and 6,090 weights against seed_cnn's 160 k at 24x24
    assert weights[(8, 8, 1)] == {"dp_linear": 650, "dp_cnn": 6090}[network]
    if network == "dp_cnn":
        assert max(weights.values()) <= 10_500  # its head sees at most a 4x4 map
        with pytest.raises(ModelError, match=r"dp_cnn needs images of at least 4x4"):
            build(network, 3, 8)


@pytest.mark.slow
def test_dp_cnn_learns_digits_under_dp_and_packages(digits_dir, tmp_path):
    from tests.conftest import digits_config

    cfg = digits_config(digits_dir, tmp_path, epochs=8, batch_size=256, optimizer="sgd",
                        momentum=0.9, learning_rate=0.25)
    cfg["data"]["target_size"] = [8, 8]
    cfg["model"] = {"name": "dp_cnn"}
    cfg["privacy"] = {"dp": {"target_epsilon": 8.0}}
    cfg["optimize"] = {"onnx": False, "int8": False}
    run = launchml.run(cfg, stages=["prepare", "train", "evaluate"])
    meta = json.loads((run.dir.model / "package.json").read_text())
    assert meta["privacy"]["dp"]["epsilon"] <= 8.05
    assert meta["privacy"]["dp"]["replaced_layers"] == []  # nothing to replace
    assert run.metrics["accuracy"] > 0.6  # 10 classes: it learned under the noise
    # an ordinary package: rebuilt from its network name, same predictions as evaluated
    pred = launchml.Predictor.load(run.dir.model)
    files = sorted((digits_dir / "test").rglob("*.png"))[::20]
    labels = [f.parent.name for f in files]
    got = pred.predict([str(f) for f in files])
    assert np.mean([g == lab for g, lab in zip(got, labels, strict=True)]) > 0.5


def test_many_weights_per_training_row_get_the_small_networks_named(capsys):
    import torch

    from launchml.privacy.config import DPConfig
    from launchml.privacy.dp import DPHook
    from launchml.privacy.networks import dp_linear

    for net, said in [(torch.nn.Linear(2000, 10), True), (dp_linear(1, 8, 8, 10), False)]:
        hook = DPHook(DPConfig(noise_multiplier=1.0), epochs=1)
        with launchml.console.verbosity(1):
            hook.attach(net, torch.optim.SGD(net.parameters(), lr=0.1), n=1000,
                        batch_size=100, seed=0)
        err = capsys.readouterr().err
        assert "noise multiplier 1.000" in err  # the usual line, either way
        assert ("model.name: dp_linear or dp_cnn" in err) is said  # 20 k vs 650 weights
