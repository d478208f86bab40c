"""``launchml``: the command line. Every verb calls the same functions as the Python API.

Exit codes: 0 success, 1 failure (bad data, a damaged package ...), 2 usage
(a bad config key or value, a bad option).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import typer

from launchml.errors import ConfigError, LaunchmlError


def _version(value: bool) -> None:
    if value:
        from launchml import __version__

        typer.echo(f"launchml {__version__}")
        raise typer.Exit()


app = typer.Typer(
    name="launchml",
    help="prepare -> train -> optimize -> evaluate -> deploy, from one config.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain help: the rich panels print '<bool>' after every flag
)


def handle_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Print launchml errors as one clear message and exit 1 (2 for config/usage errors)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except LaunchmlError as e:
            from rich.markup import escape

            from launchml.console import console

            # escaped: "pip install 'launchml[serve]'" is text, not a rich style tag
            console.print(f"[bold red]error:[/] {escape(str(e))}", markup=True, highlight=False)
            raise typer.Exit(2 if isinstance(e, ConfigError) else 1) from None

    return wrapper


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="print the version and exit"),
) -> None:
    """prepare -> train -> optimize -> evaluate -> deploy, from one config."""


from launchml.cli import (  # noqa: E402,F401  (register the verbs)
    evaluate,
    explain,
    federate,
    inspect,
    optimize,
    package,
    predict,
    quickstart,
    registry,
    run,
)


def main() -> None:
    from launchml.train.speed import tune_allocator

    tune_allocator()  # before torch allocates anything
    app(prog_name="launchml")
