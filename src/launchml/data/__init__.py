"""Stage 1: turn a source into typed columns, fitted preprocessing and cached arrays.

``SOURCES`` maps a source kind to its prepare function; a new kind of source
is one file here and one entry in that dict.
"""

from __future__ import annotations

from launchml.data.image_folder import prepare_image_folder
from launchml.data.images import ImageFolderConfig, load_image
from launchml.data.schema import Column, Prepared, Schema, Split, load_prepared
from launchml.data.table_adapter import TableConfig, prepare_table

# source kind -> how it is read: prepare(cfg, run, seed) -> Prepared. Every source
# becomes the same Prepared form (typed columns + target); nothing after prepare
# depends on the kind.
SOURCES = {
    "image_folder": prepare_image_folder,
    "table": prepare_table,
}


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
