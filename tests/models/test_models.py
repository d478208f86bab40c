from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from launchml import ModelError
from launchml.data.schema import Column, Schema
from launchml.models import NETWORKS, NetworkSpec, create_model
from launchml.tasks import create_task


def _schema(h=150, w=150, c=3, labels=("a", "b")) -> Schema:
    task = "binary" if len(labels) == 2 else "multiclass"
    return Schema([Column("image", "image", [h, w, c]), Column("label", "label", [])],
                  "label", task, list(labels))


PRE = {"image": {"rescale": 1 / 255}}


def _build(name="seed_cnn", schema=None, **opts):
    schema = schema or _schema()
    task = create_task(schema.task, schema.labels)
    return create_model(NetworkSpec(name=name, **opts), schema, task, PRE)


def test_seed_cnn_matches_the_article_keras_model():
    model = _build()
    # Keras model.summary() of the article's Sequential model: 19,034,177 parameters
    assert sum(p.numel() for p in model.parameters()) == 19_034_177
    out = model(image=torch.randint(0, 256, (2, 150, 150, 3), dtype=torch.uint8))
    assert out.shape == (2, 1)


def test_seed_cnn_adapts_to_input_size_and_classes():
    model = _build(schema=_schema(32, 40, 1, labels=list("abcde")))
    assert model(image=torch.zeros(3, 32, 40, 1)).shape == (3, 5)
    with pytest.raises(ModelError, match="at least 22x22"):
        _build(schema=_schema(16, 16, 1))


@pytest.mark.parametrize("name", [*sorted(n for n in NETWORKS if n != "timm"),
                                  "timm:resnet10t"])
def test_networks_forward_backward_and_one_step_lowers_the_loss(name):
    assert {"seed_cnn", "timm"} <= set(NETWORKS)
    torch.manual_seed(0)
    schema = _schema(32, 32, 3, labels=("a", "b", "c"))
    task = create_task(schema.task, schema.labels)
    model = _build(name, schema=schema)
    model.eval()  # no dropout / batch-norm updates: the same batch gives the same loss
    x = torch.rand(4, 32, 32, 3) * 255
    y = torch.tensor([0, 1, 2, 1])
    out = model(image=x)
    assert out.shape == (4, 3) and torch.isfinite(out).all()
    assert not torch.allclose(out[0], out[1])  # the output depends on the input
    loss = task.loss(out, y)
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert grads and all(g is not None and torch.isfinite(g).all() for g in grads)
    assert sum(float(g.abs().sum()) for g in grads) > 0
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    opt.step()
    with torch.no_grad():
        assert task.loss(model(image=x), y).item() < loss.item()


def test_timm_backbone_from_a_local_weights_file(tmp_path):
    import timm

    donor = timm.create_model("resnet10t", num_classes=7)
    path = tmp_path / "w.safetensors"
    save_file(donor.state_dict(), str(path))
    model = _build("timm:resnet10t", schema=_schema(32, 32, 3), pretrained=str(path))
    stem = dict(model.net.named_parameters())["conv1.0.weight"]
    assert torch.equal(stem, donor.state_dict()["conv1.0.weight"])
    assert model(image=torch.rand(2, 32, 32, 3)).shape == (2, 1)
    assert model.mean.flatten().tolist() != [0.0, 0.0, 0.0]  # pretrained normalization


def test_timm_errors_are_clear(tmp_path, monkeypatch):
    with pytest.raises(ModelError, match="does not exist"):
        _build("timm:resnet10t", schema=_schema(32, 32), pretrained=str(tmp_path / "no.pth"))
    with pytest.raises(ModelError, match="Did you mean"):
        _build("timm:resnet19", schema=_schema(32, 32))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    with pytest.raises(ModelError, match="offline"):
        _build("timm:resnet10t", schema=_schema(32, 32), pretrained=True)
    with pytest.raises(ModelError, match="offline"):  # a hub name, not a local path
        _build("timm:resnet10t", schema=_schema(32, 32), pretrained="timm/resnet10t.c3_in1k")
    with pytest.raises(ModelError, match="no pretrained weights"):
        _build("seed_cnn", pretrained=True)


