"""Hostile and damaged model packages (issue 9, items 7-11): each is refused with one
PackageError naming the field or file, before it costs memory or disk."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from tests.security.payloads import start_server

import launchml
from launchml.errors import PackageError
from launchml.package import TEMP_PREFIX, export_zip, load_package, remove_stale_extractions


def _variant(src: Path, dst: Path, edit=None, files=None) -> Path:
    shutil.copytree(src, dst)
    meta = json.loads((dst / "package.json").read_text())
    if edit is not None:
        edit(meta)
    (dst / "package.json").write_text(json.dumps(meta))
    if files is not None:
        files(dst)
    return dst


def _state_dict_edit(change):
    def edit(folder: Path) -> None:
        from safetensors.torch import load_file, save_file

        tensors = load_file(folder / "weights.safetensors")
        change(tensors)
        save_file(tensors, folder / "weights.safetensors")
    return edit


def _symlink_meta(folder: Path) -> None:
    (folder / "package.json").unlink()
    (folder / "package.json").symlink_to("/dev/zero")


def _first_key(t: dict):
    return next(iter(t))


MALFORMED = {
    "format_version_string": ({"edit": lambda m: m.update(format_version="2")},
                              "format_version"),
    "format_version_null": ({"edit": lambda m: m.update(format_version=None)},
                            "format_version"),
    "task_missing": ({"edit": lambda m: m.pop("task")}, "task: Field required"),
    "files_missing": ({"edit": lambda m: m.pop("files")}, "files: Field required"),
    "onnx_absolute": ({"edit": lambda m: m["files"].update(onnx="/etc/hostname")},
                      "files.onnx is '/etc/hostname'"),
    "weights_outside": ({"edit": lambda m: m["files"].update(weights="../w.safetensors")},
                        "files.weights"),
    "member_weights_outside": (
        {"edit": lambda m: m["model"]["members"][0]["files"].update(weights="/etc/hostname")},
        "model.members[0].files.weights"),
    "huge_target_size": (
        {"edit": lambda m: m["preprocessing"]["image"].update(target_size=[20000, 20000])},
        "target_size"),
    "bad_interpolation": (
        {"edit": lambda m: m["preprocessing"]["image"].update(interpolation="magic")},
        "interpolation"),
    "bad_color_mode": ({"edit": lambda m: m["preprocessing"]["image"].update(color_mode="x")},
                       "color_mode"),
    "bad_task": ({"edit": lambda m: m["task"].update(name="ranking")}, "task.name"),
    "bad_family": ({"edit": lambda m: m["model"]["members"][0].update(family="nope")},
                   "model.members[0].family"),
    "bad_network": ({"edit": lambda m: m["model"]["members"][0]["network"].update(name="x")},
                    "model.members[0].network.name"),
    "garbage_weights": ({"files": lambda d: (d / "weights.safetensors").write_bytes(
        np.random.default_rng(0).bytes(5000))}, "not a valid safetensors file"),
    "garbage_onnx": ({"edit": lambda m: m["files"].update(onnx="model.onnx"),
                      "files": lambda d: (d / "model.onnx").write_text("not onnx " * 100)},
                     "is not an ONNX model"),
    "package_json_is_a_symlink": ({"files": _symlink_meta}, "symbolic link"),
    "weights_wrong_shape": ({"files": _state_dict_edit(
        lambda t: t.update({_first_key(t): t[_first_key(t)][:1].clone()}))}, "has shape"),
    "weights_missing_key": ({"files": _state_dict_edit(lambda t: t.pop(_first_key(t)))},
                            "has no tensor"),
    "weights_extra_key": ({"files": _state_dict_edit(
        lambda t: t.update(zzz=t[_first_key(t)].clone()))}, "does not have: 'zzz'"),
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_package_is_one_package_error(name, image_package, tmp_path):
    how, needle = MALFORMED[name]
    folder = _variant(image_package, tmp_path / name, **how)
    with pytest.raises(PackageError) as err:  # torch engine: ONNX is still checked
        launchml.load(folder).predict(np.zeros((24, 24, 3), np.uint8))
    assert needle in str(err.value)
    assert "\n" not in str(err.value)


def test_symlinked_weights_are_refused(image_package, tmp_path):
    folder = _variant(image_package, tmp_path / "p")
    (folder / "weights.safetensors").rename(tmp_path / "elsewhere.safetensors")
    (folder / "weights.safetensors").symlink_to(tmp_path / "elsewhere.safetensors")
    with pytest.raises(PackageError, match="symbolic link"):
        load_package(folder)


def _zip_with(path: Path, members: dict[str, bytes | int], symlink: str | None = None) -> Path:
    """A zip whose members are bytes, or that many zero bytes (streamed: little memory)."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, content in members.items():
            if isinstance(content, int):
                with zf.open(name, "w", force_zip64=True) as f:
                    for _ in range(content >> 20):
                        f.write(b"\0" * (1 << 20))
            else:
                zf.writestr(name, content)
        if symlink:
            info = zipfile.ZipInfo(symlink)
            info.external_attr = 0o120777 << 16
            zf.writestr(info, "/etc/hostname")
    return path


def _extracted(tmp: Path) -> list[Path]:
    return sorted(tmp.glob(f"{TEMP_PREFIX}*"))


