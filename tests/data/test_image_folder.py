from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from launchml import ConfigError, DataError, RunConfig
from launchml.data import load_image, prepare_image_folder
from launchml.data.image_folder import stratified_split
from launchml.runs import RunDir


def _folder(root: Path, spec: dict[str, int], ext: str = "png", size=(20, 30)) -> Path:
    rng = np.random.default_rng(0)
    for cls, n in spec.items():
        (root / cls).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            arr = rng.integers(0, 256, size=(size[0], size[1], 3), dtype=np.uint8)
            Image.fromarray(arr).save(root / cls / f"{i}.{ext}")
    return root


def _prepare(tmp_path: Path, **data):
    cfg = RunConfig.load({"name": "r", "output_dir": str(tmp_path / "runs"),
                          "data": {"target_size": [16, 16], **data}})
    return prepare_image_folder(cfg.data, cfg.run_dir.mkdir(), cfg.seed)


def test_flow_from_directory_semantics(tmp_path):
    _folder(tmp_path / "train", {"b_dog": 6, "a_cat": 4})
    prep = _prepare(tmp_path, train=str(tmp_path / "train"), validation_split=0.0,
                    color_mode="grayscale")
    assert prep.schema.labels == ["a_cat", "b_dog"]  # sorted, like Keras
    assert prep.schema.task == "binary"
    x = prep.splits["train"].arrays["image"]
    assert x.dtype == np.uint8 and x.shape == (10, 16, 16, 1)
    assert isinstance(x, np.memmap)
    y = prep.splits["train"].arrays["label"]
    assert y.tolist() == [0] * 4 + [1] * 6
    assert prep.manifest["splits"]["train"]["class_counts"] == {"a_cat": 4, "b_dog": 6}


def test_resize_matches_pil_and_rescale_state(tmp_path):
    img = Image.fromarray(np.arange(12 * 10 * 3, dtype=np.uint8).reshape(12, 10, 3))
    state = {"target_size": [6, 8], "color_mode": "rgb", "interpolation": "nearest",
             "rescale": 1 / 255}
    out = load_image(img, state)
    assert out.shape == (6, 8, 3)
    assert np.array_equal(out, np.asarray(img.resize((8, 6), Image.Resampling.NEAREST)))


@pytest.mark.parametrize("ext", ["jpg", "png", "bmp", "gif", "webp"])
def test_every_format_decodes(tmp_path, ext):
    _folder(tmp_path / "train", {"a": 2, "b": 2}, ext=ext)
    prep = _prepare(tmp_path, train=str(tmp_path / "train"), validation_split=0.0)
    assert prep.splits["train"].arrays["image"].shape == (4, 16, 16, 3)


def test_categorical_and_binary_modes(tmp_path):
    _folder(tmp_path / "train", {"a": 2, "b": 2, "c": 2})
    prep = _prepare(tmp_path, train=str(tmp_path / "train"), validation_split=0.0)
    assert prep.schema.task == "multiclass"
    with pytest.raises(ConfigError, match="exactly 2 classes"):
        _prepare(tmp_path, train=str(tmp_path / "train"), class_mode="binary")


def test_seeded_stratified_split(tmp_path):
    _folder(tmp_path / "train", {"a": 20, "b": 10})
    prep = _prepare(tmp_path, train=str(tmp_path / "train"), validation_split=0.2,
                    test_split=0.1)
    counts = {k: v["class_counts"] for k, v in prep.manifest["splits"].items()}
    assert counts["test"] == {"a": 2, "b": 1}
    assert counts["validation"] == {"a": 4, "b": 2}
    assert counts["train"] == {"a": 14, "b": 7}
    files = [set(prep.manifest["splits"][s]["files"]) for s in ("train", "validation", "test")]
    assert not (files[0] & files[1]) and not (files[0] & files[2]) and not (files[1] & files[2])
    labels = ["a"] * 10 + ["b"] * 5
    first = stratified_split(labels, 0.2, np.random.default_rng(1))
    assert first == stratified_split(labels, 0.2, np.random.default_rng(1))


def test_separate_test_folder_and_unknown_class(tmp_path):
    _folder(tmp_path / "train", {"a": 3, "b": 3})
    _folder(tmp_path / "test", {"a": 1, "b": 2})
    prep = _prepare(tmp_path, train=str(tmp_path / "train"), test=str(tmp_path / "test"),
                    validation_split=0.0)
    assert len(prep.splits["test"]) == 3
    _folder(tmp_path / "test", {"zebra": 1})
    with pytest.raises(DataError, match="zebra"):
        _prepare(tmp_path, train=str(tmp_path / "train"), test=str(tmp_path / "test"))


def test_corrupt_file_is_an_error_naming_it(tmp_path):
    _folder(tmp_path / "train", {"a": 3, "b": 3})
    bad = tmp_path / "train" / "a" / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg")
    with pytest.raises(DataError) as e:
        _prepare(tmp_path, train=str(tmp_path / "train"))
    assert str(bad) in str(e.value) and "on_bad_file: skip" in str(e.value)


