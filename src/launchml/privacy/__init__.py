"""Privacy: DP-SGD as a plugin of the training loop (``dp.py``), and federated learning
(``launchml.federated``) that runs the same loop in every client.

``train_hooks(cfg)`` gives the hooks a run's config asks for; ``privacy_record(hooks)``
is what ``package.json`` keeps under ``"privacy"`` (the report and model card read it).
"""

from __future__ import annotations

from typing import Any

from launchml.privacy.config import (
    NEURAL_FAMILIES,
    DPConfig,
    FederatedConfig,
    PrivacyConfig,
)


def train_hooks(cfg: Any) -> list[Any]:
    """The training-loop hooks of a ``RunConfig``: DP-SGD when ``privacy.dp`` is set."""
    dp = cfg.privacy.dp
    if dp is None:
        return []
    from launchml.privacy.dp import DPHook

    return [DPHook(dp, epochs=cfg.train.epochs)]


def privacy_record(hooks: list[Any]) -> dict[str, Any] | None:
    """``{"dp": {...}}`` from the hooks that trained a model, or None (no privacy)."""
    out = {}
    for h in hooks:
        if hasattr(h, "record") and getattr(h, "history", None) is not None:
            out["dp"] = h.record()
    return out or None


__all__ = ["NEURAL_FAMILIES", "DPConfig", "FederatedConfig", "PrivacyConfig", "privacy_record",
           "train_hooks"]
