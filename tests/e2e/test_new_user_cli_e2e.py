"""End-to-end: Ctrl-C (a real SIGINT) during ``launchml train`` in a subprocess."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image


def _folder(root: Path) -> Path:
    rng = np.random.default_rng(0)
    for cls, level in (("cats", 40), ("dogs", 200)):
        (root / cls).mkdir(parents=True)
        for i in range(12):
            arr = np.clip(rng.normal(level, 20, size=(24, 24, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(arr).save(root / cls / f"{i}.png")
    return root


@pytest.mark.slow
def test_ctrl_c_during_train_prints_the_resume_command_and_exits_130(tmp_path):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(yaml.safe_dump({
        "name": "sigint", "output_dir": str(tmp_path / "runs"),
        "data": {"train": str(_folder(tmp_path / "train")), "target_size": [24, 24],
                 "validation_split": 0.25},
        "model": {"name": "seed_cnn"},
        "train": {"epochs": 500, "batch_size": 4},  # still training when the signal comes
    }))
    proc = subprocess.Popen([sys.executable, "-m", "launchml", "train", str(cfg)],
                            stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "LAUNCHML_QUIET": "0"})
    seen = []
    for line in proc.stderr:  # "epoch 1/500" is printed after its checkpoint is saved
        seen.append(line)
        if line.startswith("epoch 1/"):
            break
    else:
        raise AssertionError("train ended before epoch 1:\n" + "".join(seen))
    proc.send_signal(signal.SIGINT)
    rest = proc.stderr.read()
    proc.wait(timeout=120)
    assert proc.returncode == 130, rest
    assert "Traceback" not in rest and "KeyboardInterrupt" not in rest and "Aborted" not in rest
    lines = rest.strip().splitlines()
    assert lines and lines[-1].startswith("interrupted:"), rest  # one line says what next
    assert lines[-1].endswith(shlex.join(["launchml", "train", str(cfg), "--resume"]))
    assert all(x.startswith("epoch ") for x in lines[:-1])  # epochs ended before the signal
    assert (tmp_path / "runs" / "sigint" / "checkpoints" / "last.ckpt").exists()
