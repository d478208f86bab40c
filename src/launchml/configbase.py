"""The base of every config class, and the one place config errors are worded.

Each stage keeps its own config class beside its code (``data/images.py`` has
``ImageFolderConfig``, ``train/trainer.py`` has ``TrainConfig`` ...); they all
derive from ``StrictModel`` so an unknown key or a bad value is rejected with a
message that names the key, what is allowed and the fix.
"""

from __future__ import annotations

import difflib
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from launchml.errors import ConfigError


class StrictModel(BaseModel):
    """A config section: unknown keys are errors, values are validated on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, protected_namespaces=())


def _section_class(root: type[BaseModel], loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The config class found by following ``loc`` (key names) from ``root``."""
    cls: Any = root
    for key in loc:
        field = getattr(cls, "model_fields", {}).get(key)
        if field is None:
            return None
        cls = field.annotation
        if not (isinstance(cls, type) and issubclass(cls, BaseModel)):
            return None
    return cls


def _dotted(loc: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in loc if not str(part).startswith("function-"))


def format_validation_error(err: ValidationError, root: type[BaseModel], source: str) -> str:
    """Turn pydantic's error list into lines that name the key, the allowed values and the fix."""
    lines = [f"invalid config ({source}):"]
    for e in err.errors():
        loc = tuple(e["loc"])
        key = _dotted(loc) or "<root>"
        kind = e["type"]
        if kind == "extra_forbidden":
            parent = _section_class(root, loc[:-1])
            allowed = sorted(parent.model_fields) if parent else []
            section = _dotted(loc[:-1]) or "the top level"
            hint = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
            fix = f"did you mean '{_dotted(loc[:-1] + (hint[0],))}'?" if hint else "remove it"
            lines.append(
                f"  - unknown key '{key}'. Allowed keys in {section}: {', '.join(allowed)}. "
                f"Fix: {fix}"
            )
        elif kind == "missing":
            lines.append(f"  - missing key '{key}'. Fix: add it (see `launchml init`).")
        else:
            got = e.get("input")
            msg = e["msg"]
            if kind == "literal_error":
                msg = f"must be one of {e['ctx']['expected']}"
            lines.append(f"  - '{key}': {msg}; got {got!r}. Fix: change '{key}'.")
    return "\n".join(lines)


def validate(cls: type[StrictModel], data: Any, source: str) -> Any:
    """``cls.model_validate(data)`` with launchml's error wording."""
    try:
        return cls.model_validate(data)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, cls, source)) from None
