"""API keys: stored hashed, with scopes, compared in constant time.

A key file (``launchml serve --api-key-file keys.txt``) or the ``LAUNCHML_API_KEYS``
variable holds one key per line (``;`` also separates entries in the variable)::

    # key or sha256:<hex of the key's SHA-256>   scopes (comma-separated)
    sha256:5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8  predict
    sha256:...                                                            predict,admin

A plain key is accepted too and hashed as it is read, but a file of hashes is what
to keep on a server: ``launchml serve --hash-key`` prints the line for a key. Clients
send ``Authorization: Bearer <key>`` or ``X-API-Key: <key>``. Every stored hash is
compared with ``hmac.compare_digest`` (no early exit), so the time taken does not
depend on how much of a key is right. Scopes: ``predict`` (the model routes) and
``admin`` (metrics and reloading; admin implies predict).
"""

from __future__ import annotations

import hashlib
import hmac
import os
from dataclasses import dataclass
from pathlib import Path

from launchml.errors import ConfigError

SCOPES = ("predict", "admin")
ENV = "LAUNCHML_API_KEYS"


def hash_key(key: str) -> str:
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True)
class ApiKeys:
    """(hash, scopes) pairs; empty means the server takes no keys (open)."""

    entries: tuple[tuple[bytes, frozenset[str]], ...] = ()

    @property
    def enabled(self) -> bool:
        return bool(self.entries)

    def scopes(self, key: str | None) -> frozenset[str]:
        """The scopes of ``key`` (empty when it is none of the stored keys)."""
        if not key:
            return frozenset()
        digest = hashlib.sha256(key.encode()).digest()
        found: frozenset[str] = frozenset()
        for stored, scopes in self.entries:  # all of them, whatever matches
            if hmac.compare_digest(stored, digest):
                found = scopes
        return found | ({"predict"} if "admin" in found else set())

    @classmethod
    def parse(cls, text: str, where: str) -> ApiKeys:
        entries = []
        for n, raw in enumerate(text.replace(";", "\n").splitlines(), 1):
            line = raw.split("#", 1)[0].strip()
            if not line:
                continue
            parts = line.split()
            if len(parts) != 2:
                raise ConfigError(f"{where} line {n}: write '<key or sha256:hex> <scopes>', "
                                  "e.g. 'sha256:5e88... predict,admin'.")
            key, scope_text = parts
            scopes = frozenset(s.strip() for s in scope_text.split(",") if s.strip())
            bad = sorted(scopes - set(SCOPES))
            if bad or not scopes:
                raise ConfigError(f"{where} line {n}: unknown scope(s) {bad or scope_text!r}; "
                                  f"scopes are {', '.join(SCOPES)}.")
            if key.startswith("sha256:"):
                try:
                    digest = bytes.fromhex(key.removeprefix("sha256:"))
                except ValueError:
                    digest = b""
                if len(digest) != 32:
                    raise ConfigError(f"{where} line {n}: 'sha256:' must be followed by 64 "
                                      "hex digits (launchml serve --hash-key <key>).")
            else:
                digest = hashlib.sha256(key.encode()).digest()
            entries.append((digest, scopes))
        return cls(tuple(entries))

    @classmethod
    def load(cls, path: str | Path | None = None) -> ApiKeys:
        """Keys from ``path`` and from LAUNCHML_API_KEYS (both, when both are given)."""
        keys: list[tuple[bytes, frozenset[str]]] = []
        if path is not None:
            p = Path(path)
            if not p.is_file():
                raise ConfigError(f"API key file '{p}' does not exist.")
            found = cls.parse(p.read_text(encoding="utf-8"), str(p)).entries
            if not found:  # keys were asked for: an empty file must not serve the routes open
                raise ConfigError(f"API key file '{p}' holds no key. Fix: add lines '<key or "
                                  "sha256:hex> predict[,admin]' (launchml serve --hash-key "
                                  "<key> prints one).")
            keys += found
        if os.environ.get(ENV):
            keys += cls.parse(os.environ[ENV], ENV).entries
        return cls(tuple(keys))


def request_key(headers: dict[str, str]) -> str | None:
    """The key a request carries (Authorization: Bearer, or X-API-Key)."""
    auth = headers.get("authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip()
    return headers.get("x-api-key")
