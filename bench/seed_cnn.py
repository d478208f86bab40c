"""Seed CNN training throughput: Keras vs a plain PyTorch loop vs launchml, side by side.

One CNN (the "seed CNN" of the Keras article: three 3x3 conv + 2x2 max-pool blocks,
Dense(512), one sigmoid output; binary cross-entropy, Adam lr 1e-3, batch 32, 2 epochs,
pixels rescaled by 1/255, 150x150x3 input) trained on the same generated two-class JPEG
folder three ways, each in its own fresh process:

  keras     the article's code: ImageDataGenerator(rescale=1./255).flow_from_directory(...)
            and model.fit(gen, epochs=2), in a separate venv (bench/.venv-keras, created
            on first use with ``pip install -r bench/requirements-keras.txt``)
  torch     a hand-written PyTorch loop: torchvision ImageFolder + Resize + ToTensor,
            DataLoader(batch_size=32, shuffle=True, num_workers=2), BCEWithLogits, fp32
  launchml  the real CLI: ``launchml train CONFIG --overwrite`` then
            ``launchml run CONFIG --stages evaluate``, at precision fp32 and bf16

Run from the repository root with the launchml venv's Python:

    python bench/seed_cnn.py                          # full run: 1000 train / 200 test images
    python bench/seed_cnn.py --small                  # quick check: 200 train / 50 test images
    python bench/seed_cnn.py --json bench/out/seed_cnn.json
    python bench/seed_cnn.py --only torch,launchml    # skip contenders
    python bench/seed_cnn.py --device gpu --batch-size 256   # on a GPU machine

Training images/s = images seen in the training epochs / seconds of those epochs
(Keras: the whole ``model.fit`` call; launchml: the ``seconds`` of its epoch events).
End-to-end images/s = the same images / seconds from process start to the end of
training, which includes imports, model build and (for launchml) the one-time decode
in ``prepare``. Targets: launchml fp32 >= 1.0x Keras; launchml bf16 >= 1.5x Keras
with test accuracy within 1 point of Keras. The script exits 0 either way.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

T_PROCESS = time.perf_counter()  # workers measure end-to-end time from here

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
KERAS_VENV = BENCH / ".venv-keras"
KERAS_REQUIREMENTS = BENCH / "requirements-keras.txt"
EPOCHS = 2
LEARNING_RATE = 1e-3
SIZE = 150
CONTENDERS = ("keras", "torch", "launchml")


def rel(path: Path) -> str:
    """A path relative to the repository root (subprocesses run there)."""
    try:
        return str(path.absolute().relative_to(ROOT))
    except ValueError:
        return str(path)


# --------------------------------------------------------------------------- workers
# Each worker runs in its own process and prints one line: RESULT {json}.


def _emit(result: dict) -> None:
    print("RESULT " + json.dumps(result), flush=True)


def keras_worker(data: Path, batch_size: int) -> None:
    """The article's Keras code (Keras 3 via tensorflow-cpu)."""
    import tensorflow as tf
    from tensorflow import keras
    from tensorflow.keras import layers

    try:
        from tensorflow.keras.preprocessing.image import ImageDataGenerator

        loader = "ImageDataGenerator.flow_from_directory"
    except ImportError:  # pragma: no cover - only if a future Keras drops it
        ImageDataGenerator = None
        loader = "image_dataset_from_directory"

    train_dir, test_dir = str(data / "train"), str(data / "test")
    if ImageDataGenerator is not None:
        gen = ImageDataGenerator(rescale=1.0 / 255)
        train_gen = gen.flow_from_directory(train_dir, target_size=(SIZE, SIZE),
                                            batch_size=batch_size, class_mode="binary")
        test_gen = ImageDataGenerator(rescale=1.0 / 255).flow_from_directory(
            test_dir, target_size=(SIZE, SIZE), batch_size=batch_size, class_mode="binary",
            shuffle=False)
        n_train, n_test = train_gen.samples, test_gen.samples
    else:
        rescale = layers.Rescaling(1.0 / 255)
        train_gen = keras.utils.image_dataset_from_directory(
            train_dir, image_size=(SIZE, SIZE), batch_size=batch_size, label_mode="binary",
            interpolation="nearest").map(lambda x, y: (rescale(x), y))
        test_gen = keras.utils.image_dataset_from_directory(
            test_dir, image_size=(SIZE, SIZE), batch_size=batch_size, label_mode="binary",
            interpolation="nearest", shuffle=False).map(lambda x, y: (rescale(x), y))
        n_train = sum(int(y.shape[0]) for _, y in train_gen)
        n_test = sum(int(y.shape[0]) for _, y in test_gen)

    model = keras.Sequential([
        keras.Input(shape=(SIZE, SIZE, 3)),
        layers.Conv2D(32, (3, 3), activation="relu"),
        layers.MaxPooling2D((2, 2)),
        layers.Conv2D(64, (3, 3), activation="relu"),
        layers.MaxPooling2D((2, 2)),
        layers.Conv2D(128, (3, 3), activation="relu"),
        layers.MaxPooling2D((2, 2)),
        layers.Flatten(),
        layers.Dense(512, activation="relu"),
        layers.Dense(1, activation="sigmoid"),
    ])
    model.compile(loss="binary_crossentropy",
                  optimizer=keras.optimizers.Adam(learning_rate=LEARNING_RATE),
                  metrics=["acc"])
    t0 = time.perf_counter()
    history = model.fit(train_gen, epochs=EPOCHS, verbose=2)
    t1 = time.perf_counter()
    _, test_acc = model.evaluate(test_gen, verbose=0)
    images = n_train * EPOCHS
    _emit({
        "contender": "keras", "images": images, "train_seconds": t1 - t0,
        "e2e_seconds": t1 - T_PROCESS, "train_images_per_s": images / (t1 - t0),
        "e2e_images_per_s": images / (t1 - T_PROCESS), "test_accuracy": float(test_acc),
        "test_images": n_test, "train_accuracy": float(history.history["acc"][-1]),
        "loader": loader, "versions": {"tensorflow": tf.__version__,
                                       "keras": keras.__version__},
    })


