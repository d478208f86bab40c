"""The optimize stage's parts on real modules: pruning, int8 method choice, the
distillation loss, the pick rule, blocked variants, the config."""

from __future__ import annotations

import numpy as np
import pytest

import launchml
from launchml.optimize import onnx_variants as ov


def _seed_cnn(size: int = 150, outputs: int = 1):
    import torch

    from launchml.models.networks import ImageModel
    from launchml.models.seed_cnn import SeedCNN

    torch.manual_seed(0)
    return ImageModel(SeedCNN(3, size, size, outputs), 1 / 255, [0.0] * 3, [1.0] * 3).eval()


@pytest.mark.slow  # importing torch-pruning loads timm and torchvision: seconds
def test_pruning_shrinks_the_seed_cnn_and_its_dense_layer():
    import torch

    from launchml.optimize.measure import flops_and_params
    from launchml.optimize.prune import prune_network

    net = _seed_cnn(32)  # 32x32 -> a 2x2x128 map flattened into the Dense(512) layer
    x = {"image": np.random.default_rng(0).integers(0, 256, (2, 32, 32, 3), np.uint8)}
    flops, params = flops_and_params(net, x)
    dense = net.net.head[1]
    assert (dense.in_features, dense.out_features) == (128 * 2 * 2, 512)
    prune_network(net, x, 0.5)
    flops2, params2 = flops_and_params(net, x)
    dense = net.net.head[1]
    # the large dense layer shrinks on both sides: its input (the last conv's channels)
    # and its units; the output layer keeps its one output
    assert (dense.in_features, dense.out_features) == (64 * 2 * 2, 256)
    assert net.net.head[-1].out_features == 1
    assert params2 < 0.3 * params and flops2 < 0.3 * flops
    with torch.inference_mode():  # a plain smaller module: it still runs (export: slow test)
        assert net(image=torch.from_numpy(x["image"])).shape == (2, 1)


@pytest.mark.slow
def test_a_pruned_network_exports_to_onnx_with_parity(tmp_path):
    import onnxruntime as ort
    import torch

    from launchml.optimize.prune import prune_network

    net = _seed_cnn(64)
    x = {"image": np.random.default_rng(0).integers(0, 256, (2, 64, 64, 3), np.uint8)}
    prune_network(net, x, 0.5)
    path = ov.export_onnx(net, x, tmp_path / "pruned.onnx")
    out = ort.InferenceSession(str(path)).run(None, {"image": x["image"].astype(np.float32)})[0]
    with torch.inference_mode():
        ref = net(image=torch.from_numpy(x["image"])).numpy()
    assert np.abs(out - ref).max() < 1e-3


