"""`launchml package docker` lists what serving the package needs, not what it happens to
import: LightGBM imports scikit-learn whenever it is installed, but a LightGBM package
serves without it, so its image leaves scikit-learn out; a linear model over raw text
keeps it (its vectorizer serves)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from tests.tables_data import reviews

import launchml
from launchml.deploy.docker import requirements, serving_imports, write_context

pytestmark = pytest.mark.usefixtures("one_thread")

SKLEARN = {"scikit-learn", "joblib", "threadpoolctl"}  # scikit-learn and what it brings

# serving in a fresh interpreter where scikit-learn cannot be imported (sys.modules entry
# None: another mechanism than the probe's), printing the predictions of the given rows
_WITHOUT_SKLEARN = r"""
import json, sys
sys.modules["sklearn"] = None
from launchml.deploy.predictor import Predictor
rows = json.loads(sys.argv[2])
print(json.dumps(Predictor.load(sys.argv[1]).predict_rows(rows)))
"""


def _names(path) -> set[str]:
    return {r.split("==")[0].lower() for r in path.read_text().splitlines()
            if r and not r.startswith("#")}


@pytest.mark.slow  # trains, probes serving three times and builds launchml's wheel
def test_a_lightgbm_image_leaves_scikit_learn_out_and_still_serves(tmp_path):
    from sklearn.datasets import load_wine

    frame = load_wine(as_frame=True).frame
    frame["cultivar"] = np.array(["barolo", "grignolino", "barbera"])[frame.pop("target")]
    frame.to_csv(tmp_path / "wine.csv", index=False)
    run = launchml.run({"name": "wine", "output_dir": str(tmp_path / "runs"),
                        "data": {"train": str(tmp_path / "wine.csv"), "target": "cultivar"},
                        "model": {"name": "lightgbm"}}, stages=["prepare", "train"])
    made = write_context(run.model_dir, tmp_path / "ctx")
    names = _names(tmp_path / "ctx" / "requirements.txt")
    assert {"lightgbm", "numpy", "fastapi", "uvicorn"} <= names
    assert not names & SKLEARN, names & SKLEARN
    assert made["left_out"] == ["scikit-learn"] and made["training_deps"] == []
    assert "# left out: scikit-learn" in (tmp_path / "ctx" / "requirements.txt").read_text()

    # the image's package predicts real rows without scikit-learn, as it does with it
    rows = frame.drop(columns="cultivar").iloc[::30].to_dict("records")
    served = subprocess.run([sys.executable, "-c", _WITHOUT_SKLEARN,
                             str(tmp_path / "ctx" / "model"), json.dumps(rows)],
                            capture_output=True, text=True, timeout=300)
    assert served.returncode == 0, served.stderr
    assert json.loads(served.stdout.splitlines()[-1]) == run.predictor.predict_rows(rows)


@pytest.mark.slow  # trains and probes serving twice
def test_a_linear_model_over_raw_text_keeps_scikit_learn(tmp_path):
    reviews(200).to_csv(tmp_path / "reviews.csv", index=False)
    run = launchml.run({"name": "reviews", "output_dir": str(tmp_path / "runs"),
                        "data": {"train": str(tmp_path / "reviews.csv"), "target": "label"},
                        "model": {"name": "linear"}}, stages=["prepare", "train"])
    found, unneeded = serving_imports(run.model_dir, "auto")
    assert "sklearn" in found["modules"] and "sklearn" not in unneeded
    assert "scikit-learn" in {r.split("==")[0] for r in requirements(found["modules"])}
