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

import yaml
from pydantic import BaseModel, ConfigDict, Tag, ValidationError, field_validator

from launchml.errors import ConfigError

MAX_INT = 2**53  # the largest whole number a setting may be (JSON-exact; 1e21 epochs is not)
MAX_YAML_VALUES = 100_000  # values a config may expand to through YAML aliases (&a / *a)
MAX_SHOWN = 200  # characters of a bad value quoted in an error


class StrictModel(BaseModel):
    """A config section: unknown keys are errors, values are validated on assignment;
    numbers are finite (no .inf / .nan) and whole numbers at most 2**53."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, protected_namespaces=(),
                              allow_inf_nan=False)

    @field_validator("*", mode="after")
    @classmethod
    def _bounded_ints(cls, v: Any) -> Any:
        if isinstance(v, int) and not isinstance(v, bool) and abs(v) > MAX_INT:
            raise ValueError(f"must be at most {MAX_INT:,} in size")
        return v


def shown(value: Any, limit: int = MAX_SHOWN) -> str:
    """``repr(value)`` cut to ``limit`` characters: an error never prints unbounded input."""
    if isinstance(value, dict | list) and len(value) > 50:  # never repr a huge container
        return f"<a {type(value).__name__} of {len(value)} items>"
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


class _Loader(yaml.SafeLoader):
    """safe_load, refusing duplicate keys (YAML keeps the last one silently)."""


def _mapping(loader: _Loader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue
        key = loader.construct_object(key_node, deep=True)
        try:
            first = seen.setdefault(key, key_node.start_mark.line + 1)
        except TypeError:  # an unhashable key: the constructor says so
            continue
        if first != key_node.start_mark.line + 1:
            raise ConfigError(f"key {shown(key)} appears twice in one section (lines {first} "
                              f"and {key_node.start_mark.line + 1}); YAML would silently keep "
                              "the last. Fix: keep one.")
    return loader.construct_mapping(node, deep=True)


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)


def _expanded_size(root: yaml.Node) -> int:
    """How many values ``root`` holds with every alias expanded (stops past the bound)."""
    sizes: dict[int, int] = {}
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    busy: set[int] = set()
    while stack:
        node, done = stack.pop()
        if id(node) in sizes:
            continue
        children = [n for pair in node.value for n in pair] if isinstance(
            node, yaml.MappingNode) else node.value if isinstance(node, yaml.SequenceNode) else []
        if not done:
            if id(node) in busy:
                raise ConfigError("the YAML refers to itself through an alias (&a ... *a "
                                  "inside it). Fix: write the values out.")
            busy.add(id(node))
            stack.append((node, True))
            stack += [(c, False) for c in children if id(c) not in sizes]
            continue
        busy.discard(id(node))
        sizes[id(node)] = min(MAX_YAML_VALUES + 1, 1 + sum(sizes[id(c)] for c in children))
    return sizes[id(root)]


def load_yaml(text: str, where: str) -> Any:
    """YAML text -> Python values (safe types only), refusing duplicate keys and aliases
    that expand to more than ``MAX_YAML_VALUES`` values ('billion laughs')."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        if _expanded_size(node) > MAX_YAML_VALUES:
            raise ConfigError(f"'{where}' expands to more than {MAX_YAML_VALUES:,} values "
                              "through YAML aliases (&name / *name), far more than a config "
                              "holds. Fix: write the config without nested aliases.")
        try:
            return loader.construct_document(node)
        except ConfigError as e:  # a duplicate key: name the file
            raise ConfigError(f"'{where}': {e}") from None
    finally:
        loader.dispose()


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
    errors = err.errors()
    if len(errors) > 20:
        lines.append(f"  ({len(errors)} problems; the first 20:)")
    for e in errors[:20]:
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
            elif err == "finite_number":
                msg = "must be a finite number (not .inf or .nan)"
            lines.append(f"  - '{key}': {msg}; got {shown(got)}. Fix: change '{key}'.")
    return "\n".join(lines)


def validate(cls: type[StrictModel], data: Any, source: str) -> Any:
    """``cls.model_validate(data)`` with launchml's error wording."""
    try:
        return cls.model_validate(data)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, cls, source)) from None
