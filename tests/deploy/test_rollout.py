"""The real server (launchml serve --registry) under load: a moved alias is swapped in
with zero failed requests, a broken version is rejected while the old one serves, and
SIGTERM finishes the requests in flight."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from launchml.deploy.auth import hash_key

LAUNCHML = str(Path(sys.executable).parent / "launchml")
ADMIN = "admin-key-for-tests"


@pytest.fixture(scope="module")
def versions(tmp_path_factory):
    """A registry with cancer versions 1, 2 (two seeds) and 3 (weights damaged), the
    records to send, and the environment that points at the registry."""
    from sklearn.datasets import load_breast_cancer

    import launchml
    from launchml.registry import Registry

    root = tmp_path_factory.mktemp("rollout")
    frame = load_breast_cancer(as_frame=True).frame
    frame.to_csv(root / "cancer.csv", index=False)
    models = [launchml.fit(root / "cancer.csv", target="target", model="linear",
                           name=f"cancer{seed}", seed=seed, output_dir=str(root / "runs")
                           ).dir.model for seed in (0, 1)]
    third = root / "third"  # the first model with other provenance: other files
    shutil.copytree(models[0], third)
    meta = json.loads((third / "package.json").read_text())
    meta["provenance"]["copy"] = "third"
    (third / "package.json").write_text(json.dumps(meta))
    url = f"sqlite:///{root / 'registry.db'}"
    with Registry(url, artifacts=root / "artifacts") as reg:
        for p in (*models, third):
            reg.add(p, name="cancer")
        reg.set_alias("cancer", "champion", 1)
        # version 3's stored weights damaged on disk: it cannot load (hash, weights)
        weights = next(reg.get("cancer:3").path.glob("*.safetensors"))
        os.chmod(weights, 0o644)
        weights.write_bytes(b"\0" * weights.stat().st_size)
    (root / "keys.txt").write_text(f"{hash_key(ADMIN)} predict,admin\n")
    env = {**os.environ, "LAUNCHML_REGISTRY_URL": url,
           "LAUNCHML_REGISTRY_ARTIFACTS": str(root / "artifacts")}
    records = frame.drop(columns=["target"]).head(8).to_dict(orient="records")
    return root, env, records


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self.port = _port()
        self._log = open(log, "w")  # noqa: SIM115  closed in stop()
        self.log = log
        self.proc = subprocess.Popen([LAUNCHML, "serve", *args, "--port", str(self.port)],
                                     stderr=subprocess.PIPE, stdout=self._log, text=True,
                                     env=env)
        for line in self.proc.stderr:  # uvicorn (a worker) says when it answers
            self._log.write(line)
            if "Uvicorn running" in line or "Application startup complete" in line:
                break
        else:
            self._log.close()
            self.proc.wait(timeout=60)
            self.proc.stderr.close()
            raise AssertionError(f"the server exited: {log.read_text()}")
        self._drain = threading.Thread(target=self._copy, daemon=True)
        self._drain.start()

    def _copy(self) -> None:
        for line in self.proc.stderr:
            self._log.write(line)

    def request(self, method: str, path: str, body: object = None,
                conn: http.client.HTTPConnection | None = None) -> tuple[int, dict]:
        c = conn or http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        data = None if body is None else json.dumps(body).encode()
        c.request(method, path, body=data, headers={"content-type": "application/json",
                                                    "x-api-key": ADMIN})
        r = c.getresponse()
        raw = r.read()
        if conn is None:
            c.close()
        return r.status, (json.loads(raw) if raw.startswith(b"{") else {"text": raw.decode()})

    def stop(self) -> int:
        """SIGTERM; 0 when the server shut down cleanly (uvicorn re-raises the signal it
        caught once it has finished: a -SIGTERM exit after its shutdown is clean too)."""
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=60)
        self._drain.join(timeout=10)
        self.proc.stderr.close()
        self._log.close()
        clean = "Application shutdown complete" in self.log.read_text()
        return 0 if clean and code in (0, -signal.SIGTERM) else code or -1


def _alias(env: dict[str, str], version: int) -> None:
    from launchml.registry import Registry

    with Registry(env["LAUNCHML_REGISTRY_URL"],
                  artifacts=env["LAUNCHML_REGISTRY_ARTIFACTS"]) as reg:
        reg.set_alias("cancer", "champion", version)


def _metric(server: Server, name: str) -> float:
    from launchml.deploy.metrics import parse

    _, body = server.request("GET", "/metrics")
    return parse(body["text"]).get(name, 0.0)


def _wait(condition, what: str, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


@pytest.mark.slow
def test_alias_moves_under_load_with_zero_failed_requests(versions, tmp_path):
    from launchml.registry import Registry

    root, env, records = versions
    _alias(env, 1)
    server = Server(["--registry", "--models", "cancer@champion", "--poll-seconds", "0.2",
                     "--api-key-file", str(root / "keys.txt")], env, tmp_path / "server.log")
    answers: list[list[tuple[int, int | None]]] = [[] for _ in range(4)]
    stop = threading.Event()

    def client(i: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
        while not stop.is_set():
            try:
                status, body = server.request("POST", "/v1/models/cancer/predict",
                                              {"records": records[i:i + 4]}, conn)
            except (OSError, http.client.HTTPException) as e:
                answers[i].append((-1, str(e)))  # type: ignore[arg-type]
                conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
                continue
            answers[i].append((status, body.get("version")))
        conn.close()

    def count() -> int:
        return sum(len(a) for a in answers)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(4)]
    try:
        for t in threads:
            t.start()
        _wait(lambda: count() >= 40, "the first answers")
        with Registry(env["LAUNCHML_REGISTRY_URL"],
                      artifacts=env["LAUNCHML_REGISTRY_ARTIFACTS"]) as reg:
            reg.set_alias("cancer", "champion", 2)  # roll forward
            _wait(lambda: any(v == 2 for a in answers for _, v in a[-3:]), "version 2")
            reg.set_alias("cancer", "champion", 3)  # a version that fails to load
            _wait(lambda: _metric(server, "launchml_model_swaps_total"
                                  "{model=cancer,result=rejected}") == 1, "the rejection")
        seen = count()
        _wait(lambda: count() >= seen + 40, "answers after the rejection")
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=60)
        _, listed = server.request("GET", "/v1/models")
        code = server.stop()
    every = [a for per in answers for a in per]
    assert [a for a in every if a[0] != 200] == []  # zero failed requests
    for per in answers:  # each client saw version 1, then 2, never 3
        got = [v for _, v in per]
        assert got == sorted(got) and set(got) == {1, 2}
    assert listed["models"][0]["version"] == 2
    assert "rejected" in (tmp_path / "server.log").read_text()
    assert code == 0


@pytest.mark.slow
def test_sigterm_finishes_the_requests_in_flight(versions, tmp_path):
    root, env, records = versions
    _alias(env, 2)
    # inputs wait up to 3 s for batch-mates: the requests are still in flight at SIGTERM
    server = Server(["--registry", "--models", "cancer@champion", "--max-wait-ms", "3000",
                     "--max-batch-size", "64", "--api-key-file", str(root / "keys.txt")],
                    env, tmp_path / "server.log")
    results: list[tuple[int, dict]] = []

    def one(i: int) -> None:
        results.append(server.request("POST", "/v1/models/cancer/predict",
                                      {"records": records[i:i + 1]}))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    try:
        _wait(lambda: _metric(server, "launchml_requests_in_progress{model=cancer}") == 6,
              "six requests in flight")
    finally:  # never leave the server running, even when the wait fails
        code = server.stop()
    for t in threads:
        t.join(timeout=60)
    assert [s for s, _ in results] == [200] * 6
    assert all(len(b["predictions"]) == 1 for _, b in results)
    assert code == 0


@pytest.mark.slow
def test_two_workers_share_the_port(versions, tmp_path):
    root, env, records = versions
    _alias(env, 2)
    server = Server(["--registry", "--models", "cancer@champion", "--workers", "2",
                     "--api-key-file", str(root / "keys.txt")], env, tmp_path / "server.log")
    try:
        got = [server.request("POST", "/v1/models/cancer/predict", {"records": records[:2]})
               for _ in range(10)]
        status, _ = server.request("POST", "/v1/models/cancer/predict",
                                   {"records": records[:1]},
                                   http.client.HTTPConnection("127.0.0.1", server.port))
    finally:
        code = server.stop()
    assert [s for s, _ in got] == [200] * 10
    assert code == 0
