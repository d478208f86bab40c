"""Molecule (SMILES) and protein columns: one id per character.

    state = fit_sequence(kind, train_col)      # {"vocab": sorted training characters, ...}
    ids = transform_sequence(state, col)       # int64 N x max_length

Id 0 is padding, 1 a character never seen in train, 2.. the vocabulary in
sorted order. Two-letter SMILES atoms (Cl, Br) are two characters; the
convolutions of the encoder see them together anyway. A missing value is an
empty sequence (all padding).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

PAD, UNKNOWN = 0, 1
MAX_LENGTH = {"molecule": 256, "protein": 1024}  # cap on the 95th-percentile length


def sequences(col: pd.Series) -> list[str]:
    return ["" if pd.isna(v) else str(v).strip() for v in col]


def fit_sequence(kind: str, col: pd.Series) -> dict[str, Any]:
    values = sequences(col)
    vocab = sorted(set("".join(values)))
    lengths = [len(v) for v in values] or [1]
    length = min(MAX_LENGTH[kind], max(2, math.ceil(float(np.percentile(lengths, 95)))))
    return {"type": kind, "vocab": vocab, "max_length": int(length),
            "vocab_size": len(vocab) + 2}


def transform_sequence(state: dict[str, Any], col: pd.Series) -> np.ndarray:
    index = {c: i + 2 for i, c in enumerate(state["vocab"])}
    length = state["max_length"]
    values = sequences(col)
    out = np.full((len(values), length), PAD, dtype=np.int64)
    for row, v in enumerate(values):
        ids = [index.get(c, UNKNOWN) for c in v[:length]]
        out[row, :len(ids)] = ids
    return out


# -- the inverse: ids back to tokens (reports and explanations) --------------------
def pad_id(state: dict[str, Any]) -> int:
    return int(state.get("pad_id", 0))


def token_strings(state: dict[str, Any], ids: np.ndarray) -> list[str]:
    """The tokens / characters of one row's ids (padding left out)."""
    pad = pad_id(state)
    if state["type"] == "text":
        tok = _vocabulary(state)
        return [tok.id_to_token(int(i)) or "?" for i in ids if i != pad]
    vocab = state["vocab"]
    return [vocab[i - 2] if i >= 2 else "?" for i in ids if i != pad]


_VOCAB: dict[int, tuple[str, Any]] = {}  # id(state) -> (tokenizer JSON, Tokenizer)


def _vocabulary(state: dict[str, Any]) -> Any:
    """The column's tokenizer (ids -> tokens), parsed once per state."""
    from tokenizers import Tokenizer

    hit = _VOCAB.get(id(state))
    if hit is None or hit[0] is not state["tokenizer"]:
        hit = _VOCAB[id(state)] = (state["tokenizer"], Tokenizer.from_str(state["tokenizer"]))
    return hit[1]
