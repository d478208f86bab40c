"""Small runs whose right explanation is known: the label depends only on one image
region, one column, or one token."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

SIDE = 32
QUADRANT = (slice(0, SIDE // 2), slice(0, SIDE // 2))  # where the square is, or is not


def write_square_folder(root: Path, n: int = 48, seed: int = 0) -> Path:
    """train/ and test/ with classes 'square' (a bright square in the top-left quadrant)
    and 'none'; noise everywhere else, the same in both classes."""
    rng = np.random.default_rng(seed)
    for split, count in (("train", n), ("test", n // 3)):
        for label in ("square", "none"):
            folder = root / split / label
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                img = rng.integers(0, 90, (SIDE, SIDE)).astype(np.uint8)
                if label == "square":
                    y, x = rng.integers(2, SIDE // 2 - 8, 2)
                    img[y:y + 7, x:x + 7] = 255
                Image.fromarray(img).save(folder / f"{i}.png")
    return root


def signal_table(n: int = 400, seed: int = 0) -> pd.DataFrame:
    """'label' depends on 'signal' only; the other columns are noise."""
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({"signal": rng.normal(0, 1, n).round(4),
                       "noise_a": rng.normal(0, 1, n).round(4),
                       "noise_b": rng.choice(["red", "green", "blue"], n),
                       "noise_c": rng.uniform(0, 100, n).round(2)})
    df["label"] = np.where(df.signal > 0, "yes", "no")
    return df


def table_config(path: Path, out: Path, name: str, model: dict, **extra) -> dict:
    return {"name": name, "output_dir": str(out), "seed": 0,
            "data": {"train": str(path), "target": "label", **extra.pop("data", {})},
            "model": model, "train": {"epochs": 6, **extra.pop("train", {})},
            "optimize": {"onnx": False, "int8": False}, **extra}


@pytest.fixture(scope="session")
def square_run(tmp_path_factory):
    """seed_cnn on the square folder, every stage (optimize off): a report with images."""
    import launchml

    root = write_square_folder(tmp_path_factory.mktemp("squares"))
    cfg = {"name": "squares", "output_dir": str(tmp_path_factory.mktemp("runs")), "seed": 0,
           "data": {"train": str(root / "train"), "test": str(root / "test"),
                    "target_size": [SIDE, SIDE], "color_mode": "grayscale"},
           "model": {"name": "seed_cnn"}, "train": {"epochs": 6, "batch_size": 16},
           "optimize": {"onnx": False, "int8": False}}
    return launchml.run(cfg)


@pytest.fixture(scope="session")
def signal_csv(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("signal") / "signal.csv"
    signal_table().to_csv(path, index=False)
    return path


@pytest.fixture(scope="session")
def lightgbm_run(signal_csv, tmp_path_factory):
    import launchml

    out = tmp_path_factory.mktemp("runs")
    return launchml.run(table_config(signal_csv, out, "lgb", {"name": "lightgbm"}))


@pytest.fixture(scope="session")
def linear_run(signal_csv, tmp_path_factory):
    import launchml

    out = tmp_path_factory.mktemp("runs")
    return launchml.run(table_config(signal_csv, out, "lin", {"name": "linear"}),
                        stages=["prepare", "train"])


@pytest.fixture(scope="session")
def reviews_csv(tmp_path_factory) -> Path:
    from tests.tables_data import reviews

    path = tmp_path_factory.mktemp("reviews") / "reviews.csv"
    reviews(300).to_csv(path, index=False)
    return path


@pytest.fixture(scope="session")
def text_linear_run(reviews_csv, tmp_path_factory):
    import launchml

    out = tmp_path_factory.mktemp("runs")
    return launchml.run(table_config(reviews_csv, out, "tl", {"name": "linear"}),
                        stages=["prepare", "train"])


def proteins(n: int = 240, seed: int = 0) -> pd.DataFrame:
    """Protein sequences; 'label' is yes exactly when the WHHW motif is in the sequence."""
    rng = np.random.default_rng(seed)
    amino = list("ACDEFGIKLMNPQRSTVY")  # no W or H outside the motif
    rows = []
    for _ in range(n):
        seq = "".join(rng.choice(amino, int(rng.integers(40, 70))))
        motif = rng.uniform() < 0.5
        if motif:
            at = int(rng.integers(0, len(seq) - 5))
            seq = seq[:at] + "WHHW" + seq[at + 4:]
        rows.append({"sequence": seq, "label": "yes" if motif else "no"})
    return pd.DataFrame(rows)


@pytest.fixture(scope="session")
def pairs_run(tmp_path_factory):
    """Linear model on protein sequences whose label is the WHHW motif."""
    import launchml

    path = tmp_path_factory.mktemp("proteins") / "proteins.csv"
    proteins().to_csv(path, index=False)
    out = tmp_path_factory.mktemp("runs")
    return launchml.run(table_config(path, out, "proteins", {"name": "linear"}),
                        stages=["prepare", "train"])
