"""Writing explanations to files: overlay PNGs, JSON lines, CSV."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

from launchml.explain.core import Explanations
from launchml.runs import atomic_path, write_bytes


def default_folder(package: Path) -> Path:
    """The run's explanations/ folder when the package is a run's model/, else
    ./explanations."""
    package = Path(package)
    if package.name == "model" and (package.parent / "config.yaml").exists():
        return package.parent / "explanations"
    return Path("explanations")


def _stem(name: object) -> str:
    stem = Path(str(name)).stem if isinstance(name, str) else f"row{name}"
    return re.sub(r"[^A-Za-z0-9._-]+", "_", stem)[:80] or "input"


def write_explanations(found: Explanations, folder: Path,
                       out: Path | None = None) -> list[Path]:
    """explanations.jsonl (and a ``<input>.<method>.png`` overlay per image) in
    ``folder``; ``out`` (.csv or .jsonl) too. Returns the files written."""
    from launchml.explain.render import overlay_png

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for i, e in enumerate(found):
        if e.heatmap is not None and e.image is not None:
            path = folder / f"{i:04d}_{_stem(e.input)}.{e.method}.png"
            write_bytes(path, overlay_png(e.image, e.heatmap))
            files.append(path)
    targets = [folder / "explanations.jsonl"] + ([Path(out)] if out is not None else [])
    for path in targets:
        with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8", newline="") as f:
            if path.suffix.lower() == ".csv":
                records = found.to_records()
                fields = list(dict.fromkeys(k for r in records for k in r)) or ["input"]
                writer = csv.DictWriter(f, fieldnames=fields)
                writer.writeheader()
                writer.writerows(records)
            else:
                for e in found:
                    f.write(json.dumps(e.to_dict(), default=str) + "\n")
        files.append(path)
    return files
