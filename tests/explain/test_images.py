"""Image explanations: integrated gradients add up to the output minus the black
image's, the attributions sit on the region that decides, they change when the weights
are re-initialised, and Grad-CAM on a network without convolutions names IG instead."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import spearmanr

import launchml
from launchml.errors import InputError
from tests.explain.conftest import QUADRANT


def _squares(run, n=6):
    from pathlib import Path

    root = Path(run.config.data.test)
    return sorted(str(p) for p in (root / "square").glob("*.png"))[:n]


def test_integrated_gradients_are_complete(square_run):
    pred = launchml.load(square_run.dir.model)
    for e in pred.explain(_squares(square_run), method="integrated_gradients"):
        gap = e.value - e.base_value
        assert float(e.heatmap.sum()) == pytest.approx(gap, abs=0.05 * abs(gap) + 1e-3)
        assert e.baseline.startswith("a black image")
        assert e.cost["evaluations"] > 0 and e.cost["seconds"] > 0


@pytest.mark.parametrize("method", ["integrated_gradients", "hires_cam"])
def test_attributions_sit_on_the_deciding_region(square_run, method):
    pred = launchml.load(square_run.dir.model)
    found = pred.explain(_squares(square_run), method=method)
    assert all(e.prediction["label"] == "square" for e in found)
    for e in found:
        mass = np.abs(e.heatmap)
        # the square is in the top-left quadrant: a quarter of the image
        assert mass[QUADRANT].sum() > 0.5 * mass.sum(), method


def test_attributions_change_when_the_weights_are_reinitialised(square_run):
    import torch

    files = _squares(square_run, 4)
    trained = launchml.load(square_run.dir.model)
    random = launchml.load(square_run.dir.model)
    torch.manual_seed(1)
    for member in random._model.members:
        for m in member.net.modules():
            if hasattr(m, "reset_parameters"):
                m.reset_parameters()
    for method in ("integrated_gradients", "hires_cam"):
        a = trained.explain(files, method=method)
        b = random.explain(files, method=method)
        for x, y in zip(a, b, strict=True):
            # signed ranks, as Adebayo et al. (2018) also report: the *absolute* IG map
            # of a random network still follows the input's bright pixels (0.78 here)
            rho = spearmanr(x.heatmap.ravel(), y.heatmap.ravel()).statistic
            assert rho < 0.5, (method, rho)


def test_grad_cam_maps_are_rectified_and_image_sized(square_run):
    pred = launchml.load(square_run.dir.model)
    for e in pred.explain(_squares(square_run, 2), method="grad_cam"):
        assert e.heatmap.shape == (32, 32) and e.heatmap.min() >= 0
        assert e.method == "grad_cam" and "convolution" in e.baseline


def test_grad_cam_on_a_network_without_convolutions_names_integrated_gradients(square_run):
    from torch import nn

    pred = launchml.load(square_run.dir.model)
    member = pred._model.members[0]
    member.net.net = nn.Sequential(nn.Flatten(), nn.Linear(32 * 32, 2))  # no Conv2d left
    with pytest.raises(InputError, match="Grad-CAM needs a convolutional.*"
                                         "Fix: use method='integrated_gradients'"):
        pred.explain(_squares(square_run, 1), method="grad_cam")
    assert pred.explain(_squares(square_run, 1))[0].method == "integrated_gradients"


def test_an_unreadable_image_gets_the_same_error_as_predict(square_run, tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not an image")
    pred = launchml.load(square_run.dir.model)
    with pytest.raises(InputError) as predicting:
        pred.predict(str(bad))
    with pytest.raises(InputError) as explaining:
        pred.explain(str(bad))
    assert str(explaining.value) == str(predicting.value)
