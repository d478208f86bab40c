"""Column encoders: shapes, a tiny local Hugging Face model (with and without
LoRA) as tokenizer and encoder, package reloading, and ONNX export."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from tests.tables_data import SAMPLE_REVIEWS, save_tiny_bert

from launchml import ModelError
from launchml.data.columns import ColumnInfo
from launchml.data.preprocess import fit_column, transform_table
from launchml.data.table_adapter import TableConfig
from launchml.models import MLPConfig
from launchml.models.encoders import build_encoder

REVIEWS = SAMPLE_REVIEWS[:5]
SMILES = ["CCO", "CC(=O)OC1=CC=CC=C1C(=O)O", "CN1C=NC2=C1C(=O)N(C(=O)N2C)C",
          "CC(C)CC1=CC=C(C=C1)C(C)C(=O)O", "CC(=O)NC1=CC=C(C=C1)O"]
PROTEINS = ["MVLSPADKTNVKAAWGKVGAHAGEYGAEALERMFLSFPTTK", "GIVEQCCTSICSLYQLENYCN",
            "FVNQHLCGSHLVEALYLVCGERGFFYTPKT", "MVHLTPEEKSAVTALWGKVNVDEVGGEALGRLLVVYPWTQ",
            "MKTAYIAKQRQISFVKSHFSRQ"]
SPEC = MLPConfig(text_encoder="transformer", text_dim=16, text_layers=1)
BAG = MLPConfig(text_encoder="bag", text_dim=16)  # token + bigram embedding means


def _fit(name: str, kind: str, values: list, **options) -> tuple[dict, torch.Tensor]:
    cfg = TableConfig(train="train.csv", target="y", **options)
    state = json.loads(json.dumps(fit_column(ColumnInfo(name, kind, "", 0, 0),
                                             pd.Series(values), cfg)))
    x = transform_table({name: state}, pd.DataFrame({name: values}))[name]
    return state, torch.from_numpy(x)


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory):
    return save_tiny_bert(tmp_path_factory.mktemp("tiny-bert"), REVIEWS)


def test_scratch_text_char_and_image_encoders_shapes_and_gradients():
    text, ids = _fit("review", "text", REVIEWS)
    mol, smiles = _fit("smiles", "molecule", SMILES)
    prot, seqs = _fit("seq", "protein", PROTEINS)
    image = {"type": "image", "target_size": [32, 32], "color_mode": "rgb", "channels": 3,
             "rescale": 1 / 255, "mean": [0.5] * 3, "std": [0.5] * 3}
    pixels = torch.randint(0, 256, (5, 32, 32, 3), dtype=torch.uint8)
    for name, state, x, dim in [("review", text, ids, 16), ("smiles", mol, smiles, 128),
                                ("seq", prot, seqs, 128), ("photo", image, pixels, 64)]:
        enc = build_encoder(name, state, SPEC)
        out = enc(x)
        assert enc.out_dim == dim and out.shape == (5, dim) and out.dtype == torch.float32
        out.sum().backward()
        assert any(p.grad is not None for p in enc.parameters())
        enc.finalize()  # a no-op for these
    empty = build_encoder("review", text, SPEC).eval()(ids[:1] * 0)  # all padding: no NaN
    assert torch.isfinite(empty).all()
    with pytest.raises(ModelError, match="image_encoder 'vgg'.*seed_cnn"):
        build_encoder("photo", image, SPEC.model_copy(update={"image_encoder": "vgg"}))
    with pytest.raises(ModelError, match="multiple of 4"):
        build_encoder("review", text, MLPConfig(text_encoder="transformer", text_dim=10))
    bag = build_encoder("review", text, BAG)
    out = bag(ids)
    assert bag.out_dim == 32 and out.shape == (5, 32)
    out.sum().backward()
    assert bag.tokens.weight.grad is not None and bag.bigrams.weight.grad is not None
    assert torch.isfinite(bag(ids[:1] * 0)).all()  # all padding: zeros, not NaN


def test_timm_image_encoder():
    image = {"type": "image", "target_size": [32, 32], "channels": 1, "rescale": 1 / 255,
             "mean": [0.5], "std": [0.5]}
    enc = build_encoder("photo", image, MLPConfig(image_encoder="timm:resnet10t"))
    assert enc(torch.rand(2, 32, 32, 1) * 255).shape == (2, 64)


def test_pretrained_tokenizer_from_a_local_folder(tiny_bert):
    state, ids = _fit("review", "text", REVIEWS, tokenizer=str(tiny_bert))
    assert state["pretrained"] == str(tiny_bert.resolve())
    assert state["hf_config"]["model_type"] == "bert" and state["pad_id"] == 0
    assert (ids[:, 0] == 2).all()  # [CLS] ... [SEP] from the saved tokenizer
    assert state["vocab_size"] > 50 and ids.shape[1] == state["max_length"]
    capped, _ = _fit("review", "text", REVIEWS[:2], tokenizer=str(tiny_bert),
                     text_max_length=100)
    assert capped["max_length"] == 64  # the model's max_position_embeddings


@pytest.mark.parametrize("lora", [False, True])
def test_pretrained_encoder_finalize_and_reload(tiny_bert, lora):
    state, ids = _fit("review", "text", REVIEWS, tokenizer=str(tiny_bert))
    spec = MLPConfig(lora=lora, lora_rank=4)
    enc = build_encoder("review", state, spec)
    trainable = {n for n, p in enc.named_parameters() if p.requires_grad}
    assert enc.out_dim == 32
    assert all("lora_" in n for n in trainable) if lora else len(trainable) > 10
    if lora:  # adapters start as a no-op (B = 0): make them matter before merging
        with torch.no_grad():
            for n, p in enc.named_parameters():
                if "lora_B" in n:
                    p.normal_(0, 0.5)
    enc.eval()
    with torch.no_grad():
        before = enc(ids)
    enc.finalize()
    weights = enc.state_dict()
    assert not any("lora" in k or "base_layer" in k for k in weights)
    again = build_encoder("review", state, spec, for_loading=True).eval()
    again.load_state_dict(weights)
    with torch.no_grad():
        assert torch.allclose(again(ids), before, atol=1e-5)
        assert torch.allclose(enc(ids), before, atol=1e-5)


def test_pretrained_model_offline_is_a_clear_error(tiny_bert, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)  # read at import
    state, _ = _fit("review", "text", REVIEWS[:2], tokenizer=str(tiny_bert))
    state["pretrained"] = "no-such-org/no-such-model"
    with pytest.raises(ModelError, match="'no-such-org/no-such-model' could not be loaded.*"
                                         "local folder"):
        build_encoder("review", state, SPEC)


class _Combined(torch.nn.Module):
    """What an exported table model looks like: one encoder per column, one head."""

    def __init__(self, encoders: dict[str, torch.nn.Module]) -> None:
        super().__init__()
        self.encoders = torch.nn.ModuleDict(encoders)
        self.head = torch.nn.Linear(sum(e.out_dim for e in encoders.values()), 2)

    def forward(self, review, smiles, photo):
        parts = [self.encoders["review"](review), self.encoders["smiles"](smiles),
                 self.encoders["photo"](photo)]
        return self.head(torch.cat(parts, dim=1))


def test_onnx_export_of_text_char_and_seed_cnn_encoders(tmp_path):
    import onnxruntime as ort

    text, ids = _fit("review", "text", REVIEWS)
    mol, smiles = _fit("smiles", "molecule", SMILES)
    image = {"type": "image", "target_size": [24, 24], "channels": 1, "rescale": 1 / 255,
             "mean": [0.5], "std": [0.5]}
    pixels = torch.randint(0, 256, (5, 24, 24, 1), dtype=torch.uint8)
    torch.manual_seed(0)
    model = _Combined({"review": build_encoder("review", text, SPEC),
                       "smiles": build_encoder("smiles", mol, SPEC),
                       "photo": build_encoder("photo", image, SPEC)}).eval()
    inputs = {"review": ids, "smiles": smiles, "photo": pixels}
    batch = torch.export.Dim("batch")
    path = tmp_path / "model.onnx"
    torch.onnx.export(model, (), str(path), kwargs=inputs, input_names=list(inputs),
                      dynamic_shapes={k: {0: batch} for k in inputs}, dynamo=True,
                      external_data=False, verbose=False)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.type for i in session.get_inputs()][:2] == ["tensor(int64)"] * 2
    for n in (5, 2):  # a batch size other than the traced one
        feeds = {k: v[:n].numpy() for k, v in inputs.items()}
        got = session.run(None, feeds)[0]
        with torch.no_grad():
            want = model(**{k: v[:n] for k, v in inputs.items()}).numpy()
        assert np.abs(got - want).max() < 1e-4
