"""``launchml package docker``: a Docker build context that serves one model package.

    launchml package docker cancer@champion --out docker-cancer
    docker build -t cancer docker-cancer && docker run -p 8000:8000 cancer

The context holds the package (``model/``), a ``Dockerfile``, a slim
``requirements.txt`` and a ``README.md`` (and ``wheels/``: launchml itself, installed
without its dependencies). The requirements are what serving this package really
imports, found by loading it the way the server does (the ONNX Runtime engine where
the package has ``model.onnx``) and making a smoke prediction in a fresh interpreter,
then pinned to the versions installed here: no PyTorch, Lightning, timm or
scikit-learn for a model with an ONNX variant (a neural model without one needs
PyTorch, and the README says so).

A module can be imported without being needed: LightGBM imports scikit-learn whenever
it is installed (its optional scikit-learn API), though a booster predicts without it.
So each training library the first probe saw is probed again as if it were not
installed; one whose absence leaves loading and the smoke prediction unchanged is left
out (a linear model over raw text keeps scikit-learn: its vectorizer serves).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from launchml.errors import PackageError

TRAINING_ONLY = ("torch", "lightning-fabric", "lightning", "timm", "scikit-learn", "optuna",
                 "opacus", "captum", "transformers", "peft", "matplotlib", "tensorflow")
# what the probe below imports on purpose besides the package's own needs
SERVER_MODULES = ("launchml.cli.main", "launchml.deploy.server", "uvicorn")

_PROBE = r"""
import json, sys
package, engine, blocked = sys.argv[1], sys.argv[2], set(json.loads(sys.argv[3]))


class NotInstalled:  # imports of the blocked modules fail as if they were not installed
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in blocked:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None


sys.meta_path.insert(0, NotInstalled())
import numpy as np
for name in {modules!r}:
    __import__(name)
from launchml.deploy.predictor import Predictor
from launchml.deploy.server import create_app
p = Predictor.load(package, engine=engine)
create_app(p)
rows, error = None, None
try:  # a smoke prediction: what decoding and scoring import lazily
    if p.image_column is not None:
        shape = p.package.preprocessing[p.image_column].get("target_size") or [32, 32]
        rows = p.predict_rows([np.zeros((*shape[:2], 3), dtype=np.uint8)])
    else:
        rows = p.predict_rows([{{c.name: None for c in p.package.schema.inputs}}])
except Exception as e:  # the imports happened; a record of missing values may be refused
    error = f"{{type(e).__name__}}: {{e}}"
    print("probe:", error, file=sys.stderr)
top = sorted({{m.split(".")[0] for m in sys.modules}} - set(sys.stdlib_module_names)
             - {{"_distutils_hack"}})  # setuptools' startup hook, not a need of serving
print(json.dumps({{"engine": p.engine, "engines": p.engines, "modules": top, "rows": rows,
                  "error": error}}, default=str))
