"""Group and time splits of a training table, on bundled real data with added columns."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from launchml import ConfigError, DataError, console
from launchml.data.columns import category_key
from launchml.data.image_folder import stratified_split
from launchml.data.table_adapter import TableConfig, group_split, prepare_table, time_split
from launchml.runs import RunDir


@pytest.fixture(scope="module")
def breast_cancer() -> pd.DataFrame:
    """569 real rows; a synthetic patient id (1 to 6 rows each) and a visit date with ties."""
    from sklearn.datasets import load_breast_cancer

    frame = load_breast_cancer(as_frame=True).frame
    frame["diagnosis"] = np.where(frame.pop("target") == 1, "benign", "malignant")
    rng = np.random.default_rng(1)
    frame["patient"] = [f"P{i:03d}" for i in np.repeat(np.arange(200), 6)[:len(frame)]]
    frame["patient"] = rng.permutation(frame["patient"].to_numpy())
    days = rng.integers(0, 120, len(frame))  # ~5 rows per day: many ties
    frame["visit"] = (pd.Timestamp("2023-01-01") + pd.to_timedelta(days, unit="D")).strftime(
        "%Y-%m-%d")
    return frame


def _prepare(tmp_path, df: pd.DataFrame, seed: int = 0, **cfg):
    path = tmp_path / "table.csv"
    df.to_csv(path, index=False)
    cfg = TableConfig(train=str(path), **{"target": "diagnosis", **cfg})
    return prepare_table(cfg, RunDir(tmp_path / "run"), seed)


def _rows(prepared, name: str) -> list[int]:
    return [int(r) for r in prepared.splits[name].ids]


def test_group_split_keeps_every_group_in_one_split(tmp_path, breast_cancer, monkeypatch):
    said: list[str] = []
    monkeypatch.setattr(console, "info", said.append)
    p = _prepare(tmp_path, breast_cancer, group_column="patient", test_split=0.1)
    groups = {name: set(breast_cancer.loc[_rows(p, name), "patient"])
              for name in ("train", "validation", "test")}
    assert not groups["train"] & groups["validation"]
    assert not groups["train"] & groups["test"]
    assert not groups["validation"] & groups["test"]
    assert sum(len(g) for g in groups.values()) == breast_cancer["patient"].nunique()
    n_groups = breast_cancer["patient"].nunique()
    assert len(groups["test"]) == round(0.1 * n_groups)
    assert len(groups["validation"]) == round(0.2 * (n_groups - len(groups["test"])))
    assert sorted(sum((_rows(p, n) for n in groups), [])) == list(range(len(breast_cancer)))
    assert "patient" not in p.splits["train"].arrays  # a group id is not a feature
    assert "visit:year" in p.splits["train"].arrays
    report = next(s for s in said if "split by group 'patient'" in s)
    assert f"validation {len(groups['validation'])} groups" in report
    again = _prepare(tmp_path, breast_cancer, group_column="patient", test_split=0.1)
    assert _rows(again, "validation") == _rows(p, "validation")  # seeded
    other = _prepare(tmp_path, breast_cancer, seed=1, group_column="patient", test_split=0.1)
    assert _rows(other, "validation") != _rows(p, "validation")


def test_time_split_puts_the_latest_rows_last(tmp_path, breast_cancer, monkeypatch):
    said: list[str] = []
    monkeypatch.setattr(console, "info", said.append)
    p = _prepare(tmp_path, breast_cancer, time_column="visit", test_split=0.1)
    when = pd.to_datetime(breast_cancer["visit"])
    train, val, test = (when[_rows(p, n)] for n in ("train", "validation", "test"))
    assert val.min() >= train.max() and test.min() >= val.max()
    assert val.min() > train.max() and test.min() > val.max()  # ties stay together
    n = len(breast_cancer)
    assert abs(len(test) - 0.1 * n) <= 6 and abs(len(val) - 0.2 * (n - len(test))) <= 6
    report = next(s for s in said if "split by time 'visit'" in s)
    assert f"train 2023-01-01 00:00:00 to {train.max()}" in report


def test_time_split_on_numbers_and_datetimes():
    years = np.array([2001, 1999, 2003, 2003, 2000, 2002, 2003, 1998, 2001, 2002], dtype=float)
    keep, take = time_split(years, 0.3)  # 3 rows of 2003: exactly the latest 30 %
    assert sorted(years[take]) == [2003, 2003, 2003] and max(years[keep]) == 2002
    keep, take = time_split(years, 0.2)  # the cut cannot split the 2003 tie: 3 rows (not 0)
    assert sorted(years[take]) == [2003, 2003, 2003]
    keep, take = time_split(years, 0.5)  # 2002 and 2003 (5 rows)
    assert min(years[take]) == 2002 and max(years[keep]) == 2001 and len(take) == 5
    stamps = pd.to_datetime(["2024-03-01", "2024-01-01", "2024-02-01"]).to_numpy()
    assert time_split(stamps, 0.34) == ([1, 2], [0])
    with pytest.raises(DataError, match="same time"):
        time_split(np.ones(5), 0.2)


def test_group_split_counts_groups_and_is_seeded():
    groups = ["a"] * 10 + ["b", "c", "d", "e"]
    keep, take = group_split(groups, 0.4, np.random.default_rng(3))
    taken = {groups[i] for i in take}
    assert len(taken) == 2 and not taken & {groups[i] for i in keep}
    assert (keep, take) == group_split(groups, 0.4, np.random.default_rng(3))
    with pytest.raises(DataError, match="two or more"):
        group_split(["x", "x"], 0.5, np.random.default_rng(0))


def test_default_split_is_still_stratified(tmp_path, breast_cancer):
    p = _prepare(tmp_path, breast_cancer, seed=7, test_split=0.1)
    rng = np.random.default_rng(7)
    labels = breast_cancer["diagnosis"].map(category_key).tolist()
    keep, test = stratified_split(labels, 0.1, rng)
    keep2, val = stratified_split([labels[i] for i in keep], 0.2, rng)
    assert _rows(p, "test") == test
    assert _rows(p, "validation") == [keep[i] for i in val]


def test_split_column_errors(tmp_path, breast_cancer):
    with pytest.raises(ConfigError, match="both set"):
        _prepare(tmp_path, breast_cancer, group_column="patient", time_column="visit")
    with pytest.raises(DataError, match=r"no column 'patients'. Columns: \[.*'patient'"):
        _prepare(tmp_path, breast_cancer, group_column="patients")
    with pytest.raises(DataError, match="data.time_column: the training table has no column"):
        _prepare(tmp_path, breast_cancer, time_column="date")
    with pytest.raises(ConfigError, match="is the target"):
        _prepare(tmp_path, breast_cancer, group_column="diagnosis")
    bad = breast_cancer.assign(visit=breast_cancer["visit"].where(
        breast_cancer.index != 4, "soon"))
    with pytest.raises(DataError, match="'soon' at data row 5"):
        _prepare(tmp_path, bad, time_column="visit")
    gaps = breast_cancer.assign(patient=breast_cancer["patient"].where(
        breast_cancer.index != 2, None))
    with pytest.raises(DataError, match="empty in 1 rows, first at data row 3"):
        _prepare(tmp_path, gaps, group_column="patient")


def test_split_column_unused_with_separate_files(tmp_path, breast_cancer, monkeypatch):
    said: list[str] = []
    monkeypatch.setattr(console, "info", said.append)
    val = tmp_path / "val.csv"
    breast_cancer.iloc[:50].to_csv(val, index=False)
    p = _prepare(tmp_path, breast_cancer.iloc[50:], time_column="visit", validation=str(val),
                 test_split=0.0)
    assert len(p.splits["validation"]) == 50 and len(p.splits["train"]) == len(breast_cancer) - 50
    assert any("data.time_column unused" in s for s in said)
