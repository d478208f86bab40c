"""``privacy:`` and ``federated:``, the config sections of the privacy plugin.

Kept apart from the code (which imports torch, Opacus and Flower) so that
``launchml.config`` validates a config without importing them.

::

    privacy:
      dp: {target_epsilon: 3.0, delta: auto, max_grad_norm: 1.0}
    federated:
      rounds: 20
      strategy: fedavg            # fedavg | fedprox | fedadam
      min_clients: 3
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from launchml.configbase import StrictModel

# the families DP-SGD trains: the ones the training loop trains (trees and the linear
# model are fit by their own solvers, which clip and noise nothing)
NEURAL_FAMILIES = ("mlp", "seed_cnn")


class DPConfig(StrictModel):
    """``privacy.dp``: DP-SGD (Opacus) in the training loop of every neural family."""

    target_epsilon: float | None = Field(
        None, gt=0.0, description="the epsilon spent by the end of train.epochs; the noise "
        "multiplier is solved for it. Set this or noise_multiplier")
    noise_multiplier: float | None = Field(
        None, ge=0.0, description="Gaussian noise std / max_grad_norm; epsilon then follows "
        "from it (reported per epoch)")
    delta: float | Literal["auto"] = Field(
        "auto", description="auto: 1 / (10 x training rows), below 1/n as DP requires")
    max_grad_norm: float = Field(1.0, gt=0.0, description="per-sample gradient clipping norm")
    accountant: Literal["prv", "rdp"] = Field(
        "prv", description="prv: tighter (numerical), rdp: Renyi DP (the classic bound)")
    randomness: Literal["secret", "seed"] = Field(
        "secret", description="where the noise and the Poisson batch draws come from. secret: "
        "the operating system's randomness, kept nowhere (DP assumes nobody can know the "
        "noise); seed: the run's seed, for experiments only (reproducible runs, bit-exact "
        "--resume), the noise then follows from the saved config")
    max_physical_batch_size: int = Field(
        256, ge=1, description="Poisson batches (train.batch_size on average, any size at "
        "random) are split into chunks of at most this many rows: bounded memory")

    @model_validator(mode="after")
    def _one_of(self) -> DPConfig:
        if (self.target_epsilon is None) == (self.noise_multiplier is None):
            raise ValueError("set exactly one of target_epsilon (e.g. 3.0) and "
                             "noise_multiplier (e.g. 1.0)")
        if isinstance(self.delta, float) and not 0.0 < self.delta < 1.0:
            raise ValueError(f"delta must be between 0 and 1 (or auto), got {self.delta}")
        return self


class PrivacyConfig(StrictModel):
    """``privacy:``: differential privacy for the neural families (off unless ``dp`` is set)."""

    dp: DPConfig | None = Field(None, description="DP-SGD; null = off")
    min_token_rows: int = Field(
        5, ge=1, description="in a private run (privacy.dp set, or a federation) every "
        "vocabulary built from the training rows (a text column's words, a category "
        "column's values) keeps only what at least this many distinct training rows hold; "
        "the rest is [UNK] / 'other'. A threshold, not itself differentially private")


class FederatedConfig(StrictModel):
    """``federated:``: the federation ``launchml federate`` runs (Flower)."""

    rounds: int = Field(10, ge=1, description="server rounds")
    strategy: Literal["fedavg", "fedprox", "fedadam"] = "fedavg"
    min_clients: int = Field(2, ge=1, description="a round needs this many clients; a "
                             "round with fewer replies (a site lost) is still aggregated")
    local_epochs: int = Field(1, ge=1, description="epochs each client trains per round")
    fraction_train: float = Field(1.0, gt=0.0, le=1.0,
                                  description="share of the clients sampled per round")
    proximal_mu: float = Field(0.1, ge=0.0, description="fedprox: pull towards the global "
                               "weights, mu * (w - w_global) per step")
    server_learning_rate: float = Field(0.01, gt=0.0, description="fedadam: eta")
    secagg: bool = Field(False, description="secure aggregation (Flower's SecAgg+): the "
                         "server sees only the sum of the clients' updates")
    address: str = Field("127.0.0.1:9092", description="the server's host:port (clients "
                         "connect here)")
    tls: bool = Field(False, description="gRPC over TLS; certificates from --certificates")


def private_data(cfg: Any) -> Any:
    """``cfg.data`` for the prepare stage of run config ``cfg``: in a private run (privacy.dp
    set, or a federation) a copy whose vocabularies keep only tokens and category values
    seen in ``privacy.min_token_rows`` distinct training rows (a word or value of one row
    would identify that row in package.json); otherwise ``cfg.data`` itself."""
    data = cfg.data
    if (cfg.privacy.dp is None and cfg.federated is None) or not hasattr(data, "_min_rows"):
        return data
    data = data.model_copy()
    data._min_rows = cfg.privacy.min_token_rows
    return data
