"""The Flower side of a federation (current API: ``ServerApp``/``ClientApp`` and the
message-based strategies FedAvg, FedProx, FedAdam).

``server_app`` and ``client_app`` serve both runtimes: ``run_simulation`` (one
process, Ray actors as clients, each holding a partition of the coordinator's
prepared data) and real processes (SuperLink + SuperNodes over gRPC, each
SuperNode with its own table: ``--node-config "data='site_a.csv' site='a'"``).
Flower pins its own web stack, so this module runs in the federated environment
(``make install-federated``); ``launchml federate`` drives it as a subprocess.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any

from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import FedAdam, FedAvg, FedProx

from launchml.federated import core

STRATEGIES = {"fedavg": FedAvg, "fedprox": FedProx, "fedadam": FedAdam}


def _logged(base: type) -> type:
    """The strategy, recording per round which clients replied and their metrics."""

    class Logged(base):  # type: ignore[misc, valid-type]
        def configure_train(self, server_round, arrays, config, grid):
            messages = list(super().configure_train(server_round, arrays, config, grid))
            self.expected = len(messages)
            return messages

        def aggregate_train(self, server_round, replies):
            replies = list(replies)
            self.replies = []
            for msg in replies:
                if msg.has_error():
                    self.replies.append({"node": int(msg.metadata.src_node_id),
                                         "error": str(msg.error.reason)[:300]})
                    continue
                metrics = dict(msg.content["metrics"])
                self.replies.append({"node": int(msg.metadata.src_node_id),
                                     **{k: float(v) for k, v in metrics.items()}})
            return super().aggregate_train(server_round, replies)

    Logged.__name__ = base.__name__
    return Logged


def make_strategy(fed: Any, clients: int) -> Any:
    cls = _logged(STRATEGIES[fed.strategy])
    common = {"fraction_train": fed.fraction_train, "fraction_evaluate": 0.0,
              "min_train_nodes": min(fed.min_clients, clients),
              "min_available_nodes": min(fed.min_clients, clients)}
    if fed.strategy == "fedprox":
        return cls(proximal_mu=fed.proximal_mu, **common)
    if fed.strategy == "fedadam":
        return cls(eta=fed.server_learning_rate, eta_l=0.0, **common)
    return cls(**common)


server_app = ServerApp()


@server_app.main()
def server_main(grid: Grid, context: Context) -> None:
    """Coordinator: the federation's schema and initial weights, the rounds, the package."""
    from launchml.federated.coordinator import Coordinator

    opts = dict(context.run_config)
    coord = Coordinator(Path(str(opts["config"])), clients=int(opts["clients"]),
                        partition=str(opts.get("partition", "")),
                        mode=str(opts.get("mode", "simulation")))
    fed = coord.cfg.federated
    strategy = make_strategy(fed, coord.clients)
    started = time.perf_counter()

    def evaluate(server_round: int, arrays: ArrayRecord) -> MetricRecord:
        metrics = coord.evaluate(arrays.to_torch_state_dict())
        if server_round > 0:
            coord.round_done(server_round, getattr(strategy, "replies", []),
                             getattr(strategy, "expected", coord.clients), metrics,
                             time.perf_counter() - started)
        return MetricRecord(metrics)

    result = strategy.start(
        grid=grid, initial_arrays=ArrayRecord(coord.initial), num_rounds=fed.rounds,
        timeout=float(opts.get("round-timeout", 600)), train_config=ConfigRecord(coord.message),
        evaluate_fn=evaluate)
    coord.finish(result.arrays.to_torch_state_dict(), time.perf_counter() - started)


client_app = ClientApp()


def client_data(cfg: Any, schema: Any, states: dict[str, Any], node: dict[str, Any],
                conf: Any) -> tuple[Any, dict[str, Any]]:
    """This site's rows: a real site's own table (``--data``), checked against the
    federation's schema, or in simulation its partition of the coordinator's rows."""
    if "data" in node:
        site = str(node.get("site", node["data"]))
        data = core.site_data(str(node["data"]), schema, states, site, str(cfg.data.target))
        return data, {"site": site}
    from launchml.federated.coordinator import simulated_partition

    pid = int(node["partition-id"])
    data = simulated_partition(str(conf["prepared"]), schema, int(node["num-partitions"]),
                               str(conf["partition"]), cfg.seed, pid)
    return data, {"partition": pid}


@client_app.train()
def client_train(msg: Message, context: Context) -> Message:
    """One round at one site: the same training loop, from the global weights."""
    from launchml.config import RunConfig
    from launchml.data.schema import Schema
    from launchml.runs import RunDir

    conf = msg.content["config"]
    cfg = RunConfig.load(json.loads(str(conf["config"])))
    schema = Schema.from_dict(json.loads(str(conf["schema"])))
    states = json.loads(str(conf["states"]))
    data, ident = client_data(cfg, schema, states, dict(context.node_config), conf)
    state = msg.content["arrays"].to_torch_state_dict()
    rnd = int(conf["server-round"])
    with tempfile.TemporaryDirectory() as tmp:
        member = core.Member(cfg, schema, states, RunDir(Path(tmp)))
        new, metrics = member.train(data, state, core.client_hooks(cfg, state, rnd), rnd)
    metrics = {**metrics, **ident, "num-examples": len(data[1])}
    metrics = {k: v for k, v in metrics.items() if isinstance(v, int | float)}
    return Message(RecordDict({"arrays": ArrayRecord(new), "metrics": MetricRecord(metrics)}),
                   reply_to=msg)


def simulate(config: str, *, clients: int, partition: str) -> None:
    """``launchml federate simulate``: the same apps under Flower's simulation runtime."""
    from flwr.simulation import run_simulation

    from launchml.config import RunConfig

    run_config = {"config": config, "clients": clients, "partition": partition,
                  "mode": "simulation"}
    fed = RunConfig.load(Path(config)).federated
    secagg = bool(fed and fed.secagg)
    if secagg:
        from launchml.federated import secagg as sa
    server = ServerApp()

    @server.main()
    def _main(grid: Grid, context: Context) -> None:
        context.run_config.update(run_config)
        (sa.server_main if secagg else server_main)(grid, context)

    run_simulation(server_app=server, client_app=sa.client_app if secagg else client_app,
                   num_supernodes=clients,
                   backend_config={"client_resources": {"num_cpus": 1, "num_gpus": 0.0},
                                   "init_args": {"num_cpus": 2, "include_dashboard": False,
                                                 "logging_level": "error"}})
