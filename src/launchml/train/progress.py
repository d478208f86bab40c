"""A Rich progress bar with throughput and ETA on a terminal; one line per epoch elsewhere."""

from __future__ import annotations

import time
from typing import Any

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
)

from launchml import console


class EpochProgress:
    def __init__(self, epochs: int, images: int, unit: str = "img") -> None:
        self.epochs = epochs
        self.images = images
        self.unit = unit  # "img" for image networks, "rows" for a table's neural member
        self.bar: Progress | None = None
        if console.console.is_terminal and not console.quiet():
            self.bar = Progress(
                TextColumn("epoch {task.fields[epoch]}/{task.fields[epochs]}"),
                BarColumn(), MofNCompleteColumn(),
                TextColumn("{task.fields[rate]:.0f} " + unit + "/s"), TimeRemainingColumn(),
                console=console.console, transient=True,
            )
            self.bar.start()
        self.task = None
        self.t0 = time.perf_counter()
        self.seen = 0

    def start_epoch(self, epoch: int) -> None:
        self.t0, self.seen = time.perf_counter(), 0
        if self.bar is not None:
            if self.task is not None:
                self.bar.remove_task(self.task)
            self.task = self.bar.add_task("train", total=self.images, epoch=epoch,
                                          epochs=self.epochs, rate=0.0)

    def advance(self, n: int) -> None:
        self.seen += n
        if self.bar is not None and self.task is not None:
            rate = self.seen / max(time.perf_counter() - self.t0, 1e-9)
            self.bar.update(self.task, advance=n, rate=rate)

    def epoch_done(self, row: dict[str, Any]) -> None:
        parts = [f"{k}={row[k]:.4f}" for k in ("train_loss", "train_accuracy", "val_loss",
                                                "val_accuracy") if k in row]
        console.info(f"epoch {row['epoch']}/{self.epochs} " + " ".join(parts)
                     + f" {row['train_images_per_s']:.0f} {self.unit}/s")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
