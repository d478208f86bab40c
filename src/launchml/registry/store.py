"""``Registry``: versions of model packages in a SQL database, files in a hash-addressed folder.

    reg = Registry()                       # .launchml/registry.db in the current project
    v = reg.add("runs/cancer/model", name="cancer")          # version 1 (immutable)
    reg.set_alias("cancer", "champion", v.version)
    reg.path("cancer@champion")            # the package folder, checked against its hash
    reg.log("cancer")                      # who changed what, when, from -> to

The database is SQLite by default and any SQLAlchemy URL otherwise
(``LAUNCHML_REGISTRY_URL``, e.g. ``postgresql+psycopg://user@host/db``); its schema is
migrated by Alembic on open. Package files are copied once into
``<artifacts>/sha256/<ab>/<hash>/`` (read-only): a version's hash is the hash of its
files, so two versions with the same content share one folder.

Concurrent writers: SQLite transactions begin with ``BEGIN IMMEDIATE`` (one writer at a
time, others wait), other databases lock the model's row (``SELECT ... FOR UPDATE``)
before numbering a version; an artifact folder is written under a temporary name and
renamed into place, so a reader never sees half of one.
"""

from __future__ import annotations

import datetime as dt
import getpass
import hashlib
import os
import re
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from launchml.errors import ConfigError, PackageError

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine
    from sqlalchemy.orm import Session

    from launchml.deploy.predictor import Engine as EngineName
    from launchml.deploy.predictor import Predictor

URL_ENV = "LAUNCHML_REGISTRY_URL"
ARTIFACTS_ENV = "LAUNCHML_REGISTRY_ARTIFACTS"
USER_ENV = "LAUNCHML_USER"
DEFAULT_DIR = ".launchml"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,199}$")
_ALIAS = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,99}$")
RESERVED_ALIASES = ("latest",)  # 'name@latest' is the newest version, as in MLflow


@dataclass(frozen=True)
class Ref:
    """``name``, ``name@alias``, ``name:3`` (or ``models:/name@alias``, ``models:/name/3``)."""

    name: str
    alias: str | None = None
    version: int | None = None

    def __str__(self) -> str:
        return self.name + (f"@{self.alias}" if self.alias else
                            f":{self.version}" if self.version is not None else "")


def parse_ref(text: str) -> Ref:
    """A model reference; a bad one is a ConfigError saying what is allowed."""
    body = text.removeprefix("models:/")
    name, alias, version = body, None, None
    if "@" in body:
        name, alias = body.split("@", 1)
    else:
        m = re.match(r"^(.*)[:/](\d+)$", body)
        if m:
            name, version = m[1], int(m[2])
    if not _NAME.match(name) or (alias is not None and not _ALIAS.match(alias)):
        raise ConfigError(f"'{text}' is not a model reference. Fix: write name, name@alias "
                          "(e.g. cancer@champion) or name:version (e.g. cancer:3).")
    return Ref(name, alias, version)


def looks_like_ref(text: str) -> bool:
    """Whether ``text`` (not an existing path) reads as a registry reference."""
    try:
        parse_ref(text)
    except ConfigError:
        return False
    return not Path(text).exists()


@dataclass(frozen=True)
class VersionInfo:
    """One immutable version: its files are at ``path``; ``lineage`` says where it came
    from (run, config, data fingerprint, metrics, privacy settings when present)."""

    name: str
    version: int
    content_hash: str
    path: Path
    source: str
    lineage: dict[str, Any]
    created_at: dt.datetime
    created_by: str
    aliases: list[str] = field(default_factory=list)
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def ref(self) -> str:
        return f"{self.name}:{self.version}"


@dataclass(frozen=True)
class ModelInfo:
    name: str
    created_at: dt.datetime
    versions: list[int]
    aliases: dict[str, int]
    tags: dict[str, str]


@dataclass(frozen=True)
class LogEntry:
    at: dt.datetime
    actor: str
    action: str
    model: str
    version: int | None
    key: str | None
    from_value: str | None
    to_value: str | None


