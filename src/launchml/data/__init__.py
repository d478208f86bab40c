"""Stage 1: turn a source into typed columns, fitted preprocessing and cached arrays.

``SOURCES`` maps a source kind to its prepare function; a new kind of source
is one file here and one entry in that dict.
"""

from __future__ import annotations

from launchml.data.image_folder import load_prepared as load_image_prepared
from launchml.data.image_folder import prepare_image_folder
from launchml.data.images import ImageFolderConfig, load_image
from launchml.data.schema import Column, Prepared, Schema, Split
from launchml.data.table_adapter import TableConfig, load_table_prepared, prepare_table
from launchml.runs import RunDir, read_json

# source kind -> how it is read: prepare(cfg, run, seed) -> Prepared. Every source
# becomes the same Prepared form (typed columns + target); nothing after prepare
# depends on the kind.
SOURCES = {
    "image_folder": prepare_image_folder,
    "table": prepare_table,
}


def load_prepared(run: RunDir) -> Prepared:
    """Open a prepared run's cached arrays, whichever adapter wrote them."""
    path = run.prepared / "manifest.json"
    if path.exists() and read_json(path).get("kind") == "table":
        return load_table_prepared(run)
    return load_image_prepared(run)

__all__ = [
    "SOURCES",
    "Column",
    "ImageFolderConfig",
    "TableConfig",
    "Prepared",
    "Schema",
    "Split",
    "load_image",
    "load_prepared",
    "prepare_image_folder",
]
