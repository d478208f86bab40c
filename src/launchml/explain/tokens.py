"""Attributions per token (text) or character (SMILES, protein) of sequence columns.

One method per kind of package, chosen by its members, not by the column's kind:

    layer_integrated_gradients  every member a neural network (the ensemble's output)
    linear                      a lone linear model: each TF-IDF n-gram's exact
                                contribution (coefficient x feature value), split
                                equally over its occurrences and their tokens
    token_shapley               anything else: Shapley values of the tokens, an absent
                                token replaced by padding (the served output)
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import numpy as np

from launchml.explain.core import Explanation, shapley

if TYPE_CHECKING:
    from launchml.deploy.predictor import Predictor


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


def token_method(predictor: Predictor) -> str:
    families = [m["family"] for m in predictor.package.meta["model"]["members"]]
    if not any(f in ("lightgbm", "linear") for f in families):
        return "layer_integrated_gradients"
    if families == ["linear"]:
        return "linear"
    return "token_shapley"


BASELINES = {"layer_integrated_gradients": "the padding token's embedding at every position",
             "linear": "the column without any token (no n-gram features)",
             "token_shapley": "absent tokens replaced by padding"}


def explain_tokens(predictor: Predictor, arrays: dict[str, np.ndarray], columns: list[str],
                   t: np.ndarray, out: list[Explanation]) -> None:
    """Fill ``tokens`` of each explanation in ``out`` (one per row of ``arrays``)."""
    states = predictor.package.preprocessing
    method = token_method(predictor)
    for col in columns:
        state = states[col]
        ids = np.asarray(arrays[col])
        pad = pad_id(state)
        start = time.perf_counter()
        if method == "layer_integrated_gradients":
            from launchml.explain.core import torch_members
            from launchml.explain.gradients import layer_ig_tokens

            attr, _ = layer_ig_tokens(predictor, torch_members(predictor), arrays, col, t, pad)
            rows = [attr[i][ids[i] != pad] for i in range(len(ids))]
        elif method == "linear":
            model = predictor._model.members[0].model
            rows = [linear_tokens(model, col, ids[i], int(t[i])) for i in range(len(ids))]
        else:
            rows = [token_shapley(predictor, {k: v[i:i + 1] for k, v in arrays.items()},
                                  col, int(t[i]), pad) for i in range(len(ids))]
        each = (time.perf_counter() - start) / max(1, len(ids))
        for i, e in enumerate(out):
            e.tokens[col] = list(zip(token_strings(state, ids[i]),
                                     (float(a) for a in rows[i]), strict=True))
            e.token_method = method
            e.cost[f"tokens:{col}"] = {"method": method, "baseline": BASELINES[method],
                                       "seconds": each}


def token_shapley(predictor: Predictor, row: dict[str, np.ndarray], column: str, target: int,
                  pad: int) -> np.ndarray:
    """Shapley values of the non-padding tokens of ``column`` in one row."""
    from launchml.explain.core import batched

    ids = row[column][0]
    where = np.flatnonzero(ids != pad)

    def value(masks: np.ndarray) -> np.ndarray:
        m = len(masks)
        seq = np.full((m, len(ids)), pad, dtype=ids.dtype)
        seq[:, :] = np.where(np.isin(np.arange(len(ids)), where), ids, pad)
        absent = np.zeros((m, len(ids)), dtype=bool)
        absent[:, where] = ~masks
        seq[absent] = pad
        arrays = {k: (seq if k == column else np.repeat(v, m, axis=0)) for k, v in row.items()}
        return batched(lambda a: predictor.logits(a)[:, target], arrays, m)

    phi, *_ = shapley(value, len(where))
    return phi


def linear_tokens(model: Any, column: str, ids: np.ndarray, target: int) -> np.ndarray:
    """A lone linear model's exact per-token contributions to output ``target``."""
    from launchml.models.linear_family import NGRAMS

    state = model.states[column]
    n_max, pad = NGRAMS[state["type"]], pad_id(state)
    base = int(state["vocab_size"]) + 1
    ids = np.asarray(ids, dtype=np.int64)
    keys_vocab, idf = model.vocab_[column]
    # where this column's block starts among the model's features
    offset = len(model.dense_) + sum(card for _, card in model.cats_)
    for col, (keys, _) in model.vocab_.items():
        if col == column:
            break
        offset += len(keys)
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
