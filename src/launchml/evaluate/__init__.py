"""Stage 4: score the model on the held-out split; write metrics.json and plots.
``evaluate_package`` scores a model package on new labelled data."""

from launchml.evaluate.evaluate import EvaluateConfig, evaluate, evaluate_package, plot_confusion

__all__ = ["EvaluateConfig", "evaluate", "evaluate_package", "plot_confusion"]
