"""The README's Python example runs as written."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


@pytest.mark.slow
def test_readme_python_examples_run(digits_dir, tmp_path, monkeypatch):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks, "README lost its Python example"
    shutil.copytree(digits_dir, tmp_path / "quickstart" / "data" / "digits")
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(compile(blocks[0], str(README), "exec"), scope)  # noqa: S102
    assert scope["run"].metrics["accuracy"] > 0.5
    assert (tmp_path / "runs" / "digits" / "model" / "package.json").exists()
    for block in blocks[1:]:  # every other Python example runs as written too
        exec(compile(block, str(README), "exec"), {})  # noqa: S102
    for block in blocks:  # and again, as a user re-running a notebook does
        exec(compile(block, str(README), "exec"), {})  # noqa: S102
    assert (tmp_path / "runs" / "cancer-2" / "model" / "package.json").exists()