def torch_worker(data: Path, batch_size: int, device: str) -> None:
    """What a typical user writes in plain PyTorch."""
    import torch
    import torchvision
    from torch import nn
    from torch.utils.data import DataLoader
    from torchvision import datasets, transforms

    dev = torch.device("cuda" if device in ("gpu", "cuda") or (
        device == "auto" and torch.cuda.is_available()) else "cpu")
    tf = transforms.Compose([transforms.Resize((SIZE, SIZE)), transforms.ToTensor()])
    train_ds = datasets.ImageFolder(str(data / "train"), transform=tf)
    test_ds = datasets.ImageFolder(str(data / "test"), transform=tf)
    train_dl = DataLoader(train_ds, batch_size=batch_size, shuffle=True, num_workers=2)
    test_dl = DataLoader(test_ds, batch_size=batch_size, shuffle=False, num_workers=2)

    model = nn.Sequential(
        nn.Conv2d(3, 32, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(64, 128, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(128 * 17 * 17, 512), nn.ReLU(),
        nn.Linear(512, 1),
    ).to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE)
    loss_fn = nn.BCEWithLogitsLoss()

    t0 = time.perf_counter()
    for epoch in range(EPOCHS):
        model.train()
        seen, loss_sum = 0, 0.0
        for x, y in train_dl:
            x, y = x.to(dev), y.to(dev).float().unsqueeze(1)
            opt.zero_grad()
            loss = loss_fn(model(x), y)
            loss.backward()
            opt.step()
            seen += len(y)
            loss_sum += loss.item() * len(y)
        print(f"epoch {epoch + 1}: loss {loss_sum / seen:.4f} "
              f"({time.perf_counter() - t0:.1f}s)", flush=True)
    if dev.type == "cuda":
        torch.cuda.synchronize()
    t1 = time.perf_counter()

    model.eval()
    correct = 0
    with torch.no_grad():
        for x, y in test_dl:
            pred = (model(x.to(dev)).squeeze(1) > 0).long().cpu()
            correct += int((pred == y).sum())
    images = len(train_ds) * EPOCHS
    _emit({
        "contender": "torch", "images": images, "train_seconds": t1 - t0,
        "e2e_seconds": t1 - T_PROCESS, "train_images_per_s": images / (t1 - t0),
        "e2e_images_per_s": images / (t1 - T_PROCESS),
        "test_accuracy": correct / len(test_ds), "test_images": len(test_ds),
        "versions": {"torch": torch.__version__, "torchvision": torchvision.__version__},
    })


# --------------------------------------------------------------------------- driver


def make_data(small: bool) -> Path:
    n_train, n_test = (100, 25) if small else (500, 100)
    root = BENCH / "data" / f"shapes_{n_train}_{n_test}"
    done = root / ".complete"
    if not done.exists():
        from launchml.data.samples import write_shapes_folder

        print(f"data: writing {2 * n_train} train / {2 * n_test} test JPEGs to {rel(root)}")
        write_shapes_folder(root, n_train=n_train, n_test=n_test, size=SIZE, seed=0)
        done.write_text("ok\n")
    return root


def keras_python() -> Path:
    """bench/.venv-keras/bin/python, creating the venv on first use."""
    py = KERAS_VENV / "bin" / "python"
    marker = KERAS_VENV / ".installed"
    if py.exists() and marker.exists():
        return py
    print(f"keras: creating {rel(KERAS_VENV)} (pip install -r {rel(KERAS_REQUIREMENTS)}); "
          "this downloads TensorFlow once", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(KERAS_VENV)], check=True)
    subprocess.run([str(py), "-m", "pip", "install", "-q", "--upgrade", "pip"], check=True)
    subprocess.run([str(py), "-m", "pip", "install", "-q", "-r", str(KERAS_REQUIREMENTS)],
                   check=True)
    marker.write_text("ok\n")
    return py


