"""Mixed inputs through all five stages: text + numbers + categories, a SMILES +
protein pair, image paths + numbers (served as base64), and a local Hugging Face model
with LoRA."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from tests.tables_data import drug_target_pairs, image_table, reviews, save_tiny_bert

import launchml
from launchml.deploy.predictor import Predictor


def _run(tmp_path, name, path, target, **sections):
    return launchml.run({"name": name, "output_dir": str(tmp_path / "runs"),
                         "data": {"train": str(path), "target": target, "test_split": 0.2,
                                  **sections.pop("data", {})}, **sections})


def test_text_numbers_and_categories_auto(tmp_path):
    path = tmp_path / "reviews.csv"
    reviews(400).to_csv(path, index=False)
    run = _run(tmp_path, "reviews", path, "label", train={"epochs": 15},
               optimize={"int8": False})
    manifest = json.loads((run.dir.prepared / "manifest.json").read_text())
    types = {c["name"]: c["type"] for c in manifest["columns"]}
    assert types["review"] == "text" and types["shop"] == "category"
    board = {r["family"]: r for r in json.loads((run.dir.root / "leaderboard.json").read_text())}
    assert {"lightgbm", "linear", "mlp"} <= set(board)
    # the text carries the label: text-aware families beat trees on the other columns
    assert board["linear"]["accuracy"] > board["lightgbm"]["accuracy"] + 0.2
    assert run.metrics["accuracy"] >= 0.85
    rows = run.predictor.predict_rows([{"review": "Great coffee, fast delivery", "stars_shown": 3,
                                   "shop": "north"},
                                  {"review": "Cold and stale, rude staff", "stars_shown": 3,
                                   "shop": "a shop never seen"}])
    assert [r["label"] for r in rows] == ["positive", "negative"]


def test_smiles_protein_pairs_train_as_one_model(tmp_path):
    path = tmp_path / "pairs.csv"
    drug_target_pairs(300).to_csv(path, index=False)
    run = _run(tmp_path, "pairs", path, "binds", model={"name": "mlp"},
               train={"epochs": 12, "batch_size": 32, "learning_rate": 2e-3},
               optimize={"int8": False})
    manifest = json.loads((run.dir.prepared / "manifest.json").read_text())
    types = {c["name"]: c["type"] for c in manifest["columns"]}
    assert types == {"smiles": "molecule", "sequence": "protein", "binds": "category"} or \
        (types["smiles"], types["sequence"]) == ("molecule", "protein")
    meta = json.loads((run.model_dir / "package.json").read_text())
    plan = meta["model"]["members"][0]["plan"]
    assert sorted(col for _, col in plan["encoders"]) == ["sequence", "smiles"]
    assert run.metrics["accuracy"] >= 0.9  # majority class ('no') is ~0.75
    assert run.variants["onnx"]["max_abs_diff"] < 1e-3  # char CNNs export to ONNX


def test_image_text_and_numbers_in_one_model(tmp_path):
    path = image_table(tmp_path, 120)
    run = _run(tmp_path, "photos", path, "label", model={"name": "mlp"},
               data={"image_size": [32, 32], "column_types": {"caption": "text"}},
               train={"epochs": 6}, optimize={"onnx": False, "int8": False})
    meta = json.loads((run.model_dir / "package.json").read_text())
    plan = meta["model"]["members"][0]["plan"]
    assert sorted(col for _, col in plan["encoders"]) == ["caption", "photo"]
    assert plan["numbers"][0] == "weight"
    assert run.metrics["accuracy"] >= 0.9
    # a scored file's relative image paths are relative to that file's folder
    (tmp_path / "new").mkdir()
    (tmp_path / "new" / "images").symlink_to(tmp_path / "images")
    (tmp_path / "new" / "rows.csv").write_text(
        "photo,weight,caption\nimages/0.png,0.0,the coffee\nimages/1.png,1.0,my order\n")
    pred = Predictor.load(run.model_dir).predict_rows(tmp_path / "new" / "rows.csv")
    frame = pd.read_csv(path)
    assert [p["label"] for p in pred] == frame["label"].head(2).tolist()
    # the server takes the images as base64, and opens no path a request names
    import base64

    from fastapi.testclient import TestClient

    from launchml.deploy.server import create_app

    client = TestClient(create_app(Predictor.load(run.model_dir)))
    records = [{"photo": base64.b64encode((tmp_path / f"images/{i}.png").read_bytes()).decode(),
                "weight": float(i), "caption": c} for i, c in enumerate(["the coffee", "my order"])]
    r = client.post("/v1/predict", json={"records": records})
    assert [p["label"] for p in r.json()["predictions"]] == [p["label"] for p in pred]
    r = client.post("/v1/predict", json={"records": [{**records[0], "photo": "images/0.png"}]})
    assert r.status_code == 422 and r.json()["error"].startswith("records[0].photo")


@pytest.mark.parametrize("lora", [False, True])
def test_pretrained_text_model_fine_tuned_from_a_local_folder(tmp_path, lora):
    path = tmp_path / "reviews.csv"
    reviews(240).to_csv(path, index=False)
    bert = save_tiny_bert(tmp_path / "tiny-bert", reviews(200, seed=5)["review"].tolist())
    run = _run(tmp_path, "bert", path, "label", data={"tokenizer": str(bert)},
               model={"name": "mlp", "lora": lora, "refit": False},
               train={"epochs": 12, "learning_rate": 1e-2 if lora else 3e-3},
               optimize={"int8": False})
    # a random tiny "pretrained" model: LoRA adapts a frozen random base, so less is learnt
    assert run.metrics["accuracy"] >= (0.7 if lora else 0.75)
    meta = json.loads((run.model_dir / "package.json").read_text())
    # the package names no folder outside itself: the origin is a record, never opened
    assert meta["preprocessing"]["review"]["pretrained"] is None
    assert meta["provenance"]["pretrained"] == {"review": str(bert)}
    # the package is self-contained: the original model folder is not needed any more
    import shutil

    shutil.rmtree(bert)
    new = reviews(40, seed=9)
    x = new.drop(columns="label")
    reloaded = Predictor.load(run.model_dir).predict_rows(x)
    a = np.array([r["probabilities"]["positive"] for r in reloaded])
    b = np.array([r["probabilities"]["positive"] for r in run.predictor.predict_rows(x)])
    assert np.abs(a - b).max() < 1e-6
    # the reloaded package really predicts (unseen rows, not a constant answer)
    assert a.std() > 0.05
    hits = np.mean([r["label"] == t for r, t in zip(reloaded, new["label"], strict=True)])
    assert hits >= (0.65 if lora else 0.7), hits
