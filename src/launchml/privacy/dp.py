"""DP-SGD (Opacus) as a plugin of the one training loop: ``DPHook``.

Every neural family (the image networks, the table/text combiner) trains in
``Trainer.fit``; with ``privacy.dp`` set that loop gets this hook, which

- replaces the layers Opacus cannot train privately (BatchNorm mixes the rows of a
  batch) with ``ModuleValidator.fix`` and says which, before the optimizer is
  built, or refuses naming the layer when no replacement exists;
- wraps the model (per-sample gradients) and the optimizer (per-sample clipping
  to ``max_grad_norm``, Gaussian noise) with ``PrivacyEngine.make_private``;
- draws the batches by Poisson sampling (each row in with probability
  batch_size / n, as the privacy analysis assumes), split into chunks of at most
  ``max_physical_batch_size`` rows (``BatchMemoryManager``'s sampler) so a large
  logical batch never needs more memory than a small one;
- reports epsilon and delta after every epoch (the PRV or RDP accountant over the
  steps taken so far; a resumed run recomputes them from the same count).

The noise multiplier for a ``target_epsilon`` is solved before training; an
epsilon no noise can reach with this data size, batch size and epoch count is
refused with the smallest one that can be reached.
"""

from __future__ import annotations

import math
import os
from typing import Any

from launchml import console
from launchml.errors import ConfigError
from launchml.privacy.config import DPConfig
from launchml.train.trainer import TrainHook

WEIGHTS_PER_ROW = 10  # above this many trained weights per training row, say that a
# smaller model keeps more accuracy under DP-SGD (seed_cnn on 1,149 digits: 140 per row)
MAX_SIGMA = 1e3  # Opacus' own bound in get_noise_multiplier (its MAX_SIGMA is 1e6; the
# accountants are slow and the model useless long before that)


def resolve_delta(cfg: DPConfig, n: int) -> float:
    return 1.0 / (10.0 * n) if cfg.delta == "auto" else float(cfg.delta)


def epsilon(accountant: str, sigma: float, sample_rate: float, steps: int,
            delta: float) -> float:
    """Epsilon spent after ``steps`` noisy steps at ``sample_rate`` (Poisson sampling)."""
    from opacus.accountants import create_accountant

    if steps <= 0:
        return 0.0
    if sigma == 0.0:
        return math.inf
    acc = create_accountant(mechanism=accountant)
    acc.history = [(sigma, sample_rate, steps)]
    return float(acc.get_epsilon(delta=delta))


def solve_noise(cfg: DPConfig, *, n: int, batch_size: int, epochs: int) -> tuple[float, float]:
    """(noise multiplier, delta) for the config on ``n`` rows; ConfigError when the
    target epsilon cannot be reached, naming the smallest epsilon that can."""
    delta = resolve_delta(cfg, n)
    steps_per_epoch = math.ceil(n / batch_size)
    q = 1.0 / steps_per_epoch
    if cfg.noise_multiplier is not None:
        return float(cfg.noise_multiplier), delta
    from opacus.accountants.utils import get_noise_multiplier

    target = float(cfg.target_epsilon)
    floor = epsilon(cfg.accountant, MAX_SIGMA, q, steps_per_epoch * epochs, delta)
    if target <= floor * 1.01:
        raise ConfigError(
            f"privacy.dp.target_epsilon: {target:g} cannot be reached with {n} training rows, "
            f"train.batch_size {batch_size} and train.epochs {epochs} (delta {delta:.3g}, "
            f"{cfg.accountant} accountant): the smallest epsilon any noise reaches is "
            f"{floor:.3g}. Fix: target_epsilon >= {_up(floor * 1.05)}, or fewer epochs, a "
            "smaller batch, or more rows.")
    try:
        sigma = get_noise_multiplier(target_epsilon=target, target_delta=delta, sample_rate=q,
                                     steps=steps_per_epoch * epochs,
                                     accountant=cfg.accountant, epsilon_tolerance=0.01)
    except ValueError as e:  # Opacus: "The privacy budget is too low."
        raise ConfigError(f"privacy.dp.target_epsilon: {target:g} cannot be reached ({e}); "
                          f"the smallest reachable is about {floor:.3g}. Fix: "
                          f"target_epsilon >= {_up(floor * 1.05)}.") from None
    return float(sigma), delta