def default_url() -> str:
    url = os.environ.get(URL_ENV)
    if url:
        return url
    return f"sqlite:///{(Path.cwd() / DEFAULT_DIR / 'registry.db').resolve()}"


def _actor(actor: str | None) -> str:
    if actor:
        return actor
    if os.environ.get(USER_ENV):
        return os.environ[USER_ENV]
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (containers)
        return f"uid {os.getuid()}" if hasattr(os, "getuid") else "unknown"


def _utc(t: dt.datetime) -> dt.datetime:
    return t if t.tzinfo else t.replace(tzinfo=dt.UTC)  # SQLite returns naive datetimes


def package_files(path: Path) -> tuple[Path, list[str]]:
    """The package folder and its files (package.json and the files it lists)."""
    from launchml.package import load_package

    pkg = load_package(path)
    names = ["package.json", *sorted({f for f in pkg.meta["files"].values() if f})]
    for name in names:
        if not (pkg.path / name).is_file():
            raise PackageError(f"'{pkg.path}': package.json lists '{name}', which is missing. "
                               "Fix: re-run the stage that wrote the package.")
    return pkg.path, names


def content_hash(folder: Path, names: list[str]) -> str:
    """sha256 over the files' names and contents (in name order)."""
    outer = hashlib.sha256()
    for name in sorted(names):
        inner = hashlib.sha256()
        with open(folder / name, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                inner.update(block)
        outer.update(f"{name}\0{inner.hexdigest()}\n".encode())
    return outer.hexdigest()


def lineage(folder: Path) -> dict[str, Any]:
    """Where a package came from, read from its package.json (and its run folder)."""
    from launchml.runs import read_json

    meta = read_json(folder / "package.json")
    prov = meta.get("provenance", {})
    config = prov.get("config") or {}
    out: dict[str, Any] = {
        "run": {"name": config.get("name"), "folder": None},
        "config": config,
        "data_fingerprint": prov.get("data_fingerprint"),
        "metrics": {k: v for k, v in meta.get("metrics", {}).items() if k != "leaderboard"},
        "task": meta.get("task", {}).get("name"),
        "model": meta.get("model", {}).get("name"),
        "format_version": meta.get("format_version"),
        "created": prov.get("created"),
        "versions": prov.get("versions", {}),
    }
    run = folder.parent if (folder.parent / "config.yaml").exists() else None
    if run is not None:
        out["run"]["folder"] = str(run.resolve())
        evaluation = run / "evaluation" / "metrics.json"
        if evaluation.exists():
            out["metrics"]["evaluation"] = read_json(evaluation)
    # the package's privacy record (epsilon spent ...), else the DP settings it trained with
    dp = (config.get("privacy") or {}).get("dp")
    privacy = meta.get("privacy") or prov.get("privacy") or ({"dp": dp} if dp else None)
    if privacy:
        out["privacy"] = privacy
    return out


class Registry:
    """Models, their immutable versions, aliases, tags and the audit log.

    ``url``: a SQLAlchemy URL (default ``LAUNCHML_REGISTRY_URL``, else the SQLite file
    ``.launchml/registry.db`` under the current folder). ``artifacts``: the folder of
    package files (default ``LAUNCHML_REGISTRY_ARTIFACTS``, else ``artifacts/`` beside a
    SQLite file, or ``.launchml/artifacts`` for a server database). ``actor``: who the
    audit log names (default ``LAUNCHML_USER``, else the login name).
    """

    def __init__(self, url: str | None = None, *, artifacts: str | Path | None = None,
                 actor: str | None = None) -> None:
        self.url = url or default_url()
        self.actor = _actor(actor)
        self._engine = _open_database(self.url, lambda: _create_engine(self.url))
        database = self._engine.url.database if self._engine.dialect.name == "sqlite" else None
        if artifacts is None:
            artifacts = os.environ.get(ARTIFACTS_ENV) or (
                Path(database).parent / "artifacts" if database and database != ":memory:"
                else Path.cwd() / DEFAULT_DIR / "artifacts")
        self.artifacts = Path(artifacts).resolve()
        _open_database(self.url, lambda: migrate(self._engine))

    def close(self) -> None:
        self._engine.dispose()

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- reading ---------------------------------------------------------------------

    def models(self) -> list[ModelInfo]:
        from sqlalchemy import select

        from launchml.registry.tables import RegisteredModel

        with self._session() as s:
            rows = s.scalars(select(RegisteredModel).order_by(RegisteredModel.name)).all()
            return [self._model_info(s, m) for m in rows]

    def model(self, name: str) -> ModelInfo:
        with self._session() as s:
            return self._model_info(s, self._find_model(s, name))

    def versions(self, name: str) -> list[VersionInfo]:
        from sqlalchemy import select

        from launchml.registry.tables import ModelVersion

        with self._session() as s:
            m = self._find_model(s, name)
            rows = s.scalars(select(ModelVersion).where(ModelVersion.model_id == m.id)
                             .order_by(ModelVersion.version)).all()
            return [self._version_info(s, m, v) for v in rows]

    def get(self, ref: str | Ref) -> VersionInfo:
        """The version ``ref`` names: ``name@alias``, ``name:3``, or ``name`` (the newest)."""
        ref = parse_ref(ref) if isinstance(ref, str) else ref
        with self._session() as s:
            m = self._find_model(s, ref.name)
            return self._version_info(s, m, self._find_version(s, m, ref))

    def path(self, ref: str | Ref, *, verify: bool = True) -> Path:
        """The package folder of ``ref``; with ``verify`` its files are checked against
        the version's content hash first (a changed or damaged file is refused)."""
        info = self.get(ref)
        if verify:
            self.verify(info)
        return info.path

    def verify(self, info: VersionInfo) -> None:
        if not (info.path / "package.json").exists():
            raise PackageError(f"{info.ref}: its files are missing from '{info.path}'. "
                               f"Fix: add the package again (launchml registry add).")
        _, names = package_files(info.path)
        if content_hash(info.path, names) != info.content_hash:
            raise PackageError(f"{info.ref}: the files in '{info.path}' no longer match the "
                               "version's content hash (changed or damaged on disk). Fix: "
                               "add the package again as a new version.")

    def load(self, ref: str | Ref, *, engine: EngineName = "auto") -> Predictor:
        """A ``Predictor`` for ``ref`` (its files checked against the hash)."""
        from launchml.deploy.predictor import Predictor

        return Predictor.load(self.path(ref), engine=engine)

    def log(self, name: str | None = None, *, limit: int | None = None) -> list[LogEntry]:
        """The audit log, oldest first (of one model's name, or all)."""
        from sqlalchemy import select

        from launchml.registry.tables import AuditEntry

        q = select(AuditEntry).order_by(AuditEntry.id)
        if name is not None:
            q = q.where(AuditEntry.model == name)
        with self._session() as s:
            rows = s.scalars(q).all()
        out = [LogEntry(_utc(r.at), r.actor, r.action, r.model, r.version, r.key,
                        r.from_value, r.to_value) for r in rows]
        return out[-limit:] if limit else out

    # -- writing ---------------------------------------------------------------------

    def add(self, package: str | Path, *, name: str) -> VersionInfo:
        """Register a package folder (or .zip, or run folder) as the next version of
        ``name``; the model is created on first use. Adding the same files again gives
        the existing version back (versions are content-addressed, never duplicated)."""
        from sqlalchemy import select

        from launchml.registry.tables import ModelVersion

        _check_name(name)
        folder, names = package_files(Path(package))
        digest = content_hash(folder, names)
        artifact = self._store(folder, names, digest)
        info = lineage(folder)
        with self._write() as s:
            m = self._lock_model(s, name, create=True)
            same = s.scalars(select(ModelVersion).where(ModelVersion.model_id == m.id,
                                                        ModelVersion.content_hash == digest)
                             ).first()
            if same is not None:
                return self._version_info(s, m, same)
            if not (self.artifacts / artifact / "package.json").exists():
                self._store(folder, names, digest)  # a delete removed it meanwhile
            m.last_version += 1
            v = ModelVersion(model_id=m.id, version=m.last_version, content_hash=digest,
                             artifact=artifact, source=str(Path(package).resolve()),
                             lineage=info, created_by=self.actor)
            s.add(v)
            s.flush()
            self._audit(s, "add", name, v.version, to_value=digest)
            return self._version_info(s, m, v)

    def set_alias(self, name: str, alias: str, version: int) -> VersionInfo:
        """Point ``name@alias`` at ``version`` (created or moved; logged from -> to)."""
        from sqlalchemy import select

        from launchml.registry.tables import ModelAlias

        _check_alias(alias)
        with self._write() as s:
            m = self._lock_model(s, name)
            v = self._find_version(s, m, Ref(name, version=version))
            row = s.scalars(select(ModelAlias).where(ModelAlias.model_id == m.id,
                                                     ModelAlias.alias == alias)).first()
            before = self._number(s, row.version_id) if row else None
            if row is None:
                s.add(ModelAlias(model_id=m.id, alias=alias, version_id=v.id))
            else:
                row.version_id = v.id
                row.updated_at = dt.datetime.now(dt.UTC)
            self._audit(s, "alias", name, version, key=alias,
                        from_value=None if before is None else str(before),
                        to_value=str(version))
            s.flush()
            return self._version_info(s, m, v)

    def delete_alias(self, name: str, alias: str) -> None:
        from sqlalchemy import select

        from launchml.registry.tables import ModelAlias

        with self._write() as s:
            m = self._lock_model(s, name)
            row = s.scalars(select(ModelAlias).where(ModelAlias.model_id == m.id,
                                                     ModelAlias.alias == alias)).first()
            if row is None:
                raise ConfigError(f"model '{name}' has no alias '{alias}'. Aliases: "
                                  f"{self._aliases(s, m) or 'none'}.")
            before = self._number(s, row.version_id)
            s.delete(row)
            self._audit(s, "unalias", name, before, key=alias, from_value=str(before))

    def set_tag(self, name: str, key: str, value: str, *, version: int | None = None) -> None:
        """Tag the model (or one version): ``key`` = ``value``; logged from -> to."""
        from sqlalchemy import select

        from launchml.registry.tables import ModelTag

        if not key or len(key) > 200:
            raise ConfigError(f"tag key {key!r}: give 1 to 200 characters.")
        with self._write() as s:
            m = self._lock_model(s, name)
            if version is not None:
                self._find_version(s, m, Ref(name, version=version))
            row = s.scalars(select(ModelTag).where(ModelTag.model_id == m.id,
                                                   ModelTag.version == (version or 0),
                                                   ModelTag.key == key)).first()
            before = row.value if row else None
            if row is None:
                s.add(ModelTag(model_id=m.id, version=version or 0, key=key, value=value))
            else:
                row.value = value
            self._audit(s, "tag", name, version, key=key, from_value=before, to_value=value)

    def delete_tag(self, name: str, key: str, *, version: int | None = None) -> None:
        from sqlalchemy import select

        from launchml.registry.tables import ModelTag

        with self._write() as s:
            m = self._lock_model(s, name)
            row = s.scalars(select(ModelTag).where(ModelTag.model_id == m.id,
                                                   ModelTag.version == (version or 0),
                                                   ModelTag.key == key)).first()
            if row is None:
                where = f"version {version} of " if version else ""
                raise ConfigError(f"{where}model '{name}' has no tag '{key}'.")
            s.delete(row)
            self._audit(s, "untag", name, version, key=key, from_value=row.value)

    def delete(self, name: str, version: int | None = None, *, force: bool = False) -> None:
        """Delete one version (or, without ``version``, the model and all its versions).

        A version an alias points at is refused unless ``force`` (which removes those
        aliases, logged). Artifact folders no other version uses are removed. Version
        numbers are never reused.
        """
        from sqlalchemy import func, select

        from launchml.registry.tables import ModelAlias, ModelTag, ModelVersion

        with self._write() as s:
            m = self._lock_model(s, name)
            if version is None:
                doomed = list(s.scalars(select(ModelVersion)
                                        .where(ModelVersion.model_id == m.id)).all())
            else:
                doomed = [self._find_version(s, m, Ref(name, version=version))]
            ids = [v.id for v in doomed]
            aliases = s.scalars(select(ModelAlias).where(ModelAlias.version_id.in_(ids))).all()
            if aliases and not force:
                named = ", ".join(f"{name}@{a.alias} -> {self._number(s, a.version_id)}"
                                  for a in aliases)
                raise ConfigError(f"{named}: move or remove the alias first (launchml "
                                  "registry alias), or pass --force (force=True) to delete "
                                  "the alias with it.")
            for a in aliases:
                self._audit(s, "unalias", name, self._number(s, a.version_id), key=a.alias,
                            from_value=str(self._number(s, a.version_id)))
                s.delete(a)
            s.flush()
            for v in doomed:
                if version is not None:
                    s.execute(ModelTag.__table__.delete().where(ModelTag.model_id == m.id,
                                                                ModelTag.version == v.version))
                self._audit(s, "delete", name, v.version, from_value=v.content_hash)
                s.delete(v)
            if version is None:
                s.execute(ModelTag.__table__.delete().where(ModelTag.model_id == m.id))
                self._audit(s, "delete", name, None, from_value=f"{len(doomed)} versions")
                s.delete(m)
            s.flush()
            for v in doomed:  # files no remaining version uses
                left = s.scalar(select(func.count()).select_from(ModelVersion)
                                .where(ModelVersion.content_hash == v.content_hash))
                if not left:
                    shutil.rmtree(self.artifacts / v.artifact, ignore_errors=True)

    # -- internals -------------------------------------------------------------------

    @contextmanager
    def _session(self) -> Iterator[Session]:
        from sqlalchemy.orm import Session

        with Session(self._engine, expire_on_commit=False) as s:
            yield s

    @contextmanager
    def _write(self) -> Iterator[Session]:
        """One write transaction (SQLite: BEGIN IMMEDIATE, the database's write lock)."""
        from sqlalchemy.orm import Session

        with Session(self._engine, expire_on_commit=False) as s, s.begin():
            yield s

    def _audit(self, s: Session, action: str, model: str, version: int | None, *,
               key: str | None = None, from_value: str | None = None,
               to_value: str | None = None) -> None:
        from launchml.registry.tables import AuditEntry

        s.add(AuditEntry(actor=self.actor, action=action, model=model, version=version,
                         key=key, from_value=from_value, to_value=to_value))

    def _store(self, folder: Path, names: list[str], digest: str) -> str:
        """Copy the files into ``sha256/<ab>/<digest>`` (once); return that relative path."""
        rel = f"sha256/{digest[:2]}/{digest}"
        final = self.artifacts / rel
        if (final / "package.json").exists():
            return rel
        tmp = self.artifacts / "tmp" / uuid.uuid4().hex
        tmp.mkdir(parents=True)
        try:
            for name in names:
                shutil.copyfile(folder / name, tmp / name)
                os.chmod(tmp / name, 0o444)  # versions are immutable
            if content_hash(tmp, names) != digest:
                raise PackageError(f"'{folder}' changed while it was being added. Fix: add "
                                   "it again once whatever writes it has finished.")
            final.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.rename(tmp, final)  # atomic; fails if another writer got there first
            except OSError:
                if not (final / "package.json").exists():
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return rel

    def _find_model(self, s: Session, name: str) -> Any:
        from sqlalchemy import select

        from launchml.registry.tables import RegisteredModel

        m = s.scalars(select(RegisteredModel).where(RegisteredModel.name == name)).first()
        if m is None:
            known = s.scalars(select(RegisteredModel.name).order_by(RegisteredModel.name)).all()
            raise PackageError(f"the registry at {_safe_url(self.url)} has no model '{name}'. "
                               f"Models: {', '.join(known) or 'none'}. Fix: launchml "
                               f"registry add <package> --name {name}")
        return m

    def _lock_model(self, s: Session, name: str, *, create: bool = False) -> Any:
        """The model's row, locked for this transaction (created when ``create``)."""
        from sqlalchemy import select
        from sqlalchemy.exc import IntegrityError

        from launchml.registry.tables import RegisteredModel

        q = select(RegisteredModel).where(RegisteredModel.name == name).with_for_update()
        m = s.scalars(q).first()
        if m is None and create:
            try:
                with s.begin_nested():  # another writer may create it at the same moment
                    s.add(RegisteredModel(name=name, last_version=0))
            except IntegrityError:
                pass
            m = s.scalars(q).first()
        if m is None:
            return self._find_model(s, name)
        return m

    def _find_version(self, s: Session, m: Any, ref: Ref) -> Any:
        from sqlalchemy import select

        from launchml.registry.tables import ModelAlias, ModelVersion

        q = select(ModelVersion).where(ModelVersion.model_id == m.id)
        if ref.alias is not None and ref.alias not in RESERVED_ALIASES:
            row = s.scalars(select(ModelAlias).where(ModelAlias.model_id == m.id,
                                                     ModelAlias.alias == ref.alias)).first()
            if row is None:
                raise PackageError(f"model '{m.name}' has no alias '{ref.alias}'. Aliases: "
                                   f"{self._aliases(s, m) or 'none'}. Fix: launchml registry "
                                   f"alias {m.name} {ref.alias} <version>")
            q = q.where(ModelVersion.id == row.version_id)
        elif ref.version is not None:
            q = q.where(ModelVersion.version == ref.version)
        else:
            q = q.order_by(ModelVersion.version.desc())
        v = s.scalars(q).first()
        if v is None:
            numbers = s.scalars(select(ModelVersion.version).where(
                ModelVersion.model_id == m.id).order_by(ModelVersion.version)).all()
            raise PackageError(f"model '{m.name}' has no version {ref.version or ''}".rstrip()
                               + f". Versions: {', '.join(map(str, numbers)) or 'none'}.")
        return v

    def _number(self, s: Session, version_id: int) -> int:
        from launchml.registry.tables import ModelVersion

        return s.get(ModelVersion, version_id).version

    def _aliases(self, s: Session, m: Any) -> dict[str, int]:
        from sqlalchemy import select

        from launchml.registry.tables import ModelAlias, ModelVersion

        rows = s.execute(select(ModelAlias.alias, ModelVersion.version)
                         .join(ModelVersion, ModelVersion.id == ModelAlias.version_id)
                         .where(ModelAlias.model_id == m.id).order_by(ModelAlias.alias)).all()
        return {a: v for a, v in rows}

    def _tags(self, s: Session, m: Any, version: int) -> dict[str, str]:
        from sqlalchemy import select

        from launchml.registry.tables import ModelTag

        rows = s.execute(select(ModelTag.key, ModelTag.value).where(
            ModelTag.model_id == m.id, ModelTag.version == version).order_by(ModelTag.key))
        return {k: v for k, v in rows}

    def _model_info(self, s: Session, m: Any) -> ModelInfo:
        from sqlalchemy import select

        from launchml.registry.tables import ModelVersion

        numbers = s.scalars(select(ModelVersion.version).where(ModelVersion.model_id == m.id)
                            .order_by(ModelVersion.version)).all()
        return ModelInfo(m.name, _utc(m.created_at), list(numbers), self._aliases(s, m),
                         self._tags(s, m, 0))

    def _version_info(self, s: Session, m: Any, v: Any) -> VersionInfo:
        aliases = [a for a, n in self._aliases(s, m).items() if n == v.version]
        return VersionInfo(m.name, v.version, v.content_hash, self.artifacts / v.artifact,
                           v.source, v.lineage, _utc(v.created_at), v.created_by, aliases,
                           self._tags(s, m, v.version))


def _check_name(name: str) -> None:
    if not _NAME.match(name):
        raise ConfigError(f"model name {name!r}: use letters, digits, '_', '.' and '-' "
                          "(starting with a letter or digit), e.g. 'cancer'.")


def _check_alias(alias: str) -> None:
    if not _ALIAS.match(alias) or alias in RESERVED_ALIASES:
        raise ConfigError(f"alias {alias!r}: use a letter then letters, digits, '_' or '-' "
                          f"(e.g. champion, challenger); {', '.join(RESERVED_ALIASES)} is "
                          "reserved for the newest version.")


def _safe_url(url: str) -> str:
    """The URL without its password (for messages)."""
    return re.sub(r"://([^:/@]+):[^@]*@", r"://\1:***@", url)


def _open_database(url: str, step: Any) -> Any:
    """``step()``; an unknown driver, an unreachable server or a folder that cannot be made
    is one ConfigError naming the URL (without its password) and where it came from."""
    from sqlalchemy import exc

    try:
        return step()
    except exc.NoSuchModuleError as e:
        why = f"its database driver is not installed or not known ({e})"
    except exc.DBAPIError as e:
        why = "the database cannot be opened: " + (str(e.orig) or type(e.orig).__name__
                                                   ).strip().splitlines()[0]
    except OSError as e:
        why = f"{e.strerror or e}: '{e.filename}'" if e.filename else str(e)
    raise ConfigError(f"registry {_safe_url(url)!r}: {why}. Fix: check --url or {URL_ENV} (e.g. "
                      "sqlite:///path/registry.db, or postgresql+psycopg://user@host/db with "
                      "the server running).") from None


def _create_engine(url: str) -> Engine:
    from sqlalchemy import create_engine, event
    from sqlalchemy.engine import make_url

    try:
        parsed = make_url(url)
    except Exception as e:  # sqlalchemy.exc.ArgumentError
        raise ConfigError(f"registry URL {_safe_url(url)!r} is not a database URL ({e}). Fix: "
                          "e.g. sqlite:///path/registry.db or postgresql+psycopg://user@host/db"
                          ) from None
    if parsed.get_backend_name() != "sqlite":
        return create_engine(parsed, pool_pre_ping=True)
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(parsed, connect_args={"timeout": 60})

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _: Any) -> None:
        dbapi_connection.isolation_level = None  # SQLAlchemy, not pysqlite, begins
        cur = dbapi_connection.cursor()
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=60000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")  # the write lock up front: no lost updates

    return engine


