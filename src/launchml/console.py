"""Where launchml talks to the person running it: one Rich console on stderr.

stdout stays clean for machine-readable output (``launchml predict`` prints
JSON lines there).
"""

from __future__ import annotations

import os

from rich.console import Console

console = Console(stderr=True, highlight=False, soft_wrap=True)


def quiet() -> bool:
    return os.environ.get("LAUNCHML_QUIET", "") not in ("", "0")


def info(message: str) -> None:
    if not quiet():
        console.print(message)


def warn(message: str) -> None:
    console.print(f"[bold yellow]warning:[/] {message}")
