"""Attributions per token (text) or character (SMILES, protein) of sequence columns.

One method per kind of package, chosen by its members, not by the column's kind:

    layer_integrated_gradients  every member a neural network (the ensemble's output)
    linear                      a lone linear model: each TF-IDF n-gram's exact
                                contribution (coefficient x feature value), split
                                equally over its occurrences and their tokens (words of
                                a raw text column: word and char_wb n-grams)
    token_shapley               anything else: Shapley values of the words (characters
                                of a SMILES / protein string) of the served output, the
                                text without the absent ones preprocessed again
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import numpy as np

from launchml.data.sequences import pad_id, token_strings
from launchml.explain.core import Explanation, shapley

if TYPE_CHECKING:
    from launchml.deploy.predictor import Predictor


def token_method(predictor: Predictor) -> str:
    families = [m["family"] for m in predictor.package.meta["model"]["members"]]
    if not any(f in ("lightgbm", "linear") for f in families):
        return "layer_integrated_gradients"
    if families == ["linear"]:
        return "linear"
    return "token_shapley"


BASELINES = {"layer_integrated_gradients": "the padding token's embedding at every position",
             "linear": "the column without any token (no n-gram features)",
             "token_shapley": "absent words (characters) left out of the text, which goes "
                              "through the column's preprocessing again"}


def explain_tokens(predictor: Predictor, arrays: dict[str, np.ndarray], columns: list[str],
                   t: np.ndarray, out: list[Explanation],
                   texts: dict[str, list[Any]] | None = None) -> None:
    """Fill ``tokens`` of each explanation in ``out`` (one per row of ``arrays``);
    ``texts``: each column's strings as given (else rebuilt from the token ids)."""
    states = predictor.package.preprocessing
    for col in columns:
        state = states[col]
        method = token_method(predictor)
        model = predictor._model.members[0].model if method == "linear" else None
        raw_text = model is not None and col in getattr(model, "text_", {})
        if model is not None and not raw_text and col not in model.vocab_:
            method = "token_shapley"
        ids = np.asarray(arrays[col])
        pad = pad_id(state)
        start = time.perf_counter()
        if method == "layer_integrated_gradients":
            from launchml.explain.core import torch_members
            from launchml.explain.gradients import layer_ig_tokens

            attr, _ = layer_ig_tokens(predictor, torch_members(predictor), arrays, col, t, pad)
            rows = [list(zip(token_strings(state, ids[i]), attr[i][ids[i] != pad],
                             strict=True)) for i in range(len(ids))]
        elif raw_text:
            given = (texts or {}).get(col) or [None] * len(ids)
            rows = [linear_words(model, col, given[i] if isinstance(given[i], str) else
                                 _raw_string(arrays, col, i), int(t[i]))
                    for i in range(len(ids))]
        elif method == "linear":
            rows = [list(zip(token_strings(state, ids[i]),
                             linear_tokens(model, col, ids[i], int(t[i])), strict=True))
                    for i in range(len(ids))]
        else:
            given = (texts or {}).get(col) or [None] * len(ids)
            rows = [token_shapley(predictor, {k: v[i:i + 1] for k, v in arrays.items()},
                                  col, int(t[i]), given[i]) for i in range(len(ids))]
        each = (time.perf_counter() - start) / max(1, len(ids))
        for i, e in enumerate(out):
            e.tokens[col] = [(str(tok), float(a)) for tok, a in rows[i]]
            e.token_method = method
            e.cost[f"tokens:{col}"] = {"method": method, "baseline": BASELINES[method],
                                       "seconds": each}


def players(state: dict[str, Any], text: Any, ids: np.ndarray) -> tuple[list[str], str]:
    """The parts of a sequence value that are left in or out: words of a text, characters
    of a SMILES or protein string; and how they are joined back."""
    if not isinstance(text, str):  # not given: the text the ids spell
        parts = [t for t in token_strings(state, ids)
                 if not (t.startswith("[") and t.endswith("]"))]
        text = ("" if state["type"] != "text" else " ").join(parts)
    if state["type"] == "text":
        return text.split(), " "
    return list(text.strip()), ""


def token_shapley(predictor: Predictor, row: dict[str, np.ndarray], column: str, target: int,
                  text: str | None = None) -> list[tuple[str, float]]:
    """Shapley values of the words (characters) of ``column``'s value in one row: a
    coalition's value is the served output for the text made of its words alone, put
    through the column's fitted preprocessing (so every array of the column agrees)."""
    import pandas as pd

    from launchml.data.preprocess import transform_column
    from launchml.explain.core import batched, column_keys

    state = predictor.package.preprocessing[column]
    words, glue = players(state, text, row[column][0])
    keys = column_keys({column: state}, row)[column]

    def value(masks: np.ndarray) -> np.ndarray:
        m = len(masks)
        kept = pd.Series([glue.join(w for w, keep in zip(words, mask, strict=True) if keep)
                          for mask in masks], dtype=object)
        made = transform_column(column, state, kept)
        arrays = {k: (made[k] if k in keys else np.repeat(v, m, axis=0))
                  for k, v in row.items()}
        return batched(lambda a: predictor.logits(a)[:, target], arrays, m)

    phi, *_ = shapley(value, len(words))
    return list(zip(words, phi.tolist(), strict=True))


