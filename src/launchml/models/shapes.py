"""The tensors of a package member, checked against what the member's spec expects, at
load: a missing, extra or misshaped tensor is one ``PackageError`` naming the member
(``model.members[i]``, added by ``families.Ensemble``), the tensor and both shapes -
never a shape error from NumPy or PyTorch at the first prediction."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from launchml.errors import PackageError


class MemberFilesError(PackageError):
    """A member's files do not fit its spec; ``Ensemble`` names the member."""


def _shape(value: Any) -> tuple[int, ...]:
    return tuple(int(d) for d in getattr(value, "shape", ()))


def _text(shape: Iterable[int | None]) -> str:
    dims = ["any" if d is None else str(d) for d in shape]
    return "(" + ", ".join(dims) + ("," if len(dims) == 1 else "") + ")"


def check_tensors(tensors: Mapping[str, Any], expected: Mapping[str, Iterable[int | None]],
                  file: str, *, extra: bool = True) -> None:
    """Each tensor of ``expected`` is in ``tensors`` with that shape (``None``: any size
    on that axis); with ``extra``, ``tensors`` holds no other."""
    for name, want in expected.items():
        want = tuple(want)
        if name not in tensors:
            raise MemberFilesError(f"'{file}' has no tensor '{name[:100]}' (expected shape "
                                   f"{_text(want)}). The package is damaged. Fix: re-run "
                                   "training to rebuild it.")
        found = _shape(tensors[name])
        if len(found) != len(want) or any(w is not None and w != f
                                          for w, f in zip(want, found, strict=False)):
            raise MemberFilesError(f"'{file}': tensor '{name[:100]}' has shape {_text(found)}; "
                                   f"the member's spec expects {_text(want)}. The package is "
                                   "damaged. Fix: re-run training to rebuild it.")
    if extra:
        unknown = sorted(set(tensors) - set(expected))
        if unknown:
            raise MemberFilesError(f"'{file}' holds tensors the member does not have: "
                                   f"{', '.join(repr(k[:100]) for k in unknown[:5])}. The "
                                   "package is damaged. Fix: re-run training to rebuild it.")


def check_state_dict(net: Any, weights: Mapping[str, Any], file: str) -> None:
    """A network's weights are its tensors, each of its shape (before load_state_dict)."""
    check_tensors(weights, {k: tuple(v.shape) for k, v in net.state_dict().items()}, file)
