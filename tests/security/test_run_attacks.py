"""Hostile configs and faults during a run (issue 9, items 12-18)."""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

import launchml
from launchml.errors import ConfigError, DataError, LaunchmlError, RunError
from launchml.pipeline import PARITY, checked_onnx, os_error_message
from launchml.runs import RunDir, RunLock, create_npy


def _cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "launchml", *args], capture_output=True,
                          text=True, timeout=120, cwd=cwd,
                          env={**os.environ, "LAUNCHML_QUIET": "1"})


def _config(image_folder: Path, out: Path, **extra) -> dict:
    cfg = {"name": "r", "output_dir": str(out), "seed": 0,
           "data": {"train": str(image_folder), "target_size": [24, 24]},
           "model": {"name": "seed_cnn"}, "train": {"epochs": 1, "batch_size": 8}}
    for key, value in extra.items():
        cfg[key] = {**cfg.get(key, {}), **value} if isinstance(value, dict) else value
    return cfg


def test_a_second_run_of_the_same_name_refuses_naming_the_holder(image_folder, tmp_path):
    root = tmp_path / "runs" / "r"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys; from launchml.runs import RunLock; "
         f"RunLock({str(root)!r}).acquire(); print('held', flush=True); sys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(RunError, match=f"in use by another launchml process \\(PID "
                                           f"{holder.pid}\\)"):
            launchml.run(_config(image_folder, tmp_path / "runs"), stages=["prepare"])
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
        holder.stdout.close()
    with RunLock(root):  # free again once the holder is gone
        pass


def test_temporary_array_names_are_unique(tmp_path):
    a = create_npy(tmp_path / "x.npy", (2,), np.uint8)
    b = create_npy(tmp_path / "x.npy", (2,), np.uint8)
    assert a.filename != b.filename and str(os.getpid()) in Path(a.filename).name


@pytest.mark.slow
def test_yaml_alias_bomb_is_refused_fast_and_briefly(tmp_path):
    lines = ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    prev = "a"
    for c in "bcdefghi":  # 9 ** 9 = 387 million strings once expanded
        lines.append(f"{c}: &{c} [{', '.join(['*' + prev] * 9)}]")
        prev = c
    (tmp_path / "bomb.yaml").write_text("\n".join([*lines, "name: *i", "data: {train: x}"]))
    r = _cli("run", str(tmp_path / "bomb.yaml"))
    assert r.returncode == 2 and "YAML aliases" in r.stderr and len(r.stderr) < 1000


def test_errors_never_print_an_unbounded_input(tmp_path):
    (tmp_path / "long.yaml").write_text(yaml.safe_dump(
        {"name": "x" * 1_000_000, "data": {"train": "x"}}))
    with pytest.raises(ConfigError) as err:
        launchml.run(tmp_path / "long.yaml")
    assert "'name'" in str(err.value) and len(str(err.value)) < 2000


@pytest.mark.parametrize("text,needle", [
    ("name: a\nname: b\ndata: {train: x}\n", "key 'name' appears twice"),
    ("name: a\ndata: {train: x, target_size: [100000, 100000]}\n", "at most 4096"),
    ("name: a\ndata: {train: x}\ntrain: {epochs: 1.0e21}\n", "train.epochs"),
    ("name: a\ndata: {train: x}\ntrain: {learning_rate: .inf}\n", "finite number"),
    ("name: a\ndata: {train: x}\ntrain: {learning_rate: .nan}\n", "finite number"),
    ("name: a\noutput_dir: /proc/self\ndata: {train: x}\n", "system pseudo-folder"),
])
def test_bad_values_are_refused(text, needle, tmp_path):
    (tmp_path / "c.yaml").write_text(text)
    with pytest.raises(ConfigError, match=needle):
        launchml.run(tmp_path / "c.yaml")


def test_a_folder_or_a_binary_file_as_config_is_one_line(tmp_path):
    (tmp_path / "dir.yaml").mkdir()
    (tmp_path / "bin.yaml").write_bytes(bytes(range(256)) * 4)
    for name, needle in (("dir.yaml", "is a folder"), ("bin.yaml", "not a text file")):
        with pytest.raises(ConfigError, match=needle) as err:
            launchml.run(tmp_path / name)
        assert "\n" not in str(err.value)