@pytest.mark.slow
def test_timm_family_through_every_stage(shapes_dir, tmp_path):
    """A timm backbone trains, exports to ONNX with parity, evaluates and predicts."""
    import launchml

    run = launchml.run({
        "name": "timm", "output_dir": str(tmp_path),
        "data": {"train": str(shapes_dir / "train"), "test": str(shapes_dir / "test"),
                 "target_size": [32, 32], "interpolation": "bilinear"},
        "model": {"name": "timm:resnet10t"},
        "train": {"epochs": 1, "batch_size": 16, "optimizer": "adamw"},
        "optimize": {"latency_runs": 1},
    })
    assert run.variants["onnx"]["max_abs_diff"] < 1e-3
    assert run.metrics["n"] == 16
    rows = launchml.load(run.dir.model, engine="onnx").predict_rows(shapes_dir / "test" / "squares")
    assert {r["label"] for r in rows} <= {"circles", "squares"} and len(rows) == 8


def test_timm_package_loads_without_its_pretrained_file(shapes_dir, tmp_path):
    """The package records the bare architecture and the normalization it trained with."""
    import timm

    import launchml

    weights = tmp_path / "w.safetensors"
    save_file(timm.create_model("resnet10t").state_dict(), str(weights))
    run = launchml.run({
        "name": "t", "output_dir": str(tmp_path / "runs"),
        "data": {"train": str(shapes_dir / "train"), "target_size": [32, 32]},
        "model": {"name": "timm:resnet10t", "pretrained": str(weights)},
        "train": {"epochs": 1, "batch_size": 16},
    }, stages=["prepare", "train"])
    weights.unlink()
    meta = launchml.load(run.dir.model).package.meta
    assert meta["model"]["members"][0]["network"] == {"name": "timm:resnet10t",
                                                      "pretrained": False, "dropout": 0.0}
    assert meta["preprocessing"]["image"]["mean"] == pytest.approx([0.485, 0.456, 0.406])
    rows = launchml.load(run.dir.model).predict_rows(shapes_dir / "test" / "circles")
    assert len(rows) == 8


CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.mark.gpu
@CUDA
def test_seed_cnn_trains_one_bf16_step_on_cuda():
    torch.manual_seed(0)
    schema = _schema(32, 32, 1, labels=list("abc"))
    task = create_task(schema.task, schema.labels)
    model = _build(schema=schema).cuda()
    x = torch.randint(0, 256, (8, 32, 32, 1), dtype=torch.uint8, device="cuda")
    y = torch.arange(8, device="cuda") % 3
    opt = torch.optim.SGD(model.parameters(), lr=1e-2)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        out = model(image=x)
        loss = task.loss(out, y)
    assert out.device.type == "cuda" and out.dtype == torch.bfloat16
    assert loss.device.type == "cuda" and torch.isfinite(loss)
    loss.backward()
    opt.step()
    assert all(p.device.type == "cuda" and torch.isfinite(p).all() for p in model.parameters())


@pytest.mark.gpu
@CUDA
def test_training_on_cuda_in_bf16_through_the_trainer(digits_dir, tmp_path):
    import json

    from tests.conftest import digits_config

    import launchml

    cfg = digits_config(digits_dir, tmp_path, epochs=1, accelerator="gpu", precision="bf16")
    run = launchml.run(cfg, stages=["prepare", "train"])
    rows = [json.loads(line) for line in run.dir.events.read_text().splitlines()]
    assert rows[0]["settings"]["accelerator"] == "cuda"
    assert rows[0]["settings"]["precision"] == "bf16"
    epochs = [r for r in rows if r["event"] == "epoch"]
    assert len(epochs) == 1 and torch.isfinite(torch.tensor(epochs[0]["train_loss"]))
