"""The typed shape of ``package.json`` and of each column's fitted preprocessing state.

A package is validated against these models when it is written and when it is
loaded: a field this launchml does not know (a package from a newer launchml, or
one edited by hand) is refused with a message naming it, instead of being
silently ignored. The column states are a union on ``type``, one model per
column type; fields added over time are optional so older packages still load.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from launchml.errors import PackageError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())


# sizes read from a package are bounded: a hostile [20000, 20000] would allocate GBs
_SIDE = Field(ge=1, le=4096)  # data.images.MAX_TARGET_SIDE
_LENGTH = Field(ge=1, le=1_000_000)  # tokens of a text or sequence column
_VOCAB = Field(ge=1, le=10_000_000)


class NumberState(_Strict):
    type: Literal["number"]
    median: float
    mean: float
    std: float


class CategoryState(_Strict):
    type: Literal["category"]
    categories: list[str]
    other: bool


class BooleanState(_Strict):
    type: Literal["boolean"]


class DatetimeState(_Strict):
    type: Literal["datetime"]
    origin: str
    medians: dict[str, float]
    dayfirst: bool | None = None  # the column's one day/month order (since 0.2)
    format: str | None = None
    scale: dict[str, list[float]] | None = None  # per part [mean, std] (since 0.2)


class TextState(_Strict):
    type: Literal["text"]
    tokenizer: str
    max_length: Annotated[int, _LENGTH]
    vocab_size: Annotated[int, _VOCAB]
    pad_id: int
    pretrained: str | None = None
    hf_config: dict[str, Any] | None = None
    raw: bool = False  # the raw strings are a prepared part too ('<col>:raw'; since 0.3)


class SequenceState(_Strict):
    type: Literal["molecule", "protein"]
    vocab: list[str]
    max_length: Annotated[int, _LENGTH]
    vocab_size: Annotated[int, _VOCAB]
    # molecules: RDKit fingerprints and descriptors (data/chem.py; since 0.3)
    chem: dict[str, Any] | None = None


class ImageState(_Strict):
    type: Literal["image"]
    target_size: Annotated[list[Annotated[int, _SIDE]], Field(min_length=2, max_length=2)]
    color_mode: Literal["rgb", "grayscale"]
    interpolation: Literal["nearest", "bilinear", "bicubic", "lanczos"]
    rescale: float = Field(allow_inf_nan=False)
    channels: Literal[1, 3] | None = None
    mean: list[float] | None = None
    std: list[float] | None = None


ColumnState = Annotated[NumberState | CategoryState | BooleanState | DatetimeState
                        | TextState | SequenceState | ImageState, Field(discriminator="type")]


class TaskSpec(_Strict):
    name: Literal["binary", "multiclass", "multilabel", "regression"]
    labels: list[str]
    threshold: float | None = None


class SchemaColumn(_Strict):
    name: str
    type: str
    shape: list[int] | None = None
    dtype: str = "uint8"


class SchemaSpec(_Strict):
    columns: list[SchemaColumn]
    target: str
    task: str
    labels: list[str]


class Member(BaseModel):
    """One model of the package; each family adds its own fields (plan, network...)."""

    model_config = ConfigDict(extra="allow")
    family: str
    weight: float


class ModelSpec(_Strict):
    name: str
    members: list[Member] = Field(min_length=1)


class PackageMeta(_Strict):
    format: Literal["launchml-package"]
    format_version: int
    source: str
    task: TaskSpec
    schema_: SchemaSpec = Field(alias="schema")
    inputs: list[dict[str, Any]]
    preprocessing: dict[str, ColumnState]
    model: ModelSpec
    files: dict[str, str | None]
    metrics: dict[str, Any]
    provenance: dict[str, Any]
    # optional: the optimize stage's deployed variant ({variant, engine, model, row})
    picked: dict[str, Any] | None = None
    privacy: dict[str, Any] | None = None  # DP-SGD / federated record (optional)


def check_package(meta: dict[str, Any], where: str) -> None:
    """Raise PackageError naming each field of ``meta`` that is unknown or malformed."""
    try:
        PackageMeta.model_validate(meta)
    except ValidationError as err:
        problems = []
        for e in err.errors()[:5]:
            key = ".".join(str(p) for p in e["loc"] if not str(p).endswith("State")
                           and p not in ("number", "category", "boolean", "datetime",
                                         "text", "molecule", "protein", "image"))
            what = "unknown field" if e["type"] == "extra_forbidden" else e["msg"]
            problems.append(f"{key or '<top>'}: {what}")
        raise PackageError(
            f"'{where}' does not match this launchml's package format: "
            + "; ".join(problems) + ". It was written by a newer launchml or edited by hand. "
            "Fix: pip install -U launchml, or re-run training to rebuild it.") from None
