"""What a new user hit: decimal-comma CSVs, dates read two ways in one column, shuffled
row ids used as numbers, unscaled date parts, and misspelled fields at serving."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from launchml import DataError, InputError
from launchml.data.columns import infer_columns, parse_dates
from launchml.data.preprocess import fit_table, transform_table
from launchml.data.tables import iter_table, read_table


def _weather(n: int = 120, seed: int = 0) -> pd.DataFrame:
    """A station log as a European spreadsheet exports it, with R's shuffled row names."""
    rng = np.random.default_rng(seed)
    humidity = rng.uniform(30, 100, n).round(5)
    return pd.DataFrame({
        "rownames": rng.permutation(n) + 1,
        "date": pd.date_range("2023-01-01", periods=n, freq="D").strftime("%d/%m/%Y"),
        "temp": (rng.normal(15, 8, n)).round(5),  # e.g. 23,83333
        "humidity": humidity,
        "station": rng.choice(["Nord", "Süd", "Ost"], n),
        "rain": np.where(humidity + rng.normal(0, 10, n) > 70, "ja", "nein"),
    })


def _types(df: pd.DataFrame, **kw) -> dict[str, str]:
    return {c.name: c.type for c in infer_columns(df, **kw)}


# 1. decimal commas ----------------------------------------------------------------------

def test_decimal_comma_csv_numbers_are_numbers(tmp_path):
    frame = _weather()
    path = tmp_path / "wetter.csv"
    frame.to_csv(path, sep=";", decimal=",", index=False)
    first_row = path.read_text().splitlines()[1]  # e.g. 84;01/01/2023;23,83333;...
    assert first_row.count(";") == 5 and first_row.count(",") == 2
    df, info = read_table(path)
    assert info["delimiter"] == ";" and info["decimal"] == ","
    assert "temp" in info["decimal_reason"] or "humidity" in info["decimal_reason"]
    np.testing.assert_allclose(df["temp"], frame["temp"])
    np.testing.assert_allclose(df["humidity"], frame["humidity"])
    types = _types(df, target="rain")
    assert types["temp"] == "number" and types["humidity"] == "number"
    assert types["station"] == "category"
    # prediction reads files in chunks: the same numbers, chunk by chunk
    chunks = list(iter_table(path, chunk_rows=50))
    np.testing.assert_allclose(pd.concat(chunks)["temp"], frame["temp"])


def test_decimal_setting_and_ambiguous_columns_are_reported(tmp_path):
    frame = _weather(40)
    path = tmp_path / "w.csv"
    frame.to_csv(path, sep=";", decimal=",", index=False)
    # set to '.', the comma numbers stay text, and the reason says what they are
    df, info = read_table(path, decimal=".")
    assert info["decimal"] == "." and info["decimal_reason"] == "set in the config"
    temp = next(c for c in infer_columns(df) if c.name == "temp")
    assert temp.type == "identifier" and "decimal comma" in temp.reason  # unique texts
    assert "data.decimal: ','" in temp.reason
    with pytest.raises(ValueError, match="'.' or ','"):
        read_table(path, decimal=";")
    # '1,500' in every row: 1.5 or 1500? read as a decimal comma (a ';' file), and said so
    amb = tmp_path / "amb.csv"
    pd.DataFrame({"weight": ["1,500", "2,250", "0,750", "3,000"],
                  "price": ["12,5", "8,25", "3", "4,75"]}).to_csv(amb, sep=";", index=False)
    df, info = read_table(amb)
    assert df["price"].tolist() == [12.5, 8.25, 3.0, 4.75]
    assert df["weight"].tolist() == [1.5, 2.25, 0.75, 3.0]
    only = tmp_path / "only.csv"
    pd.DataFrame({"weight": ["1,500", "2,250", "0,750", "3,000"],
                  "kind": ["a", "b", "a", "b"]}).to_csv(only, sep=";", index=False)
    df, info = read_table(only)
    assert df["weight"].tolist() == [1.5, 2.25, 0.75, 3.0]
    weight = next(c for c in infer_columns(df) if c.name == "weight")
    assert weight.type == "number" and "ambiguous" in weight.reason
    assert "thousands" in weight.reason and "data.decimal: '.'" in weight.reason
    # a file with decimal commas whose column has '.' only in thousands-like places
    dots = tmp_path / "dots.csv"
    dots.write_text("preis;einwohner\n1.234,5;1.500\n999,25;2.250\n12,5;3.000\n")
    df, info = read_table(dots)
    assert df["preis"].tolist() == [1234.5, 999.25, 12.5] and info["decimal"] == ","
    people = next(c for c in infer_columns(df) if c.name == "einwohner")
    assert people.type == "number" and "'1.500' = 1500" in people.reason
    # '1.5' and '2,5' in one column: not a number either way, and not silently a category
    mixed = pd.DataFrame({"v": ["1.5", "2,5", "3.25", "4,75"]})
    info = infer_columns(mixed)[0]
    assert info.type == "category" and "mixed decimal separators" in info.reason


