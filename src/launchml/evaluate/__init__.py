"""Stage 4: score the model on the held-out split; write metrics.json and plots."""

from launchml.evaluate.evaluate import EvaluateConfig, evaluate, plot_confusion

__all__ = ["EvaluateConfig", "evaluate", "plot_confusion"]
