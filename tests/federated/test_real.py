"""A real federation on the loopback: ``launchml federate server`` and three (plus one
refused) ``launchml federate client`` processes, each started through the main
environment's CLI; one site is killed mid-federation and the rounds go on."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.federated.test_federated import needs_fed

CLI = str(Path(sys.executable).parent / "launchml")


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _rounds(events: Path) -> list[dict]:
    if not events.exists():
        return []
    return [r for r in map(json.loads, events.read_text().splitlines())
            if r["event"] == "round"]


def _start(args: list[str], log: Path, cwd: Path) -> subprocess.Popen:
    (cwd / "tmp").mkdir(exist_ok=True)  # its temporary folders, checked after the run
    env = {**os.environ, "LAUNCHML_QUIET": "0", "TMPDIR": str(cwd / "tmp")}
    return subprocess.Popen([CLI, "federate", *args], stdout=log.open("w"),
                            stderr=subprocess.STDOUT, cwd=cwd, env=env,
                            start_new_session=True)  # its own group: killed as a whole


def _kill(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


@needs_fed
@pytest.mark.slow
def test_server_and_three_clients_survive_a_killed_client(tmp_path):
    from sklearn.datasets import load_wine

    wine = load_wine(as_frame=True).frame
    wine["target"] = wine["target"].map({0: "barolo", 1: "grignolino", 2: "barbera"})
    wine.to_csv(tmp_path / "reference.csv", index=False)  # the coordinator's copy
    for i, site in enumerate("abc"):
        wine.iloc[i::3].to_csv(tmp_path / f"site_{site}.csv", index=False)
    wine.assign(region="x").to_csv(tmp_path / "site_d.csv", index=False)  # other columns
    address = f"127.0.0.1:{_port()}"
    config = tmp_path / "fed.yaml"
    config.write_text(yaml.safe_dump({
        "name": "real", "output_dir": str(tmp_path / "runs"), "seed": 0,
        "data": {"train": "reference.csv", "target": "target"},
        "train": {"batch_size": 16, "learning_rate": 0.01},
        "federated": {"rounds": 3, "strategy": "fedadam", "min_clients": 2,
                      "address": address, "server_learning_rate": 0.05},
        "optimize": {"onnx": False, "int8": False}}))
    events = tmp_path / "runs" / "real" / "events.jsonl"
    server = _start(["server", str(config), "--clients", "3", "--round-timeout", "240"],
                    tmp_path / "server.log", tmp_path)
    clients = {}
    try:
        for site in "abcd":
            clients[site] = _start(["client", str(config), "--data",
                                    str(tmp_path / f"site_{site}.csv"), "--site", site],
                                   tmp_path / f"client_{site}.log", tmp_path)
        deadline = time.monotonic() + 900
        while not _rounds(events) and time.monotonic() < deadline and server.poll() is None:
            time.sleep(1)  # waiting for round 1 to be written, not timing anything
        assert _rounds(events), (tmp_path / "server.log").read_text()[-3000:]
        _kill(clients["c"])  # a site lost mid-federation
        server.wait(timeout=900)
    finally:
        _kill(server)
        for proc in clients.values():
            _kill(proc)
    log = (tmp_path / "server.log").read_text()
    assert server.returncode == 0, log[-3000:]
    rounds = _rounds(events)
    assert [r["round"] for r in rounds] == [1, 2, 3]
    ok = [[c for c in r["per_client"] if "error" not in c] for r in rounds]
    assert len(ok[0]) == 3 and all(len(o) == 2 for o in ok[1:])  # a, b go on without c
    # c's absence is logged: the node that trained in round 1 and is gone
    c_node = next(c["node"] for c in ok[0] if c["node"] not in {x["node"] for x in ok[1]})
    assert rounds[1]["clients_lost"] == [c_node] and rounds[1]["clients_missing"] == 1
    for r in rounds:  # site d, refused by name each round (its table has other columns)
        assert any("client d" in c.get("error", "") and "region" in c.get("error", "")
                   for c in r["per_client"])
    assert "trained before and are gone" in log
    meta = json.loads((tmp_path / "runs" / "real" / "model" / "package.json").read_text())
    assert meta["privacy"]["federated"]["mode"] == "real"
    assert meta["privacy"]["federated"]["strategy"] == "fedadam"
    # the server's work folder (the Flower app and home) is removed when it ends
    assert not list((tmp_path / "tmp").glob("launchml-federation-*"))
