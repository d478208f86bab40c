from __future__ import annotations

import pytest
import yaml

from launchml import ConfigError, RunConfig
from launchml.config import template

BASE = {"name": "x", "data": {"train": "data/train"}}


def test_defaults_are_filled():
    cfg = RunConfig.load(BASE)
    assert cfg.train.epochs == 10 and cfg.train.optimizer == "adam"
    assert cfg.data.target_size == (150, 150)
    assert cfg.data.rescale == pytest.approx(1 / 255)
    assert cfg.model.name == "auto"  # seed_cnn for images, lightgbm for tables


def test_unknown_key_names_key_allowed_and_fix():
    with pytest.raises(ConfigError) as e:
        RunConfig.load({**BASE, "data": {"train": "d", "validaton_split": 0.1}})
    msg = str(e.value)
    assert "data.validaton_split" in msg
    assert "validation_split" in msg and "did you mean 'data.validation_split'" in msg


def test_bad_value_lists_allowed_values():
    with pytest.raises(ConfigError) as e:
        RunConfig.load({**BASE, "train": {"optimizer": "adm"}})
    msg = str(e.value)
    assert "train.optimizer" in msg and "'adam'" in msg and "'sgd'" in msg and "'adm'" in msg


def test_out_of_range_and_unknown_model():
    with pytest.raises(ConfigError, match="validation_split"):
        RunConfig.load({**BASE, "data": {"train": "d", "validation_split": 1.5}})
    with pytest.raises(ConfigError, match="seed_cnn"):
        RunConfig.load({**BASE, "model": {"name": "seed_cn"}})


def test_missing_required_key():
    with pytest.raises(ConfigError, match="missing key 'data'"):
        RunConfig.load({"name": "x"})


def test_run_name_must_be_a_folder_name():
    with pytest.raises(ConfigError, match="name"):
        RunConfig.load({**BASE, "name": "../escape"})


def test_template_is_a_valid_commented_config(tmp_path):
    text = template("image-classification")
    assert text.count("#") > 10
    path = tmp_path / "c.yaml"
    path.write_text(text)
    cfg = RunConfig.load(path)
    # relative data paths are read from the config file's folder, wherever launchml runs
    assert cfg.name == "cancer" and cfg.data.train == str(tmp_path / "data" / "train")
    with pytest.raises(ConfigError, match="available: image-classification"):
        template("nope")


def test_yaml_roundtrip_and_overrides(tmp_path):
    cfg = RunConfig.load(BASE).with_overrides(["train.epochs=3", "data.color_mode=grayscale"])
    assert cfg.train.epochs == 3 and cfg.data.color_mode == "grayscale"
    cfg.save(tmp_path / "config.yaml")
    again = RunConfig.load(tmp_path / "config.yaml")
    assert again == cfg
    with pytest.raises(ConfigError, match="train.epochs"):
        cfg.with_overrides(["train.epochs=0"])


def test_bad_yaml_file(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        RunConfig.load(p)
    p.write_text(yaml.safe_dump(["a", "list"]))
    with pytest.raises(ConfigError, match="mapping"):
        RunConfig.load(p)
    with pytest.raises(ConfigError, match="does not exist"):
        RunConfig.load(tmp_path / "missing.yaml")
