"""Federated learning without Flower: what the server and each client compute.

The coordinator prepares its own copy of the data as any run does (``prepare``):
that fixes the federation's schema (columns, their fitted preprocessing, the
classes) and gives the validation split the global model is scored on. Every
client trains the family's network with the one training loop (``Trainer.fit``)
for ``federated.local_epochs`` per round, starting from the global weights
(``GlobalWeights``, a training-loop hook, which also applies FedProx's pull);
with ``privacy.dp`` set, each client also runs DP-SGD (client-side DP, its budget
covering all rounds). The final global weights are written by the same package
writer as a centralized run: an ordinary model package.

The Flower side (ServerApp/ClientApp, strategies, simulation, SuperLink/SuperNode)
is in ``launchml.federated.app``; this module imports neither Flower nor Ray.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from launchml import console
from launchml.errors import ConfigError, DataError
from launchml.train.trainer import TrainHook


class GlobalWeights(TrainHook):
    """A client's round: start from the global weights; FedProx pulls towards them.

    FedProx adds mu/2 ||w - w_global||^2 to each client's loss; here as its decoupled
    step (w -= lr * mu * (w - w_global) after each optimizer step), which is the same
    update for SGD and also holds under DP-SGD, where the noisy gradient is made by
    the optimizer and a loss term would be clipped with the data's."""

    def __init__(self, state: dict[str, Any], mu: float = 0.0) -> None:
        self.state, self.mu = state, mu

    def setup(self, model: Any) -> Any:
        model.load_state_dict(self.state)
        return model

    def attach(self, model: Any, opt: Any, n: int, batch_size: int, seed: int) -> Any:
        if self.mu:
            self.opt = opt
            self.pairs = [(p, self.state[name].to(p.device, p.dtype))
                          for name, p in model.named_parameters()
                          if p.requires_grad and name in self.state]
        return model, opt

    def stepped(self) -> bool:
        if self.mu:
            import torch

            lr = self.opt.param_groups[0]["lr"]
            with torch.no_grad():
                for p, w0 in self.pairs:
                    p.sub_(lr * self.mu * (p - w0))
        return True


def partition(y: np.ndarray, clients: int, how: str, seed: int) -> list[np.ndarray]:
    """Row indices per client: ``iid``, ``label`` (label skew: each client holds two
    classes) or ``dirichlet:<alpha>`` (class shares drawn from Dirichlet(alpha))."""
    rng = np.random.default_rng(seed)
    n = len(y)
    if clients > n:
        raise ConfigError(f"--clients {clients}: more clients than the {n} training rows")
    if how == "iid":
        return [np.sort(p) for p in np.array_split(rng.permutation(n), clients)]
    classes = np.unique(y)
    if how == "label":
        parts: list[list[int]] = [[] for _ in range(clients)]
        for i, c in enumerate(classes):  # class c goes to clients i and i+1 (mod clients)
            rows = rng.permutation(np.flatnonzero(y == c))
            owners = sorted({i % clients, (i + 1) % clients})
            for owner, chunk in zip(owners, np.array_split(rows, len(owners)), strict=True):
                parts[owner] += chunk.tolist()
        out = [np.sort(np.asarray(p, dtype=np.int64)) for p in parts]
    elif how.startswith("dirichlet:"):
        try:
            alpha = float(how.split(":", 1)[1])
        except ValueError:
            alpha = -1.0
        if alpha <= 0:
            raise ConfigError(f"--partition {how}: alpha must be a positive number, e.g. "
                              "dirichlet:0.5")
        parts = [[] for _ in range(clients)]
        for c in classes:
            rows = rng.permutation(np.flatnonzero(y == c))
            shares = rng.dirichlet([alpha] * clients)
            cuts = (np.cumsum(shares) * len(rows)).astype(int)[:-1]
            for owner, chunk in enumerate(np.split(rows, cuts)):
                parts[owner] += chunk.tolist()
        out = [np.sort(np.asarray(p, dtype=np.int64)) for p in parts]
    else:
        raise ConfigError(f"--partition {how!r}: use iid, label or dirichlet:<alpha> "
                          "(e.g. dirichlet:0.5)")
    empty = [i for i, p in enumerate(out) if len(p) == 0]
    if empty:  # a client without rows cannot train: give it rows of the largest client
        for i in empty:
            big = max(range(clients), key=lambda k: len(out[k]))
            half = len(out[big]) // 2
            out[i], out[big] = out[big][:half], out[big][half:]
    return out


