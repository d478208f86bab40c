"""Character attributions on SMILES / protein strings, and layer integrated gradients
on the embeddings of a neural text model."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import launchml


def test_protein_characters_of_the_binding_motif_count_most(pairs_run):
    pred = launchml.load(pairs_run.dir.model)
    protein = "ACDEFGKLMNPQRSTV" * 2 + "WHHW" + "ACDEFGKLMNPQRSTV"
    rows = pd.DataFrame({"sequence": [protein]})
    e = pred.explain(rows)[0]
    assert e.prediction["label"] == "yes"
    chars = e.tokens["sequence"]
    assert "".join(c for c, _ in chars) == protein
    at = protein.index("WHHW")
    motif = np.mean([a for _, a in chars[at:at + 4]])
    rest = np.mean([abs(a) for _, a in chars[:at] + chars[at + 4:]])
    assert motif > 3 * rest
    # exact: the characters add up to the column's n-gram part of the output
    arrays = next(pred.iter_arrays(rows))[1]
    empty = {**arrays, "sequence": np.zeros_like(arrays["sequence"])}
    gap = pred.logits(arrays)[0, 0] - pred.logits(empty)[0, 0]
    assert sum(a for _, a in chars) == pytest.approx(gap, abs=1e-9)
    assert e.token_method == "linear" and e.cost["tokens:sequence"]["method"] == "linear"


@pytest.mark.slow  # trains the neural combiner (~10 s)
def test_layer_integrated_gradients_on_a_neural_text_model(reviews_csv, tmp_path):
    from tests.explain.conftest import table_config
    from tests.tables_data import BAD, GOOD

    cfg = table_config(reviews_csv, tmp_path, "mlp", {
        "name": "mlp", "mlp": {"text_encoder": "bag", "hidden": [32]}}, train={"epochs": 12})
    pred = launchml.load(launchml.run(cfg, stages=["prepare", "train"]).dir.model)
    rows = pd.DataFrame({"review": ["the delivery was terrible and the staff rude",
                                    "lovely coffee and really friendly staff"],
                         "stars_shown": [3, 3], "shop": ["north", "north"]})
    found = pred.explain(rows)
    for e in found:
        assert e.token_method == "layer_integrated_gradients"
        toks = [(t, a) for t, a in e.tokens["review"] if t not in ("[CLS]",)]
        top = max(toks, key=lambda t: abs(t[1]))[0]
        assert top in GOOD + BAD, toks
    # randomised weights: the token ranking changes
    import torch
    from scipy.stats import spearmanr

    torch.manual_seed(3)
    for m in pred._model.members[0].net.modules():
        if hasattr(m, "reset_parameters"):
            m.reset_parameters()
    again = pred.explain(rows)
    for a, b in zip(found, again, strict=True):
        rho = spearmanr([x for _, x in a.tokens["review"]],
                        [x for _, x in b.tokens["review"]]).statistic
        assert rho < 0.5
