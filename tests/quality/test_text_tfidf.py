"""Text columns: the linear family's TF-IDF of word and character n-grams of the raw
strings (headers, URLs and numbers kept), saved without pickles and served alike."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from launchml.data.preprocess import transform_column
from launchml.data.text import fit_text
from launchml.models.linear_family import LinearModel
from launchml.tasks import create_task

SPAM = ["From: deals@cheap-pills.biz WIN $1000 now http://cheap-pills.biz/offer",
        "From: alerts@win-cash.biz claim $500 prize http://win-cash.biz/claim now"]
HAM = ["From: anna@example.org Re: meeting notes for Tuesday, see attached",
       "From: bob@example.org lunch on Friday? the agenda is in the shared folder"]


def _data(n: int, seed: int) -> tuple[pd.Series, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    texts = [(SPAM if t else HAM)[rng.integers(0, 2)] + f" id {rng.integers(0, 99)}"
             for t in y]
    return pd.Series(texts), y


def test_linear_family_reads_raw_strings_with_word_and_char_ngrams(tmp_path):
    train, y = _data(80, 0)
    valid, yv = _data(40, 1)
    state = fit_text("text", train)
    assert state["raw"] is True
    arrays = transform_column("text", state, train)
    assert arrays["text:raw"].dtype.kind == "S"  # bytes: saved and memory-mapped unpickled
    assert arrays["text:raw"][0].decode() == train[0]
    task = create_task("binary", ["ham", "spam"])
    model = LinearModel(task, {"text": state}).fit(
        arrays, y, valid=(transform_column("text", state, valid), yv))
    words, _ = model.text_["text"]["word"]
    chars, _ = model.text_["text"]["char"]
    assert "http" in words and "1000" in words  # URLs and numbers are kept
    assert any("$" in c for c in chars)  # the characters the word tokenizer drops
    raw = model.predict_raw(transform_column("text", state, valid))
    assert ((raw[:, 0] > 0) == yv).mean() == 1.0
    spec = model.save(tmp_path)
    assert spec["texts"] == ["text"] and "linear_vocab" in spec["files"]
    json.loads((tmp_path / spec["files"]["linear_vocab"]).read_text())
    loaded = LinearModel.load(tmp_path, json.loads(json.dumps(spec)), task, {"text": state})
    again = loaded.predict_raw(transform_column("text", state, valid))
    np.testing.assert_allclose(again, raw, rtol=1e-9, atol=1e-12)
