"""launchml: from raw data to a deployed, explained, compressed model.

    import launchml
    run = launchml.run("cancer.yaml")          # prepare -> train -> optimize -> evaluate -> deploy
    predictor = launchml.load("runs/cancer/model")
    predictor.predict(["scan1.png", "scan2.png"])
"""

from __future__ import annotations

from launchml.config import RunConfig
from launchml.deploy.package import Package, load_package
from launchml.deploy.predictor import Predictor, load
from launchml.errors import (
    ConfigError,
    DataError,
    InputError,
    LaunchmlError,
    ModelError,
    PackageError,
    RunError,
)
from launchml.estimators import Classifier, Regressor
from launchml.pipeline import STAGES, Run, run

__version__ = "0.1.0"

__all__ = [
    "STAGES",
    "Classifier",
    "ConfigError",
    "DataError",
    "InputError",
    "LaunchmlError",
    "ModelError",
    "Package",
    "PackageError",
    "Predictor",
    "Regressor",
    "Run",
    "RunConfig",
    "RunError",
    "__version__",
    "load",
    "load_package",
    "run",
]
