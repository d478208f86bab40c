"""``launchml registry``: versions, aliases, tags and the audit log of model packages.

    launchml registry add runs/cancer/model --name cancer        # version 1
    launchml registry alias cancer champion 1
    launchml registry show cancer@champion
    launchml registry log cancer

The database is ``.launchml/registry.db`` in the current folder unless ``--url`` or
``LAUNCHML_REGISTRY_URL`` names another (any SQLAlchemy URL, e.g. PostgreSQL).
Tables go to stdout (``--json`` for machine-readable output); messages to stderr.
"""

from __future__ import annotations

import json
from typing import Any

import typer

from launchml.cli.main import app, handle_errors

registry_app = typer.Typer(help="model versions, aliases, tags and the audit log",
                           no_args_is_help=True, rich_markup_mode=None)
app.add_typer(registry_app, name="registry")

_URL = typer.Option(None, "--url", envvar="LAUNCHML_REGISTRY_URL",
                    help="SQLAlchemy database URL (default: .launchml/registry.db here)",
                    show_envvar=True)
_ARTIFACTS = typer.Option(None, "--artifacts", envvar="LAUNCHML_REGISTRY_ARTIFACTS",
                          help="the folder of package files (default: beside the database)")
_JSON = typer.Option(False, "--json", help="print JSON instead of a table")


def _open(url: str | None, artifacts: str | None) -> Any:
    from launchml.registry import Registry

    return Registry(url, artifacts=artifacts)


def _plain(obj: Any) -> Any:
    """Dataclasses, datetimes and paths as JSON values."""
    import dataclasses
    import datetime as dt
    from pathlib import Path

    if dataclasses.is_dataclass(obj):
        return {f.name: _plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_plain(v) for v in obj]
    if isinstance(obj, dt.datetime):
        return obj.isoformat(timespec="seconds")
    if isinstance(obj, Path):
        return str(obj)
    return obj


