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
    raw = {p: out[f"signup:{p}"] * std + mean  # date parts are standardized on train
           for p, (mean, std) in states["signup"]["scale"].items()}
    assert raw["month"][0] == pytest.approx(1) and raw["day"][0] == pytest.approx(2)
    assert raw["days"][1] == pytest.approx(states["signup"]["medians"]["days"])
    again = transform_table(states, train)  # train rows go through the same code
    assert again["age"].dtype == np.float32 and len(again["plan"]) == 6


def test_serving_input_errors_name_column_and_row(frames):
    train, serve = frames
    states = fit_table(infer_columns(train, target="label"), train, "label")
    with pytest.raises(InputError, match=r"missing required column\(s\) \['signup'\]"):
        transform_table(states, serve.drop(columns=["signup"]))
    bad = serve.assign(age=["12", "twelve"])
    with pytest.raises(InputError, match="column 'age' \\(number\\): data row 1 holds 'twelve'"):
        transform_table(states, bad)
    with pytest.raises(InputError, match="column 'married'"):
        transform_table(states, serve.assign(married=["maybe", "no"]))


def test_category_codes_do_not_depend_on_how_pandas_typed_the_column():
    train = pd.DataFrame({"zip": [10115, 20095, 10115], "y": [0, 1, 0]})
    infos = infer_columns(train, target="y", overrides={"zip": "category"})
    states = fit_table(infos, train, "y")
    later = pd.DataFrame({"zip": [10115.0, np.nan]})  # a blank makes the column float
    assert transform_table(states, later)["zip"].tolist() == [1, 0]
    assert transform_table(states, pd.DataFrame({"zip": ["20095"]}))["zip"].tolist() == [2]


def test_dates_with_time_zones_and_without():
    train = pd.DataFrame({"at": ["2021-03-27 10:00+01:00", "2021-03-29 10:00+02:00",
                                 "2021-04-01 09:00+02:00"], "y": [0, 1, 0]})
    infos = infer_columns(train, target="y")
    assert {i.name: i.type for i in infos}["at"] == "datetime"
    states = fit_table(infos, train, "y")
    out = transform_table(states, pd.DataFrame({"at": ["2021-04-02 10:00"]}))
    (month_mean, month_std), (days_mean, days_std) = (states["at"]["scale"][p]
                                                      for p in ("month", "days"))
    assert out["at:month"][0] * month_std + month_mean == pytest.approx(4.0)
    assert out["at:days"][0] * days_std + days_mean > 0


def test_decimal_commas_are_not_read_as_thousands():
    from launchml.data.columns import parse_numbers

    assert parse_numbers(pd.Series(["1,234", "1,5", "2.5"])).tolist()[0] == 1234
    assert np.isnan(parse_numbers(pd.Series(["1,5"]))[0])