def test_duplicate_csv_columns_and_no_features_are_named(tmp_path):
    (tmp_path / "dup.csv").write_text("x,x,y\n1,2,a\n2,3,b\n")
    cfg = {"name": "t", "output_dir": str(tmp_path / "runs"), "model": {"name": "linear"},
           "data": {"train": str(tmp_path / "dup.csv"), "target": "y"}}
    with pytest.raises(DataError, match=r"names 'x' \(columns \[1, 2\]\) more than once"):
        launchml.run(cfg, stages=["prepare"])
    (tmp_path / "ids.csv").write_text("id,y\n" + "".join(f"{i},{'ab'[i % 2]}\n"
                                                         for i in range(20)))
    cfg["data"]["train"] = str(tmp_path / "ids.csv")
    with pytest.raises(DataError, match=r"no column to learn from: 'id' \(identifier: "):
        launchml.run(cfg, stages=["prepare"])


def test_only_a_parity_checked_onnx_is_deployed(image_package, tmp_path, caplog):
    """Killed between ONNX export and its parity check: deploy must not ship the file."""
    run = tmp_path / "tiny"
    shutil.copytree(image_package.parent, run)
    rd = RunDir(run)
    (rd.variants / "onnx").mkdir(parents=True, exist_ok=True)
    onnx = rd.variants / "onnx" / "model.onnx"
    onnx.write_bytes(b"\x08\x07unchecked")
    assert checked_onnx(rd) is None
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    cfg["output_dir"] = str(tmp_path)
    launchml.run(cfg, stages=["deploy"])
    meta = json.loads((rd.model / "package.json").read_text())
    assert meta["files"].get("onnx") is None and not (rd.model / "model.onnx").exists()
    assert "no passed parity check" in caplog.text
    from launchml.pipeline import _sha256

    (onnx.with_name(PARITY)).write_text(json.dumps({"sha256": _sha256(onnx)}))
    assert checked_onnx(rd) == onnx  # recorded for this very file
    onnx.write_bytes(b"\x08\x07changed after the check")
    assert checked_onnx(rd) is None


def test_orphans_are_cleaned_and_an_interrupted_stage_is_reported(image_package, tmp_path,
                                                                   caplog):
    run = tmp_path / "tiny"
    shutil.copytree(image_package.parent, run)
    orphans = [run / "model" / ".model.onnx.abc123.tmp.onnx", run / ".scored.csv.x1.tmp",
               run / "prepared" / f".train.image.npy.{os.getpid()}.q.tmp.npy"]
    for f in orphans:
        f.write_bytes(b"half")
    (run / "stages.json").write_text(json.dumps({"deploy": {"started": 1.0,
                                                            "finished": None}}))
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    cfg["output_dir"] = str(tmp_path)
    launchml.run(cfg, stages=["deploy"])
    assert not any(f.exists() for f in orphans)
    assert "stage deploy of an earlier run" in caplog.text and "does it again" in caplog.text
    assert json.loads((run / "stages.json").read_text())["deploy"]["finished"]


def test_file_system_failures_are_one_line(image_folder, tmp_path, monkeypatch):
    root = Path("/runs/x")
    for code, needle in ((errno.ENOSPC, "the disk is full"), (errno.EROFS, "read-only"),
                         (errno.EACCES, "permission denied"), (errno.ELOOP, "link loop")):
        msg = os_error_message(OSError(code, os.strerror(code), "/runs/x/f"), root)
        assert needle in msg and "Fix:" in msg and "\n" not in msg

    import launchml.data.image_folder as stage

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "f.npy"))

    monkeypatch.setattr(stage, "save_npy", full)  # the disk fills during prepare
    with pytest.raises(RunError, match="the disk is full"):
        launchml.run(_config(image_folder, tmp_path / "runs"), stages=["prepare"])


def test_a_symlink_loop_in_an_image_folder_is_reported(image_folder, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(image_folder, data)
    (data / "a" / "loop1.png").symlink_to(data / "a" / "loop2.png")
    (data / "a" / "loop2.png").symlink_to(data / "a" / "loop1.png")
    cfg = _config(data, tmp_path / "runs", data={"on_bad_file": "skip"})
    run = launchml.run(cfg, stages=["prepare"])
    skipped = run.prepared.manifest["skipped"]
    assert {Path(s["file"]).name for s in skipped} == {"loop1.png", "loop2.png"}
    cfg["data"]["on_bad_file"] = "error"
    with pytest.raises(LaunchmlError, match="loop1.png"):
        launchml.run(cfg, stages=["prepare"], overwrite=True)