@pytest.fixture
def private_tmp(tmp_path, monkeypatch):
    """The temp folder extractions go to, empty and ours."""
    import tempfile

    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def test_zip_bomb_is_refused_before_extracting(image_package, tmp_path, private_tmp):
    meta = (image_package / "package.json").read_bytes()
    bomb = _zip_with(tmp_path / "bomb.zip", {"package.json": meta,
                                             "weights.safetensors": 100 << 20})
    assert bomb.stat().st_size < 1 << 20
    with pytest.raises(PackageError, match="zip bomb"):
        load_package(bomb)
    assert _extracted(private_tmp) == []
    many = _zip_with(tmp_path / "many.zip", {f"f{i}": b"x" for i in range(100)})
    with pytest.raises(PackageError, match="holds 100 files"):
        load_package(many)
    link = _zip_with(tmp_path / "link.zip", {"package.json": meta}, symlink="model.onnx")
    with pytest.raises(PackageError, match="regular files only"):
        load_package(link)
    nested = _zip_with(tmp_path / "nested.zip", {"package.json": meta, "../x": b"x"})
    with pytest.raises(PackageError, match="not a plain file"):
        load_package(nested)
    assert _extracted(private_tmp) == []


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_stopping_the_server_removes_the_extracted_package(sig, image_package, tmp_path):
    archive = export_zip(image_package, tmp_path / "model.zip")
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    os.environ["TMPDIR"] = str(tmp)  # the server inherits it
    try:
        srv = start_server(archive)
    finally:
        del os.environ["TMPDIR"]
    try:
        assert len(_extracted(tmp)) == 1
        srv.proc.send_signal(sig)
        srv.proc.wait(timeout=60)
    finally:
        srv.proc.kill()
        srv.proc.stderr.close()
    assert _extracted(tmp) == []


def test_a_killed_process_leaves_a_folder_the_next_start_removes(tmp_path):
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    dead = tmp_path / f"{TEMP_PREFIX}{gone.stdout.strip()}-abc"
    live = tmp_path / f"{TEMP_PREFIX}{os.getppid()}-abc"  # a running process's
    other = tmp_path / f"{TEMP_PREFIX}keep"
    for d in (dead, live, other):
        d.mkdir()
        (d / "weights.safetensors").write_bytes(b"x")
    assert remove_stale_extractions(str(tmp_path)) == [dead]
    assert not dead.exists() and live.exists() and other.exists()


def test_a_linear_member_missing_a_tensor_is_one_package_error(table_package, tmp_path):
    def drop_coef(folder: Path) -> None:
        from safetensors.numpy import load_file, save_file

        tensors = load_file(folder / "model.linear.safetensors")
        tensors.pop("coef")
        save_file(tensors, folder / "model.linear.safetensors")

    folder = _variant(table_package, tmp_path / "linear", files=drop_coef)
    with pytest.raises(PackageError, match=r"model.members\[0\] \(linear\): .*has no "
                                           "tensor 'coef'"):
        launchml.load(folder)


@pytest.mark.parametrize("tensor", ["coef", "intercept", "mean", "std"])
def test_a_linear_tensor_of_the_wrong_shape_is_refused_at_load(table_package, tmp_path,
                                                                tensor):
    def cut(folder: Path) -> None:
        from safetensors.numpy import load_file, save_file

        tensors = load_file(folder / "model.linear.safetensors")
        tensors[tensor] = np.ascontiguousarray(tensors[tensor][..., :-1])  # one column less
        save_file(tensors, folder / "model.linear.safetensors")

    want = launchml.load(table_package)
    with pytest.raises(PackageError) as err:  # at load, not as a ValueError at predict
        launchml.load(_variant(table_package, tmp_path / tensor, files=cut))
    message = str(err.value)
    assert message.startswith("model.members[0] (linear): "), message
    assert f"tensor '{tensor}' has shape" in message and "expects" in message
    # the shapes named: what was found and what the member's spec expects
    coef = want._model.members[0].model.coef_.shape
    shapes = {"coef": coef, "intercept": coef[:1], "mean": (coef[1],), "std": (coef[1],)}
    found = (*shapes[tensor][:-1], shapes[tensor][-1] - 1)
    assert str(found) in message and str(shapes[tensor]) in message
    assert "\n" not in message


def _with_text_column(pretrained):
    """An edit adding a text column whose ``pretrained`` is the given value."""
    def edit(meta: dict) -> None:
        meta["preprocessing"]["note"] = {"type": "text", "tokenizer": "{}", "max_length": 8,
                                         "vocab_size": 10, "pad_id": 0,
                                         "pretrained": pretrained, "hf_config": {}}
    return edit


@pytest.mark.parametrize("name", ["/etc", "../../elsewhere", "~/models/bert", "./../x",
                                  "", "linked"])
def test_a_pretrained_path_outside_the_package_is_refused(table_package, tmp_path, name):
    def link(folder: Path) -> None:
        (tmp_path / "real").mkdir()
        (folder / "linked").symlink_to(tmp_path / "real")

    folder = _variant(table_package, tmp_path / "p", edit=_with_text_column(name), files=link)
    with pytest.raises(PackageError) as err:
        load_package(folder)
    assert "preprocessing.note.pretrained" in str(err.value)


@pytest.mark.parametrize("name", [None, "prajjwal1/bert-tiny", "bert"])
def test_a_hub_id_or_a_folder_inside_the_package_is_accepted(table_package, tmp_path, name):
    folder = _variant(table_package, tmp_path / "p", edit=_with_text_column(name),
                      files=lambda d: (d / "bert").mkdir())
    assert load_package(folder).preprocessing["note"]["pretrained"] == name


def test_a_package_does_not_name_the_local_pretrained_folder(tmp_path):
    from launchml.package import portable_states

    states = {"review": {"type": "text", "pretrained": str(tmp_path / "bert")},
              "hub": {"type": "text", "pretrained": "prajjwal1/bert-tiny"},
              "n": {"type": "number"}}
    stored, origins = portable_states(states)
    assert stored["review"]["pretrained"] is None and origins == {"review": str(tmp_path /
                                                                               "bert")}
    assert stored["hub"] == states["hub"] and stored["n"] == states["n"]
