"""``launchml quickstart``: scikit-learn's digits as an image folder, all five stages."""

from __future__ import annotations

import time
from pathlib import Path

import typer

from launchml.cli.main import app, handle_errors


def quickstart_config(root: Path, epochs: int) -> dict:
    return {
        "name": "digits",
        "output_dir": str(root / "runs"),
        "data": {"train": str(root / "data" / "digits" / "train"),
                 "test": str(root / "data" / "digits" / "test"),
                 "target_size": [32, 32], "color_mode": "grayscale",
                 "interpolation": "bilinear"},
        "model": {"name": "seed_cnn"},
        "train": {"epochs": epochs, "batch_size": 32, "optimizer": "adam",
                  "monitor": "val_accuracy"},
    }


@app.command()
@handle_errors
def quickstart(
    directory: Path = typer.Option(Path("quickstart"), "--dir", help="where data and runs go"),
    epochs: int = typer.Option(8, "--epochs"),
) -> None:
    """Train the article's CNN on handwritten digits, end to end, on this machine."""
    from launchml.console import info
    from launchml.data.samples import write_digits_folder
    from launchml.pipeline import run

    t0 = time.perf_counter()
    data = directory / "data" / "digits"
    if not (data / "train").exists():
        write_digits_folder(data)
        info(f"quickstart: wrote scikit-learn's digits as PNG folders under {data}")
    result = run(quickstart_config(directory, epochs), overwrite=True)
    acc = result.metrics["accuracy"]
    model = result.model_dir
    some = sorted((data / "test" / "3").glob("*.png"))[0]
    info(
        f"\nquickstart: test accuracy {acc:.4f} in {time.perf_counter() - t0:.0f}s.\n"
        f"Next:\n"
        f"  launchml predict {model} {some}\n"
        f"  launchml serve {model} --port 8000\n"
        f"  curl -F file=@{some} http://127.0.0.1:8000/v1/predict\n"
        f"  launchml init image-classification > my.yaml   # then edit data.train"
    )
