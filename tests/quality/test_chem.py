"""Molecule columns: RDKit fingerprints and descriptors feed LightGBM and the linear family;
a SMILES RDKit cannot read is an error naming its rows."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import launchml
from launchml.data.chem import fit_chem, transform_chem
from launchml.errors import DataError, InputError

# real molecules with their measured pIC50 (RDKit's FreeWilson example data, ChEMBL)
SMILES = ["O=S(=O)(Nc1cccs1)c2ccc(Oc3ccccc3c4ccccc4)c(c2)C#N", "CCO", "c1ccccc1O",
          "CC(=O)Oc1ccccc1C(=O)O", "CN1C=NC2=C1C(=O)N(C(=O)N2C)C", "C1CCCCC1N"]


def test_features_are_fingerprint_bits_counts_and_descriptors():
    col = pd.Series(SMILES)
    state = {"type": "molecule", **fit_chem("smiles", col)}
    out = transform_chem("smiles", state, col)
    assert set(out) == {"smiles:ecfp", "smiles:ecfp_count", "smiles:descriptors"}
    assert out["smiles:ecfp"].shape == (6, 2048) and set(np.unique(out["smiles:ecfp"])) <= {0, 1}
    assert (out["smiles:ecfp_count"] >= out["smiles:ecfp"]).all()
    assert out["smiles:ecfp_count"].max() > 1  # counts, not only bits
    desc = out["smiles:descriptors"]
    names = state["chem"]["descriptors"]
    assert desc.shape == (6, len(names)) and np.isfinite(desc).all()
    weight = desc[:, names.index("MolWt")]
    assert weight[1] == pytest.approx(46.07, abs=0.01)  # ethanol
    json.dumps(state)  # the state goes into package.json


def test_invalid_smiles_are_errors_naming_every_row():
    col = pd.Series(["CCO", "C1CC", "c1ccccc1", "not a molecule"], index=[10, 11, 12, 13])
    with pytest.raises(DataError) as e:
        fit_chem("smiles", col)
    msg = str(e.value)
    assert "column 'smiles'" in msg and "2 value(s)" in msg
    assert "11 ('C1CC')" in msg and "13 ('not a molecule')" in msg and "Fix" in msg
    state = {"type": "molecule", **fit_chem("smiles", pd.Series(SMILES))}
    with pytest.raises(InputError, match=r"data rows 1 \('C1CC'\)"):
        transform_chem("smiles", state, pd.Series(["CCO", "C1CC"]))


def test_missing_smiles_is_an_empty_molecule_not_an_error():
    state = {"type": "molecule", **fit_chem("smiles", pd.Series(SMILES))}
    out = transform_chem("smiles", state, pd.Series(["CCO", None]))
    assert out["smiles:ecfp"][1].sum() == 0
    assert np.allclose(out["smiles:descriptors"][1], np.asarray(state["chem"]["medians"]),
                       rtol=1e-4, atol=1e-4) or np.isfinite(out["smiles:descriptors"][1]).all()


@pytest.mark.slow
def test_auto_on_smiles_uses_the_chemistry_features(tmp_path):
    from rdkit import RDConfig

    base = f"{RDConfig.RDContribDir}/FreeWilson/data/CHEMBL2321810"
    smi = pd.read_csv(f"{base}.smi", sep=" ", header=None, names=["smiles", "Name"])
    act = pd.read_csv(f"{base}_act.csv")
    frame = smi.merge(act, on="Name").dropna().head(300)[["smiles", "Act"]]
    frame.to_csv(tmp_path / "pic50.csv", index=False)
    run = launchml.run({"name": "chem", "output_dir": str(tmp_path),
                        "data": {"train": str(tmp_path / "pic50.csv"), "target": "Act",
                                 "column_types": {"smiles": "molecule"}, "test_split": 0.2},
                        "model": {"name": "auto", "families": ["lightgbm"]}},
                       stages=["prepare", "train"])
    # trees on a SMILES-only table: they read the fingerprints and descriptors
    features = json.loads((run.model_dir / "model.lgb.features.json").read_text())
    assert any(f.startswith("smiles:ecfp_count[") for f in features)
    assert any(f.startswith("smiles:descriptors[") for f in features)
    board = {r["family"]: r for r in json.loads((run.dir.root / "leaderboard.json").read_text())}
    assert "r2" in board["lightgbm"]  # quality is measured on the full set: bench/quality.py
    predictor = launchml.Predictor.load(run.model_dir)
    values = predictor.predict(frame[["smiles"]].head(3))
    assert len(values) == 3 and all(np.isfinite(values))
    with pytest.raises(InputError, match="not SMILES"):
        predictor.predict(pd.DataFrame({"smiles": ["C1CC"]}))
