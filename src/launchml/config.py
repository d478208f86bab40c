"""``RunConfig``: the whole run in one validated tree, loaded from YAML or a dict.

It composes the config classes that live beside each stage. Unknown keys and
bad values are errors that name the key, the allowed values and the fix; the
resolved config (defaults filled in) is written into the run directory.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import Discriminator, Field, Tag, field_validator, model_validator

from launchml.configbase import StrictModel, load_yaml, validate
from launchml.data.images import ImageFolderConfig
from launchml.data.table_adapter import TableConfig
from launchml.errors import ConfigError
from launchml.evaluate.evaluate import EvaluateConfig
from launchml.models import ModelConfig
from launchml.optimize.onnx_variants import OptimizeConfig
from launchml.privacy.config import NEURAL_FAMILIES, FederatedConfig, PrivacyConfig
from launchml.runs import RunDir, write_text
from launchml.train.config import TrainConfig

CONFIG_VERSION = 1
MAX_CONFIG_BYTES = 1 << 20  # a config file is a few KB of YAML
# where a run folder can never be made: the kernel's and devices' pseudo file systems
SYSTEM_FOLDERS = ("/proc", "/sys", "/dev")
TEMPLATES = Path(__file__).parent / "templates"


# defaults that depend on the kind of source, filled into the config before validation so
# the saved config.yaml says what the run did (a table's neural member trains longer, with
# larger batches and AdamW; image networks as the article's example)
KIND_DEFAULTS: dict[str, dict[str, dict[str, Any]]] = {
    # a table's model selection ends in a time a user expects: 5 minutes unless set
    "table": {"train": {"epochs": 100, "patience": 10, "batch_size": 128,
                        "optimizer": "adamw", "weight_decay": 1e-4},
              "model": {"refit": True, "time_limit": 300.0}},
    # the article's example: the best epoch's network, decided at 0.5
    "image_folder": {"train": {}, "model": {"refit": False, "threshold": "none"}},
}





def _data_kind(value: Any) -> str:
    """A ``data:`` section with a ``target`` is a table; otherwise an image folder."""
    if isinstance(value, dict):
        return "table" if "target" in value else "image_folder"
    return value.kind


class RunConfig(StrictModel):
    """The root of a run config."""

    version: int = Field(CONFIG_VERSION, description="config format version")
    name: str = Field(description="the run's name; its folder is <output_dir>/<name>")
    output_dir: str = Field("runs", description="where run folders are made")
    seed: int = Field(42, description="seeds splits, initialization, batch order, augmentation")
    data: Annotated[
        Annotated[ImageFolderConfig, Tag("image_folder")] | Annotated[TableConfig, Tag("table")],
        Discriminator(_data_kind),
    ] = Field(description="an image folder, or a table (a config with 'target')")
    model: ModelConfig = Field(default_factory=ModelConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    optimize: OptimizeConfig = Field(default_factory=OptimizeConfig)
    evaluate: EvaluateConfig = Field(default_factory=EvaluateConfig)
    privacy: PrivacyConfig = Field(default_factory=PrivacyConfig,
                                   description="differential privacy (DP-SGD) for neural families")
    federated: FederatedConfig | None = Field(
        None, description="the federation `launchml federate` runs; null: not federated")

    @model_validator(mode="before")
    @classmethod
    def _kind_defaults(cls, data: Any) -> Any:
        if not isinstance(data, dict) or not isinstance(data.get("data"), dict):
            return data
        data = dict(data)
        model_given = data.get("model") or {}
        for section, defaults in KIND_DEFAULTS[_data_kind(data["data"])].items():
            given = data.get(section) or {}
            if isinstance(given, dict):
                data[section] = {**defaults, **given}
        if (data.get("privacy") or {}).get("dp") and isinstance(model_given, dict):
            # DP-SGD: only the neural families train privately, once (a refit on train +
            # validation would spend the budget a second time)
            model = {**(data.get("model") or {}), "refit": model_given.get("refit", False)}
            if model.get("name", "auto") == "auto" and not model.get("families"):
                model["families"] = list(NEURAL_FAMILIES)
            data["model"] = model
        return data

    @model_validator(mode="after")
    def _keys_that_apply(self) -> RunConfig:
        """Settings that cannot apply to this data are errors that say where they apply."""
        from launchml.models import MLPConfig
        from launchml.train.augment import AugmentConfig

        bad = []
        if "mlp" in self.data.unused_model_sections:
            defaults = MLPConfig()
            bad += [f"model.mlp.{k} (the table combiner's column encoders and head)"
                    for k in MLPConfig.model_fields
                    # dropout and image_pretrained: also copies of the old flat keys
                    if k not in ("dropout", "image_pretrained")
                    and getattr(self.model.mlp, k) != getattr(defaults, k)]
        if self.model.name in ("lightgbm", "linear") and self.train.augment != AugmentConfig():
            bad.append(f"train.augment (neural families with image inputs; model.name is "
                       f"{self.model.name})")
        if bad:
            raise ValueError(f"set but cannot apply to this run: {'; '.join(bad)}. Fix: "
                             "remove them")
        if self.privacy.dp is not None:
            names = [self.model.name] if self.model.name != "auto" else self.model.families or []
            plain = [n for n in names if n in ("lightgbm", "linear")]
            if plain:
                raise ValueError(f"privacy.dp: {', '.join(plain)} is not trained privately "
                                 "(trees and the linear model are fit by solvers that clip "
                                 "and noise nothing). Fix: model.name: auto (the neural "
                                 "families: mlp for tables and text, seed_cnn or timm:<name> "
                                 "for images), or remove privacy.dp")
            if self.model.refit:
                raise ValueError("privacy.dp with model.refit: true would train twice on the "
                                 "rows and spend the privacy budget twice. Fix: model.refit: "
                                 "false")
        return self

    @field_validator("name")
    @classmethod
    def _folder_name(cls, v: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}", v):
            raise ValueError("use at most 100 letters, digits, '-', '_' or '.' (it becomes a "
                             "folder name)")
        return v

    @field_validator("output_dir")
    @classmethod
    def _writable_place(cls, v: str) -> str:
        import os

        real = os.path.realpath(os.path.expanduser(v))
        if any(real == f or real.startswith(f + "/") for f in SYSTEM_FOLDERS):
            top = "/" + real.split("/")[1]
            raise ValueError(f"'{v}' is inside {top}, a system pseudo-folder where no run "
                             "can be written; e.g. output_dir: runs")
        return v

    @field_validator("version")
    @classmethod
    def _version(cls, v: int) -> int:
        if v > CONFIG_VERSION:
            raise ValueError(f"this launchml reads config versions up to {CONFIG_VERSION}; "
                             "pip install -U launchml")
        return v

    @property
    def run_dir(self) -> RunDir:
        return RunDir(Path(self.output_dir) / self.name)

    @classmethod
    def load(cls, source: RunConfig | dict[str, Any] | str | Path) -> RunConfig:
        if isinstance(source, RunConfig):
            return source
        if isinstance(source, dict):  # relative data paths: from the working folder
            return validate(cls, _from_folder(source, Path.cwd()), "dict")
        path = Path(source)
        if not path.exists():
            raise ConfigError(f"config file '{path}' does not exist. Fix: launchml init "
                              f"image-classification > {path}")
        if not path.is_file():
            raise ConfigError(f"'{path}' is a {'folder' if path.is_dir() else 'special file'}, "
                              "not a config file. Fix: pass the run's .yaml file (launchml "
                              "init writes one).")
        if path.stat().st_size > MAX_CONFIG_BYTES:
            raise ConfigError(f"'{path}' is {path.stat().st_size:,} bytes; a config is a few "
                              "KB of YAML. Fix: pass the run's .yaml file.")
        try:
            data = load_yaml(path.read_text(encoding="utf-8"), str(path))
        except UnicodeDecodeError:
            raise ConfigError(f"'{path}' is not a text file (not UTF-8); a config is YAML "
                              "text. Fix: pass the run's .yaml file.") from None
        except OSError as e:
            raise ConfigError(f"cannot read config '{path}': {e.strerror or e}") from None
        except yaml.YAMLError as e:
            raise ConfigError(f"'{path}' is not valid YAML: {str(e)[:500]}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"'{path}' must hold a mapping (key: value lines), got "
                              f"{type(data).__name__}")
        return validate(cls, _from_folder(data, path.parent), str(path))

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)

    def save(self, path: Path) -> None:
        write_text(path, "# resolved by launchml: every default filled in\n" + self.to_yaml())

    def with_overrides(self, overrides: list[str]) -> RunConfig:
        """Apply ``key.sub=value`` strings (values parsed as YAML)."""
        data = self.model_dump(mode="json")
        for item in overrides:
            if "=" not in item:
                raise ConfigError(f"--set '{item}': expected key=value, e.g. train.epochs=3")
            key, value = item.split("=", 1)
            from launchml.models import LEGACY_KEYS

            parts = key.split(".")
            if len(parts) == 2 and parts[0] == "model" and parts[1] in LEGACY_KEYS:
                # the old flat spelling: set it where the setting lives now
                return self.with_overrides(
                    [*(f"model.{sec}.{k}={value}" for sec, k in LEGACY_KEYS[parts[1]]),
                     *(o for o in overrides if o is not item)])
            node = data
            for part in parts[:-1]:
                if not isinstance(node.get(part), dict):
                    raise ConfigError(f"--set '{item}': '{part}' is not a config section")
                node = node[part]
            try:
                node[parts[-1]] = yaml.safe_load(value)
            except yaml.YAMLError as e:
                where = getattr(e, "problem", None) or "not valid YAML"
                raise ConfigError(
                    f"--set '{item}': the value {value!r} is {where}. Fix: quote it for YAML, "
                    f"e.g. --set \"{key}='{value}'\"") from None
        # a relative path given with --set is from the working folder, as on a command line
        return validate(RunConfig, _from_folder(data, Path.cwd()), "--set")


def _from_folder(data: dict[str, Any], folder: Path) -> dict[str, Any]:
    """Relative data paths in a config file are read from the file's folder (as the
    templates say), wherever launchml is started (a dict's from the working folder);
    the config holds them absolute, so the saved config means the same anywhere."""
    section = data.get("data")
    if not isinstance(section, dict):
        return data
    section = dict(section)
    for key in ("train", "validation", "test"):
        value = section.get(key)
        if isinstance(value, str) and value and not Path(value).expanduser().is_absolute():
            section[key] = str((folder / value).resolve())
    return {**data, "data": section}


def template(name: str) -> str:
    path = TEMPLATES / f"{name}.yaml"
    if not path.exists():
        names = sorted(p.stem for p in TEMPLATES.glob("*.yaml"))
        raise ConfigError(f"no template '{name}'; available: {', '.join(names)}")
    return path.read_text(encoding="utf-8")