def linear_tokens(model: Any, column: str, ids: np.ndarray, target: int) -> np.ndarray:
    """A lone linear model's exact per-token contributions to output ``target``."""
    from launchml.models.linear_family import NGRAMS

    state = model.states[column]
    n_max, pad = NGRAMS[state["type"]], pad_id(state)
    base = int(state["vocab_size"]) + 1
    ids = np.asarray(ids, dtype=np.int64)
    keys_vocab, idf = model.vocab_[column]
    offset = feature_offset(model, column)
    occurrences = []  # (vocab index, first position, n)
    for n in range(1, n_max + 1):
        for p in range(len(ids) - n + 1):
            part = ids[p:p + n]
            if (part == pad).any():
                continue
            k = 0
            for v in part:
                k = k * base + int(v) + 1
            k += n * base ** n_max * base
            j = int(np.searchsorted(keys_vocab, k))
            if j < len(keys_vocab) and keys_vocab[j] == k:
                occurrences.append((j, p, n))
    attr = np.zeros(len(ids))
    if occurrences:
        js = np.array([o[0] for o in occurrences])
        uniq, tf = np.unique(js, return_counts=True)
        x = (1.0 + np.log(tf)) * idf[uniq]
        x /= np.sqrt(np.sum(x ** 2)) or 1.0
        weight = dict(zip(uniq.tolist(), (model.coef_[target, offset + uniq] * x / tf).tolist(),
                          strict=True))
        for j, p, n in occurrences:
            attr[p:p + n] += weight[j] / n
    return attr[ids != pad]


def feature_offset(model: Any, column: str, part: str | None = None) -> int:
    """Where ``column``'s block (``part``: 'word' / 'char' of a raw text column) starts
    among a linear model's features, in the order ``LinearModel._features`` stacks them."""
    offset = len(model.dense_) + sum(int(np.size(mean)) for mean, _ in
                                     getattr(model, "blocks_", {}).values())
    offset += sum(card for _, card in model.cats_)
    for col, (keys, _) in model.vocab_.items():
        if col == column:
            return offset
        offset += len(keys)
    for col, parts in getattr(model, "text_", {}).items():
        for name, (terms, _) in parts.items():
            if col == column and name == part:
                return offset
            offset += len(terms)
    raise KeyError(column)


def _char_wb(word: str, lo: int, hi: int) -> list[str]:
    """scikit-learn's ``char_wb`` n-grams of one word (padded with a space each side)."""
    w = f" {word} "
    out = []
    for n in range(lo, hi + 1):
        offset = 0
        out.append(w[offset:offset + n])
        while offset + n < len(w):
            offset += 1
            out.append(w[offset:offset + n])
        if offset == 0:  # a word shorter than n counts once
            break
    return out


def linear_words(model: Any, column: str, text: str, target: int) -> list[tuple[str, float]]:
    """A lone linear model over a raw text column (TF-IDF of word 1-2-grams and char_wb
    n-grams): each n-gram's exact contribution (coefficient x TF-IDF value) split equally
    over its occurrences, and a word bigram's over its two words; a char_wb n-gram lies
    within one word. Per whitespace-separated word of ``text``; they add up to the
    column's part of the output (the output minus the output for an empty text)."""
    import re

    from launchml.models.linear_family import TEXT_VECTORIZERS

    words = text.split()
    lower = [w.lower() for w in words]
    pattern = re.compile(r"(?u)\b\w\w+\b")  # scikit-learn's default token_pattern
    tokens = [(t, i) for i, w in enumerate(lower) for t in pattern.findall(w)]
    occurrences: dict[str, list[tuple[str, list[int]]]] = {
        "word": [(t, [i]) for t, i in tokens] + [
            (f"{a} {b}", [i, j]) for (a, i), (b, j) in zip(tokens, tokens[1:], strict=False)],
        "char": [(g, [i]) for i, w in enumerate(lower)
                 for g in _char_wb(w, *TEXT_VECTORIZERS["char"]["ngram_range"])]}
    blocks = model._text_features(column, np.array([text.encode("utf-8")]))
    attr = np.zeros(len(words))
    for (part, (terms, _)), x in zip(model.text_[column].items(), blocks, strict=True):
        index = {t: j for j, t in enumerate(terms)}
        offset = feature_offset(model, column, part)
        x = x.tocsr()
        value = dict(zip(x.indices.tolist(), x.data.tolist(), strict=True))
        found = [(index[g], owners) for g, owners in occurrences[part] if g in index]
        count: dict[int, int] = {}
        for j, _ in found:
            count[j] = count.get(j, 0) + 1
        for j, owners in found:
            share = model.coef_[target, offset + j] * value.get(j, 0.0) / count[j]
            for i in owners:
                attr[i] += share / len(owners)
    return list(zip(words, attr.tolist(), strict=True))


def _raw_string(arrays: dict[str, np.ndarray], column: str, i: int) -> str:
    v = np.asarray(arrays[f"{column}:raw"])[i]
    return v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)