def test_a_network_with_nothing_to_prune_names_its_layer():
    import torch

    from launchml.errors import ModelError
    from launchml.optimize.prune import prune_network

    class OneLayer(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.out = torch.nn.Linear(4, 2)

        def forward(self, numbers):
            return self.out(numbers)

    with pytest.raises(ModelError, match=r"layer 'out' \(Linear\)"):
        prune_network(OneLayer(), {"numbers": np.zeros((2, 4), np.float32)}, 0.5)


@pytest.mark.slow
def test_int8_method_static_for_convolutions_dynamic_for_attention(tmp_path):
    import torch

    from launchml.optimize.quantize import int8_method

    conv = ov.export_onnx(_seed_cnn(32, 3), {"image": np.zeros((2, 32, 32, 3), np.uint8)},
                          tmp_path / "conv.onnx")
    assert int8_method(conv)[0] == "static"

    class Attention(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.emb = torch.nn.Embedding(50, 16)
            self.layer = torch.nn.TransformerEncoderLayer(16, 2, 32, batch_first=True)
            self.out = torch.nn.Linear(16, 2)

        def forward(self, col0):
            return self.out(self.layer(self.emb(col0)).mean(1))

    text = ov.export_onnx(Attention().eval(), {"col0": np.ones((2, 8), np.int64)},
                          tmp_path / "text.onnx")
    method, why = int8_method(text)
    assert method == "dynamic" and "transformer" in why


def test_distillation_loss_blends_soft_targets_and_labels():
    import torch
    import torch.nn.functional as F

    from launchml.optimize.distill import DistillTask, distilled
    from launchml.tasks import create_task

    task = create_task("multiclass", ["a", "b", "c"])
    s = torch.tensor([[2.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
    t = torch.tensor([[1.0, 1.0, 0.0], [0.0, 3.0, 0.0]])
    y = torch.tensor([0, 1])
    out = torch.cat([s, t], 1)
    soft_only = DistillTask(task, 4.0, 1.0).loss(out, y)
    expected = F.kl_div(F.log_softmax(s / 4, 1), F.softmax(t / 4, 1),
                        reduction="batchmean") * 16
    assert soft_only.item() == pytest.approx(expected.item(), rel=1e-6)
    assert DistillTask(task, 4.0, 0.0).loss(out, y).item() == pytest.approx(
        task.loss(s, y).item())
    assert DistillTask(task, 4.0, 0.5).correct(out, y).item() == 2  # the student's answers

    student = torch.nn.Linear(2, 3)
    wrapped = distilled(torch.nn.Sequential())  # no channels_last: not an image network
    assert not hasattr(wrapped, "channels_last")

    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = student

        def forward(self, numbers):
            return self.lin(numbers)

    both = distilled(Net())(numbers=torch.ones(4, 2), __teacher__=torch.zeros(4, 3))
    assert both.shape == (4, 6) and both[:, 3:].abs().sum() == 0


def test_munge_rows_and_gain_kept():
    from launchml.optimize.distill import gain_kept, munge

    x = {"a": np.arange(10.0), "b": np.arange(10) * 10}
    fake = munge(x, 50, seed=0)
    assert {k: v.shape for k, v in fake.items()} == {"a": (50,), "b": (50,)}
    assert set(fake["a"]) <= set(x["a"]) and (fake["a"] * 10 != fake["b"]).any()
    assert gain_kept(0.95, 0.90, 0.94) == pytest.approx(0.8)
    assert gain_kept(0.90, 0.90, 0.94) is None


def _rows():
    def row(name, metric, p50, size, **kw):
        return {"variant": name, "metric_name": "accuracy", "metric": metric,
                "metric_drop": round(0.90 - metric, 6), "latency_p50_ms": p50,
                "latency_p95_ms": p50 * 2, "throughput_b64": 1000 / p50, "size_mb": size,
                "engine": "onnx", **kw}
    return [row("pytorch", 0.90, 10.0, 80, engine="torch"), row("onnx", 0.90, 6.0, 80),
            row("int8", 0.895, 3.0, 20), row("pruned", 0.87, 2.0, 40),
            {"variant": "fp16", "error": "ONNX export failed at aten::foo: unsupported"}]


def test_pick_rule_bounds_and_reasons():
    from launchml.optimize.pick import pick

    rows = _rows()
    assert pick(rows, ov.PickConfig(), "pytorch") == "int8"
    reasons = {r["variant"]: r["rejected"] for r in rows}
    assert reasons["pruned"] == "accuracy drops 0.0300 > pick.max_accuracy_drop 0.01"
    assert reasons["fp16"].startswith("not built: ONNX export failed at aten::foo")
    assert reasons["int8"] is None and [r["variant"] for r in rows if r["picked"]] == ["int8"]
    rows = _rows()
    assert pick(rows, ov.PickConfig(by="latency_p50", max_accuracy_drop=0.05), "pytorch") \
        == "pruned"
    rows = _rows()
    assert pick(rows, ov.PickConfig(max_size_mb=10), "pytorch") == "pytorch"
    assert "20.00 MB > pick.max_size_mb 10" in next(r for r in rows
                                                    if r["variant"] == "int8")["rejected"]
    rows = _rows()
    assert pick(rows, ov.PickConfig(by="metric", max_accuracy_drop=None), "pytorch") \
        == "pytorch"  # ties go to the trained model
    assert pick(_rows(), None, "pytorch") == "pytorch"  # no rule: the trained model


@pytest.mark.slow
def test_blocking_op_is_named_from_a_real_export_failure(tmp_path):
    import torch

    from launchml.optimize.build import blocking_op

    class Eig(torch.nn.Module):
        def forward(self, numbers):
            return torch.linalg.eigvals(numbers.reshape(-1, 2, 2)).real

    with pytest.raises(Exception) as info:
        ov.export_onnx(Eig(), {"numbers": np.ones((2, 4), np.float32)}, tmp_path / "x.onnx")
    assert "linalg_eig" in blocking_op(info.value)


def test_config_variants_and_old_switches():
    cfg = ov.OptimizeConfig.model_validate({"onnx": False, "int8": True})
    assert cfg.variants == ["int8"] and cfg.int8 and not cfg.onnx
    assert ov.OptimizeConfig.model_validate({"int8": False}).variants == ["onnx"]
    assert ov.OptimizeConfig().pick is None  # deploying a variant is opt-in
    with pytest.raises(launchml.ConfigError, match="Did you mean 'pruned'"):
        launchml.RunConfig.load({"name": "x", "data": {"train": "t.csv", "target": "y"},
                                 "optimize": {"variants": ["prunned"]}})
    with pytest.raises(launchml.ConfigError, match="optimize.distill.student"):
        launchml.RunConfig.load({"name": "x", "data": {"train": "t.csv", "target": "y"},
                                 "optimize": {"distill": {"student": "xgboost"}}})


def _ort_cuda() -> bool:
    import onnxruntime as ort

    return "CUDAExecutionProvider" in ort.get_available_providers()


@pytest.mark.gpu
@pytest.mark.skipif(not _ort_cuda(), reason="needs onnxruntime-gpu (CUDAExecutionProvider)")
def test_fp16_variant_runs_on_the_gpu_engine(digits_run, tmp_path):
    """The fp16 graph is for GPU engines: on ONNX Runtime's CUDA provider it answers as
    the fp32 graph does (within fp16 rounding)."""
    import onnxruntime as ort

    from launchml.data.schema import split_arrays
    from launchml.optimize.quantize import to_fp16

    src = digits_run.dir.variants / "onnx" / "model.onnx"
    fp16 = to_fp16(src, tmp_path / "fp16.onnx")
    x, y = split_arrays(digits_run.prepared, "test")
    feed = {"image": np.asarray(x["image"], np.float32)}
    ref = ort.InferenceSession(str(src)).run(None, feed)[0]
    sess = ort.InferenceSession(str(fp16), providers=["CUDAExecutionProvider"])
    assert sess.get_providers()[0] == "CUDAExecutionProvider"
    out = sess.run(None, feed)[0]
    assert np.abs(out - ref).max() < 0.05
    assert abs((out.argmax(1) == y).mean() - (ref.argmax(1) == y).mean()) <= 0.01