def _up(x: float) -> str:
    """x rounded up to two significant digits, as a user would type it."""
    if x <= 0 or not math.isfinite(x):
        return f"{x:g}"
    scale = 10 ** (math.floor(math.log10(x)) - 1)
    return f"{math.ceil(x / scale) * scale:.3g}"


def fix_layers(model: Any) -> tuple[Any, list[str]]:
    """The model with the layers Opacus cannot train replaced (ModuleValidator.fix), and
    what was replaced; ConfigError naming a layer that has no replacement."""
    import torch.nn as nn
    from opacus.validators import ModuleValidator

    for name, m in model.named_modules():
        if isinstance(m, nn.TransformerEncoder):  # its dropout and attention run inside
            raise ConfigError(  # Opacus' vmap fallback, which refuses random operations
                f"privacy.dp: layer '{name}' (the transformer text encoder) cannot be trained "
                "with per-sample gradients. Fix: model.mlp.text_encoder: bag (token and "
                "bigram embeddings, which DP-SGD trains), or remove privacy.dp")
    for m in model.modules():  # the per-sample hooks see each layer's output: an in-place
        if getattr(m, "inplace", False) is True:  # ReLU would overwrite it (same function)
            m.inplace = False
    errors = ModuleValidator.validate(model, strict=False)
    if not errors:
        return model, []
    before = {name: type(m).__name__ for name, m in model.named_modules()}
    fixed = ModuleValidator.fix(model)
    left = ModuleValidator.validate(fixed, strict=False)
    if left:
        raise ConfigError(
            "privacy.dp: the model has layers Opacus cannot train with per-sample gradients: "
            + "; ".join(str(e) for e in left[:3])
            + ". Fix: a model.name without them (seed_cnn, mlp), or remove privacy.dp.")
    for m in fixed.modules():  # torch's TransformerEncoderLayer hands its attention float
        if type(m).__name__ == "DPMultiheadAttention":  # masks (-inf = masked); Opacus'
            m.register_forward_pre_hook(_bool_masks, with_kwargs=True)  # wants booleans
    after = {name: type(m).__name__ for name, m in fixed.named_modules()}
    changed = [f"{name} ({before[name]} -> {after.get(name)})" for name in before
               if name and after.get(name) != before[name]]
    return fixed, changed