def test_truncated_file_skipped_and_listed(tmp_path):
    _folder(tmp_path / "train", {"a": 3, "b": 3})
    good = (tmp_path / "train" / "b" / "0.png").read_bytes()
    bad = tmp_path / "train" / "b" / "cut.png"
    bad.write_bytes(good[: len(good) // 2])
    prep = _prepare(tmp_path, train=str(tmp_path / "train"), validation_split=0.0,
                    on_bad_file="skip")
    assert len(prep.splits["train"]) == 6
    state = prep.preprocessing["image"]
    kept = prep.manifest["splits"]["train"]["files"]
    assert str(bad) not in kept
    for i, f in enumerate(kept):  # the compacted array holds the right pixels
        assert np.array_equal(prep.splits["train"].arrays["image"][i], load_image(f, state))
    assert [s["file"] for s in prep.manifest["skipped"]] == [str(bad)]
    manifest = json.loads((tmp_path / "runs" / "r" / "prepared" / "manifest.json").read_text())
    assert manifest["skipped"][0]["file"] == str(bad)


def test_empty_class_single_class_and_missing_folder(tmp_path):
    _folder(tmp_path / "train", {"a": 2})
    with pytest.raises(DataError, match="one class"):
        _prepare(tmp_path, train=str(tmp_path / "train"))
    (tmp_path / "train" / "b").mkdir()
    with pytest.raises(DataError, match=r"class folder .*b' has no images"):
        _prepare(tmp_path, train=str(tmp_path / "train"))
    with pytest.raises(DataError, match="does not exist"):
        _prepare(tmp_path, train=str(tmp_path / "nope"))
    flat = tmp_path / "flat"
    flat.mkdir()
    Image.new("RGB", (4, 4)).save(flat / "x.png")
    with pytest.raises(DataError, match="no class sub-folders"):
        _prepare(tmp_path, train=str(flat))


def test_duplicates_across_train_and_test_are_reported(tmp_path):
    _folder(tmp_path / "train", {"a": 3, "b": 3})
    _folder(tmp_path / "test", {"a": 1, "b": 1}, size=(21, 30))
    shutil.copy(tmp_path / "train" / "a" / "1.png", tmp_path / "test" / "a" / "copy.png")
    prep = _prepare(tmp_path, train=str(tmp_path / "train"), test=str(tmp_path / "test"),
                    validation_split=0.0)
    pairs = prep.manifest["leakage"]["test"]
    assert pairs == [{"train": str(tmp_path / "train" / "a" / "1.png"),
                      "test": str(tmp_path / "test" / "a" / "copy.png")}]


def test_prepared_cache_is_reused_and_invalidated(tmp_path):
    _folder(tmp_path / "train", {"a": 3, "b": 3})
    _prepare(tmp_path, train=str(tmp_path / "train"), validation_split=0.0)
    arr = tmp_path / "runs" / "r" / "prepared" / "train.image.npy"
    stamp = arr.stat().st_mtime_ns
    _prepare(tmp_path, train=str(tmp_path / "train"), validation_split=0.0)
    assert arr.stat().st_mtime_ns == stamp
    _folder(tmp_path / "train", {"c": 2})
    prep = _prepare(tmp_path, train=str(tmp_path / "train"), validation_split=0.0)
    assert prep.schema.labels == ["a", "b", "c"]


def test_non_image_files_are_reported_not_dropped_silently(tmp_path):
    _folder(tmp_path / "train", {"a": 2, "b": 2})
    (tmp_path / "train" / "a" / "notes.txt").write_text("hello")
    Image.new("RGB", (4, 4)).save(tmp_path / "train" / "loose.png")
    prep = _prepare(tmp_path, train=str(tmp_path / "train"), validation_split=0.0)
    assert prep.manifest["ignored_files"] == [str(tmp_path / "train" / "loose.png"),
                                              str(tmp_path / "train" / "a" / "notes.txt")]
    assert RunDir(tmp_path / "runs" / "r").prepared.exists()


def test_a_class_left_empty_by_skipping_is_an_error(tmp_path):
    _folder(tmp_path / "train", {"a": 3, "b": 1})
    (tmp_path / "train" / "b" / "0.png").write_bytes(b"garbage")
    with pytest.raises(DataError, match=r"\['b'\] have no training images left"):
        _prepare(tmp_path, train=str(tmp_path / "train"), on_bad_file="skip")


def test_16_bit_and_float_images_are_scaled_not_clipped(tmp_path):
    state = {"target_size": [4, 4], "color_mode": "grayscale", "interpolation": "nearest",
             "rescale": 1 / 255}
    sixteen = Image.fromarray(np.full((4, 4), 3000, dtype=np.uint16))
    path = tmp_path / "scan.png"
    sixteen.save(path)
    assert int(load_image(path, state).max()) == round(3000 / 257)
    as_float = Image.fromarray(np.full((4, 4), 0.5, dtype=np.float32))
    assert int(load_image(as_float, state).max()) == 128
    rgb = load_image(path, {**state, "color_mode": "rgb"})
    assert rgb.shape == (4, 4, 3) and int(rgb.max()) == 12


def test_unconvertible_image_is_an_input_error(tmp_path):
    from launchml import InputError

    lab = Image.new("LAB", (4, 4))
    state = {"target_size": [4, 4], "color_mode": "grayscale", "interpolation": "nearest",
             "rescale": 1.0}
    with pytest.raises(InputError, match=r"'scan.tif' \(mode LAB\) cannot be converted"):
        load_image(lab, state, name="scan.tif")
