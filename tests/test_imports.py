"""Import cost and layering.

1. ``import launchml``, ``import launchml.config`` (parsing a config) and the CLI's
   ``--help`` / ``--version`` load none of the heavy libraries: they are imported
   inside the functions that need them. Checked in a fresh interpreter through
   ``sys.modules`` (no wall-clock assertions).
2. The layers, read from the source with ``ast`` (module-level, function-level and
   ``TYPE_CHECKING`` imports alike); docs/architecture.md "Layers" says the same.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

HEAVY = ("torch", "sklearn", "lightgbm", "transformers", "pandas", "fastapi", "matplotlib",
         "onnx", "onnxruntime", "timm", "safetensors", "lightning_fabric")

SRC = Path(__file__).resolve().parents[1] / "src" / "launchml"


def _heavy_after(code: str) -> list[str]:
    """Run ``code`` in a fresh interpreter; the heavy modules it left in sys.modules."""
    probe = textwrap.dedent(code) + textwrap.dedent(f"""
        import json as _json, sys as _sys
        print(_json.dumps(sorted(m for m in {HEAVY!r} if m in _sys.modules)))
    """)
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_import_launchml_is_light():
    assert _heavy_after("import launchml, launchml.errors") == []


def test_parsing_a_config_is_light():
    assert _heavy_after("""
        from launchml.config import RunConfig
        for model in ("seed_cnn", "timm:resnet18", "auto", "lightgbm", "mlp"):
            RunConfig.load({"name": "x", "model": {"name": model},
                            "data": {"train": "data/train"}})
        RunConfig.load({"name": "t", "data": {"train": "t.csv", "target": "y"}})
    """) == []


@pytest.mark.parametrize("argv", [["--help"], ["--version"], ["run", "--help"],
                                  ["predict", "--help"], ["serve", "--help"],
                                  ["inspect", "--help"], ["export", "--help"],
                                  ["registry", "list", "--help"],
                                  ["package", "docker", "--help"]])
def test_cli_help_is_light(argv):
    assert _heavy_after(f"""
        import contextlib, io, sys
        from launchml.cli.main import main
        sys.argv = ["launchml", *{argv!r}]
        with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):
            main()
    """) == []


def test_lazy_public_names_resolve():
    import launchml
    from launchml import models, train

    for name in launchml.__all__:
        assert getattr(launchml, name) is not None, name
    assert set(launchml.__all__) <= set(dir(launchml))
    from launchml.deploy.predictor import Predictor
    from launchml.pipeline import run

    assert launchml.Predictor is Predictor and launchml.run is run
    with pytest.raises(AttributeError):
        launchml.no_such_name  # noqa: B018
    for name in [*models.__all__, *train.__all__]:
        assert getattr(models if name in models.__all__ else train, name) is not None, name


def test_network_registry_without_and_with_torch():
    from launchml.models import NETWORKS, ModelConfig, is_network, list_families

    assert {"seed_cnn", "timm"} <= set(NETWORKS)
    assert is_network("seed_cnn") and is_network("timm:resnet18") and not is_network("linear")
    assert "seed_cnn" in list_families() and "timm:<name>" in list_families()
    assert ModelConfig(name="seed_cnn").name == "seed_cnn"
    from launchml.models import create_model  # loads the networks: real builders registered
    from launchml.models.seed_cnn import build_seed_cnn

    assert callable(create_model) and NETWORKS["seed_cnn"] is build_seed_cnn


def test_deploy_package_is_the_package_module():
    import launchml.deploy.package
    import launchml.package

    assert launchml.deploy.package is launchml.package


# -- layers -------------------------------------------------------------------------

# importer package -> the launchml packages it must never import (at any level)
FORBIDDEN = {
    "launchml.data": ("launchml.models", "launchml.train", "launchml.deploy",
                      "launchml.pipeline"),
    "launchml.models": ("launchml.deploy", "launchml.pipeline"),
    "launchml.optimize": ("launchml.evaluate",),
    "launchml.train": ("launchml.deploy",),
}
# (importing module, imported name) -> why it is allowed for now. Empty: no exceptions.
ALLOWED: dict[tuple[str, str], str] = {}


def _module_name(path: Path) -> str:
    parts = ("launchml", *path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(source: str, module: str, is_package: bool = False) -> list[tuple[str, str, int]]:
    """Every import in ``source`` as (imported module, imported name or '', line).

    ``from a.b import c`` gives ("a.b", "c"); ``import a.b`` gives ("a.b", "").
    Relative imports are resolved against ``module``.
    """
    out = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out += [(a.name, "", node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                pkg = module.split(".")
                pkg = pkg if is_package else pkg[:-1]
                pkg = pkg[:len(pkg) - node.level + 1]
                base = ".".join([*pkg, *([base] if base else [])])
            out += [(base, a.name, node.lineno) for a in node.names]
    return out


def _within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def violations(module: str, found: list[tuple[str, str, int]]) -> list[str]:
    """Layer rules and private names broken by ``module``'s imports."""
    out = []
    for imported, name, line in found:
        targets = [imported] + ([f"{imported}.{name}"] if name and name != "*" else [])
        for layer, banned in FORBIDDEN.items():
            if not _within(module, layer):
                continue
            for target in targets:
                hit = next((b for b in banned if _within(target, b)), None)
                if hit and (module, target) not in ALLOWED:
                    out.append(f"{module}:{line} imports {target} ({layer} must not import "
                               f"{hit})")
                    break
        private = name.startswith("_") and not (name.startswith("__") and name.endswith("__"))
        if (private and _within(imported, "launchml") and imported != module
                and (module, f"{imported}.{name}") not in ALLOWED):
            out.append(f"{module}:{line} imports the private name {name} from {imported}")
    return out


