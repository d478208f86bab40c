"""Federated learning: partitions, the FedProx hook and the schema check at join (in
this environment), and a real simulation driven through ``launchml federate`` (in the
federated environment, .venv-federated, where Flower lives)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from launchml.errors import DataError
from launchml.federated import core

ROOT = Path(__file__).resolve().parents[2]
FED_PY = Path(os.environ.get("LAUNCHML_FEDERATED_PYTHON")
              or ROOT / ".venv-federated" / "bin" / "python")
needs_fed = pytest.mark.skipif(
    not FED_PY.exists(), reason="the federated environment .venv-federated is not built "
    "(make install-federated failed or was not run): Flower lives only there")


@pytest.fixture(scope="module")
def wine(tmp_path_factory) -> pd.DataFrame:
    from sklearn.datasets import load_wine

    frame = load_wine(as_frame=True).frame
    frame["target"] = frame["target"].map({0: "barolo", 1: "grignolino", 2: "barbera"})
    return frame


def test_partitions_cover_every_row_once_and_skew_labels():
    y = np.repeat(np.arange(5), 40)
    for how in ("iid", "label", "dirichlet:0.5"):
        parts = core.partition(y, 4, how, seed=0)
        rows = np.concatenate(parts)
        assert len(parts) == 4 and all(len(p) for p in parts)
        assert sorted(rows.tolist()) == list(range(200))  # every row, once
    label = core.partition(y, 4, "label", seed=0)
    assert max(len(np.unique(y[p])) for p in label) <= 3  # each site: a few classes
    iid = core.partition(y, 4, "iid", seed=0)
    assert all(len(np.unique(y[p])) == 5 for p in iid)
    with pytest.raises(Exception, match="dirichlet:<alpha>"):
        core.partition(y, 4, "zipf", seed=0)


def test_client_rate_anneals_over_the_rounds_with_a_scheduler():
    from launchml.train.config import TrainConfig

    plain = TrainConfig(learning_rate=0.005)
    assert [core.round_rate(plain, r, 10) for r in (1, 5, 10)] == [0.005] * 3
    rates = [core.round_rate(TrainConfig(learning_rate=0.005, scheduler="cosine"), r, 10)
             for r in range(1, 11)]
    assert rates[0] == pytest.approx(0.005)  # the configured rate in round 1
    assert all(a > b > 0 for a, b in zip(rates, rates[1:], strict=False))  # then down
    assert rates[-1] < 0.005 / 20


def test_fedprox_pulls_towards_the_global_weights():
    import torch

    net = torch.nn.Linear(2, 1)
    start = {k: v.clone() for k, v in net.state_dict().items()}
    hook = core.GlobalWeights(start, mu=0.5)
    net = hook.setup(net)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    hook.attach(net, opt, 10, 2, 0)
    with torch.no_grad():
        net.weight += 1.0  # a local step moved it away
    before = (net.weight - start["weight"]).abs().sum().item()
    hook.stepped()
    after = (net.weight - start["weight"]).abs().sum().item()
    assert after == pytest.approx(before * (1 - 0.1 * 0.5))


def test_a_site_with_other_columns_or_classes_is_refused_by_name(wine, tmp_path):
    from launchml.config import RunConfig
    from launchml.data import SOURCES

    wine.to_csv(tmp_path / "all.csv", index=False)
    cfg = RunConfig.load({"name": "f", "output_dir": str(tmp_path / "runs"),
                          "data": {"train": str(tmp_path / "all.csv"), "target": "target"}})
    cfg.run_dir.mkdir()
    prepared = SOURCES["table"](cfg.data, cfg.run_dir, 0)
    schema, states = prepared.schema, prepared.preprocessing
    site = tmp_path / "site_b.csv"
    wine.drop(columns=["proline"]).assign(region="x").to_csv(site, index=False)
    with pytest.raises(DataError, match=r"client b: .*missing column\(s\) \['proline'\]; "
                                        r"column\(s\) the federation does not have \['region'\]"):
        core.site_data(site, schema, states, "b", "target")
    wine.assign(target=wine["target"].replace("barbera", "nebbiolo")).to_csv(site, index=False)
    with pytest.raises(DataError, match=r"client b: .*class\(es\) \['nebbiolo'\]"):
        core.site_data(site, schema, states, "b", "target")
    wine.iloc[:20].to_csv(site, index=False)
    x, y = core.site_data(site, schema, states, "b", "target")
    assert len(y) == 20 and set(x) >= {"alcohol", "proline"}


def _row_strings(frame: pd.DataFrame) -> list[str]:
    """Each training row as three consecutive values, as a CSV or a JSON list writes them."""
    out = []
    for values in frame.drop(columns=["target"]).astype(str).to_numpy()[:, :3]:
        out += [",".join(values), ", ".join(values)]
    return out


def _wine_config(wine: pd.DataFrame, tmp_path: Path, name: str, sections: dict) -> Path:
    """wine.csv and a federated run config <name>.yaml beside it (``sections`` added)."""
    wine.to_csv(tmp_path / "wine.csv", index=False)
    config = tmp_path / f"{name}.yaml"
    config.write_text(yaml.safe_dump({
        "name": name, "output_dir": str(tmp_path / "runs"), "seed": 0,
        "data": {"train": "wine.csv", "target": "target"},
        "train": {"batch_size": 16, "learning_rate": 0.01},
        "optimize": {"onnx": False, "int8": False}, **sections}))
    return config


@needs_fed
@pytest.mark.slow
def test_simulation_through_the_cli_packages_the_global_model(wine, tmp_path):
    import launchml

    config = _wine_config(wine, tmp_path, "fed", {
        "privacy": {"dp": {"noise_multiplier": 0.8, "max_grad_norm": 2.0}},
        "federated": {"rounds": 2, "strategy": "fedprox", "min_clients": 2}})
    env = {**os.environ, "LAUNCHML_QUIET": "0", "RAY_DEDUP_LOGS": "0"}
    # the main environment's CLI: Flower is not importable here, so it drives .venv-federated
    main_cli = Path(sys.executable).parent / "launchml"
    proc = subprocess.run([str(main_cli), "federate", "simulate", str(config), "--clients",
                           "3", "--partition", "dirichlet:0.5"], capture_output=True,
                          text=True, env=env, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = tmp_path / "runs" / "fed"
    events = [json.loads(x) for x in (run / "events.jsonl").read_text().splitlines()]
    rounds = [e for e in events if e["event"] == "round"]
    assert [r["round"] for r in rounds] == [1, 2]
    assert all(r["clients"] == 3 and r["clients_missing"] == 0 for r in rounds)
    assert all("global_accuracy" in r and len(r["per_client"]) == 3 for r in rounds)
    assert {c["partition"] for c in rounds[0]["per_client"]} == {0, 1, 2}
    assert all(c["epsilon"] > 0 for c in rounds[-1]["per_client"])  # client-side DP
    meta = json.loads((run / "model" / "package.json").read_text())
    fed = meta["privacy"]["federated"]
    assert fed["strategy"] == "fedprox" and fed["rounds"] == 2 and fed["clients"] == 3
    assert fed["client_dp"] is True and fed["secagg"] is False
    assert meta["privacy"]["dp"]["epsilon"] > 0 and meta["privacy"]["dp"]["noise_multiplier"]
    # an ordinary package: loaded and scored in the main environment
    predictor = launchml.Predictor.load(run / "model")
    assert len(predictor.predict(wine.drop(columns=["target"]).iloc[:5])) == 5
    assert (run / "evaluation" / "metrics.json").exists()
    # nothing private leaks: no training row in the package, the report, the logs
    rows = _row_strings(wine)
    texts = [proc.stdout, proc.stderr]
    for folder in ("model", "evaluation"):
        texts += [p.read_text(errors="ignore") for p in (run / folder).rglob("*")
                  if p.is_file() and p.suffix in (".json", ".html", ".md", ".txt", ".csv")]
    texts.append((run / "events.jsonl").read_text())
    leaked = [r for r in rows for t in texts if r in t]
    assert leaked == [], leaked[:3]


@needs_fed
@pytest.mark.slow
def test_secure_aggregation_is_recorded_and_hides_the_clients(wine, tmp_path):
    config = _wine_config(wine, tmp_path, "sec", {
        "federated": {"rounds": 1, "min_clients": 3, "secagg": True},
        "evaluate": {"report": False}})
    proc = subprocess.run([str(FED_PY), "-m", "launchml", "federate", "simulate", str(config),
                           "--clients", "3"], capture_output=True, text=True, timeout=900,
                          cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = tmp_path / "runs" / "sec"
    meta = json.loads((run / "model" / "package.json").read_text())
    assert meta["privacy"]["federated"]["secagg"] is True
    (r,) = [json.loads(x) for x in (run / "events.jsonl").read_text().splitlines()
            if json.loads(x)["event"] == "round"]
    assert r["secagg"] is True and r["per_client"] == []  # only the masked sum was seen
    assert r["global_accuracy"] > 0.5


@needs_fed
def test_strategies_are_flowers_current_ones():
    code = ("from types import SimpleNamespace as N\n"
            "from launchml.federated.app import make_strategy\n"
            "for s in ('fedavg', 'fedprox', 'fedadam'):\n"
            "    st = make_strategy(N(strategy=s, fraction_train=1.0, min_clients=3, "
            "proximal_mu=0.1, server_learning_rate=0.01), 10)\n"
            "    print(type(st).__mro__[1].__module__, type(st).__name__, st.min_train_nodes)\n")
    out = subprocess.run([str(FED_PY), "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.split("\n")
    assert lines[0].startswith("flwr.serverapp.strategy.fedavg FedAvg 3")
    assert "FedProx 3" in lines[1] and "FedAdam 3" in lines[2]


def test_without_the_federated_environment_the_cli_says_how_to_build_it(tmp_path):
    import importlib.util

    if importlib.util.find_spec("flwr") is not None:
        pytest.skip("Flower is importable here: nothing to delegate")
    env = {**os.environ, "LAUNCHML_FEDERATED_PYTHON": str(tmp_path / "no-such-python")}
    (tmp_path / "c.yaml").write_text("name: x\n")
    out = subprocess.run([str(Path(sys.executable).parent / "launchml"), "federate",
                          "simulate", str(tmp_path / "c.yaml"), "--clients", "2"],
                         capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert out.returncode == 1
    assert "make install-federated" in out.stderr and "'launchml[federated]'" in out.stderr
