"""Typed training configuration: dataclasses loaded from YAML with `section.key=value` overrides.

Unknown keys and values of the wrong type are errors naming the key, so a typo in a config or on the
command line never silently trains with a default.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from dpt_ros.eval.depth_metrics import EvalConfig
from dpt_train.checkpoint import atomic_write_text
from dpt_train.transforms import AugmentConfig


@dataclass(frozen=True)
class ModelConfig:
    """preset: a dpt_ros preset name. architecture: overrides for Preset.with_architecture (reduced models).
    weights: initial weights file (official DPT or a dpt-train checkpoint); None = random initialisation.
    metric_scale/metric_shift: replace the metric head's 1/(scale*x + shift) constants. For training from
    random initialisation (reduced test networks), where the stock KITTI constants need a head output in
    the thousands; rebuild such a network with dpt_train.model.resolve_preset. The relative-to-metric
    recipe does not use them: it folds its constants into the weights (see RecipeConfig).
    """

    preset: str = "dpt_hybrid_kitti"
    architecture: dict[str, Any] = field(default_factory=dict)
    weights: str | None = None
    metric_scale: float | None = None
    metric_shift: float | None = None


@dataclass(frozen=True)
class DataConfig:
    """Split files hold paths relative to image_root (raw drives) and depth_root (annotated depth).
    depth_source / val_depth_source "velodyne" build sparse ground truth for training / validation from
    the raw scans + calibration instead (Eigen et al.'s original protocol evaluated on raw Velodyne)."""

    image_root: str = "data/kitti/raw"
    depth_root: str = "data/kitti/depth"
    train_split: str = "data/kitti/splits/eigen_train_files_with_gt.txt"
    val_split: str = "data/kitti/splits/eigen_test_files_with_gt.txt"
    on_bad_sample: Literal["raise", "skip"] = "raise"
    depth_source: Literal["png", "velodyne"] = "png"
    val_depth_source: Literal["png", "velodyne"] = "png"
    num_workers: int = 4
    augment: AugmentConfig = AugmentConfig()


@dataclass(frozen=True)
class OptimConfig:
    """Separate learning rates for the backbone (`pretrained`) and the decoder/head (everything else);
    linear warm-up over warmup_steps, then cosine or polynomial (power 0.9) decay to min_lr_ratio.
    momentum applies to sgd only (heavy-ball)."""

    optimizer: Literal["adamw", "adam", "sgd"] = "adamw"
    backbone_lr: float = 1e-5
    decoder_lr: float = 1e-4
    weight_decay: float = 1e-2
    warmup_steps: int = 500
    decay: Literal["cosine", "poly", "none"] = "poly"
    min_lr_ratio: float = 0.01
    grad_clip: float = 1.0
    momentum: float = 0.9


@dataclass(frozen=True)
class LossConfig:
    """silog for metric depth; ssi (MiDaS trimmed + gradient matching, in inverse depth) for relative."""

    kind: Literal["silog", "ssi"] = "silog"
    variance_focus: float = 0.85
    silog_scale: float = 10.0
    gradient_weight: float = 0.5
    min_depth: float = 1e-3
    max_depth: float = 80.0


@dataclass(frozen=True)
class RecipeConfig:
    """Paper recipe for a relative model fine-tuned to metric depth: before training, fit scale and shift
    of the initial inverse-depth predictions per training sample (robust, in inverse depth), average them
    and use them as the metric head's constants. samples: how many training samples to fit (0 = all)."""

    estimate_scale_shift: bool = False
    samples: int = 0


@dataclass(frozen=True)
class TrainConfig:
    """batch_size is global: each of N ranks takes batch_size / N, so N does not change the trajectory."""

    run_dir: str = "runs/kitti"
    seed: int = 0
    device: str = "auto"
    batch_size: int = 8
    max_steps: int = 60000
    amp: Literal["none", "bf16", "fp16"] = "bf16"
    log_every: int = 50
    val_every: int = 2000
    checkpoint_every: int = 2000
    keep_last: int = 3
    best_metric: str = "abs_rel"
    image_panels: int = 4
    model: ModelConfig = ModelConfig()
    data: DataConfig = DataConfig()
    optim: OptimConfig = OptimConfig()
    loss: LossConfig = LossConfig()
    recipe: RecipeConfig = RecipeConfig()
    eval: EvalConfig = EvalConfig()


def _coerce(value: Any, annotation: Any, key: str) -> Any:
    """Check/convert one value against a field annotation; raises ValueError naming the key."""
    origin = typing.get_origin(annotation)
    if dataclasses.is_dataclass(annotation):
        if not isinstance(value, dict):
            raise ValueError(f"{key}: expected a mapping, got {value!r}")
        return from_dict(annotation, value, f"{key}.")
    if origin in (typing.Union, types.UnionType):
        arguments = typing.get_args(annotation)
        if value is None and type(None) in arguments:
            return None
        for argument in arguments:
            if argument is not type(None):
                return _coerce(value, argument, key)
    if origin is Literal:
        if value not in typing.get_args(annotation):
            raise ValueError(f"{key}: {value!r} is not one of {typing.get_args(annotation)}")
        return value
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"{key}: expected a list, got {value!r}")
        item_type = typing.get_args(annotation)[0]
        return tuple(_coerce(item, item_type, key) for item in value)
    if origin is dict:
        if not isinstance(value, dict):
            raise ValueError(f"{key}: expected a mapping, got {value!r}")
        return {k: tuple(v) if isinstance(v, list) else v for k, v in value.items()}
    if annotation is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if annotation is float and isinstance(value, str):
        try:  # YAML 1.1 reads "1e-5" (no dot) as a string
            return float(value)
        except ValueError:
            raise ValueError(f"{key}: expected float, got {value!r}") from None
    if annotation in (int, float, str, bool) and not (
        isinstance(value, annotation) and not (annotation is int and isinstance(value, bool))
    ):
        raise ValueError(f"{key}: expected {annotation.__name__}, got {value!r}")
    return value


def from_dict(cls: type, data: dict[str, Any], prefix: str = "") -> Any:
    """Build dataclass cls from a nested mapping; unknown keys raise ValueError."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ValueError(f"unknown config key(s): {', '.join(prefix + k for k in unknown)}")
    return cls(**{name: _coerce(value, hints[name], prefix + name) for name, value in data.items()})


def to_dict(config: Any) -> dict[str, Any]:
    """Plain nested dict (lists for tuples) suitable for YAML and for torch.load(weights_only=True)."""

    def plain(value: Any) -> Any:
        if isinstance(value, (tuple, list)):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return value

    return plain(dataclasses.asdict(config))


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply `a.b.c=value` overrides (value parsed as YAML) to a nested dict; returns a new dict."""
    merged = yaml.safe_load(yaml.safe_dump(data)) or {}
    for override in overrides:
        key, separator, raw = override.partition("=")
        if not separator or not key:
            raise ValueError(f"override {override!r} is not of the form key=value")
        node = merged
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ValueError(f"override {override!r}: {part} is not a section")
        node[leaf] = yaml.safe_load(raw)
    return merged


def load_config(path: str | Path | None, overrides: list[str] = ()) -> TrainConfig:
    """TrainConfig from a YAML file (None = defaults) plus overrides."""
    data = yaml.safe_load(Path(path).read_text()) if path else {}
    return from_dict(TrainConfig, apply_overrides(data or {}, list(overrides)))


def save_config(config: TrainConfig, path: str | Path) -> None:
    """Write the resolved config as YAML (the run's record of exactly what was trained)."""
    atomic_write_text(path, yaml.safe_dump(to_dict(config), sort_keys=False))