def test_inspect_shows_and_takes_decimal(tmp_path):
    from typer.testing import CliRunner

    from launchml.cli.main import app

    path = tmp_path / "wetter.csv"
    _weather(60).to_csv(path, sep=";", decimal=",", index=False)
    out = tmp_path / "report.json"
    result = CliRunner().invoke(app, ["inspect", str(path), "--target", "rain",
                                      "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert "decimal ','" in result.output
    report = json.loads(out.read_text())
    assert report["source"]["decimal"] == ","
    columns = {c["name"]: c["type"] for c in report["columns"]}
    assert columns["temp"] == columns["humidity"] == "number"
    result = CliRunner().invoke(app, ["inspect", str(path), "--decimal", ".", "--json",
                                      str(out)])
    assert result.exit_code == 0, result.output
    columns = {c["name"]: c for c in json.loads(out.read_text())["columns"]}
    assert columns["temp"]["type"] == "identifier"  # a different text in every row...
    assert "decimal comma" in columns["temp"]["reason"]  # ...and the reason says what it is


# 2. dates ---------------------------------------------------------------------------------

def test_one_date_order_per_column_from_all_values():
    col = pd.Series(["09/06/2023", "30/07/2023", "01/02/2023", None])
    got = parse_dates(col)
    assert got.iloc[0] == pd.Timestamp("2023-06-09")  # not September: 30/07 makes it day first
    assert got.iloc[1] == pd.Timestamp("2023-07-30") and got.iloc[2] == pd.Timestamp("2023-02-01")
    info = infer_columns(pd.DataFrame({"d": col}))[0]
    assert info.type == "datetime" and "day first" in info.reason and "'30/07/2023'" in info.reason
    # no part above 12 anywhere: month first, as pandas reads it, and the reason says so
    ambiguous = pd.DataFrame({"d": ["09/06/2023", "03/04/2023", "12/01/2023"]})
    info = infer_columns(ambiguous)[0]
    assert info.type == "datetime" and "ambiguous" in info.reason
    assert parse_dates(ambiguous["d"]).iloc[0] == pd.Timestamp("2023-09-06")


def test_bad_or_mixed_dates_are_errors_naming_row_and_value():
    days = pd.date_range("2023-03-01", periods=30, freq="D").strftime("%Y-%m-%d").tolist()
    bad = pd.DataFrame({"visit": days[:12] + ["2023-02-30"] + days[13:]})
    with pytest.raises(DataError, match=r"column 'visit'.*data row 13 holds '2023-02-30'"
                                        r".*not a date.*Fix"):
        infer_columns(bad)
    mixed = pd.DataFrame({"visit": ["01/02/2023"] * 5 + ["30/07/2023", "07/30/2023"]})
    with pytest.raises(DataError, match=r"column 'visit' mixes date orders: data row 6 holds "
                                        r"'30/07/2023'.*data row 7 holds '07/30/2023'.*Fix"):
        infer_columns(mixed)
    # set as a category by the config: the user's choice, no error
    assert _types(mixed, overrides={"visit": "category"}) == {"visit": "category"}
    # set as dates by the config: a bad one fails when fitted, not filled in
    infos = infer_columns(bad, overrides={"visit": "datetime"})
    with pytest.raises(DataError, match=r"column 'visit' \(datetime\): data row 12 holds "
                                        r"'2023-02-30', which is not a date.*Fix"):
        fit_table(infos, bad, "none")


def _fit(train: pd.DataFrame, target: str) -> dict:
    states = fit_table(infer_columns(train, target=target), train, target)
    return json.loads(json.dumps(states))  # as package.json stores them


def test_datetime_state_records_the_order_for_serving():
    train = pd.DataFrame({"seen": ["09/06/2023", "30/07/2023", "15/08/2023", "02/01/2023"],
                          "y": [0, 1, 0, 1]})
    states = _fit(train, "y")
    assert states["seen"]["dayfirst"] is True and states["seen"]["format"] == "%d/%m/%Y"
    # one record alone is ambiguous; it is read the way the training column was
    out = transform_table(states, pd.DataFrame({"seen": ["09/06/2023"]}))
    mean, std = states["seen"]["scale"]["month"]
    assert out["seen:month"][0] * std + mean == pytest.approx(6)


def test_serving_rejects_bare_numbers_for_dates_and_infinite_numbers():
    train = pd.DataFrame({"signup": ["2024-01-01", "2024-01-31", "2024-03-01", "2024-02-15"],
                          "income": [30_000.0, 42_000.5, 51_000.0, 38_250.0],
                          "y": [0, 1, 0, 1]})
    states = _fit(train, "y")
    ok = {"signup": "2024-02-01", "income": 40_000.0}
    assert transform_table(states, pd.DataFrame([ok]))["income"].shape == (1,)
    for value in (20240301, "20240301"):
        with pytest.raises(InputError, match=r"column 'signup' \(datetime\): data row 0 holds "
                                             r".*20240301.*bare number"):
            transform_table(states, pd.DataFrame([{**ok, "signup": value}]))
    with pytest.raises(InputError, match=r"column 'signup' \(datetime\).*'soon'.*not a date"):
        transform_table(states, pd.DataFrame([{**ok, "signup": "soon"}]))
    for value in ("1e999", "inf", "-Infinity", "nan", float("inf"), json.loads("1e999")):
        with pytest.raises(InputError, match=r"column 'income' \(number\): data row 0"):
            transform_table(states, pd.DataFrame([{**ok, "income": value}]))
    # a training table with 'inf' in a number column fails at fit, not silently
    with pytest.raises(InputError, match="column 'income'.*not a finite number"):
        _fit(train.assign(income=[1.0, np.inf, 2.0, 3.0]), "y")


# 3. identifiers ----------------------------------------------------------------------------

def test_shuffled_row_ids_are_dropped_real_numbers_kept(tmp_path):
    rng = np.random.default_rng(1)
    n = 60
    frame = pd.DataFrame({
        "rownames": rng.permutation(n) + 1,  # R's row names after a shuffle
        "case": rng.permutation(n) + 1001,  # a shuffled run 1001..1060: maybe a rank
        "row": np.arange(n) + 1,  # a counter in file order: a row id
        "visits": rng.permutation(np.arange(0, 3 * n, 3))[:n],  # unique, but steps of 3
        "weight": rng.normal(70, 10, n).round(3),  # unique floats: a measurement
        "y": rng.choice(["a", "b"], n),
    })
    infos = {c.name: c for c in infer_columns(frame, target="y")}
    assert infos["rownames"].type == "identifier" and "rownames" in infos["rownames"].reason
    # without an id-like name a shuffled run stays a feature (a rank, a floor number)
    assert infos["case"].type == "number"
    assert infos["row"].type == "identifier"
    assert infos["visits"].type == "number" and infos["weight"].type == "number"
    # pandas' own index written with the rows (header '' -> 'Unnamed: 0')
    path = tmp_path / "shuffled.csv"
    frame.drop(columns=["rownames", "row"]).sample(frac=1, random_state=0).to_csv(path)
    df, _ = read_table(path)
    assert _types(df, target="y")["Unnamed: 0"] == "identifier"
    # a few rows: a unique count is no id unless it is named like one
    tiny = pd.DataFrame({"rooms": [3, 1, 2, 5, 4], "id": [5, 3, 1, 2, 4], "y": [0, 1, 0, 1, 0]})
    assert _types(tiny, target="y") == {"rooms": "number", "id": "identifier", "y": "number"}


# 4. scaled date parts ----------------------------------------------------------------------

def test_date_parts_are_scaled_and_old_states_still_load():
    n = 200
    rng = np.random.default_rng(2)
    train = pd.DataFrame({
        "opened": (pd.Timestamp("2021-01-01") + pd.to_timedelta(rng.integers(0, 900, n), "D")
                   + pd.to_timedelta(rng.integers(0, 24, n), "h")).strftime("%Y-%m-%d %H:00"),
        "y": rng.integers(0, 2, n),
    })
    states = _fit(train, "y")
    out = transform_table(states, train)
    parts = [k for k in out if k.startswith("opened:")]
    assert sorted(parts) == sorted(f"opened:{p}" for p in
                                   ("year", "month", "day", "weekday", "hour", "days"))
    for key in parts:  # what the mlp sees: mean 0, std 1 on train, like numbers
        assert abs(float(out[key].mean())) < 1e-3 and float(out[key].std()) == pytest.approx(1,
                                                                                          abs=1e-3)
    # a package saved before: no scale (nor order) in the state -> the raw parts, as then
    old = {k: v for k, v in states["opened"].items() if k not in ("scale", "dayfirst", "format")}
    raw = transform_table({"opened": old}, train)
    assert set(raw["opened:year"].tolist()) <= {2021.0, 2022.0, 2023.0}
    assert raw["opened:days"].min() == 0


# 5. misspelled fields ----------------------------------------------------------------------

def test_misspelled_field_gets_did_you_mean():
    train = pd.DataFrame({"income": [30.0, 40.0, 50.0, 60.0], "plan": ["a", "b", "a", "b"],
                          "y": [0, 1, 0, 1]})
    states = _fit(train, "y")
    with pytest.raises(InputError, match=r"missing required column\(s\) \['income'\] "
                                         r"\(the input has 'incom': did you mean 'income'\?\)"):
        transform_table(states, pd.DataFrame([{"incom": 45.0, "plan": "a"}]))
    with pytest.raises(InputError) as e:  # nothing close: no guess
        transform_table(states, pd.DataFrame([{"salary": 45.0, "plan": "a"}]))
    assert "did you mean" not in str(e.value)


# all of it, through a run, a file prediction and the server --------------------------------

@pytest.mark.usefixtures("one_thread")
def test_decimal_comma_day_first_table_end_to_end(tmp_path):
    import launchml

    frame = _weather(160)
    path = tmp_path / "wetter.csv"
    frame.to_csv(path, sep=";", decimal=",", index=False)
    run = launchml.run({"name": "wetter", "output_dir": str(tmp_path / "runs"),
                        "data": {"train": str(path), "target": "rain"},
                        "model": {"name": "lightgbm"}})
    pre = run.predictor.package.preprocessing
    assert "rownames" not in pre
    assert pre["temp"]["type"] == pre["humidity"]["type"] == "number"
    assert pre["date"]["type"] == "datetime" and pre["date"]["dayfirst"] is True
    assert run.metrics["accuracy"] > 0.7
    assert len(run.predictor.predict_rows(path)) == 160  # the file again, read in chunks

    from fastapi.testclient import TestClient

    from launchml.deploy.server import create_app

    client = TestClient(create_app(run.predictor))
    record = {"date": "30/07/2023", "temp": 21.5, "humidity": 80.0, "station": "Nord"}
    r = client.post("/v1/predict", json={"records": [record]})
    assert r.status_code == 200, r.text
    for bad, field in (({"date": 20240301}, "date"), ({"temp": "1e999"}, "temp"),
                       ({"temp": "inf"}, "temp")):
        r = client.post("/v1/predict", json={"records": [{**record, **bad}]})
        assert r.status_code == 422 and f"column '{field}'" in r.json()["error"], r.text
    misspelled = {k if k != "humidity" else "humidty": v for k, v in record.items()}
    r = client.post("/v1/predict", json={"records": [misspelled]})
    assert r.status_code == 422 and "did you mean 'humidity'?" in r.json()["error"]
