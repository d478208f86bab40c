"""Small real packages and a real server for the attack tests (loopback only)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from tests.security.payloads import Server, start_server


@pytest.fixture(scope="session")
def image_folder(tmp_path_factory) -> Path:
    """16 random 24x24 PNGs in two class folders a/ and b/."""
    root = tmp_path_factory.mktemp("sec-folder")
    rng = np.random.default_rng(0)
    for c in ("a", "b"):
        (root / c).mkdir(parents=True)
        for i in range(8):
            Image.fromarray(rng.integers(0, 255, (24, 24, 3), dtype=np.uint8)).save(
                root / c / f"{i}.png")
    return root


@pytest.fixture(scope="session")
def image_package(tmp_path_factory, image_folder) -> Path:
    """A seed_cnn trained one epoch on ``image_folder`` (prepare, train, deploy)."""
    import launchml

    root = tmp_path_factory.mktemp("sec-images")
    cfg = {"name": "tiny", "output_dir": str(root / "runs"), "seed": 0,
           "data": {"train": str(image_folder), "target_size": [24, 24]},
           "model": {"name": "seed_cnn"}, "train": {"epochs": 1, "batch_size": 8}}
    return launchml.run(cfg, stages=["prepare", "train", "deploy"]).dir.model


@pytest.fixture(scope="session")
def table_package(tmp_path_factory) -> Path:
    """A linear model on iris (prepare, train, deploy)."""
    from sklearn.datasets import load_iris

    import launchml

    root = tmp_path_factory.mktemp("sec-table")
    frame = load_iris(as_frame=True).frame
    frame["species"] = frame.pop("target").map({0: "setosa", 1: "versicolor", 2: "virginica"})
    frame.to_csv(root / "iris.csv", index=False)
    cfg = {"name": "iris", "output_dir": str(root / "runs"), "seed": 0,
           "data": {"train": str(root / "iris.csv"), "target": "species"},
           "model": {"name": "linear"}}
    return launchml.run(cfg, stages=["prepare", "train", "deploy"]).dir.model


@pytest.fixture
def server_factory() -> Iterator:
    started: list[Server] = []

    def make(package: Path, *args: str) -> Server:
        started.append(start_server(package, *args))
        return started[-1]

    yield make
    for s in started:
        s.proc.terminate()
        s.proc.wait(timeout=30)
        if s.proc.stderr is not None:
            s.proc.stderr.close()
