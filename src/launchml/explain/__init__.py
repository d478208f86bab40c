"""Explanations of the model as it is served, for every kind of package.

``explain(predictor, inputs)`` (also ``Predictor.explain``, ``launchml explain``,
``POST /v1/explain`` and the evaluation report): per-column contributions for
tables (LightGBM's TreeSHAP for a lone LightGBM, Shapley values otherwise), per
token / character attributions for text and sequences, integrated gradients and
Grad-CAM heat maps for image networks (Captum). Each names its method, baseline
and cost. ``explain.core`` says which method applies when.
"""

from launchml.explain.core import METHODS, Explanation, Explanations, explain, parse_rows

__all__ = ["METHODS", "Explanation", "Explanations", "explain", "parse_rows"]
