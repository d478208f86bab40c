"""An API key file that holds no key is an error, not a server whose routes are open."""

from __future__ import annotations

import pytest

from launchml.deploy.auth import ApiKeys, hash_key
from launchml.errors import ConfigError


def test_a_key_file_without_keys_is_refused(tmp_path, monkeypatch):
    monkeypatch.delenv("LAUNCHML_API_KEYS", raising=False)
    empty = tmp_path / "keys.txt"
    for text in ("", "# keys to come\n\n"):
        empty.write_text(text)
        with pytest.raises(ConfigError, match="holds no key"):
            ApiKeys.load(empty)
    empty.write_text(f"# the team\n{hash_key('k')} predict\n")
    keys = ApiKeys.load(empty)
    assert keys.enabled and keys.scopes("k") == {"predict"} and not keys.scopes("x")
    assert not ApiKeys.load(None).enabled  # no file, no variable: open, as documented
