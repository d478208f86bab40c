"""DP-SGD as a plugin of the training loop: real data (scikit-learn's wine as a table,
digits as images), the package's privacy record, per-epoch epsilon, refusals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import launchml
from launchml.config import RunConfig
from launchml.errors import ConfigError


@pytest.fixture(scope="module")
def wine_csv(tmp_path_factory) -> Path:
    from sklearn.datasets import load_wine

    frame = load_wine(as_frame=True).frame
    frame["target"] = frame["target"].map({0: "barolo", 1: "grignolino", 2: "barbera"})
    path = tmp_path_factory.mktemp("wine") / "wine.csv"
    frame.to_csv(path, index=False)
    return path


def table_config(csv: Path, out: Path, dp: dict, **extra) -> dict:
    return {"name": "wine", "output_dir": str(out), "seed": 0,
            "data": {"train": str(csv), "target": "target"},
            "train": {"epochs": 3, "batch_size": 32, "learning_rate": 0.01},
            "privacy": {"dp": dp}, "optimize": {"onnx": False, "int8": False}, **extra}


def test_dp_table_records_epsilon_per_epoch_and_in_the_package(wine_csv, tmp_path):
    run = launchml.run(table_config(wine_csv, tmp_path, {"target_epsilon": 3.0}),
                       stages=["prepare", "train", "evaluate", "deploy"])
    meta = json.loads((run.dir.model / "package.json").read_text())
    dp = meta["privacy"]["dp"]
    assert [m["family"] for m in meta["model"]["members"]] == ["mlp"]  # not trees/linear
    assert 2.5 < dp["epsilon"] <= 3.0 + 0.05 and dp["target_epsilon"] == 3.0
    assert dp["accountant"] == "prv" and dp["max_grad_norm"] == 1.0 and dp["epochs"] == 3
    assert dp["noise_multiplier"] > 0.3 and 0 < dp["delta"] < 1 / dp["rows"]
    eps = [e["epsilon"] for e in dp["per_epoch"]]
    assert eps == sorted(eps) and len(eps) == 3  # spent epoch by epoch
    # per epoch in the family's events, and the record in the run's events.jsonl
    rows = [json.loads(line) for line in
            (run.dir.root / "families" / "mlp" / "events.jsonl").read_text().splitlines()]
    assert [r["epsilon"] for r in rows if r["event"] == "epoch"] == eps
    events = [json.loads(line) for line in run.dir.events.read_text().splitlines()]
    assert any(e["event"] == "privacy" and e["dp"]["epsilon"] == dp["epsilon"]
               for e in events)
    assert run.metrics["accuracy"] > 0.5  # it learned under the noise (3 classes)
    launchml.Predictor.load(run.dir.model)  # an ordinary package


def test_the_noise_is_secret_unless_asked_to_follow_the_seed(wine_csv, tmp_path):
    from safetensors.numpy import load_file

    def weights(name: str, **dp) -> dict:
        cfg = table_config(wine_csv, tmp_path / name, {"noise_multiplier": 1.0, **dp},
                           model={"name": "mlp"})
        cfg["train"]["epochs"] = 1
        run = launchml.run(cfg, stages=["prepare", "train"])
        meta = json.loads((run.dir.model / "package.json").read_text())
        assert meta["privacy"]["dp"]["randomness"] == dp.get("randomness", "secret")
        return load_file(run.dir.model / "weights.safetensors")

    def same(a: dict, b: dict) -> bool:
        return all((a[k] == b[k]).all() for k in a)

    # the same config and seed twice: the OS's noise differs, the seed's repeats itself
    assert not same(weights("s1"), weights("s2"))
    assert same(weights("r1", randomness="seed"), weights("r2", randomness="seed"))


def test_noise_multiplier_and_rdp(wine_csv, tmp_path):
    run = launchml.run(table_config(wine_csv, tmp_path, {"noise_multiplier": 1.0,
                                                        "accountant": "rdp", "delta": 1e-4}),
                       stages=["prepare", "train"])
    dp = json.loads((run.dir.model / "package.json").read_text())["privacy"]["dp"]
    assert dp["noise_multiplier"] == 1.0 and dp["accountant"] == "rdp"
    assert dp["delta"] == 1e-4 and dp["target_epsilon"] is None and dp["epsilon"] > 0


def test_unreachable_epsilon_names_the_one_that_can_be_reached(wine_csv, tmp_path):
    with pytest.raises(ConfigError, match=r"cannot be reached.*smallest epsilon any noise "
                                          r"reaches is [0-9.e-]+\. Fix: target_epsilon >="):
        launchml.run(table_config(wine_csv, tmp_path, {"target_epsilon": 0.001}),
                     stages=["prepare", "train"])


def test_trees_and_linear_say_they_are_not_private(wine_csv, tmp_path):
    for name in ("lightgbm", "linear"):
        with pytest.raises(ConfigError, match=f"{name} is not trained privately"):
            RunConfig.load(table_config(wine_csv, tmp_path, {"target_epsilon": 3.0},
                                        model={"name": name}))
    cfg = RunConfig.load(table_config(wine_csv, tmp_path, {"target_epsilon": 3.0}))
    assert cfg.model.families == ["mlp", "seed_cnn"] and cfg.model.refit is False
    with pytest.raises(ConfigError, match="spend the privacy budget twice"):
        RunConfig.load(table_config(wine_csv, tmp_path, {"target_epsilon": 3.0},
                                    model={"refit": True}))
    with pytest.raises(ConfigError, match="exactly one of target_epsilon"):
        RunConfig.load(table_config(wine_csv, tmp_path, {"max_grad_norm": 1.0}))


def test_poisson_batches_are_split_to_the_physical_limit():
    import torch

    from launchml.privacy.config import DPConfig
    from launchml.privacy.dp import DPHook

    net = torch.nn.Linear(3, 2)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    hook = DPHook(DPConfig(noise_multiplier=1.0, max_physical_batch_size=8), epochs=1)
    module, dpopt = hook.attach(net, opt, n=400, batch_size=40, seed=0)
    sizes, logical, size = [], [], 0
    x, y = torch.randn(400, 3), torch.randint(0, 2, (400,))
    for idx in hook.batches(1):
        sizes.append(len(idx))
        if len(idx):
            torch.nn.functional.cross_entropy(module(x[idx]), y[idx]).backward()
        dpopt.step()
        dpopt.zero_grad()
        size += len(idx)
        if hook.stepped():
            logical.append(size)
            size = 0
    assert max(sizes) <= 8  # bounded memory: never more rows at once
    assert len(logical) == 10 == hook.steps  # one optimizer step per logical batch
    assert len(set(logical)) > 1 and 300 < sum(logical) < 500  # Poisson: sizes vary
    assert hook.epoch_end(1)["epsilon"] > 0


def test_batchnorm_is_replaced_with_a_note(capsys):
    import torch.nn as nn

    from launchml.privacy.config import DPConfig
    from launchml.privacy.dp import DPHook

    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(inplace=True))
    hook = DPHook(DPConfig(target_epsilon=3.0), epochs=1)
    with launchml.console.verbosity(1):
        fixed = hook.setup(model)
    assert isinstance(fixed[1], nn.GroupNorm) and fixed[2].inplace is False
    assert hook.replaced == ["1 (BatchNorm2d -> GroupNorm)"]
    assert "BatchNorm2d -> GroupNorm" in capsys.readouterr().err


@pytest.mark.slow
def test_dp_image_network_on_digits(digits_dir, tmp_path):
    from tests.conftest import digits_config

    cfg = digits_config(digits_dir, tmp_path, epochs=2, batch_size=64)
    cfg["data"]["target_size"] = [22, 22]
    cfg["privacy"] = {"dp": {"target_epsilon": 8.0, "max_physical_batch_size": 32}}
    cfg["optimize"] = {"onnx": True, "int8": False, "latency_runs": 1}
    run = launchml.run(cfg)
    meta = json.loads((run.dir.model / "package.json").read_text())
    assert meta["privacy"]["dp"]["epsilon"] <= 8.05
    epochs = [json.loads(x) for x in run.dir.events.read_text().splitlines()]
    assert [e["epoch"] for e in epochs if "epsilon" in e] == [1, 2]
    assert (run.dir.model / "model.onnx").exists()  # the hooks are off before export


def test_the_replacement_is_opacus_own_so_packages_rebuild():
    import torch.nn as nn
    from opacus.validators import ModuleValidator

    from launchml.privacy.layers import batchnorm_to_groupnorm

    def net():
        return nn.Sequential(nn.Conv2d(1, 48, 3), nn.BatchNorm2d(48),
                             nn.Sequential(nn.Conv2d(48, 8, 1), nn.BatchNorm2d(8)))

    ours, theirs = batchnorm_to_groupnorm(net()), ModuleValidator.fix(net())
    assert str(ours) == str(theirs)
    assert ours.state_dict().keys() == theirs.state_dict().keys()



@pytest.mark.slow
def test_no_training_text_or_row_leaks_into_package_report_or_logs(tmp_path):
    """A DP run on a table with free text: no training review and no training row is
    written into the package, the evaluation report, the model card or the logs."""
    import io
    import logging

    from tests.tables_data import reviews

    frame = reviews(300, seed=3)
    frame["review"] = [f"{t} ref{i:04d}x" for i, t in enumerate(frame["review"])]  # unique
    # a category column: one value per ten rows, and a value each of a few rows holds alone
    frame["shop"] = [f"shop{i % 30:02d}q" if i % 50 else f"lone{i:04d}q"
                     for i in range(len(frame))]
    frame.to_csv(tmp_path / "reviews.csv", index=False)
    log = io.StringIO()
    handler = logging.StreamHandler(log)
    logging.getLogger("launchml").addHandler(handler)
    try:
        run = launchml.run({
            "name": "rev", "output_dir": str(tmp_path / "runs"), "seed": 0,
            "data": {"train": str(tmp_path / "reviews.csv"), "target": "label"},
            "model": {"mlp": {"text_encoder": "bag"}},
            "train": {"epochs": 2, "batch_size": 32},
            "privacy": {"dp": {"target_epsilon": 8.0}},
            "optimize": {"onnx": True, "int8": False, "latency_runs": 1}})
    finally:
        logging.getLogger("launchml").removeHandler(handler)
    texts = [log.getvalue(), run.dir.events.read_text()]
    for folder in (run.dir.model, run.dir.evaluation):
        texts += [p.read_text(errors="ignore") for p in folder.rglob("*")
                  if p.is_file() and p.suffix in (".json", ".html", ".md", ".txt", ".csv")]
    # each review's unique tag: none of the training rows' is in any of those files
    splits = json.loads((run.dir.prepared / "manifest.json").read_text())["splits"]
    train_tags = {f"ref{int(i):04d}x" for i in splits["train"]["rows"]}
    assert len(train_tags) > 100
    assert json.loads((run.dir.model / "package.json").read_text())["privacy"]["dp"]
    rows = [f"{t}" for t in frame["review"].iloc[[int(i) for i in splits["train"]["rows"]]]]
    assert not [r for r in rows if any(r in text for text in texts)]  # no training text
    leaked = {t for t in train_tags for text in texts if t in text}
    assert not leaked, f"one-row words in the artifacts: {sorted(leaked)[:5]}"
    lone = {f"lone{int(i):04d}q" for i in splits["train"]["rows"] if int(i) % 50 == 0}
    assert lone and not {v for v in lone for text in texts if v in text}  # one-row values
    # the vocabularies are thresholded, not emptied: words and values of many rows stay
    meta = (run.dir.model / "package.json").read_text()
    assert "shop07q" in meta and "delicious" in meta


def test_vocabularies_keep_only_tokens_of_min_token_rows_rows_in_a_private_run():
    """privacy.min_token_rows: a private run's tokenizer and category vocabularies drop
    what fewer distinct rows hold (a word repeated in one row counts once); a plain run
    keeps every word and value."""
    import pandas as pd

    from launchml.data.columns import ColumnInfo
    from launchml.data.preprocess import fit_column
    from launchml.data.table_adapter import TableConfig
    from launchml.privacy.config import private_data

    text = pd.Series(["tasty soup"] * 5 + ["zyxw zyxw zyxw zyxw zyxw", "good qqq"])
    shop = pd.Series(["north"] * 5 + ["solo", "pair"])
    plain = RunConfig.model_validate({"name": "r", "data": {"train": "t.csv", "target": "y"}})
    private = RunConfig.model_validate({
        "name": "r", "data": {"train": "t.csv", "target": "y"}, "federated": {"rounds": 1}})
    assert private_data(plain) is plain.data
    options = private_data(private)
    assert isinstance(options, TableConfig) and options._min_rows == 5
    def info(name: str, kind: str) -> ColumnInfo:
        return ColumnInfo(name, kind, "", 0, 0)

    tokens = json.loads(fit_column(info("r", "text"), text, options)["tokenizer"])
    vocab = tokens["model"]["vocab"]
    assert "tasty" in vocab and "soup" in vocab
    assert not {"zyxw", "good", "qqq", "z", "q", "##q"} & set(vocab)  # one row each
    every = json.loads(fit_column(info("r", "text"), text, plain.data)["tokenizer"])
    assert {"zyxw", "good", "qqq"} <= set(every["model"]["vocab"])
    state = fit_column(info("s", "category"), shop, options)
    assert state["categories"] == ["north"] and state["other"]
    assert set(fit_column(info("s", "category"), shop, plain.data)["categories"]) == {
        "north", "pair", "solo"}


def test_the_transformer_text_encoder_is_refused_by_name():
    import torch.nn as nn

    from launchml.privacy.dp import fix_layers

    layer = nn.TransformerEncoderLayer(8, 2, 16, batch_first=True)
    model = nn.ModuleDict({"col0": nn.TransformerEncoder(layer, 1, enable_nested_tensor=False)})
    with pytest.raises(ConfigError, match="layer 'col0' .*text_encoder: bag"):
        fix_layers(model)
