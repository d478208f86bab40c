"""The one shape every source becomes: a table of typed columns plus a target.

An image folder is a table with two columns, ``image`` (type image, the file
path) and ``label`` (the sub-folder's name). ``Schema`` describes the columns,
``Prepared`` holds the decoded arrays of each split plus the fitted
preprocessing state that the model package carries to serving.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from launchml.errors import RunError

# the one place column types are grouped; models and families import these
TABULAR_TYPES = ("number", "category", "boolean", "datetime")  # one array (or a few) each
SEQUENCE_TYPES = ("text", "molecule", "protein")  # token or character ids, N x L
ENCODED_TYPES = (*SEQUENCE_TYPES, "image")  # need an encoder in the neural combiner
FEATURE_TYPES = (*TABULAR_TYPES, *ENCODED_TYPES)  # every type a model can use


@dataclass
class Column:
    name: str
    type: str  # "image" for now; tables add number, category, text ...
    shape: list[int] | None = None  # per-row array shape, e.g. [H, W, C]
    dtype: str = "uint8"


@dataclass
class Schema:
    columns: list[Column]
    target: str
    task: str  # "binary" | "multiclass"
    labels: list[str]

    @property
    def inputs(self) -> list[Column]:
        return [c for c in self.columns if c.name != self.target]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Schema:
        cols = [Column(**c) for c in d["columns"]]
        return cls(columns=cols, target=d["target"], task=d["task"], labels=list(d["labels"]))


@dataclass
class Split:
    """The arrays of one split: column name -> array (memory-mapped), and row ids."""

    name: str
    arrays: dict[str, np.ndarray]
    ids: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(next(iter(self.arrays.values())))


@dataclass
class Prepared:
    schema: Schema
    splits: dict[str, Split]
    preprocessing: dict[str, Any]  # column name -> fitted state (JSON-able)
    manifest: dict[str, Any]

    def split(self, name: str) -> Split | None:
        s = self.splits.get(name)
        return s if s is not None and len(s) else None


# the held-out split that evaluate and optimize score (shared by both stages)
def pick_split(prepared: Prepared, choice: str) -> str:
    order = ["test", "validation"] if choice == "auto" else [choice]
    for name in order:
        if prepared.split(name) is not None:
            return name
    raise RunError(
        f"evaluate: no rows in split(s) {order}. Fix: set data.test, data.test_split or "
        "data.validation_split so there is held-out data."
    )


def split_arrays(prepared: Prepared, name: str) -> tuple[dict[str, np.ndarray], np.ndarray]:
    split = prepared.splits[name]
    target = prepared.schema.target
    inputs = {k: v for k, v in split.arrays.items() if k != target}
    return inputs, np.asarray(split.arrays[target])


def load_prepared(run: Any) -> Prepared:
    """Open a prepared run's cached arrays, whichever source wrote them.

    ``manifest.json`` lists each split's feature arrays (``<split>.<feature>.npy``),
    which of them are memory-mapped (images), and the row ids; the target array is
    ``<split>.<schema.target>.npy``.
    """
    from launchml.errors import DataError
    from launchml.runs import load_npy, read_json

    path = run.prepared / "manifest.json"
    if not path.exists():
        raise DataError(f"'{path}' is missing: this run has not been prepared. "
                        "Fix: launchml run (or --stages prepare,...)")
    manifest = read_json(path)
    schema = Schema.from_dict(manifest["schema"])
    splits = {}
    for name, info in manifest["splits"].items():
        features = info.get("features", ["image"])  # image manifests before 0.2: 'image'
        mapped = set(info.get("mmap", [] if "features" in info else ["image"]))
        arrays = {f: load_npy(run.prepared / f"{name}.{f}.npy", mmap=f in mapped)
                  for f in features}
        arrays[schema.target] = load_npy(run.prepared / f"{name}.{schema.target}.npy",
                                         mmap=False)
        ids = info.get("files") or [str(r) for r in info.get("rows", [])]
        splits[name] = Split(name, arrays, ids=ids)
    return Prepared(schema=schema, splits=splits, preprocessing=manifest["preprocessing"],
                    manifest=manifest)

