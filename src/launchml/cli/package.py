"""``launchml export``: a model package as one .zip file."""

from __future__ import annotations

from pathlib import Path

import typer

from launchml.cli.main import app, handle_errors


@app.command()
@handle_errors
def export(
    model: Path = typer.Argument(..., help="a model package (runs/<name>/model) or run folder"),
    out: Path = typer.Argument(..., help="the .zip to write (another name is refused)"),
) -> None:
    """Write a model package as one compressed .zip; predict and serve load it as they
    load a folder.

    The zip holds the package (package.json, the weights and model.onnx when the run
    made one). A variant is a package of its own: export runs/<name>/variants/int8 for
    the int8 one.
    """
    from launchml.console import info
    from launchml.deploy.package import export_zip

    info(f"export: {export_zip(model, out)}")


package_app = typer.Typer(help="ship a model package: a Docker build context",
                          no_args_is_help=True, rich_markup_mode=None)
app.add_typer(package_app, name="package")


@package_app.command()
@handle_errors
def docker(
    model: str = typer.Argument(..., help="a model package, run folder, or registry "
                                "reference (cancer@champion)"),
    out: Path | None = typer.Option(None, "--out", help="the build context folder "
                                    "(default: docker-<model name>)"),
    port: int = typer.Option(8000, "--port", help="the port the container serves on"),
) -> None:
    """Write a Dockerfile, a slim requirements.txt (the ONNX Runtime engine where the
    package has model.onnx, no training libraries), a README and the package."""
    from launchml.console import info, warn
    from launchml.deploy.docker import write_context
    from launchml.registry.store import looks_like_ref, parse_ref, resolve_model

    name = parse_ref(model).name if looks_like_ref(model) else None
    path = resolve_model(model)
    folder = path.resolve()
    name = name or (folder.parent.name if folder.name == "model" else folder.name)
    target = out or Path(f"docker-{name}")
    made = write_context(path, target, name=name, port=port)
    info(f"package docker: {target}/ (Dockerfile, requirements.txt: "
         f"{len(made['requirements'])} packages, engine {made['engine']}, README.md, model/)")
    if made["training_deps"]:
        warn(f"package docker: serving this package needs {made['training_deps']}; run the "
             "optimize stage (model.onnx) for a slim image.")
