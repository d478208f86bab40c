"""The coordinator of a federation (the ServerApp's work, without Flower types).

It prepares the config's data as any run does (the federation's schema, fitted
preprocessing and classes; the validation split scores the global model each
round), writes one ``round`` line per round to the run's ``events.jsonl`` (global
metrics, and per client: its metrics, or its absence), and at the end writes the
global model with the package writer of every run, then evaluates and deploys it
with the ordinary stages.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from launchml import console
from launchml.federated import core


def _xy(split: Any, target: str) -> tuple[dict[str, np.ndarray], np.ndarray] | None:
    if split is None:
        return None
    arrays = {k: np.asarray(v) for k, v in split.arrays.items()}
    return arrays, arrays.pop(target)


def simulated_partition(run_root: str, schema: Any, clients: int, how: str, seed: int,
                        pid: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Client ``pid``'s rows of the coordinator's prepared train split."""
    from launchml.data import load_prepared
    from launchml.runs import RunDir

    prepared = load_prepared(RunDir(Path(run_root)))
    x, y = _xy(prepared.split("train"), schema.target)
    how = how or "iid"
    if schema.task not in ("binary", "multiclass") and how != "iid":
        how = "iid"  # label skew needs classes
    rows = core.partition(np.asarray(y), clients, how, seed)[pid]
    return {k: v[rows] for k, v in x.items()}, y[rows]


class Coordinator:
    def __init__(self, config: Path, *, clients: int, partition: str, mode: str) -> None:
        from launchml.config import RunConfig
        from launchml.data import SOURCES
        from launchml.privacy import FederatedConfig
        from launchml.privacy.config import private_data

        cfg = RunConfig.load(config)
        if cfg.federated is None:
            cfg = cfg.model_copy(update={"federated": FederatedConfig()})
        self.cfg, self.clients, self.partition, self.mode = cfg, clients, partition, mode
        rd = cfg.run_dir
        rd.mkdir()
        rd.events.unlink(missing_ok=True)
        cfg.save(rd.config)
        self.rd = rd
        # a federation is private: vocabularies keep what privacy.min_token_rows rows hold
        self.prepared = SOURCES[cfg.data.kind](private_data(cfg), rd, cfg.seed)
        schema, states = self.prepared.schema, self.prepared.preprocessing
        self.member = core.Member(cfg, schema, states, rd)
        train = _xy(self.prepared.split("train"), schema.target)
        self.valid = _xy(self.prepared.split("validation"), schema.target) or train
        self.initial = self.member.initial(train[0])
        self.message = {"config": core.json_state(cfg.model_dump(mode="json")),
                        "schema": core.json_state(schema.to_dict()),
                        "states": core.json_state(states), "prepared": str(rd.root),
                        "partition": partition}
        self.rounds: list[dict[str, Any]] = []
        self.trained: set[int] = set()  # nodes that trained in some round
        fed = cfg.federated
        core.write_event(rd.events, {
            "event": "federation", "mode": mode, "strategy": fed.strategy, "rounds": fed.rounds,
            "clients": clients, "partition": partition or None, "family": self.member.name,
            "client_dp": cfg.privacy.dp is not None, "secagg": fed.secagg})
        console.info(f"federate: {fed.strategy}, {fed.rounds} rounds, {clients} clients"
                     + (f", partition {partition}" if partition else "")
                     + f", family {self.member.name}")

    def evaluate(self, state: dict[str, Any]) -> dict[str, float]:
        return self.member.score(state, self.valid)

    def round_done(self, server_round: int, replies: list[dict[str, Any]], expected: int,
                   metrics: dict[str, float], seconds: float, secagg: bool = False) -> None:
        ok = {r["node"] for r in replies if "error" not in r}
        lost = sorted(self.trained - ok)
        self.trained |= ok
        row = core.round_row(server_round, replies, self.clients, metrics, lost)
        if secagg:  # the server saw one masked sum: no per-client lines, by design
            row.update({"clients": None, "clients_missing": None, "secagg": True})
        row["seconds"] = round(seconds, 3)
        self.rounds.append(row)
        core.write_event(self.rd.events, row)
        who = "SecAgg+ sum" if secagg else f"{row['clients']}/{expected} clients"
        console.info(f"federate: round {server_round}: {who}, "
                     + ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()))

    def finish(self, state: dict[str, Any], seconds: float) -> None:
        from launchml.pipeline import run

        cfg, fed = self.cfg, self.cfg.federated
        record: dict[str, Any] = {"federated": {
            "strategy": fed.strategy, "rounds": fed.rounds, "clients": self.clients,
            "min_clients": fed.min_clients, "local_epochs": fed.local_epochs,
            "partition": self.partition or None, "mode": self.mode, "secagg": fed.secagg,
            "client_dp": cfg.privacy.dp is not None,
            **({"proximal_mu": fed.proximal_mu} if fed.strategy == "fedprox" else {}),
            **({"server_learning_rate": fed.server_learning_rate}
               if fed.strategy == "fedadam" else {})}}
        if cfg.privacy.dp is not None:  # client-side DP: the largest epsilon any client spent
            spent = [r.get("epsilon") for row in self.rounds for r in row["per_client"]
                     if r.get("epsilon") is not None]
            dp = cfg.privacy.dp
            record["dp"] = {"target_epsilon": dp.target_epsilon,
                            "epsilon": max(spent) if spent else None,
                            "delta": max((r.get("delta", 0.0) for row in self.rounds
                                          for r in row["per_client"]), default=None),
                            "max_grad_norm": dp.max_grad_norm,
                            "noise_multiplier": dp.noise_multiplier, "accountant": dp.accountant,
                            "epochs": fed.rounds * fed.local_epochs, "where": "each client"}
        final = self.rounds[-1] if self.rounds else {}
        metrics = {"federated": {k: v for k, v in final.items() if k.startswith("global_")},
                   "seconds": round(seconds, 3)}
        self.member.save(state, self.rd.model, privacy=record, metrics=metrics,
                         fingerprint=self.prepared.manifest["fingerprint"],
                         source=cfg.data.kind)
        core.write_event(self.rd.events, {"event": "privacy", **record})
        console.info(f"federate: global model package -> {self.rd.model}")
        run(cfg, stages=["evaluate", "deploy"])  # the ordinary stages, unchanged
        (self.rd.root / "federation.json").write_text(json.dumps(record, indent=1))
