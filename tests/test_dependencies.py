"""Declared dependencies match the imports, and a missing optional one is a clear error.

1. Every third-party module src/launchml imports belongs to a distribution declared in
   pyproject.toml (core or an extra); every core dependency is imported, or listed
   below with the reason it is needed anyway.
2. Code that needs the ``serve`` or ``text`` extra raises MissingDependencyError with
   the pip command when the package is not installed.
"""

from __future__ import annotations

import ast
import importlib
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

from launchml.errors import MissingDependencyError

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "launchml"
# declared but never imported by launchml itself, and why they are declared
USED_INDIRECTLY = {
    "onnx": "torch.onnx.export and onnxruntime.quantization need it",
    "onnxscript": "torch.onnx.export (the dynamo exporter) needs it",
}
# imported by launchml but installed only in an isolated environment, never beside the
# server in .venv (its pins clash): module -> the extra that declares it
ISOLATED = {"flwr": "federated"}  # Flower: make install-federated builds .venv-federated


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirements() -> dict[str, set[str]]:
    """{'core': names, '<extra>': names} from pyproject.toml."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    name = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")
    out = {"core": {_norm(name.match(r)[1]) for r in project["dependencies"]}}
    for extra, reqs in project.get("optional-dependencies", {}).items():
        out[extra] = {_norm(name.match(r)[1]) for r in reqs}
    return out


def _imported_top_level() -> set[str]:
    found = set()
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                found |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    return found - set(sys.stdlib_module_names) - {"launchml", "__future__"}


def test_every_import_is_declared_and_every_core_dependency_is_used():
    reqs = _requirements()
    declared = set().union(*reqs.values())
    dists = packages_distributions()
    imported_dists = set()
    for module in sorted(_imported_top_level()):
        if module in ISOLATED:
            assert _norm(module) in reqs[ISOLATED[module]], f"{module!r} is not declared"
            continue
        names = {_norm(d) for d in dists.get(module, [])}
        assert names, f"src/launchml imports {module!r}, which no installed package provides"
        assert names & declared, f"{module!r} ({', '.join(names)}) is not in pyproject.toml"
        imported_dists |= names
    unused = reqs["core"] - imported_dists - set(USED_INDIRECTLY)
    assert unused == set(), f"declared but never imported: {sorted(unused)}"
    assert "torchvision" not in reqs["core"]  # timm brings it; launchml never imports it


def test_extras_split_the_heavy_optional_parts():
    reqs = _requirements()
    assert {"fastapi", "starlette", "uvicorn", "python-multipart"} <= reqs["serve"]
    assert {"transformers", "peft"} <= reqs["text"]
    assert not (reqs["serve"] | reqs["text"]) & reqs["core"]
    assert "launchml" in reqs["dev"] and {"pytest", "httpx", "ruff"} <= reqs["dev"]
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    dev_self = [r for r in project["optional-dependencies"]["dev"] if r.startswith("launchml[")]
    assert dev_self and {"serve", "text"} <= set(dev_self[0][9:].rstrip("]").split(","))
    assert "flwr" not in reqs["dev"]  # Flower's pins clash with the server's: never in .venv
    assert any(r.startswith("lightning-fabric>=2.6.4") for r in project["dependencies"])


@pytest.mark.parametrize("missing", ["fastapi", "python_multipart"])
def test_the_server_without_the_serve_extra_names_the_pip_command(monkeypatch, missing):
    monkeypatch.setitem(sys.modules, missing, None)  # import of it fails: ImportError
    monkeypatch.delitem(sys.modules, "launchml.deploy.server", raising=False)
    with pytest.raises(MissingDependencyError, match=r"pip install 'launchml\[serve\]'"):
        importlib.import_module("launchml.deploy.server")
    monkeypatch.delitem(sys.modules, "launchml.deploy.server", raising=False)


def test_serve_without_uvicorn_names_the_pip_command(monkeypatch):
    from launchml.deploy import server

    monkeypatch.setitem(sys.modules, "uvicorn", None)
    with pytest.raises(MissingDependencyError, match=r"launchml\[serve\]"):
        server.serve(None)  # type: ignore[arg-type]


def test_a_pretrained_tokenizer_without_the_text_extra_names_the_pip_command(monkeypatch):
    import pandas as pd

    from launchml.data.text import fit_text

    class Options:
        tokenizer = "bert-base-uncased"
        vocab_size = 100
        text_max_length = 8

    monkeypatch.setitem(sys.modules, "transformers", None)
    with pytest.raises(MissingDependencyError, match=r"pip install 'launchml\[text\]'") as e:
        fit_text("review", pd.Series(["good coffee", "bad tea"]), Options())
    assert "review" in str(e.value) and "transformers" in str(e.value)


def test_the_cli_prints_the_extra_in_the_pip_command(tmp_path):
    import subprocess

    code = ("import sys; sys.modules['fastapi'] = None; sys.argv = ['launchml', 'serve', "
            f"{str(tmp_path)!r}]; from launchml.cli.main import main; main()")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert "pip install 'launchml[serve]'" in out and "Traceback" not in out
