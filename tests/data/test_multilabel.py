"""Multilabel tables: several 0/1 columns, or one column of label sets."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from launchml import ConfigError, DataError
from launchml.data.table_adapter import TableConfig, prepare_table
from launchml.runs import RunDir

LABELS = ["large", "malignant", "textured"]


@pytest.fixture(scope="module")
def tumours() -> pd.DataFrame:
    """Breast-cancer measurements with three overlapping labels, written three ways."""
    from sklearn.datasets import load_breast_cancer

    frame = load_breast_cancer(as_frame=True).frame
    flags = pd.DataFrame({
        "large": frame["mean radius"] > frame["mean radius"].median(),
        "malignant": frame.pop("target") == 0,
        "textured": frame["mean texture"] > 21,
    })
    frame["large"] = flags["large"].astype(int)  # 0/1
    frame["malignant"] = np.where(flags["malignant"], "yes", "no")  # yes/no
    frame["textured"] = flags["textured"]  # true/false
    frame["tags"] = ["|".join(lab for lab in LABELS[::-1] if row[lab])
                     for _, row in flags.iterrows()]  # 'textured|malignant', '' for none
    return frame


def _prepare(tmp_path, df: pd.DataFrame, **cfg):
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "table.csv"
    df.to_csv(path, index=False)
    return prepare_table(TableConfig(train=str(path), **cfg), RunDir(tmp_path / "run"), 0)


def test_label_columns_become_a_multi_hot_target(tmp_path, tumours):
    df = tumours.drop(columns=["tags"])
    p = _prepare(tmp_path, df, target=LABELS, test_split=0.1)
    assert p.schema.task == "multilabel" and p.schema.labels == LABELS
    target = next(c for c in p.schema.columns if c.name == p.schema.target)
    assert target.shape == [3] and target.dtype == "float32"
    for name in ("train", "validation", "test"):
        y = p.splits[name].arrays[p.schema.target]
        rows = df.loc[[int(r) for r in p.splits[name].ids]]
        expected = np.stack([rows["large"] == 1, rows["malignant"] == "yes",
                             rows["textured"]], axis=1)
        assert y.dtype == np.float32 and y.shape == (len(rows), 3)
        np.testing.assert_array_equal(y, expected.astype(np.float32))
    features = set(p.splits["train"].arrays) - {p.schema.target}
    assert not features & set(LABELS) and "mean radius" in features
    assert len(p.splits["validation"]) == round(0.2 * (len(df) - len(p.splits["test"])))


def test_label_sets_in_one_column_match_the_label_columns(tmp_path, tumours):
    sets = _prepare(tmp_path / "a", tumours.drop(columns=LABELS), target="tags",
                    task="multilabel")
    cols = _prepare(tmp_path / "b", tumours.drop(columns=["tags"]), target=LABELS)
    assert sets.schema.labels == sorted(LABELS) == cols.schema.labels
    for name in ("train", "validation"):
        assert sets.splits[name].ids == cols.splits[name].ids  # the same seeded split
        np.testing.assert_array_equal(sets.splits[name].arrays["__target__"],
                                      cols.splits[name].arrays["__target__"])
    assert (sets.splits["train"].arrays["__target__"].sum(axis=1) == 0).any()  # '' = no labels


def test_other_separator(tmp_path, tumours):
    df = tumours.drop(columns=LABELS).assign(tags=tumours["tags"].str.replace("|", " ; "))
    p = _prepare(tmp_path, df, target="tags", task="multilabel", label_separator=";")
    assert p.schema.labels == sorted(LABELS)


def test_each_label_needs_positives_and_negatives(tmp_path, tumours):
    df = tumours.drop(columns=["tags"]).assign(large=1)
    with pytest.raises(DataError, match=r"'large' \(every row has it\)"):
        _prepare(tmp_path, df, target=LABELS)
    df = tumours.drop(columns=["tags"]).assign(textured="false")
    with pytest.raises(DataError, match=r"'textured' \(no row has it\)"):
        _prepare(tmp_path, df, target=LABELS)


def test_multilabel_errors(tmp_path, tumours):
    df = tumours.drop(columns=["tags"])
    bad = df.assign(malignant=df["malignant"].where(df.index != 9, "maybe"))
    with pytest.raises(DataError, match="target column 'malignant' holds 'maybe' at data row 10"):
        _prepare(tmp_path, bad, target=LABELS)
    with pytest.raises(DataError, match=r"no target columns \['big', 'tiny'\]"):
        _prepare(tmp_path, df, target=["big", "large", "tiny"])
    with pytest.raises(ConfigError, match="data.task: multilabel"):
        _prepare(tmp_path, df, target=LABELS, task="binary")
    with pytest.raises(ValueError, match="columns named twice"):
        TableConfig(train="x.csv", target=["large", "large"])
    val = tmp_path / "val.csv"
    tumours.iloc[:20].assign(tags="large|huge").to_csv(val, index=False)
    with pytest.raises(DataError, match=r"data.validation: labels \['huge'\] never occur"):
        _prepare(tmp_path, tumours.iloc[20:], target="tags", task="multilabel",
                 validation=str(val))