def _table(columns: list[str], rows: list[list[Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table()
    for c in columns:
        t.add_column(c)
    for r in rows:
        t.add_row(*("" if v is None else str(v) for v in r))
    Console(highlight=False, soft_wrap=True).print(t)


def _when(t: Any) -> str:
    return t.strftime("%Y-%m-%d %H:%M:%S")


@registry_app.command("list")
@handle_errors
def list_models(url: str | None = _URL, artifacts: str | None = _ARTIFACTS,
                as_json: bool = _JSON) -> None:
    """The models: their versions, aliases and tags."""
    with _open(url, artifacts) as reg:
        models = reg.models()
    if as_json:
        typer.echo(json.dumps(_plain(models), indent=1))
        return
    _table(["model", "versions", "latest", "aliases", "tags"],
           [[m.name, len(m.versions), m.versions[-1] if m.versions else "-",
             ", ".join(f"{a}={v}" for a, v in m.aliases.items()),
             ", ".join(f"{k}={v}" for k, v in m.tags.items())] for m in models])


@registry_app.command()
@handle_errors
def show(ref: str = typer.Argument(..., help="a model (cancer) or a version (cancer@champion, "
                                   "cancer:2)"),
         url: str | None = _URL, artifacts: str | None = _ARTIFACTS,
         as_json: bool = _JSON) -> None:
    """A model's versions, or one version's hash, files and lineage."""
    from launchml.registry import parse_ref

    r = parse_ref(ref)
    with _open(url, artifacts) as reg:
        if r.alias is None and r.version is None:
            model, versions = reg.model(r.name), reg.versions(r.name)
            if as_json:
                typer.echo(json.dumps(_plain({"model": model, "versions": versions}),
                                      indent=1))
                return
            typer.echo(f"model {model.name} (since {_when(model.created_at)})"
                       + (f", tags {model.tags}" if model.tags else ""))
            _table(["version", "aliases", "hash", "task", "run", "added", "by"],
                   [[v.version, ", ".join(v.aliases), v.content_hash[:12],
                     v.lineage.get("task"), (v.lineage.get("run") or {}).get("name"),
                     _when(v.created_at), v.created_by] for v in versions])
            return
        v = reg.get(r)
    if as_json:
        typer.echo(json.dumps(_plain(v), indent=1))
        return
    lin = v.lineage
    lines = [f"{v.name} version {v.version}" + (f" ({', '.join(v.aliases)})" if v.aliases
                                                  else ""),
             f"  hash      sha256:{v.content_hash}", f"  files     {v.path}",
             f"  added     {_when(v.created_at)} by {v.created_by} from {v.source}",
             f"  task      {lin.get('task')}, model {lin.get('model')}",
             f"  run       {(lin.get('run') or {}).get('name')} "
             f"{(lin.get('run') or {}).get('folder') or ''}".rstrip(),
             f"  data      {lin.get('data_fingerprint')}"]
    evaluation = (lin.get("metrics") or {}).get("evaluation") or {}
    scores = {k: round(x, 4) for k, x in evaluation.items() if isinstance(x, float)}
    if scores:
        lines.append(f"  metrics   {scores}")
    if lin.get("privacy"):
        lines.append(f"  privacy   {lin['privacy']}")
    if v.tags:
        lines.append(f"  tags      {v.tags}")
    typer.echo("\n".join(lines))


@registry_app.command()
@handle_errors
def add(package: str = typer.Argument(..., help="a model package folder, .zip or run folder"),
        name: str = typer.Option(..., "--name", help="the model's name in the registry"),
        alias: list[str] = typer.Option([], "--alias", help="also point this alias at the "
                                        "new version (repeatable)"),
        url: str | None = _URL, artifacts: str | None = _ARTIFACTS) -> None:
    """Register a package as the next (immutable) version of a model."""
    from launchml.console import info

    with _open(url, artifacts) as reg:
        before = {v.version for v in reg.versions(name)} if name in \
            {m.name for m in reg.models()} else set()
        v = reg.add(package, name=name)
        for a in alias:
            reg.set_alias(name, a, v.version)
    same = " (the same files were already this version)" if v.version in before else ""
    info(f"registry: {name} version {v.version}{same}, sha256:{v.content_hash[:12]}")
    typer.echo(v.ref)


@registry_app.command()
@handle_errors
def alias(name: str = typer.Argument(..., help="the model"),
          alias_name: str = typer.Argument(..., metavar="ALIAS",
                                           help="e.g. champion, challenger"),
          version: int | None = typer.Argument(None, help="the version it points to"),
          delete: bool = typer.Option(False, "--delete", help="remove the alias"),
          url: str | None = _URL, artifacts: str | None = _ARTIFACTS) -> None:
    """Point an alias at a version (a server following it switches), or --delete it."""
    from launchml.console import info
    from launchml.errors import ConfigError

    with _open(url, artifacts) as reg:
        if delete:
            reg.delete_alias(name, alias_name)
            info(f"registry: removed {name}@{alias_name}")
            return
        if version is None:
            raise ConfigError(f"give the version {name}@{alias_name} should point to, e.g. "
                              f"launchml registry alias {name} {alias_name} 2")
        reg.set_alias(name, alias_name, version)
    info(f"registry: {name}@{alias_name} -> version {version}")


@registry_app.command()
@handle_errors
def tag(name: str = typer.Argument(..., help="the model"),
        pairs: list[str] = typer.Argument(None, help="key=value (repeatable)"),
        version: int | None = typer.Option(None, "--version", help="tag this version, not "
                                           "the model"),
        delete: list[str] = typer.Option([], "--delete", help="remove this tag key"),
        url: str | None = _URL, artifacts: str | None = _ARTIFACTS) -> None:
    """Set (key=value) or --delete tags of a model or of one --version."""
    from launchml.errors import ConfigError

    bad = [p for p in pairs or [] if "=" not in p]
    if bad or not (pairs or delete):
        raise ConfigError(f"tags are key=value pairs; got {bad or 'none'}. Fix: launchml "
                          f"registry tag {name} team=risk")
    with _open(url, artifacts) as reg:
        for p in pairs or []:
            key, value = p.split("=", 1)
            reg.set_tag(name, key, value, version=version)
        for key in delete:
            reg.delete_tag(name, key, version=version)


@registry_app.command()
@handle_errors
def delete(name: str = typer.Argument(..., help="the model"),
           version: int | None = typer.Argument(None, help="one version (default: the whole "
                                                "model)"),
           force: bool = typer.Option(False, "--force", help="also remove aliases that point "
                                      "to what is deleted"),
           url: str | None = _URL, artifacts: str | None = _ARTIFACTS) -> None:
    """Delete a version (or a whole model); its files go when no version uses them."""
    from launchml.console import info
    from launchml.errors import ConfigError

    if ":" in name or "@" in name:  # `show` takes cancer:2; delete names the version apart
        model, _, which = name.replace("@", ":").partition(":")
        raise ConfigError(f"launchml registry delete takes the model and the version "
                          f"apart; got '{name}'. Fix: launchml registry delete {model} "
                          f"{which if which.isdigit() else '<version>'}")
    with _open(url, artifacts) as reg:
        reg.delete(name, version, force=force)
    info(f"registry: deleted {name}" + (f" version {version}" if version else ""))


@registry_app.command()
@handle_errors
def log(name: str | None = typer.Argument(None, help="one model (default: all)"),
        limit: int | None = typer.Option(None, "--limit", help="the last N entries"),
        url: str | None = _URL, artifacts: str | None = _ARTIFACTS,
        as_json: bool = _JSON) -> None:
    """Every change, oldest first: when, who, what, which version, from -> to."""
    with _open(url, artifacts) as reg:
        entries = reg.log(name, limit=limit)
    if as_json:
        typer.echo(json.dumps(_plain(entries), indent=1))
        return
    _table(["when", "who", "action", "model", "version", "key", "from", "to"],
           [[_when(e.at), e.actor, e.action, e.model, e.version, e.key,
             (e.from_value or "")[:16], (e.to_value or "")[:16]] for e in entries])
