"""Table and token explanations: equal to LightGBM's own TreeSHAP, complete (they add up
to the output minus the baseline's), concentrated on the one column / token that
decides, and the Shapley engine right on games whose values are known."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest

import launchml
from launchml.errors import InputError
from launchml.explain.core import column_game, shapley
from tests.explain.conftest import signal_table
from tests.tables_data import BAD, GOOD


def test_lone_lightgbm_contributions_equal_its_pred_contrib(lightgbm_run):
    pred = launchml.load(lightgbm_run.dir.model)
    df = signal_table(30, seed=1)
    found = pred.explain(df)
    assert [e.method for e in found] == ["tree_shap"] * 30
    # LightGBM's own pred_contrib on the same prepared matrix, parts summed per column
    member = pred._model.members[0].model
    arrays = next(pred.iter_arrays(df))[1]
    contrib = member.booster_.predict(member._matrix(arrays), pred_contrib=True)
    names = member.feature_names_
    for i, e in enumerate(found):
        mine = {c: w for c, _, w in e.contributions}
        for col in ("signal", "noise_a", "noise_b", "noise_c"):
            parts = [j for j, f in enumerate(names) if f == col or f.startswith(col + ":")]
            assert mine[col] == pytest.approx(contrib[i, parts].sum(), abs=1e-9)
        assert e.base_value == pytest.approx(contrib[i, -1])
        assert e.base_value + sum(mine.values()) == pytest.approx(e.value, abs=1e-6)
    assert e.value == pytest.approx(pred.logits(arrays)[-1, 0])


@pytest.mark.parametrize("run", ["lightgbm_run", "linear_run"])
def test_the_deciding_column_gets_the_contributions(run, request):
    pred = launchml.load(request.getfixturevalue(run).dir.model)
    found = pred.explain(signal_table(60, seed=2), method="shapley")
    share = {}
    for e in found:
        for c, _, w in e.contributions:
            share[c] = share.get(c, 0.0) + abs(w)
    assert max(share, key=share.get) == "signal"
    assert share["signal"] > 0.8 * sum(share.values())


def test_shapley_values_are_complete_and_exact_for_any_model(linear_run):
    pred = launchml.load(linear_run.dir.model)
    df = signal_table(5, seed=3)
    for e in pred.explain(df):  # a linear model: the 'shapley' method
        assert e.method == "shapley" and e.cost["exact"]
        assert e.base_value + sum(w for _, _, w in e.contributions) == \
            pytest.approx(e.value, abs=1e-9)
    # with background rows, the baseline is their mean output
    e = pred.explain(df.head(1), background=signal_table(20, seed=4))[0]
    assert "20 background rows" in e.baseline
    assert e.base_value + sum(w for _, _, w in e.contributions) == pytest.approx(e.value)


def _brute_force(v, k):
    phi = np.zeros(k)
    for i in range(k):
        others = [j for j in range(k) if j != i]
        for r in range(k):
            for s in itertools.combinations(others, r):
                w = math.factorial(r) * math.factorial(k - r - 1) / math.factorial(k)
                with_i = np.zeros(k, bool)
                with_i[list(s) + [i]] = True
                without = with_i.copy()
                without[i] = False
                phi[i] += w * (v(with_i) - v(without))
    return phi


def test_the_shapley_engine_on_known_games():
    rng = np.random.default_rng(0)
    w, pair = rng.normal(size=5), rng.normal()

    def game(mask):  # additive plus one interaction
        return float(mask @ w + pair * mask[0] * mask[3])

    def value(masks):
        return np.array([game(m) for m in masks])

    phi, full, none, evals, kind = shapley(value, 5)
    assert kind == "exact" and evals == 32
    assert phi == pytest.approx(_brute_force(game, 5))
    assert phi[1] == pytest.approx(w[1]) and phi[0] == pytest.approx(w[0] + pair / 2)
    # sampled (more players than the exact limit): still complete, near the truth
    phi_s, full_s, none_s, _, kind = shapley(value, 5, exact_max=2, permutations=64)
    assert kind == "sampled" and phi_s.sum() == pytest.approx(full_s - none_s)
    assert phi_s == pytest.approx(phi, abs=0.15)


@pytest.mark.slow  # importing shap takes ~15 s on a busy 2-core machine
def test_column_game_matches_shap_exact_explainer():
    """On a plain function, the column game with a background equals shap's exact
    (interventional) Shapley values."""
    shap = pytest.importorskip("shap")
    rng = np.random.default_rng(1)
    bg = rng.normal(size=(8, 4))
    x = rng.normal(size=(1, 4))

    def f(a):
        m = np.column_stack([a[f"c{j}"] for j in range(4)])
        return np.tanh(m[:, 0] * m[:, 1]) + m[:, 2] ** 2 - 0.5 * m[:, 3]

    row = {f"c{j}": x[:, j] for j in range(4)}
    background = {f"c{j}": bg[:, j] for j in range(4)}
    phi, *_ = shapley(column_game(f, row, background, [[f"c{j}"] for j in range(4)]), 4)
    explainer = shap.explainers.Exact(
        lambda m: f({f"c{j}": m[:, j] for j in range(4)}), shap.maskers.Independent(bg))
    assert phi == pytest.approx(explainer(x).values[0], abs=1e-9)


def test_linear_token_contributions_are_exact_and_find_the_sentiment_words(text_linear_run):
    pred = launchml.load(text_linear_run.dir.model)
    rows = pd.DataFrame({"review": ["the coffee was great and fresh today",
                                    "my order was late and cold"],
                         "stars_shown": [3, 3], "shop": ["north", "north"]})
    found = pred.explain(rows)
    for e in found:
        assert e.token_method == "linear"
        toks = e.tokens["review"]
        # the column's part of the output: with the text and with an empty text
        full = pred.logits(next(pred.iter_arrays(rows))[1])
        empty = pred.logits(next(pred.iter_arrays(rows.assign(review="")))[1])
        i = found.index(e)
        assert sum(a for _, a in toks) == pytest.approx(full[i, 0] - empty[i, 0], abs=1e-9)
        top = max(toks, key=lambda t: abs(t[1]))[0]
        assert top in GOOD + BAD
    assert found[0].prediction["label"] == "positive"
    words = [w for w, _ in found[1].tokens["review"]]
    assert words == ["my", "order", "was", "late", "and", "cold"]


def test_token_shapley_is_complete_and_finds_the_sentiment_words(text_linear_run):
    from launchml.explain.tokens import token_shapley

    pred = launchml.load(text_linear_run.dir.model)
    rows = pd.DataFrame({"review": ["Really the order was awful"], "stars_shown": [2],
                         "shop": ["east"]})
    arrays = next(pred.iter_arrays(rows))[1]
    words = token_shapley(pred, arrays, "review", 0, rows.review[0])
    assert [w for w, _ in words] == ["Really", "the", "order", "was", "awful"]
    # complete: the words add up to the output minus the output without any word
    empty = next(pred.iter_arrays(rows.assign(review="")))[1]
    total = sum(a for _, a in words)
    assert total == pytest.approx(pred.logits(arrays)[0, 0] - pred.logits(empty)[0, 0])
    assert min(words, key=lambda w: w[1])[0] == "awful"


def test_a_method_that_does_not_apply_names_the_one_to_use(linear_run):
    pred = launchml.load(linear_run.dir.model)
    with pytest.raises(InputError, match="tree_shap.*Fix: use method='shapley'"):
        pred.explain(signal_table(2), method="tree_shap")
    with pytest.raises(InputError, match="Grad-CAM.*Fix: use method='shapley'"):
        pred.explain(signal_table(2), method="grad_cam")
    with pytest.raises(InputError, match="not one of"):
        pred.explain(signal_table(2), method="lime")


def test_bad_input_gets_the_same_error_as_predict(linear_run):
    pred = launchml.load(linear_run.dir.model)
    bad = signal_table(3).drop(columns=["noise_a"])
    with pytest.raises(InputError) as predicting:
        pred.predict(bad)
    with pytest.raises(InputError) as explaining:
        pred.explain(bad)
    assert str(explaining.value) == str(predicting.value)
    assert "noise_a" in str(explaining.value)


def test_permutation_importance_ranks_the_deciding_column_first(lightgbm_run):
    from launchml.data import load_prepared
    from launchml.data.schema import split_arrays
    from launchml.explain.tabular import permutation_importance

    pred = launchml.load(lightgbm_run.dir.model)
    x, y = split_arrays(load_prepared(lightgbm_run.dir), "test")
    result = permutation_importance(pred, dict(x), np.asarray(y))
    assert next(iter(result["importance"])) == "signal"
    assert result["importance"]["signal"] > 0.1 > abs(result["importance"]["noise_a"])
