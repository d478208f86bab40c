"""Secure aggregation (Flower's SecAgg+) for ``federated.secagg: true``.

Flower runs SecAgg+ as a workflow of its message runtime with the strategies of its
``flwr.server`` package (``DefaultWorkflow(fit_workflow=SecAggPlusWorkflow(...))``)
and the ``secaggplus_mod`` on each ClientApp: every client masks its update with
pairwise secrets, the server only learns the weighted sum. So the server sees no
single client's update or metrics: the round lines in events.jsonl have the
global metrics and the count of clients only. The client trains with the same loop
(and client DP) as without SecAgg+.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from flwr.app import Context
from flwr.client import NumPyClient
from flwr.client.mod import secaggplus_mod
from flwr.clientapp import ClientApp
from flwr.common import ndarrays_to_parameters
from flwr.serverapp import Grid, ServerApp

from launchml.federated import core


def _legacy_strategy(fed: Any, clients: int, initial: list[np.ndarray], evaluate: Any,
                     fit_config: dict[str, Any]) -> Any:
    from flwr.server.strategy import FedAdam, FedAvg, FedProx

    common = {"fraction_fit": fed.fraction_train, "fraction_evaluate": 0.0,
              "min_fit_clients": min(fed.min_clients, clients),
              "min_available_clients": min(fed.min_clients, clients),
              "evaluate_fn": evaluate, "on_fit_config_fn": lambda rnd: {
                  **fit_config, "server-round": rnd},
              "initial_parameters": ndarrays_to_parameters(initial)}
    if fed.strategy == "fedprox":
        return FedProx(proximal_mu=fed.proximal_mu, **common)
    if fed.strategy == "fedadam":
        return FedAdam(eta=fed.server_learning_rate, eta_l=0.0, **common)
    return FedAvg(**common)


def server_main(grid: Grid, context: Context) -> None:
    from flwr.server import LegacyContext, ServerConfig
    from flwr.server.workflow import DefaultWorkflow, SecAggPlusWorkflow

    from launchml.federated.coordinator import Coordinator

    opts = dict(context.run_config)
    coord = Coordinator(Path(str(opts["config"])), clients=int(opts["clients"]),
                        partition=str(opts.get("partition", "")),
                        mode=str(opts.get("mode", "simulation")))
    fed = coord.cfg.federated
    keys = list(coord.initial)
    started, final = time.perf_counter(), {}

    def evaluate(server_round: int, arrays: list[np.ndarray], config: dict) -> Any:
        import torch

        state = {k: torch.from_numpy(np.array(a)) for k, a in zip(keys, arrays, strict=True)}
        final["state"] = state
        metrics = coord.evaluate(state)
        if server_round > 0:  # SecAgg+: one masked sum, no client's own update or metrics
            coord.round_done(server_round, [], coord.clients, metrics,
                             time.perf_counter() - started, secagg=True)
        return metrics["loss"], metrics

    strategy = _legacy_strategy(fed, coord.clients,
                                [v.numpy() for v in coord.initial.values()], evaluate,
                                dict(coord.message))
    legacy = LegacyContext(context=context, config=ServerConfig(num_rounds=fed.rounds),
                           strategy=strategy)
    shares = max(3, min(coord.clients, 5))  # Flower: more than 2 shares
    DefaultWorkflow(fit_workflow=SecAggPlusWorkflow(
        num_shares=shares, reconstruction_threshold=max(2, shares - 1)))(grid, legacy)
    coord.finish(final["state"], time.perf_counter() - started)


class _Site(NumPyClient):
    def __init__(self, context: Context) -> None:
        self.context = context

    def fit(self, parameters: list[np.ndarray], config: dict[str, Any]) -> Any:
        import torch

        from launchml.config import RunConfig
        from launchml.data.schema import Schema
        from launchml.federated.app import client_data
        from launchml.runs import RunDir

        cfg = RunConfig.load(json.loads(str(config["config"])))
        schema = Schema.from_dict(json.loads(str(config["schema"])))
        states = json.loads(str(config["states"]))
        data, _ = client_data(cfg, schema, states, dict(self.context.node_config), config)
        with tempfile.TemporaryDirectory() as tmp:
            member = core.Member(cfg, schema, states, RunDir(Path(tmp)))
            keys = list(member.initial(data[0]))
            state = {k: torch.from_numpy(np.array(a))
                     for k, a in zip(keys, parameters, strict=True)}
            rnd = int(config["server-round"])
            new, metrics = member.train(data, state, core.client_hooks(cfg, state, rnd), rnd)
        return [new[k].numpy() for k in keys], len(data[1]), metrics


client_app = ClientApp(client_fn=lambda context: _Site(context).to_client(),
                       mods=[secaggplus_mod])

server_app = ServerApp()
server_app.main()(server_main)