def _bool_masks(module: Any, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
    for key in ("key_padding_mask", "attn_mask"):
        mask = kwargs.get(key)
        if mask is not None and mask.is_floating_point():
            kwargs[key] = mask < 0  # -inf (or any negative bias): masked
    return args, kwargs


class DPHook(TrainHook):
    """DP-SGD for one ``Trainer.fit``; ``record()`` is what package.json keeps."""

    def __init__(self, cfg: DPConfig, *, epochs: int, done_epochs: int = 0) -> None:
        """``epochs``: all the epochs the budget covers (a federated client: rounds x local
        epochs); ``done_epochs``: those spent before this fit (earlier rounds)."""
        self.cfg = cfg
        self.epochs = epochs
        self.done = done_epochs
        self.replaced: list[str] = []
        self.history: list[dict[str, Any]] = []

    def settings(self, settings: dict[str, Any]) -> dict[str, Any]:
        # per-sample gradients are computed in fp32, from plain (not compiled) modules
        return {**settings, "precision": "fp32", "compile": False, "channels_last": False}

    def setup(self, model: Any) -> Any:
        model, self.replaced = fix_layers(model)
        if self.replaced:
            console.info("privacy: replaced for DP-SGD (per-sample gradients): "
                         + ", ".join(self.replaced))
        return model

    def attach(self, model: Any, opt: Any, n: int, batch_size: int, seed: int) -> Any:
        import torch
        from opacus import PrivacyEngine
        from torch.utils.data import DataLoader, TensorDataset

        self.n, self.seed = n, seed
        self.sigma, self.delta = solve_noise(self.cfg, n=n, batch_size=batch_size,
                                             epochs=self.epochs)
        self.steps_per_epoch = math.ceil(n / batch_size)
        self.sample_rate = 1.0 / self.steps_per_epoch
        # the loop gathers rows by index: the loader Opacus makes Poisson draws row indices
        self._rows = DataLoader(TensorDataset(torch.arange(n)), batch_size=batch_size)
        # the noise and the batch draws: from the OS (secret) unless randomness: seed; Opacus'
        # secure_mode would need torchcsprng, which has no current wheels
        self.secret = None if self.cfg.randomness == "seed" else \
            int.from_bytes(os.urandom(8), "little") >> 1
        noise = None if self.secret is None else torch.Generator().manual_seed(self.secret)
        engine = PrivacyEngine(accountant=self.cfg.accountant)
        self.module, self.optimizer, _ = engine.make_private(
            module=model, optimizer=opt, data_loader=self._rows,
            noise_multiplier=self.sigma, max_grad_norm=self.cfg.max_grad_norm,
            poisson_sampling=True, noise_generator=noise)
        self.steps = 0
        self.weights = sum(p.numel() for p in model.parameters() if p.requires_grad)
        if self.weights > WEIGHTS_PER_ROW * n:
            console.info(f"privacy: {self.weights:,} weights for {n:,} training rows. DP-SGD "
                         "adds noise of the same size to every weight's gradient, so a model "
                         "with fewer weights keeps more accuracy at the same epsilon: "
                         "model.name: dp_linear or dp_cnn for images (digits at epsilon 8: "
                         "0.96 with dp_linear, 0.75 with seed_cnn), a smaller "
                         "model.mlp.hidden for tables")
        console.info(f"privacy: DP-SGD, noise multiplier {self.sigma:.3f}, clipping "
                     f"{self.cfg.max_grad_norm:g}, sample rate {self.sample_rate:.4f}, delta "
                     f"{self.delta:.3g}" + (f", target epsilon {self.cfg.target_epsilon:g}"
                                            if self.cfg.target_epsilon else ""))
        return self.module, self.optimizer

    def batches(self, epoch: int) -> Any:
        import torch
        from opacus.data_loader import DPDataLoader
        from opacus.utils.batch_memory_manager import wrap_data_loader

        # the steps before this epoch: every epoch draws steps_per_epoch Poisson batches
        self.steps = (self.done + epoch - 1) * self.steps_per_epoch
        gen = torch.Generator().manual_seed(  # randomness: seed -> resumable draws
            self.seed * 7919 + epoch if self.secret is None else (self.secret + epoch) % 2**63)
        loader = wrap_data_loader(
            data_loader=DPDataLoader.from_data_loader(self._rows, generator=gen),
            max_batch_size=self.cfg.max_physical_batch_size, optimizer=self.optimizer)
        return (rows for (rows,) in loader)

    def stepped(self) -> bool:
        done = not self.optimizer._is_last_step_skipped
        self.steps += done
        return done

    def epoch_end(self, epoch: int) -> dict[str, Any]:
        eps = epsilon(self.cfg.accountant, self.sigma, self.sample_rate, self.steps, self.delta)
        row = {"epsilon": round(eps, 4), "delta": self.delta}
        self.history.append({"epoch": self.done + epoch, **row})
        return row

    def close(self, model: Any) -> None:
        self.module._close()  # the per-sample hooks off: the model is a plain module again

    def record(self) -> dict[str, Any]:
        last = self.history[-1] if self.history else {"epsilon": 0.0}
        return {"target_epsilon": self.cfg.target_epsilon, "epsilon": last["epsilon"],
                "delta": self.delta, "max_grad_norm": self.cfg.max_grad_norm,
                "noise_multiplier": round(self.sigma, 6), "accountant": self.cfg.accountant,
                "sample_rate": round(self.sample_rate, 6), "epochs": self.done + len(self.history),
                "rows": self.n, "replaced_layers": self.replaced,
                "randomness": self.cfg.randomness,
                "per_epoch": self.history}
