"""The training configuration: one dataclass, loaded from YAML plus ``--set key=value`` overrides.

Every key is checked against the dataclass, so a typo (``learning_rate`` for ``lr``) is an error
that names the key and suggests the close matches instead of a silently ignored setting.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from contract.paths import ARTIFACTS_DIR, CACHE_DIR, MANIFEST
from training.models import MODEL_NAMES, check_pretrained
from training.transforms import IMAGE_SIZE


class ConfigError(ValueError):
    """A configuration the trainer refuses to start with; the message says what to fix."""


@dataclass(kw_only=True)
class TrainConfig:
    # --- model
    model: str = "simple_cnn"
    width: int = 32  # channels of the first stage (simple_cnn / improved_cnn)
    dropout_rate: float = 0.3
    # ImageNet weights (resnet18, mobilenet_v3_small, efficientnet_b0): `imagenet` (or true) downloads
    # torchvision's file into the torch hub cache, hash-checked; an http(s) URL whose file name carries
    # its sha256 prefix (a mirror); or a local weights file. False trains from scratch.
    pretrained: bool | str = False
    image_size: int = IMAGE_SIZE  # must match the preprocess cache (`data/cache/<image_size>/`)

    # --- optimisation
    epochs: int = 20
    batch_size: int = 64
    optimizer: str = "adamw"  # adamw | sgd
    lr: float = 2e-3
    weight_decay: float = 0.05
    momentum: float = 0.9  # sgd only
    scheduler: str = "cosine"  # cosine | onecycle | constant
    warmup_epochs: float = 1.0  # linear warm-up before the cosine decay
    label_smoothing: float = 0.1
    mixup_alpha: float = 0.0  # 0 disables
    cutmix_alpha: float = 0.0  # 0 disables
    mix_prob: float = 1.0  # chance that a batch is mixed at all when mixup/cutmix is on
    grad_clip_norm: float = 0.0  # 0 disables
    early_stopping_patience: int = 5  # epochs without a better val accuracy; 0 disables
    max_train_batches: int = 0  # >0 caps batches per epoch (speed checks only)

    # --- augmentation (training.transforms.TrainTransform)
    hflip_prob: float = 0.5
    rotation_degrees: float = 15.0
    crop_scale_min: float = 0.6
    brightness: float = 0.3
    contrast: float = 0.3
    saturation: float = 0.2
    noise_std: float = 0.03

    # --- runtime
    seed: int = 42
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    amp: bool = True  # mixed precision, CUDA only
    num_workers: int = 0
    threads: int = 0  # torch intra-op threads; 0 keeps torch's default

    # --- data and outputs
    manifest: str = MANIFEST
    cache_dir: str = CACHE_DIR
    output_dir: str = ARTIFACTS_DIR
    register: bool = True  # register the model as `cats-dogs-classifier` with alias `challenger`
    run_name: str = ""
    tags: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        problems: list[str] = []
        if self.model not in MODEL_NAMES:
            problems.append(f"model: {self.model!r} is not one of {', '.join(MODEL_NAMES)}")
        elif problem := check_pretrained(self.model, self.pretrained):
            problems.append(f"pretrained: {problem}")
        if self.optimizer not in ("adamw", "sgd"):
            problems.append(f"optimizer: {self.optimizer!r} is not one of adamw, sgd")
        if self.scheduler not in ("cosine", "onecycle", "constant"):
            problems.append(f"scheduler: {self.scheduler!r} is not one of cosine, onecycle, constant")
        for name in ("epochs", "batch_size", "image_size", "width"):
            if getattr(self, name) < 1:
                problems.append(f"{name}: must be ≥ 1, got {getattr(self, name)}")
        if self.lr <= 0:
            problems.append(f"lr: must be > 0, got {self.lr}")
        if not 0 <= self.label_smoothing < 1:
            problems.append(f"label_smoothing: must be in [0, 1), got {self.label_smoothing}")
        if not 0 <= self.dropout_rate < 1:
            problems.append(f"dropout_rate: must be in [0, 1), got {self.dropout_rate}")
        if not 0 < self.crop_scale_min <= 1:
            problems.append(f"crop_scale_min: must be in (0, 1], got {self.crop_scale_min}")
        for name in ("mixup_alpha", "cutmix_alpha", "num_workers", "threads", "noise_std", "warmup_epochs"):
            if getattr(self, name) < 0:
                problems.append(f"{name}: must be ≥ 0, got {getattr(self, name)}")
        if problems:
            raise ConfigError("invalid training config:\n  " + "\n  ".join(problems))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


_FIELDS: dict[str, dataclasses.Field[Any]] = {f.name: f for f in dataclasses.fields(TrainConfig)}
_HINTS: dict[str, Any] = typing.get_type_hints(TrainConfig)


# Names other trainers use for our keys: spelling similarity alone does not find `lr` for `learning_rate`.
_SYNONYMS: dict[str, str] = {
    "learning_rate": "lr",
    "learningrate": "lr",
    "num_epochs": "epochs",
    "n_epochs": "epochs",
    "max_epochs": "epochs",
    "bs": "batch_size",
    "batchsize": "batch_size",
    "arch": "model",
    "architecture": "model",
    "model_name": "model",
    "dropout": "dropout_rate",
    "wd": "weight_decay",
    "workers": "num_workers",
    "patience": "early_stopping_patience",
    "img_size": "image_size",
    "input_size": "image_size",
    "optim": "optimizer",
    "lr_scheduler": "scheduler",
}


def _unknown_key(key: str, where: str, sections: list[str] | None = None) -> ConfigError:
    if sections:
        # A file of sections (params.yaml's `train:`, …) read as flat keys: name the section to pick.
        choices = " or ".join(f"--section {name}" for name in sections)
        return ConfigError(
            f"unknown config key {key!r} in {where}: its training keys are in a section, add {choices}"
        )
    if key.lower() in _SYNONYMS:
        close = [_SYNONYMS[key.lower()]]
    else:
        close = difflib.get_close_matches(key, _FIELDS, n=3, cutoff=0.5)
    if close:
        hint = f"; did you mean {' or '.join(repr(c) for c in close)}?"
    else:
        hint = f" (valid keys: {', '.join(sorted(_FIELDS))})"
    return ConfigError(f"unknown config key {key!r} in {where}{hint}")


def _coerce(key: str, value: Any, where: str) -> Any:
    """``value`` as the type the dataclass declares for ``key`` (YAML and --set strings alike)."""
    hint = _HINTS[key]
    if isinstance(value, str) and hint is not str:
        # --set values arrive as text; YAML rules give `true`, `3`, `1e-3`, `{a: b}` their types.
        try:
            value = yaml.safe_load(value) if value.strip() else value
        except yaml.YAMLError as exc:
            raise ConfigError(f"{where}: cannot parse {key}={value!r}: {exc}") from exc
    allowed = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    for typ in allowed:
        origin = typing.get_origin(typ) or typ
        if origin is bool:
            if isinstance(value, bool):
                return value
        elif origin is int:
            if isinstance(value, int) and not isinstance(value, bool):
                return value
            if isinstance(value, float) and value.is_integer():
                return int(value)
        elif origin is float:
            if isinstance(value, int | float) and not isinstance(value, bool):
                return float(value)
            if isinstance(value, str):
                # YAML 1.1 reads `3e-4` (no dot) as text; Python's float() does not.
                try:
                    return float(value)
                except ValueError:
                    pass
        elif origin is str:
            if isinstance(value, str):
                return value
            if str not in allowed or value is None:
                continue
            return str(value)
        elif origin is dict and isinstance(value, dict):
            return {str(k): str(v) for k, v in value.items()}
    names = " | ".join(getattr(t, "__name__", str(t)) for t in allowed)
    raise ConfigError(f"{where}: {key} must be {names}, got {value!r}")


def parse_overrides(pairs: list[str]) -> dict[str, str]:
    """``["lr=0.01", "model=improved_cnn"]`` → ``{"lr": "0.01", ...}``; values are typed later."""
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set expects key=value, got {pair!r}")
        out[key.strip()] = value
    return out


def build_config(
    values: dict[str, Any], where: str = "config", origins: dict[str, str] | None = None
) -> TrainConfig:
    """``origins`` names where each key came from (the YAML file or --set), for the error messages."""
    origins = origins or {}
    for key in values:
        if key not in _FIELDS:
            raise _unknown_key(key, origins.get(key, where))
    return TrainConfig(**{key: _coerce(key, value, origins.get(key, where)) for key, value in values.items()})


def read_yaml_section(path: Path, section: str | None = None) -> dict[str, Any]:
    """The mapping in ``path`` (or its top-level ``section``, e.g. ``train`` in params.yaml)."""
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if section:
        if not isinstance(data, dict) or section not in data:
            raise ConfigError(f"{path}: no top-level section {section!r}")
        data = data[section] or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of config keys, got {type(data).__name__}")
    return data


def load_config(
    path: Path | None = None, overrides: list[str] | None = None, *, section: str | None = None
) -> TrainConfig:
    """Defaults ← YAML file (optionally one section of it) ← ``key=value`` overrides."""
    values: dict[str, Any] = {}
    origins: dict[str, str] = {}
    if path is not None:
        file_values = read_yaml_section(Path(path), section)
        where = f"{path}" + (f" [{section}]" if section else "")
        # The section with the most training keys (params.yaml: `train`), to suggest --section.
        overlap = {k: len(set(v) & set(_FIELDS)) for k, v in file_values.items() if isinstance(v, dict)}
        sections = [max(overlap, key=overlap.__getitem__)] if overlap and max(overlap.values()) else []
        for key in file_values:
            if key not in _FIELDS:
                raise _unknown_key(key, where, None if section else sections)
        values.update(file_values)
        origins.update(dict.fromkeys(file_values, where))
    if overrides:
        set_values = parse_overrides(overrides)
        for key in set_values:
            if key not in _FIELDS:
                raise _unknown_key(key, "--set")
        values.update(set_values)
        # A bad --set value is the flag's fault, not the YAML file's.
        origins.update({key: f"--set {key}={value}" for key, value in set_values.items()})
    return build_config(values, str(path) if path else "config", origins)
