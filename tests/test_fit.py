"""``launchml.fit(data, target=...)``: a table in, a finished run out, no config file."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

import launchml

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def wine():
    """scikit-learn's wine table (178 rows, 3 classes) with a text target."""
    from sklearn.datasets import load_wine

    frame = load_wine(as_frame=True).frame
    frame["cultivar"] = np.array(["barolo", "grignolino", "barbera"])[frame.pop("target")]
    return frame


def test_fit_a_csv_file(wine, tmp_path):
    path = tmp_path / "wine list (2024).csv"
    wine.to_csv(path, index=False)
    run = launchml.fit(path, target="cultivar", model="lightgbm", test_split=0.25,
                       output_dir=str(tmp_path / "runs"))
    assert isinstance(run, launchml.Run) and list(run.seconds) == list(launchml.STAGES)
    assert run.config.name == "wine-list-2024"  # the file's stem, made folder-safe
    assert run.dir.root == tmp_path / "runs" / "wine-list-2024"
    assert run.metrics["split"] == "test" and run.metrics["accuracy"] > 0.8
    cfg = yaml.safe_load(run.dir.config.read_text())
    assert cfg["data"]["train"] == str(path) and cfg["data"]["test_split"] == 0.25
    assert cfg["model"]["name"] == "lightgbm"
    rows = run.predictor.predict_rows(wine.drop(columns=["cultivar"]).head(3).to_dict("records"))
    assert [r["label"] for r in rows] == wine["cultivar"].head(3).tolist()


def test_fit_a_dataframe_keeps_it_in_the_run(wine, tmp_path):
    out = str(tmp_path / "runs")
    run = launchml.fit(wine, target="cultivar", model={"name": "lightgbm"}, name="wine",
                       output_dir=out, seed=3)
    saved = run.dir.root / "data" / "train.parquet"
    assert saved.is_file() and run.config.data.train == str(saved)
    assert run.config.seed == 3 and run.predictor.labels == ["barbera", "barolo",
                                                             "grignolino"]
    again = launchml.fit(wine.head(120), target="cultivar", model="lightgbm", name="wine",
                         output_dir=out, overwrite=True)
    assert again.prepared is not None
    assert sum(len(s) for s in again.prepared.splits.values()) == 120


def test_fit_default_name_and_bad_options(wine, tmp_path):
    with pytest.raises(TypeError, match=r"unknown option\(s\) \['epochz'\].*Accepted: "
                                        r"name, output_dir, .*test_split"):
        launchml.fit(wine, target="cultivar", epochz=3)
    with pytest.raises(TypeError, match="did you mean \\['test_split'\\]"):
        launchml.fit(wine, target="cultivar", test_splt=0.2)
    with pytest.raises(TypeError, match="a table file path or a pandas DataFrame"):
        launchml.fit([[1, 2]], target="y")
    with pytest.raises(launchml.ConfigError, match="task"):
        launchml.fit(wine, target="cultivar", task="clustering",
                     output_dir=str(tmp_path / "runs"))
    assert not (tmp_path / "runs").exists()  # a bad value is caught before any write
    with pytest.raises(launchml.DataError, match="no target column 'label'"):
        launchml.fit(wine, target="label", output_dir=str(tmp_path / "runs"))
    # a refused run leaves nothing behind, so a retry gets the same folder name
    assert not (tmp_path / "runs" / "dataframe").exists()


def test_fit_a_text_table_and_predict_plain_strings(tmp_path):
    """The issue's example: reviews.csv with one text column, then predict on strings."""
    from tests.tables_data import reviews

    path = tmp_path / "reviews.csv"
    reviews(300).drop(columns=["stars_shown", "shop"]).to_csv(path, index=False)
    run = launchml.fit(path, target="label", model="linear", output_dir=str(tmp_path / "runs"))
    assert run.metrics["accuracy"] >= 0.85
    rows = run.predictor.predict_rows(["Great coffee, fast delivery", "Cold coffee and rude staff"])
    assert [r["label"] for r in rows] == ["positive", "negative"]
    with pytest.raises(launchml.InputError, match="plain values of its one column 'review'"):
        run.predictor.predict_rows([3.5])