class Member:
    """The federation's model: one neural family on the federation's schema, its
    weights moved as a state dict, trained by the family's own loop."""

    def __init__(self, cfg: Any, schema: Any, states: dict[str, Any], run: Any) -> None:
        from launchml.models.families import FitContext, create_family
        from launchml.tasks import create_task
        from launchml.train.select import choose_families

        self.cfg, self.schema, self.states = cfg, schema, states
        self.task = create_task(schema.task, schema.labels)
        names = choose_families(cfg, states, self.task)
        neural = [n for n in names if n not in ("lightgbm", "linear")]
        if not neural:
            raise ConfigError(f"federated: model {names} has no neural family; a federation "
                              "averages network weights. Fix: model.name: auto, mlp, "
                              "seed_cnn or timm:<name>")
        self.name = neural[0]
        self.ctx = FitContext(task=self.task, states=states, cfg=cfg, run=run, single=False,
                              fingerprint="federated")
        self.family = create_family(self.name, self.ctx)

    def _arrays(self, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return arrays

    def initial(self, arrays: dict[str, np.ndarray]) -> dict[str, Any]:
        """The seeded initial weights (the same in every process for the same config)."""
        import torch

        fam = self.family
        torch.manual_seed(self.cfg.seed)
        if self.name == "mlp":
            from launchml.models.plan import make_plan
            from launchml.models.table_net import TableNet

            fam.plan = make_plan(self.states, arrays)
            net = TableNet(fam.plan, self.states, self.cfg.model.mlp, self.task.num_outputs)
        else:
            from launchml.models.network_family import build_network

            spec = {"name": self.name, **self.cfg.model.network.model_dump(mode="json")}
            net = build_network(spec, fam.column, self.states[fam.column], self.task,
                                for_loading=False)
            fam.package_spec = net.package_spec
        self.net = net
        return {k: v.detach().clone() for k, v in net.state_dict().items()}

    def train(self, data: tuple[dict[str, np.ndarray], np.ndarray], state: dict[str, Any],
              hooks: list[Any], server_round: int = 1) -> tuple[dict[str, Any], dict[str, float]]:
        """Local epochs from the global ``state``; (new weights, last epoch's metrics)."""
        fed = self.cfg.federated
        # a site holds few rows: its batch is capped so a local epoch is about ten steps
        # (at least 8 rows a batch); the configured batch would be one or two steps per
        # round and FedAvg would average barely trained models
        batch = min(self.cfg.train.batch_size, max(8, -(-len(data[1]) // 10)))
        cfg = self.cfg.train.model_copy(update={
            "epochs": fed.local_epochs, "patience": None, "scheduler": "none",
            "batch_size": batch, "learning_rate": round_rate(self.cfg.train, server_round,
                                                             fed.rounds)})
        self.ctx.make_hooks = lambda: list(hooks)
        self.initial(data[0])
        fam = self.family
        if self.name == "mlp":
            result = fam._train(fam._prepared(data, None), cfg, "federated", None)
        else:
            result = fam._train(data, None, cfg, "federated", False, None)
        last = result.history[-1]
        metrics = {k: float(v) for k, v in last.items()
                   if k in ("train_loss", "train_accuracy", "epsilon", "delta")}
        state = {k: v.detach().cpu().clone() for k, v in result.model.state_dict().items()}
        return state, metrics

    def score(self, state: dict[str, Any], data: Any) -> dict[str, float]:
        """Loss and accuracy (or R2) of the weights on labelled arrays."""
        from launchml.models.linear_family import validation_loss
        from launchml.models.network_family import torch_raw
        from launchml.models.plan import pack

        self.net.load_state_dict(state)
        self.net.eval()
        inputs = pack(self.family.plan, data[0]) if self.name == "mlp" else \
            {"image": data[0][self.family.column]}
        raw = torch_raw(self.net, inputs)
        m = self.task.metrics(data[1], raw)
        out = {"loss": round(float(validation_loss(self.task, data[1], raw)), 6)}
        for k in ("accuracy", "r2"):
            if k in m:
                out[k] = round(float(m[k]), 6)
        return out

    def save(self, state: dict[str, Any], folder: Path, *, privacy: dict[str, Any],
             metrics: dict[str, Any], fingerprint: str, source: str) -> None:
        """The global model as an ordinary package (the same writer as a central run)."""
        from launchml.package import save_package

        self.net.load_state_dict(state)
        self.family.net = self.net.eval()
        folder.mkdir(parents=True, exist_ok=True)
        spec = self.family.save(folder)
        save_package(folder, schema=self.schema, source=source,
                     model_spec={"name": self.cfg.model.name,
                                 "members": [{"family": self.name, "weight": 1.0, **spec}]},
                     preprocessing=self.states, metrics=metrics, files=spec["files"],
                     provenance={"data_fingerprint": fingerprint,
                                 "config": self.cfg.model_dump(mode="json"),
                                 "train_settings": {"families": [self.name]}},
                     privacy=privacy)


def round_rate(train: Any, server_round: int, rounds: int) -> float:
    """A client's learning rate in ``server_round`` of ``rounds``. A site's optimizer
    lives one round, so ``train.scheduler`` spans the federation: with a scheduler set
    (cosine or onecycle) the rate anneals over the rounds along a cosine, held within
    a round; without one it is ``train.learning_rate`` throughout."""
    if train.scheduler == "none" or rounds <= 1:
        return float(train.learning_rate)
    done = (min(max(server_round, 1), rounds) - 1) / rounds
    return float(train.learning_rate) * 0.5 * (1.0 + math.cos(math.pi * done))


def client_hooks(cfg: Any, state: dict[str, Any], server_round: int) -> list[Any]:
    """A client's hooks for one round: the global weights (+ FedProx) and client DP."""
    fed = cfg.federated
    hooks: list[Any] = [GlobalWeights(state, fed.proximal_mu if fed.strategy == "fedprox"
                                      else 0.0)]
    if cfg.privacy.dp is not None:
        from launchml.privacy.dp import DPHook

        # the budget covers every round; this round's steps come after the earlier ones'
        hooks.append(DPHook(cfg.privacy.dp, epochs=fed.rounds * fed.local_epochs,
                            done_epochs=(server_round - 1) * fed.local_epochs))
    return hooks


def site_data(table: str | Path, schema: Any, states: dict[str, Any], site: str,
              target: str) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """A site's own table, checked against the federation's schema and transformed with
    the federation's fitted preprocessing; DataError naming the columns or classes that
    differ (the client is refused at join)."""
    from launchml.data.preprocess import transform_table
    from launchml.data.tables import read_table

    path = Path(table)
    frame, _ = read_table(path)
    expected = [c.name for c in schema.inputs]  # ``target``: the column's name in the table
    missing = [c for c in [*expected, target] if c not in frame.columns]
    extra = [str(c) for c in frame.columns if c not in expected and c != target]
    if missing or extra:
        raise DataError(
            f"client {site}: '{path}' does not match the federation's schema: "
            + "; ".join(part for part in (
                f"missing column(s) {missing}" if missing else "",
                f"column(s) the federation does not have {extra}" if extra else "") if part)
            + f". The federation's columns are {expected} and the target '{target}'. Fix: "
            "give this site's table exactly those columns.")
    y_raw = frame[target]
    if schema.labels:
        labels = [str(v) for v in schema.labels]
        values = y_raw.astype(str)
        unknown = sorted(set(values) - set(labels))
        if unknown:
            raise DataError(f"client {site}: '{path}' column '{target}' has class(es) "
                            f"{unknown[:10]} the federation does not have; its classes are "
                            f"{labels}. Fix: relabel or remove those rows at this site.")
        y = values.map({v: i for i, v in enumerate(labels)}).to_numpy(np.int64)
    else:
        y = y_raw.to_numpy(np.float32)
    arrays = transform_table(states, frame[expected], base_dir=path.parent)
    return arrays, y


def write_event(path: Path, row: dict[str, Any]) -> None:
    from launchml.runs import append_jsonl

    append_jsonl(path, row)


def round_row(server_round: int, replies: list[dict[str, Any]], expected: int,
              global_metrics: dict[str, float] | None, lost: list[int]) -> dict[str, Any]:
    """The round's line in events.jsonl: ``clients`` that trained, ``clients_missing``
    (of the ``expected`` sites), ``clients_lost`` (nodes that trained in an earlier round
    and did not this time), ``clients_failed`` (replied with an error: refused data ...)."""
    ok = [r for r in replies if "error" not in r]
    failed = [r for r in replies if "error" in r]
    got = len(ok)
    row: dict[str, Any] = {"event": "round", "round": server_round, "clients": got,
                           "expected": expected, "clients_missing": max(expected - got, 0),
                           "clients_lost": lost, "clients_failed": len(failed)}
    if global_metrics:
        row.update({f"global_{k}": v for k, v in global_metrics.items()})
    row["per_client"] = replies
    for r in failed:
        console.warn(f"federate: round {server_round}: node {r['node']} failed: {r['error']}")
    if lost:
        console.warn(f"federate: round {server_round}: node(s) {lost} trained before and are "
                     f"gone (lost or too slow); aggregated the {got} that replied")
    return row


def json_state(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"))


def nan_to_none(x: float) -> float | None:
    return None if x is None or not math.isfinite(x) else x