"""


def probe(package: Path, engine: str, blocked: list[str] | tuple[str, ...] = ()
          ) -> dict[str, Any]:
    """What serving ``package`` with ``engine`` imports (top-level module names), with
    the ``blocked`` modules failing to import as if not installed; ``rows``: the smoke
    prediction (``error`` when it failed)."""
    code = _PROBE.format(modules=SERVER_MODULES)
    run = subprocess.run([sys.executable, "-c", code, str(package), engine,
                          json.dumps(list(blocked))],
                         capture_output=True, text=True, timeout=600)
    if run.returncode != 0:
        raise PackageError(f"'{package}' could not be loaded for serving"
                           + (f" without {', '.join(blocked)}" if blocked else "") + ": "
                           f"{run.stderr.strip().splitlines()[-1:]}")
    return json.loads(run.stdout.strip().splitlines()[-1])


def _training_modules(modules: list[str]) -> list[str]:
    """The top-level modules among ``modules`` that training-only distributions provide."""
    import importlib.metadata as md
    import re

    dists = md.packages_distributions()
    training = {re.sub(r"[-_.]+", "-", d).lower() for d in TRAINING_ONLY}
    return [m for m in modules
            if any(re.sub(r"[-_.]+", "-", d).lower() in training for d in dists.get(m, []))]


def serving_imports(package: Path, engine: str) -> tuple[dict[str, Any], list[str]]:
    """The probe of serving ``package`` without the training libraries it imports but
    does not need, and those modules. A module counts as not needed when the probe
    without it loads the package and gives the same smoke prediction; with no smoke
    prediction to compare (it failed), every imported module is kept."""
    found = probe(package, engine)
    candidates = _training_modules(found["modules"])
    if not candidates or found.get("error") is not None:
        return found, []

    def without(blocked: list[str]) -> dict[str, Any] | None:
        try:
            trial = probe(package, engine, blocked)
        except PackageError:  # loading needs one of them
            return None
        same = all(trial.get(k) == found.get(k) for k in ("engine", "engines", "rows", "error"))
        return trial if same else None

    trial = without(candidates)  # the usual case: none of them is needed
    if trial is not None:
        return trial, candidates
    unneeded = [m for m in candidates if without([m]) is not None]
    trial = without(unneeded) if unneeded else None
    return (trial, unneeded) if trial is not None else (found, [])


def requirements(modules: list[str]) -> list[str]:
    """Exact pins of the installed distributions that provide ``modules`` (and their
    installed dependencies), launchml itself left out (it is installed --no-deps)."""
    import importlib.metadata as md
    import re

    dists = md.packages_distributions()
    wanted: dict[str, str] = {}
    todo = [d for m in modules for d in dists.get(m, [])]
    while todo:
        name = todo.pop()
        key = re.sub(r"[-_.]+", "-", name).lower()
        if key in wanted or key == "launchml":
            continue
        try:
            dist = md.distribution(name)
        except md.PackageNotFoundError:
            continue
        wanted[key] = f"{dist.metadata['Name']}=={dist.version}"
        for req in dist.requires or []:
            if "extra ==" in req:
                continue
            dep = re.match(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)", req)
            if dep:  # one with a marker too: pinned only if it is installed here
                todo.append(dep[1])
    return sorted(wanted.values(), key=str.lower)


def _launchml_wheel(dest: Path) -> Path | None:
    """Build launchml's wheel into ``dest`` when it runs from a source checkout."""
    import launchml

    root = Path(launchml.__file__).resolve().parents[2]
    if not (root / "pyproject.toml").exists():
        return None
    dest.mkdir(parents=True, exist_ok=True)
    run = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q",
                          "--no-build-isolation", "-w", str(dest), str(root)],
                         capture_output=True, text=True, timeout=600)
    if run.returncode != 0:
        raise PackageError(f"building launchml's wheel from '{root}' failed: "
                           f"{run.stderr.strip()[-500:]}")
    wheels = sorted(dest.glob("launchml-*.whl"))
    return wheels[-1] if wheels else None


MARKER = "# Built by `launchml package docker`"


def _check_out(out: Path, package: Path) -> None:
    """``out`` is new, empty, or an earlier build context that does not hold the package:
    the context's model/, wheels/, Dockerfile and README.md are replaced, so any other
    folder (a project, a run folder holding model/) would lose its files."""
    if out.exists() and not out.is_dir():
        raise PackageError(f"--out '{out}' is a file. Fix: name a new folder for the build "
                           "context, e.g. --out docker-<model>.")
    if not out.is_dir() or not any(out.iterdir()):
        return
    dockerfile = out / "Dockerfile"
    earlier = dockerfile.is_file() and MARKER in dockerfile.read_text(errors="replace")
    if not earlier:
        raise PackageError(f"--out '{out}' is a folder with other files (its model/, "
                           "README.md and Dockerfile would be replaced). Fix: name a new "
                           "or empty folder, e.g. --out docker-<model>.")
    if package.resolve().is_relative_to(out.resolve()):
        raise PackageError(f"the package '{package}' is inside the build context '{out}', "
                           "which is rewritten. Fix: name another --out folder.")


