"""Stage 1: turn a source into typed columns, fitted preprocessing and cached arrays.

``ADAPTERS`` maps a data kind to (config class, prepare function, row loader);
a new kind of input is one file here and one entry in that dict.
"""

from __future__ import annotations

from launchml.data.image_folder import load_prepared as load_image_prepared
from launchml.data.image_folder import load_rows, prepare_image_folder
from launchml.data.images import ImageFolderConfig, load_image
from launchml.data.schema import Column, Prepared, Schema, Split
from launchml.data.table_adapter import (
    TableConfig,
    load_table_prepared,
    load_table_rows,
    prepare_table,
)
from launchml.runs import RunDir, read_json

# kind -> (config class, prepare(cfg, run, seed), load_rows(sources, preprocessing, names))
ADAPTERS = {
    "image_folder": (ImageFolderConfig, prepare_image_folder, load_rows),
    "table": (TableConfig, prepare_table, load_table_rows),
}


def load_prepared(run: RunDir) -> Prepared:
    """Open a prepared run's cached arrays, whichever adapter wrote them."""
    path = run.prepared / "manifest.json"
    if path.exists() and read_json(path).get("kind") == "table":
        return load_table_prepared(run)
    return load_image_prepared(run)

__all__ = [
    "ADAPTERS",
    "Column",
    "ImageFolderConfig",
    "TableConfig",
    "Prepared",
    "Schema",
    "Split",
    "load_image",
    "load_prepared",
    "load_rows",
    "prepare_image_folder",
]