def stream(cmd: list[str], env: dict | None = None) -> tuple[int, float, dict | None]:
    """Run ``cmd`` in the repository root, echo its output live; (exit code, seconds, RESULT)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env=env)
    result = None
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("RESULT "):
            result = json.loads(line[len("RESULT "):])
        else:
            print(f"  {line.rstrip()}", flush=True)
    return proc.wait(), time.perf_counter() - t0, result


def run_worker(cmd: list[str], name: str, env: dict | None = None) -> dict | None:
    """Run a worker subprocess and return its RESULT line (None if it failed)."""
    print(f"\n=== {name}: {' '.join(rel(Path(c)) if os.sep in c else c for c in cmd)}",
          flush=True)
    rc, wall, result = stream(cmd, env)
    print(f"=== {name}: exit {rc} after {wall:.1f}s", flush=True)
    if rc != 0 or result is None:
        print(f"!!! {name} failed (exit {rc}); see its output above", flush=True)
        return None
    return result


def run_keras(data: Path, batch_size: int) -> dict | None:
    py = keras_python()
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    cmd = [str(py), str(Path(__file__).resolve()), "--worker", "keras",
           "--data", rel(data), "--batch-size", str(batch_size)]
    return run_worker(cmd, "keras", env)


def run_torch(data: Path, batch_size: int, device: str) -> dict | None:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", "torch",
           "--data", rel(data), "--batch-size", str(batch_size), "--device", device]
    return run_worker(cmd, "torch")


def launchml_cli() -> str:
    exe = Path(sys.executable).parent / "launchml"
    return str(exe) if exe.exists() else "launchml"


def run_launchml(data: Path, batch_size: int, device: str, precision: str) -> dict | None:
    name = f"bench_{precision}"
    out = BENCH / "out"
    cfg_path = out / "configs" / f"{name}.yaml"
    cfg_path.parent.mkdir(parents=True, exist_ok=True)
    cfg_path.write_text(
        f"name: {name}\n"
        f"output_dir: {rel(out)}\n"
        f"data: {{train: {rel(data / 'train')}, test: {rel(data / 'test')}, "
        "validation_split: 0.0, target_size: [150, 150], color_mode: rgb, "
        "class_mode: binary}\n"
        "model: {name: seed_cnn}\n"
        f"train: {{epochs: {EPOCHS}, batch_size: {batch_size}, optimizer: adam, "
        f"learning_rate: {LEARNING_RATE}, precision: {precision}, accelerator: {device}}}\n"
    )
    cli = launchml_cli()
    label = f"launchml {precision}"
    cmd = [cli, "train", rel(cfg_path), "--overwrite"]
    print(f"\n=== {label}: launchml train {rel(cfg_path)} --overwrite", flush=True)
    rc, wall, _ = stream(cmd)
    print(f"=== {label}: exit {rc} after {wall:.1f}s", flush=True)
    if rc != 0:
        print(f"!!! {label} train failed: launchml train {rel(cfg_path)} --overwrite",
              flush=True)
        return None
    run_dir = out / name
    events = [json.loads(s) for s in (run_dir / "events.jsonl").read_text().splitlines() if s]
    start = next((e for e in events if e.get("event") == "start"), {})
    epochs = [e for e in events if e.get("event") == "epoch"]
    manifest = json.loads((run_dir / "prepared" / "manifest.json").read_text())
    images = manifest["splits"]["train"]["count"] * len(epochs)
    seconds = sum(e["seconds"] for e in epochs)

    cmd = [cli, "run", rel(cfg_path), "--stages", "evaluate"]
    print(f"=== {label}: launchml run {rel(cfg_path)} --stages evaluate", flush=True)
    rc, _, _ = stream(cmd)
    test_acc = None
    if rc == 0:
        test_acc = json.loads((run_dir / "evaluation" / "metrics.json").read_text())["accuracy"]
    else:
        print(f"!!! {label} evaluate failed (exit {rc}): "
              f"launchml run {rel(cfg_path)} --stages evaluate", flush=True)
    return {
        "contender": f"launchml_{precision}", "images": images, "train_seconds": seconds,
        "e2e_seconds": wall, "train_images_per_s": images / seconds if seconds else None,
        "e2e_images_per_s": images / wall, "test_accuracy": test_acc,
        "epoch_images_per_s": [e["train_images_per_s"] for e in epochs],
        "settings": start.get("settings", {}),
    }


def fmt(v: float | None, spec: str, suffix: str = "") -> str:
    width = int(spec.split(".")[0]) + len(suffix)
    return "-".rjust(width) if v is None else format(v, spec) + suffix


def report(results: dict[str, dict], args: argparse.Namespace) -> dict:
    keras = results.get("keras")
    base = keras["train_images_per_s"] if keras else None
    base_e2e = keras["e2e_images_per_s"] if keras else None
    rows = []
    print("\n" + "=" * 96)
    print(f"seed CNN, {EPOCHS} epochs, batch {args.batch_size}, "
          f"{'small' if args.small else 'default'} data; images/s higher is better")
    head = (f"{'contender':<15} {'train img/s':>12} {'e2e img/s':>10} {'test acc':>9} "
            f"{'x Keras (train)':>16} {'x Keras (e2e)':>14}")
    print(head)
    print("-" * len(head))
    for name, r in results.items():
        if r is None:
            print(f"{name:<15} FAILED")
            continue
        ratio = r["train_images_per_s"] / base if base and r["train_images_per_s"] else None
        ratio_e2e = r["e2e_images_per_s"] / base_e2e if base_e2e else None
        r["ratio_vs_keras"] = ratio
        r["e2e_ratio_vs_keras"] = ratio_e2e
        rows.append(name)
        print(f"{name:<15} {fmt(r['train_images_per_s'], '12.1f')} "
              f"{fmt(r['e2e_images_per_s'], '10.1f')} {fmt(r['test_accuracy'], '9.3f')} "
              f"{fmt(ratio, '15.2f', 'x')} {fmt(ratio_e2e, '13.2f', 'x')}")

    targets = []
    fp32, bf16 = results.get("launchml_fp32"), results.get("launchml_bf16")
    if keras and fp32 and fp32.get("ratio_vs_keras") is not None:
        targets.append({"target": "launchml fp32 >= 1.0x Keras (training img/s)",
                        "value": fp32["ratio_vs_keras"],
                        "pass": fp32["ratio_vs_keras"] >= 1.0})
    if keras and bf16 and bf16.get("ratio_vs_keras") is not None:
        targets.append({"target": "launchml bf16 >= 1.5x Keras (training img/s)",
                        "value": bf16["ratio_vs_keras"],
                        "pass": bf16["ratio_vs_keras"] >= 1.5})
        if bf16["test_accuracy"] is not None:
            gap = abs(bf16["test_accuracy"] - keras["test_accuracy"]) * 100
            targets.append({"target": "launchml bf16 test accuracy within 1 point of Keras",
                            "value": gap, "pass": gap <= 1.0})
    print()
    for t in targets:
        unit = " points" if "accuracy" in t["target"] else "x"
        print(f"{'PASS' if t['pass'] else 'MISS'}  {t['target']}: {t['value']:.2f}{unit}")
    if not targets:
        print("(targets need the keras and launchml contenders)")
    return {"epochs": EPOCHS, "batch_size": args.batch_size, "small": args.small,
            "device": args.device, "contenders": results, "targets": targets}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--small", action="store_true", help="100/25 images per class (quick check)")
    p.add_argument("--json", type=Path, help="write all figures to this JSON file")
    p.add_argument("--only", default=",".join(CONTENDERS),
                   help="comma-separated subset of keras,torch,launchml")
    p.add_argument("--device", default="auto", help="launchml train.accelerator: auto|cpu|gpu")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--worker", choices=("keras", "torch"), help=argparse.SUPPRESS)
    p.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    if args.worker == "keras":
        keras_worker(args.data, args.batch_size)
        return 0
    if args.worker == "torch":
        torch_worker(args.data, args.batch_size, args.device)
        return 0

    only = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = sorted(set(only) - set(CONTENDERS))
    if unknown:
        p.error(f"--only: unknown contender(s) {unknown}; choose from {', '.join(CONTENDERS)}")
    data = make_data(args.small)
    results: dict[str, dict | None] = {}
    if "keras" in only:
        results["keras"] = run_keras(data, args.batch_size)
    if "torch" in only:
        results["torch"] = run_torch(data, args.batch_size, args.device)
    if "launchml" in only:
        for precision in ("fp32", "bf16"):
            results[f"launchml_{precision}"] = run_launchml(
                data, args.batch_size, args.device, precision)
    summary = report(results, args)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(summary, indent=2) + "\n")
        print(f"\nfigures -> {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
