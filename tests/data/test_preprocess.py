"""Table preprocessors: fitted on train only, JSON state, identical at serving time."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from launchml import InputError
from launchml.data.columns import infer_columns
from launchml.data.preprocess import fit_table, transform_table


@pytest.fixture()
def frames():
    train = pd.DataFrame({
        "age": [30, 40, np.nan, 50, 60, 70],
        "plan": ["basic", "pro", "pro", "basic", "pro", None],
        "married": ["yes", "no", "yes", None, "no", "yes"],
        "signup": ["2024-01-01", "2024-01-31", "2024-03-01", None, "2024-02-15", "2024-01-10"],
        "label": [0, 1, 0, 1, 0, 1],
    })
    serve = pd.DataFrame({"age": [np.nan, 45], "plan": ["enterprise", "basic"],
                          "married": ["YES", np.nan], "signup": ["2024-01-02", None]})
    return train, serve


def test_fit_on_train_transform_anywhere(frames):
    train, serve = frames
    infos = infer_columns(train, target="label")
    states = fit_table(infos, train, "label")
    states = json.loads(json.dumps(states))  # it is what package.json stores
    assert set(states) == {"age", "plan", "married", "signup"}
    assert states["age"]["median"] == 50.0
    assert states["plan"]["categories"] == ["pro", "basic"]  # by training frequency
    out = transform_table(states, serve)
    assert out["age:missing"].tolist() == [1.0, 0.0]
    assert out["age"][0] == pytest.approx((50 - states["age"]["mean"]) / states["age"]["std"])
    assert out["plan"].tolist() == [0, 2]  # unseen 'enterprise' -> 0, 'basic' -> 2
    assert out["married"].tolist() == [1.0, 0.5]
    assert out["signup:month"][0] == 1 and out["signup:day"][0] == 2
    assert out["signup:days"][1] == states["signup"]["medians"]["days"]
    again = transform_table(states, train)  # train rows go through the same code
    assert again["age"].dtype == np.float32 and len(again["plan"]) == 6


def test_serving_input_errors_name_column_and_row(frames):
    train, serve = frames
    states = fit_table(infer_columns(train, target="label"), train, "label")
    with pytest.raises(InputError, match=r"missing required column\(s\) \['signup'\]"):
        transform_table(states, serve.drop(columns=["signup"]))
    bad = serve.assign(age=["12", "twelve"])
    with pytest.raises(InputError, match="column 'age' \\(number\\): row 1 holds 'twelve'"):
        transform_table(states, bad)
    with pytest.raises(InputError, match="column 'married'"):
        transform_table(states, serve.assign(married=["maybe", "no"]))
