"""Text columns: a tokenizer fitted on the training rows, or a pretrained one.

    state = fit_text(name, train_col, options)   # JSON-able, stored in package.json
    ids = transform_text(name, state, col)       # int64 N x max_length
    raw = raw_text(col)                          # the strings, UTF-8 bytes (numpy S)

``options.tokenizer`` is 'trained' (a WordPiece tokenizer built from the
training text, its most frequent words plus every character as a piece;
lowercased, accents stripped, split on whitespace and punctuation; [PAD]=0,
[UNK]=1, [CLS]=2 and every text starts with [CLS], so no row is all padding)
or a Hugging Face model name / local folder whose fast tokenizer is kept as
JSON, together with the model's config so a package can rebuild the
architecture without the original folder.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from launchml.errors import ModelError, missing_dependency

SPECIALS = ("[PAD]", "[UNK]", "[CLS]")
RAW_BYTES = 16_384  # the raw string kept per row for the linear family's TF-IDF (UTF-8)
MAX_AUTO_LENGTH = 256  # text_max_length: null keeps the 95th percentile, at most this


def texts(col: pd.Series) -> list[str]:
    """Every value as a string; a missing value is the empty string."""
    return ["" if pd.isna(v) else str(v) for v in col]


def _train_tokenizer(values: list[str], vocab_size: int, min_rows: int = 1) -> Any:
    """A WordPiece tokenizer whose vocabulary is built here, deterministically.

    The vocabulary: the special tokens, every training character (alone and as a
    '##' continuation, so no word is ever [UNK] for lack of pieces), then the most
    frequent whole words (ties by spelling) up to ``vocab_size``; with ``min_rows`` > 1
    (a private run) only the words and characters found in that many distinct rows, so no
    token in package.json identifies a training row. The ``tokenizers``
    WordPiece trainer is not used: its vocabulary changes from process to process
    on ties (huggingface/tokenizers#1794), which made identical runs differ.
    """
    from collections import Counter

    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.Sequence(
        [normalizers.NFD(), normalizers.Lowercase(), normalizers.StripAccents()])
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()  # whitespace and punctuation
    tok.decoder = decoders.WordPiece()
    counts: Counter[str] = Counter()
    rows: Counter[str] = Counter()  # distinct rows holding each word, each character
    for value in values:
        words = [w for w, _ in tok.pre_tokenizer.pre_tokenize_str(
            tok.normalizer.normalize_str(value))]
        counts.update(words)
        rows.update(set(words) | {c for w in words for c in w})
    if min_rows > 1:
        counts = Counter({w: n for w, n in counts.items() if rows[w] >= min_rows})
        chars = sorted(c for c in {c for w in rows for c in w} if rows[c] >= min_rows)
    else:
        chars = sorted({c for w in counts for c in w})
    vocab = [*SPECIALS, *chars, *("##" + c for c in chars)]
    words = sorted((w for w in counts if len(w) > 1), key=lambda w: (-counts[w], w))
    vocab += words[:max(vocab_size - len(vocab), 0)]
    tok.model = models.WordPiece({t: i for i, t in enumerate(vocab)}, unk_token="[UNK]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A", special_tokens=[("[CLS]", tok.token_to_id("[CLS]"))])
    return tok


def _pretrained(column: str, name: str) -> tuple[Any, int, dict[str, Any], str, int]:
    """(backend tokenizer, pad id, model config, name to store, longest input) for a model."""
    try:
        from transformers import AutoConfig, AutoTokenizer
    except ImportError as e:
        raise missing_dependency("transformers", "text", f"column '{column}': data.tokenizer "
                                 f"'{name}'") from e
    try:
        tok = AutoTokenizer.from_pretrained(name)
        config = AutoConfig.from_pretrained(name)
    except (OSError, ValueError, KeyError, ImportError, ConnectionError) as e:
        raise ModelError(
            f"column '{column}' (text): data.tokenizer '{name}' could not be loaded "
            f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}). Fix: set "
            "data.tokenizer to a local folder holding the model (tokenizer and config, "
            "e.g. written by save_pretrained), or run once with network access so the "
            "model is downloaded; or use 'trained'."
        ) from e
    if not getattr(tok, "is_fast", False):
        raise ModelError(f"column '{column}' (text): the tokenizer of '{name}' has no fast "
                         "(Rust 'tokenizers') version. Fix: choose a model with a "
                         "tokenizer.json, or data.tokenizer: trained.")
    pad = tok.pad_token_id
    if pad is None:  # e.g. GPT-2: pad with end-of-text, the attention mask hides it
        pad = tok.eos_token_id if tok.eos_token_id is not None else 0
    backend = tok.backend_tokenizer
    local = Path(name).expanduser()
    stored = str(local.resolve()) if local.is_dir() else name  # a folder works from any cwd
    limits = [getattr(config, "max_position_embeddings", None), tok.model_max_length]
    longest = min([int(v) for v in limits if isinstance(v, int) and 0 < v < 1_000_000] or [512])
    return backend, int(pad), json.loads(config.to_json_string(use_diff=False)), stored, longest


def _bare(tok: Any) -> Any:
    tok.no_truncation()
    tok.no_padding()
    return tok


def fit_text(column: str, col: pd.Series, options: Any = None) -> dict[str, Any]:
    """Learn a text column's tokenizer state from the training rows."""
    name = getattr(options, "tokenizer", "trained")
    vocab = int(getattr(options, "vocab_size", 8000))
    length = getattr(options, "text_max_length", None)
    values = texts(col)
    if name == "trained":
        tok, pad, config, pretrained = (_train_tokenizer(
            values, vocab, int(getattr(options, "_min_rows", 1))), 0, None, None)
        longest = 1 << 30
    else:  # the model's position embeddings bound the length
        tok, pad, config, pretrained, longest = _pretrained(column, name)
    tok = _bare(tok)
    if length is None:
        lengths = [len(e.ids) for e in tok.encode_batch(values)] or [1]
        length = min(MAX_AUTO_LENGTH, max(2, math.ceil(float(np.percentile(lengths, 95)))))
    length = min(int(length), longest)
    return {"type": "text", "raw": True, "tokenizer": tok.to_str(), "max_length": int(length),
            "vocab_size": int(tok.get_vocab_size(with_added_tokens=True)), "pad_id": pad,
            "pretrained": pretrained, "hf_config": config}


_CACHE: dict[int, tuple[str, Any]] = {}  # id(state) -> (tokenizer JSON, Tokenizer)


def _tokenizer(state: dict[str, Any]) -> Any:
    """The state's tokenizer, parsed once per state (serving calls this per request)."""
    from tokenizers import Tokenizer

    hit = _CACHE.get(id(state))
    if hit is not None and hit[0] is state["tokenizer"]:
        return hit[1]
    tok = Tokenizer.from_str(state["tokenizer"])
    length, pad = state["max_length"], state["pad_id"]
    tok.enable_truncation(max_length=length)
    tok.enable_padding(length=length, pad_id=pad, pad_token=tok.id_to_token(pad) or "[PAD]")
    if len(_CACHE) > 64:
        _CACHE.clear()
    _CACHE[id(state)] = (state["tokenizer"], tok)
    return tok


def transform_text(column: str, state: dict[str, Any], col: pd.Series) -> np.ndarray:
    """Token ids, int64 N x max_length, padded with pad_id and truncated."""
    del column  # every string is valid text; nothing to report by name
    tok = _tokenizer(state)
    values = texts(col)
    if not values:
        return np.zeros((0, state["max_length"]), dtype=np.int64)
    return np.asarray([e.ids for e in tok.encode_batch(values)], dtype=np.int64)


def raw_text(col: pd.Series) -> np.ndarray:
    """The strings as fixed-width UTF-8 bytes (numpy ``S``: saved and memory-mapped without
    pickling), each cut to ``RAW_BYTES`` at a character boundary; missing: empty."""
    out = []
    for v in texts(col):
        b = v.encode("utf-8")
        out.append(b if len(b) <= RAW_BYTES else
                   b[:RAW_BYTES].decode("utf-8", "ignore").encode("utf-8"))
    return np.array(out or [b""], dtype=np.bytes_)[:len(out)]