def write_context(package: str | Path, out: str | Path, *, name: str | None = None,
                  port: int = 8000) -> dict[str, Any]:
    """Write the build context for ``package`` into ``out``; return what it chose."""
    from launchml import __version__
    from launchml.package import load_package
    from launchml.registry.store import package_files
    from launchml.runs import write_text

    out = Path(out)
    folder, names = package_files(Path(package))
    _check_out(out, folder)
    pkg = load_package(folder)
    neural = any(m["family"] not in ("lightgbm", "lightgbm_extra", "linear")
                 for m in pkg.meta["model"]["members"])
    engine = "onnx" if neural and pkg.onnx_path is not None else "auto"
    found, unneeded = serving_imports(folder, engine)
    reqs = requirements(found["modules"])
    heavy = [r for r in reqs if r.split("==")[0].lower() in TRAINING_ONLY]
    if out.exists() and any(out.iterdir()):
        shutil.rmtree(out / "model", ignore_errors=True)
        shutil.rmtree(out / "wheels", ignore_errors=True)
    (out / "model").mkdir(parents=True, exist_ok=True)
    for n in names:
        shutil.copyfile(folder / n, out / "model" / n)
    wheel = _launchml_wheel(out / "wheels")
    title = name or pkg.meta["model"]["name"]
    skipped = sorted({d for m in unneeded for d in _distributions(m)}, key=str.lower)
    write_text(out / "requirements.txt",
               "# what serving this model imports, pinned to the versions it was tested "
               "with\n# (launchml package docker); launchml itself: wheels/, --no-deps\n"
               + (f"# left out: {', '.join(skipped)} (imported when installed, not needed "
                  "to serve this model)\n" if skipped else "")
               + "\n".join(reqs) + "\n")
    install = ("COPY wheels/ /tmp/wheels/\nRUN pip install --no-cache-dir --no-deps "
               "/tmp/wheels/*.whl && rm -rf /tmp/wheels" if wheel else
               f"RUN pip install --no-cache-dir --no-deps launchml=={__version__}")
    py = f"{sys.version_info.major}.{sys.version_info.minor}"
    write_text(out / "Dockerfile", f"""\
# Serves the model package in model/ ({title}) with launchml serve on port {port}.
# Built by `launchml package docker`; only what serving imports is installed.
FROM python:{py}-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 LAUNCHML_QUIET=1
WORKDIR /srv
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt
{install}
COPY model/ /srv/model/
RUN useradd --system --uid 10001 launchml
USER launchml
EXPOSE {port}
HEALTHCHECK --interval=30s --timeout=3s CMD python -c "import urllib.request; \\
urllib.request.urlopen('http://127.0.0.1:{port}/healthz', timeout=2)"
# uvicorn finishes in-flight requests on SIGTERM (docker stop)
CMD ["launchml", "serve", "/srv/model", "--host", "0.0.0.0", "--port", "{port}", \\
     "--engine", "{engine}"]
""")
    note = ("" if not heavy else
            f"\nThis package has no ONNX variant for its network, so the image carries "
            f"{', '.join(h.split('==')[0] for h in heavy)} to serve it. Run the optimize "
            "stage (it exports model.onnx) for a slim image.\n")
    write_text(out / "README.md", f"""\
# {title}: a Docker image serving this model

Built by `launchml package docker` from the package with content hash
`{_hash(folder, names)[:16]}` (task {pkg.meta['task']['name']}, served by {found['engines']}).

    docker build -t {title.lower()} .
    docker run --rm -p {port}:{port} {title.lower()}
    curl localhost:{port}/healthz

Predictions: `POST /v1/predict` (see `/docs` for this model's request body).
`requirements.txt` lists only what serving imports ({len(reqs)} packages, pinned to
the versions it was tested with); launchml itself is installed without its
dependencies, so none of the training libraries come along.
{note}
Without Docker, the same set in a virtual environment:

    python -m venv venv && venv/bin/pip install -r requirements.txt
    venv/bin/pip install --no-deps {'wheels/*.whl' if wheel else f'launchml=={__version__}'}
    venv/bin/launchml serve model --engine {engine}
""")
    return {"engine": engine, "requirements": reqs, "training_deps": heavy,
            "left_out": skipped, "wheel": str(wheel) if wheel else None, "out": str(out)}


def _distributions(module: str) -> list[str]:
    import importlib.metadata as md

    return md.packages_distributions().get(module, [module])


def _hash(folder: Path, names: list[str]) -> str:
    from launchml.registry.store import content_hash

    return content_hash(folder, names)
