"""Text, molecule, protein and image-path columns: fitted on train only, JSON state,
identical arrays at serving time."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from tests.tables_data import SAMPLE_REVIEWS
from tokenizers import Tokenizer

from launchml import InputError, ModelError
from launchml.data.columns import ColumnInfo, infer_columns
from launchml.data.preprocess import fit_column, fit_table, transform_table
from launchml.data.table_adapter import TableConfig, prepare_table
from launchml.runs import RunDir

REVIEWS = SAMPLE_REVIEWS
SMILES = {
    "ethanol": "CCO",
    "aspirin": "CC(=O)OC1=CC=CC=C1C(=O)O",
    "caffeine": "CN1C=NC2=C1C(=O)N(C(=O)N2C)C",
    "ibuprofen": "CC(C)CC1=CC=C(C=C1)C(C)C(=O)O",
    "paracetamol": "CC(=O)NC1=CC=C(C=C1)O",
    "benzene": "c1ccccc1",
}
PROTEINS = [
    "MVLSPADKTNVKAAWGKVGAHAGEYGAEALERMFLSFPTTK",  # hemoglobin alpha
    "MVHLTPEEKSAVTALWGKVNVDEVGGEALGRLLVVYPWTQ",  # hemoglobin beta
    "GIVEQCCTSICSLYQLENYCN",  # insulin A chain
    "FVNQHLCGSHLVEALYLVCGERGFFYTPKT",  # insulin B chain
]


def _cfg(tmp_path, **kw) -> TableConfig:
    return TableConfig(train=str(tmp_path / "train.csv"), target="y", **kw)


def _info(name: str, kind: str) -> ColumnInfo:
    return ColumnInfo(name, kind, "test", 0, 0)


def test_text_tokenizer_is_fitted_on_train_only(tmp_path):
    train = pd.Series(REVIEWS)
    state = fit_column(_info("review", "text"), train, _cfg(tmp_path))
    state = json.loads(json.dumps(state))  # what package.json stores
    assert state["type"] == "text" and state["pretrained"] is None
    assert state["pad_id"] == 0 and state["hf_config"] is None
    vocab = Tokenizer.from_str(state["tokenizer"]).get_vocab()
    assert vocab["[PAD]"] == 0 and vocab["[UNK]"] == 1 and vocab["[CLS]"] == 2
    assert "battery" in vocab and "漢字" not in vocab
    serve = pd.DataFrame({"review": ["The BATTERY is great", "漢字", None]})
    ids = transform_table({"review": state}, serve)["review"]
    assert ids.dtype == np.int64 and ids.shape == (3, state["max_length"])
    assert ids[0, 0] == 2 and ids[0, 2] == vocab["battery"]  # [CLS] the battery: lowercased
    assert ids[1, :3].tolist() == [2, 1, 0]  # a word of characters train never had: [UNK]
    assert ids[2].tolist() == [2] + [0] * (state["max_length"] - 1)  # missing: empty text


def test_text_max_length_is_the_95th_percentile_or_the_config(tmp_path):
    texts = pd.Series([" ".join(["good"] * n) for n in range(1, 21)])
    state = fit_column(_info("t", "text"), texts, _cfg(tmp_path))
    lengths = [n + 1 for n in range(1, 21)]  # [CLS] + one token per word
    assert state["max_length"] == math.ceil(np.percentile(lengths, 95)) == 21
    fixed = fit_column(_info("t", "text"), texts, _cfg(tmp_path, text_max_length=8))
    out = transform_table({"t": fixed}, pd.DataFrame({"t": texts}))["t"]
    assert out.shape == (20, 8) and (out[-1] != 0).all()  # truncated
    long = pd.Series([" ".join(["good"] * 400)] * 3)
    assert fit_column(_info("t", "text"), long, _cfg(tmp_path))["max_length"] == 256


def test_state_round_trip_gives_identical_arrays(tmp_path):
    train = pd.DataFrame({"review": REVIEWS[:6], "smiles": list(SMILES.values()),
                          "y": [1, 0, 1, 0, 1, 0]})
    infos = infer_columns(train, target="y", overrides={"review": "text"})
    assert {i.name: i.type for i in infos}["smiles"] == "molecule"
    states = fit_table(infos, train, "y", _cfg(tmp_path))
    again = json.loads(json.dumps(states))
    a, b = transform_table(states, train), transform_table(again, train)
    # the ids, and beside them the raw text (linear TF-IDF) and RDKit features (data/chem.py)
    assert set(a) == {"review", "smiles", "review:raw", "smiles:ecfp", "smiles:ecfp_count",
                      "smiles:descriptors"}
    for k in a:
        assert np.array_equal(a[k], b[k])
    assert a["review"].dtype == np.int64 and a["smiles"].dtype == np.int64


def test_molecule_and_protein_characters(tmp_path):
    mol = fit_column(_info("smiles", "molecule"), pd.Series(list(SMILES.values())))
    assert mol["vocab"] == sorted(set("".join(SMILES.values())))
    assert mol["vocab_size"] == len(mol["vocab"]) + 2
    out = transform_table({"smiles": mol}, pd.DataFrame({"smiles": ["CCO", "CCl", None]}))
    ids = out["smiles"]
    c = mol["vocab"].index("C") + 2
    assert ids.shape == (3, mol["max_length"]) and ids.dtype == np.int64
    assert ids[0, :4].tolist() == [c, c, mol["vocab"].index("O") + 2, 0]
    assert ids[1, :3].tolist() == [c, c, 1]  # 'l' never occurs in the training SMILES
    assert not ids[2].any()  # missing: all padding
    prot = fit_column(_info("seq", "protein"), pd.Series(PROTEINS))
    assert prot["type"] == "protein" and set(prot["vocab"]) <= set("ACDEFGHIKLMNPQRSTVWY")
    assert prot["max_length"] == math.ceil(np.percentile([len(p) for p in PROTEINS], 95))
    long = transform_table({"seq": prot}, pd.DataFrame({"seq": [PROTEINS[0] * 3]}))["seq"]
    assert (long != 0).all()  # truncated to max_length


def _images(tmp_path, mode="RGB"):
    folder = tmp_path / "imgs"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(4):
        shape = (30, 40, 3) if mode == "RGB" else (30, 40)
        Image.fromarray(rng.integers(0, 255, shape, dtype=np.uint8), mode).save(
            folder / f"{i}.png")
    return pd.DataFrame({"photo": [f"imgs/{i}.png" for i in range(4)], "y": [0, 1, 0, 1]})


def test_image_paths_relative_to_base_dir(tmp_path):
    df = _images(tmp_path)
    state = fit_column(_info("photo", "image"), df["photo"], _cfg(tmp_path, image_size=(24, 20)))
    assert state["target_size"] == [24, 20] and state["channels"] == 3
    assert state["color_mode"] == "rgb" and state["mean"] == [0.5] * 3
    out = transform_table({"photo": state}, df[["photo"]], base_dir=tmp_path)["photo"]
    assert out.shape == (4, 24, 20, 3) and out.dtype == np.uint8
    bad = pd.DataFrame({"photo": ["imgs/0.png", "imgs/missing.png"]}, index=[3, 7])
    with pytest.raises(InputError, match=r"column 'photo' \(image\): data row 7 holds "
                                         r"'imgs/missing.png'.*missing.png"):
        transform_table({"photo": state}, bad, base_dir=tmp_path)
    with pytest.raises(InputError, match="data row 1 is empty"):
        transform_table({"photo": state}, pd.DataFrame({"photo": ["imgs/0.png", None]}),
                        base_dir=tmp_path)


def test_grayscale_images_and_prepare_reads_paths_beside_the_table(tmp_path):
    df = _images(tmp_path, mode="L")
    df["review"] = REVIEWS[:4]
    df.to_csv(tmp_path / "train.csv", index=False)
    cfg = _cfg(tmp_path, image_size=(24, 24), validation_split=0.0, test_split=0.0,
               column_types={"review": "text"})
    prepared = prepare_table(cfg, RunDir(tmp_path / "run"), seed=0)
    arrays = prepared.splits["train"].arrays
    assert arrays["photo"].shape == (4, 24, 24, 1)
    assert prepared.preprocessing["photo"]["color_mode"] == "grayscale"
    assert arrays["review"].dtype == np.int64


def test_unknown_pretrained_tokenizer_offline_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)  # read at import
    with pytest.raises(ModelError, match="no-such-org/no-such-model.*local folder"):
        fit_column(_info("review", "text"), pd.Series(REVIEWS),
                   _cfg(tmp_path, tokenizer="no-such-org/no-such-model"))


def test_trained_tokenizer_is_the_same_in_every_process(tmp_path):
    """The vocabulary is built deterministically (the tokenizers trainer is not, on ties)."""
    import subprocess
    import sys

    code = ("from launchml.data.text import _train_tokenizer\n"
            "import json\n"
            "words = ['coffee', 'great', 'slow', 'order', 'tea', 'cake', 'late', 'fresh']\n"
            "texts = [' '.join(words[(i * j) % 8] + 's' * (j % 2) for j in range(9))"
            " for i in range(400)]\n"
            "print(json.dumps(sorted(_train_tokenizer(texts, 60).get_vocab().items())))\n")
    runs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           check=True).stdout for _ in range(2)}
    assert len(runs) == 1
    vocab = dict(json.loads(runs.pop()))
    assert "coffee" in vocab and "##s" in vocab  # whole words, and characters as pieces
