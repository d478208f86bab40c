"""A registry URL that cannot be opened (unknown driver, server down, a folder that cannot
be made) is one clear error naming the URL without its password, not a traceback."""

from __future__ import annotations

import socket

import pytest

from launchml.errors import ConfigError
from launchml.registry import Registry


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again when the block ends: nothing listens


@pytest.mark.parametrize("url, said", [
    ("foo://x", "driver is not installed or not known"),
    ("sqlite:///{tmp}/file.txt/registry.db", "file.txt"),  # a file where a folder must be
])
def test_a_registry_that_cannot_open_is_named(tmp_path, url, said):
    (tmp_path / "file.txt").write_text("not a folder")
    url = url.format(tmp=tmp_path)
    with pytest.raises(ConfigError, match="Fix: check --url or LAUNCHML_REGISTRY_URL") as e:
        Registry(url, artifacts=tmp_path / "artifacts")
    assert url.split("/")[0] in str(e.value) and said in str(e.value)


def test_an_unreachable_server_is_named_without_the_password(tmp_path):
    pytest.importorskip("psycopg")
    url = f"postgresql+psycopg://ml:hunter2@127.0.0.1:{_closed_port()}/registry"
    with pytest.raises(ConfigError, match="cannot be opened") as e:
        Registry(url, artifacts=tmp_path / "artifacts")
    assert "hunter2" not in str(e.value) and "ml:***@127.0.0.1" in str(e.value)
