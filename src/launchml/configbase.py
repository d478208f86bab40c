"""The base of every config class, and the one place config errors are worded.

Each stage keeps its own config class beside its code (``data/images.py`` has
``ImageFolderConfig``, ``train/trainer.py`` has ``TrainConfig`` ...); they all
derive from ``StrictModel`` so an unknown key or a bad value is rejected with a
message that names the key, what is allowed and the fix.
"""

from __future__ import annotations

import difflib
import types
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Tag, ValidationError

from launchml.errors import ConfigError


class StrictModel(BaseModel):
    """A config section: unknown keys are errors, values are validated on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, protected_namespaces=())


def _tagged(annotation: Any) -> dict[str, Any]:
    """Tag -> member class of a tagged union (``data:`` is an image folder or a table)."""
    out: dict[str, Any] = {}
    stack = [annotation]
    while stack:
        a = stack.pop()
        if get_origin(a) is Annotated:
            base, *meta = get_args(a)
            out.update({m.tag: base for m in meta if isinstance(m, Tag)})
            stack.append(base)
        elif get_origin(a) in (Union, types.UnionType):
            stack.extend(get_args(a))
    return out


def _resolve(root: type[BaseModel], loc: tuple[Any, ...]) -> tuple[list[str], Any]:
    """Follow ``loc`` from ``root``: (the key names without union tags, the class there)."""
    keys: list[str] = []
    cls: Any = root
    annotation: Any = None
    for part in loc:
        part = str(part)
        members = _tagged(annotation) if annotation is not None else {}
        if part in members:
            cls, annotation = members[part], None
            continue
        keys.append(part)
        field = getattr(cls, "model_fields", {}).get(part)
        if field is None:
            cls, annotation = None, None
            continue
        annotation = field.annotation
        cls = annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) \
            else None
    return keys, cls


def _section_class(root: type[BaseModel], loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The config class found by following ``loc`` (key names) from ``root``."""
    return _resolve(root, loc)[1]


def _dotted(loc: tuple[Any, ...], root: type[BaseModel] | None = None) -> str:
    parts = _resolve(root, loc)[0] if root is not None else [str(p) for p in loc]
    return ".".join(p for p in parts if not p.startswith("function-"))


def format_validation_error(err: ValidationError, root: type[BaseModel], source: str) -> str:
    """Turn pydantic's error list into lines that name the key, the allowed values and the fix."""
    lines = [f"invalid config ({source}):"]
    for e in err.errors():
        loc = tuple(e["loc"])
        key = _dotted(loc, root) or "<root>"
        err = e["type"]
        if err == "extra_forbidden":
            parent = _section_class(root, loc[:-1])
            allowed = sorted(parent.model_fields) if parent else []
            section = _dotted(loc[:-1], root) or "the top level"
            hint = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
            fix = f"did you mean '{_dotted(loc[:-1] + (hint[0],), root)}'?" if hint else "remove it"
            lines.append(
                f"  - unknown key '{key}'. Allowed keys in {section}: {', '.join(allowed)}. "
                f"Fix: {fix}"
            )
        elif err == "missing":
            lines.append(f"  - missing key '{key}'. Fix: add it (see `launchml init`).")
        else:
            got = e.get("input")
            msg = e["msg"]
            if err == "literal_error":
                msg = f"must be one of {e['ctx']['expected']}"
            lines.append(f"  - '{key}': {msg}; got {got!r}. Fix: change '{key}'.")
    return "\n".join(lines)


def validate(cls: type[StrictModel], data: Any, source: str) -> Any:
    """``cls.model_validate(data)`` with launchml's error wording."""
    try:
        return cls.model_validate(data)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, cls, source)) from None
