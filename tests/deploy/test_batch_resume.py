"""``launchml predict ... --out scores.parquet --resume``: bounded chunks, and a run killed
with SIGKILL resumes without losing or repeating a row."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

LAUNCHML = str(Path(sys.executable).parent / "launchml")


@pytest.fixture(scope="module")
def cancer(tmp_path_factory):
    """(a linear breast-cancer package, a 60,000-row Parquet file of new rows with an id)."""
    from sklearn.datasets import load_breast_cancer

    import launchml

    root = tmp_path_factory.mktemp("batch")
    frame = load_breast_cancer(as_frame=True).frame
    frame.to_csv(root / "cancer.csv", index=False)
    run = launchml.fit(root / "cancer.csv", target="target", model="linear", name="cancer",
                       output_dir=str(root / "runs"))
    rng = np.random.default_rng(0)
    big = frame.drop(columns=["target"]).sample(60_000, replace=True, random_state=0)
    big = big * rng.uniform(0.9, 1.1, size=big.shape)
    big.insert(0, "id", np.arange(len(big)))
    big.reset_index(drop=True).to_parquet(root / "big.parquet", index=False)
    return run.dir.model, root / "big.parquet"


def _predict(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([LAUNCHML, "predict", *args], capture_output=True, text=True,
                          timeout=600, env={**os.environ, **(env or {})})


@pytest.mark.slow
def test_sigkill_then_resume_loses_and_repeats_no_row(cancer, tmp_path):
    model, big = cancer
    out = tmp_path / "scores.parquet"
    parts = tmp_path / ".scores.parquet.parts"
    args = [str(model), str(big), "--out", str(out), "--chunk-rows", "200", "--no-progress"]
    log = tmp_path / "killed.log"
    with open(log, "w") as err:
        proc = subprocess.Popen([LAUNCHML, "predict", *args], stderr=err)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:  # until a few chunks are recorded (300 in all)
        try:
            if len(json.loads((parts / "manifest.json").read_text())["parts"]) >= 5:
                break
        except (FileNotFoundError, json.JSONDecodeError):
            pass  # not written yet (the manifest itself is replaced atomically)
        assert proc.poll() is None, log.read_text()
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not out.exists()
    done = len(json.loads((parts / "manifest.json").read_text())["parts"])
    assert 5 <= done < 300

    resumed = _predict(*args, "--resume", env={"LAUNCHML_QUIET": "0"})
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming after {done * 200} rows" in resumed.stderr
    assert not parts.exists()
    got = pd.read_parquet(out)
    assert got["id"].tolist() == list(range(60_000))  # every row once, in order
    whole = tmp_path / "whole.parquet"
    assert _predict(str(model), str(big), "--out", str(whole), "--no-progress"
                    ).returncode == 0
    pd.testing.assert_frame_equal(got, pd.read_parquet(whole))


def test_resume_refuses_other_inputs_and_a_plain_run_starts_over(cancer, tmp_path,
                                                                 monkeypatch):
    import launchml
    from launchml.deploy import batch
    from launchml.errors import ConfigError

    model, big = cancer
    src = tmp_path / "few.csv"
    pd.read_parquet(big).head(1000).to_csv(src, index=False)
    out = tmp_path / "scores.csv"
    predictor = launchml.load(model)
    calls = {"n": 0}
    real = batch.table_chunks

    def interrupted(*a, **k):  # Ctrl-C while the third chunk is scored
        for chunk, score in real(*a, **k):
            calls["n"] += 1
            if calls["n"] == 3:
                raise KeyboardInterrupt
            yield chunk, score

    monkeypatch.setattr(batch, "table_chunks", interrupted)
    with pytest.raises(KeyboardInterrupt):
        batch.score_to_file(predictor, [src], out, chunk=300, progress=False)
    monkeypatch.setattr(batch, "table_chunks", real)
    parts = batch.parts_dir(out)
    assert len(json.loads((parts / "manifest.json").read_text())["parts"]) == 2
    with pytest.raises(ConfigError, match="other chunk"):
        batch.score_to_file(predictor, [src], out, chunk=500, resume=True, progress=False)
    stats = batch.score_to_file(predictor, [src], out, chunk=300, resume=True,
                                progress=False)
    assert stats == {"rows": 1000, "bad": 0, "resumed_rows": 600}
    assert pd.read_csv(out)["id"].tolist() == list(range(1000))
    # a changed input file is refused; a run without --resume discards the old parts
    monkeypatch.setattr(batch, "table_chunks", interrupted)
    calls["n"] = 0
    with pytest.raises(KeyboardInterrupt):
        batch.score_to_file(predictor, [src], out, chunk=300, progress=False)
    monkeypatch.setattr(batch, "table_chunks", real)
    pd.read_parquet(big).head(900).to_csv(src, index=False)
    with pytest.raises(ConfigError, match="other inputs"):
        batch.score_to_file(predictor, [src], out, chunk=300, resume=True, progress=False)
    assert batch.score_to_file(predictor, [src], out, chunk=300, progress=False)[
        "resumed_rows"] == 0
    assert len(pd.read_csv(out)) == 900 and not parts.exists()


def test_predict_a_registry_reference(cancer, tmp_path):
    from launchml.registry import Registry

    model, big = cancer
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    with Registry(url) as reg:
        reg.add(model, name="cancer")
        reg.set_alias("cancer", "champion", 1)
    src = tmp_path / "few.jsonl"
    pd.read_parquet(big).head(50).to_json(src, orient="records", lines=True)
    out = tmp_path / "scores.jsonl"
    r = _predict("cancer@champion", str(src), "--out", str(out),
                 env={"LAUNCHML_REGISTRY_URL": url})
    assert r.returncode == 0, r.stderr
    got = pd.read_json(out, lines=True)
    assert got["id"].tolist() == list(range(50)) and "probability_1" in got
    r = _predict("cancer@challenger", str(src), env={"LAUNCHML_REGISTRY_URL": url})
    assert r.returncode == 1 and "no alias 'challenger'" in r.stderr


def test_load_a_registry_reference_in_python(cancer, tmp_path, monkeypatch):
    import launchml
    from launchml.errors import PackageError
    from launchml.registry import Registry

    model, _ = cancer
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LAUNCHML_REGISTRY_URL", raising=False)
    monkeypatch.delenv("LAUNCHML_REGISTRY_ARTIFACTS", raising=False)
    with pytest.raises(PackageError, match="no registry at"):
        launchml.load("cancer@champion")
    assert not (tmp_path / ".launchml").exists()  # a typo creates no database
    with Registry() as reg:  # the project's registry: .launchml/ here
        v = reg.add(model, name="cancer")
        reg.set_alias("cancer", "champion", v.version)
    predictor = launchml.load("cancer@champion")
    assert predictor.package.path == v.path and predictor.labels == ["0", "1"]


@pytest.mark.slow
def test_images_resume_to_a_table_and_json_lines(digits_run, digits_dir, tmp_path,
                                                 monkeypatch):
    import launchml
    from launchml.deploy import batch

    predictor = launchml.load(digits_run.dir.model)
    folder = digits_dir / "test"
    whole = tmp_path / "whole.csv"
    batch.score_to_file(predictor, [folder], whole, chunk=40, progress=False)
    real, calls = predictor.iter_predict, {"n": 0}

    def interrupted(items, names=None):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(items, names)

    monkeypatch.setattr(predictor, "iter_predict", interrupted)
    out = tmp_path / "scores.csv"
    with pytest.raises(KeyboardInterrupt):
        batch.score_to_file(predictor, [folder], out, chunk=40, progress=False)
    stats = batch.score_to_file(predictor, [folder], out, chunk=40, resume=True,
                                progress=False)
    assert stats["resumed_rows"] == 80
    got = pd.read_csv(out)
    pd.testing.assert_frame_equal(got, pd.read_csv(whole))
    assert list(got.columns[:2]) == ["file", "prediction"] and got["file"].is_unique
    lines = tmp_path / "scores.jsonl"
    batch.score_to_file(predictor, [folder], lines, chunk=40, progress=False)
    rows = [json.loads(x) for x in lines.read_text().splitlines()]
    assert set(rows[0]) == {"file", "label", "probabilities"} and len(rows) == len(got)
