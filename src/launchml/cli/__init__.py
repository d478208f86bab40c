"""The ``launchml`` command (Typer); one module per verb group."""
