"""API keys given only by LAUNCHML_API_KEYS protect `launchml serve <package>` too: the
single-package server has no key check, so the keyed multi-model server must take over
(a container run with -e LAUNCHML_API_KEYS=... was served open)."""

from __future__ import annotations

from typer.testing import CliRunner

from launchml.cli.main import app


def _calls(monkeypatch, tmp_path, env_keys: str | None) -> list[str]:
    import launchml.cli.predict as cli
    import launchml.deploy.predictor as predictor
    import launchml.deploy.server as server

    calls: list[str] = []
    monkeypatch.setattr(cli, "_serve_models", lambda specs, *a, **k: calls.append(
        f"keyed {specs}"))
    monkeypatch.setattr(server, "serve", lambda *a, **k: calls.append("open"))
    monkeypatch.setattr(predictor.Predictor, "load", classmethod(lambda c, *a, **k: None))
    if env_keys is None:
        monkeypatch.delenv("LAUNCHML_API_KEYS", raising=False)
    else:
        monkeypatch.setenv("LAUNCHML_API_KEYS", env_keys)
    result = CliRunner().invoke(app, ["serve", str(tmp_path)])
    assert result.exit_code == 0, result.output
    return calls


def test_env_keys_route_a_single_package_to_the_keyed_server(monkeypatch, tmp_path):
    from launchml.deploy.auth import hash_key

    calls = _calls(monkeypatch, tmp_path, f"{hash_key('k')} predict")
    assert calls == [f"keyed {[str(tmp_path)]}"]


def test_without_keys_a_single_package_keeps_its_own_server(monkeypatch, tmp_path):
    assert _calls(monkeypatch, tmp_path, None) == ["open"]
    assert _calls(monkeypatch, tmp_path, "  ") == ["open"]