def migrate(engine: Engine) -> None:
    """Bring the database's schema to the newest Alembic revision (once, under a lock)."""
    from alembic import command
    from alembic.config import Config
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    cfg = Config()
    cfg.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    head = ScriptDirectory.from_config(cfg).get_current_head()
    with engine.connect() as conn:
        if MigrationContext.configure(conn).get_current_revision() == head:
            return
    with engine.begin() as conn:  # SQLite: BEGIN IMMEDIATE; PostgreSQL: an advisory lock
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql("SELECT pg_advisory_xact_lock(7214001)")
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


def resolve_model(text: str | Path, *, url: str | None = None) -> Path:
    """A package path as given, or the files of a registry reference (``cancer@champion``,
    ``cancer:3``) in the registry at ``url`` (default: LAUNCHML_REGISTRY_URL, else the
    project's .launchml/registry.db)."""
    path = Path(text)
    # a reference names a version or alias: a bare missing name stays a (missing) path
    if path.exists() or not ("@" in str(text) or ":" in str(text)) \
            or not looks_like_ref(str(text)):
        return path
    url = url or default_url()
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).exists():
        raise PackageError(f"'{text}' is neither a package folder nor in a registry: there "
                           f"is no registry at {url.removeprefix('sqlite:///')}. Fix: run "
                           f"from the project folder, set {URL_ENV}, or give the package's "
                           "path.")
    with Registry(url) as reg:
        return reg.path(str(text))
