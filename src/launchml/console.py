"""Where launchml talks to the person running it: one Rich console on stderr.

stdout stays clean for machine-readable output (``launchml predict`` prints
JSON lines there).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from rich.console import Console

console = Console(stderr=True, highlight=False, soft_wrap=True)
logger = logging.getLogger("launchml")  # every message also goes here, whatever the verbosity
# a library's logger: without it, logging's last-resort handler prints each warning a second
# time on stderr when the application configured no logging
logger.addHandler(logging.NullHandler())
_VERBOSITY: ContextVar[int | None] = ContextVar("launchml_verbosity", default=None)


def quiet() -> bool:
    """No progress output: ``verbosity(0)`` in this context, else LAUNCHML_QUIET=1."""
    level = _VERBOSITY.get()
    if level is not None:
        return level <= 0
    return os.environ.get("LAUNCHML_QUIET", "") not in ("", "0")


@contextmanager
def verbosity(level: int) -> Iterator[None]:
    """Within the block, 0 prints no progress (warnings still print), 1 or more prints it."""
    token = _VERBOSITY.set(level)
    try:
        yield
    finally:
        _VERBOSITY.reset(token)


def info(message: str) -> None:
    logger.info(message)
    if not quiet():
        console.print(message)


def warn(message: str) -> None:
    logger.warning(message)
    console.print(f"[bold yellow]warning:[/] {message}")
