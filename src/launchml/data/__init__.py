"""Stage 1: turn a source into typed columns, fitted preprocessing and cached arrays.

``ADAPTERS`` maps a data kind to (config class, prepare function, row loader);
a new kind of input is one file here and one entry in that dict.
"""

from __future__ import annotations

from launchml.data.image_folder import load_prepared, load_rows, prepare_image_folder
from launchml.data.images import ImageFolderConfig, load_image
from launchml.data.schema import Column, Prepared, Schema, Split

ADAPTERS = {
    "image_folder": (ImageFolderConfig, prepare_image_folder, load_rows),
}

__all__ = [
    "ADAPTERS",
    "Column",
    "ImageFolderConfig",
    "Prepared",
    "Schema",
    "Split",
    "load_image",
    "load_prepared",
    "load_rows",
    "prepare_image_folder",
]