def _all_modules() -> list[tuple[str, Path]]:
    return [(_module_name(p), p) for p in sorted(SRC.rglob("*.py"))]


def test_layers_and_private_names():
    problems = []
    for module, path in _all_modules():
        found = imports(path.read_text(encoding="utf-8"), module, path.name == "__init__.py")
        problems += violations(module, found)
    assert problems == [], "\n".join(problems)


def test_allow_list_entries_are_still_needed():
    every = {(module, f"{imported}.{name}" if name else imported)
             for module, path in _all_modules()
             for imported, name, _ in imports(path.read_text(encoding="utf-8"), module,
                                              path.name == "__init__.py")}
    every |= {(module, imported) for module, path in _all_modules()
              for imported, _, _ in imports(path.read_text(encoding="utf-8"), module,
                                            path.name == "__init__.py")}
    assert [k for k in ALLOWED if k not in every] == []


def test_the_checker_sees_function_level_and_relative_imports():
    src = textwrap.dedent("""
        from launchml.errors import DataError
        from launchml.columns import _private
        def f():
            from launchml.models import families
            from ..deploy import predictor
            import launchml.pipeline
    """)
    found = imports(src, "launchml.data.tables")
    assert ("launchml.deploy", "predictor", 6) in found
    problems = violations("launchml.data.tables", found)
    assert len(problems) == 4, problems
    assert any("private name _private" in p for p in problems)
    assert violations("launchml.deploy.server", found) == [
        "launchml.deploy.server:3 imports the private name _private from launchml.columns"]
    # the real tree: the scan reaches imports inside functions
    families = SRC / "models" / "families.py"
    assert ("launchml.package", "WEIGHTS") in {
        (m, n) for m, n, _ in imports(families.read_text(encoding="utf-8"),
                                      "launchml.models.families")}


def test_serving_by_onnx_imports_no_torch_pandas_or_sklearn(digits_run, digits_dir):
    """The server with the ONNX engine starts in a fraction of PyTorch's time and
    memory (bench/serve_start.py) because nothing on that path imports torch."""
    import json
    import subprocess
    import sys

    files = [str(f) for f in sorted((digits_dir / "test" / "4").glob("*.png"))[:2]]
    code = (
        "import json, sys\n"
        "from launchml.deploy.predictor import Predictor\n"
        "from launchml.deploy.server import create_app\n"
        f"p = Predictor.load({str(digits_run.dir.model)!r}, engine='onnx')\n"
        "create_app(p)\n"
        f"rows = p.predict_rows({files!r})\n"
        "heavy = [m for m in ('torch', 'pandas', 'sklearn') if m in sys.modules]\n"
        "print(json.dumps([[r['label'] for r in rows], heavy]))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    labels, heavy = json.loads(out.strip().splitlines()[-1])
    assert len(labels) == 2 and "4" in labels and heavy == []
