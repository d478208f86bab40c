"""Stage 5: the model package, the predictor and the REST server."""

from launchml.deploy.package import Package, load_package, save_package
from launchml.deploy.predictor import Predictor, load

__all__ = ["Package", "Predictor", "load", "load_package", "save_package"]
