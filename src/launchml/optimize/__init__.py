"""Stage 3: export and compress the trained model; every variant measured."""

from launchml.optimize.onnx_variants import OptimizeConfig, export_onnx, optimize

__all__ = ["OptimizeConfig", "export_onnx", "optimize"]
