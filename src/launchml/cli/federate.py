"""``launchml federate simulate|server|client``: federated learning (Flower).

Flower pins its own web stack (FastAPI, Starlette, uvicorn, typer, protobuf, Ray)
at versions that clash with launchml's server, so it lives in its own environment,
``.venv-federated`` (``make install-federated``). Where Flower is not importable
here, these commands run the same command in that environment as a subprocess.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import typer

from launchml.cli.main import app, handle_errors
from launchml.errors import MissingDependencyError

federate_app = typer.Typer(help="federated learning (Flower): simulate on one machine, or "
                           "run a server and one client per site", no_args_is_help=True)
app.add_typer(federate_app, name="federate")

INSTALL = ("make install-federated  (in a launchml checkout; it builds .venv-federated "
           "from constraints-federated.txt), or: python -m venv .venv-federated && "
           ".venv-federated/bin/pip install -c constraints-federated.txt "
           "'launchml[federated]'")


def federated_python() -> Path | None:
    """The federated environment's python: $LAUNCHML_FEDERATED_PYTHON, else
    .venv-federated in the working folder or in the launchml checkout."""
    given = os.environ.get("LAUNCHML_FEDERATED_PYTHON")
    if given:
        return Path(given) if Path(given).exists() else None
    checkout = Path(__file__).resolve().parents[3]
    for root in (Path.cwd(), checkout):
        py = root / ".venv-federated" / "bin" / "python"
        if py.exists():
            return py
    return None


def _delegate(args: list[str]) -> bool:
    """Run ``launchml federate <args>`` in the federated environment when Flower is not
    importable here; True when it ran (its exit code is ours)."""
    if importlib.util.find_spec("flwr") is not None:
        return False
    py = federated_python()
    # by prefix: a venv's bin/python is a link to the same system interpreter
    if py is None or Path(sys.prefix).resolve() == py.parent.parent.resolve():
        raise MissingDependencyError(
            f"launchml federate needs Flower (the 'federated' extra), in its own environment "
            f"because it pins older FastAPI/Starlette/typer/protobuf. Fix: {INSTALL}")
    rc = subprocess.call([str(py), "-m", "launchml", "federate", *args])
    raise typer.Exit(rc)


@federate_app.command("simulate")
@handle_errors
def simulate(
    config: Path = typer.Argument(..., help="the run config (with a federated: section)"),
    clients: int = typer.Option(10, "--clients", min=1, help="simulated sites"),
    partition: str = typer.Option("iid", "--partition",
                                  help="iid | label | dirichlet:<alpha> (e.g. dirichlet:0.5)"),
) -> None:
    """Simulate a federation on one machine: the config's training rows split over
    --clients sites; the global model becomes runs/<name>/model, an ordinary package."""
    from launchml.federated.core import partition as check_partition

    if not config.exists():
        raise typer.BadParameter(f"config file '{config}' does not exist")
    check_partition(__import__("numpy").zeros(clients), clients,
                    partition if partition != "label" else "iid", 0)  # a bad spelling: now
    _delegate(["simulate", str(config), "--clients", str(clients), "--partition", partition])
    from launchml.federated.app import simulate as run_simulation

    run_simulation(str(config.resolve()), clients=clients, partition=partition)


@federate_app.command("server")
@handle_errors
def server(
    config: Path = typer.Argument(..., help="the run config (with a federated: section); "
                                  "its data: is the coordinator's copy (schema, validation)"),
    clients: int = typer.Option(3, "--clients", min=1, help="sites expected"),
    address: str | None = typer.Option(None, "--address", help="host:port to listen on "
                                       "(default: federated.address)"),
    certificates: Path | None = typer.Option(None, "--certificates", help="with "
                                             "federated.tls: a folder with ca.crt, "
                                             "server.pem, server.key"),
    round_timeout: float = typer.Option(600.0, "--round-timeout", help="seconds a round "
                                        "waits for its sites; a site lost is logged and "
                                        "the round aggregates the others"),
) -> None:
    """Coordinate a federation: a Flower SuperLink, the rounds, the global package."""
    args = ["server", str(config.resolve()), "--clients", str(clients), "--round-timeout",
            str(round_timeout)] + (["--address", address] if address else []) + (
        ["--certificates", str(certificates.resolve())] if certificates else [])
    _delegate(args)
    from launchml.federated.real import serve

    raise typer.Exit(serve(config.resolve(), clients=clients, address=address,
                           certificates=certificates, round_timeout=round_timeout))


@federate_app.command("client")
@handle_errors
def client(
    config: Path = typer.Argument(..., help="the federation's config (for federated.tls "
                                  "and the default server address)"),
    data: Path = typer.Option(..., "--data", help="this site's table (the federation's "
                              "columns and target)"),
    server_address: str | None = typer.Option(None, "--server", help="the server's "
                                              "host:port (default: federated.address)"),
    site: str | None = typer.Option(None, "--site", help="this site's name in the logs "
                                    "(default: the data file's name)"),
    certificates: Path | None = typer.Option(None, "--certificates",
                                             help="with federated.tls: a folder with ca.crt"),
) -> None:
    """Join a federation as one site: train on --data each round; the rows stay here."""
    from launchml.config import RunConfig

    cfg = RunConfig.load(config)
    fed = cfg.federated
    address = server_address or (fed.address if fed else "127.0.0.1:9092")
    name = site or data.stem
    _delegate(["client", str(config.resolve()), "--data", str(data.resolve()), "--server",
               address, "--site", name] + (["--certificates", str(certificates.resolve())]
                                            if certificates else []))
    from launchml.federated.real import join

    raise typer.Exit(join(data, server=address, site=name, certificates=certificates,
                          tls=bool(fed and fed.tls)))
