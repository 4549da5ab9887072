"""From a DepthNodeConfig to a ready DepthPipeline: preset, device, weights, engine, depth stage.

Runs once at start-up. A missing or wrong weights file raises dpt_ros.core.model.checkpoint.WeightsError
whose message tells the user what to do; the node logs it as one line and exits.
"""

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from dpt_ros.core.node_config import DepthNodeConfig
from dpt_ros.core.pipeline import DepthPipeline, ModelOutputDepth

DEFAULT_WEIGHTS_DIR = Path("models")


@dataclass(frozen=True)
class DeviceChoice:
    """The torch device to run on, and a warning for the log when `auto` fell back to the CPU."""

    device: str
    warning: str = ""


def resolve_device(requested: str) -> DeviceChoice:
    """'auto' -> 'cuda' when available, else 'cpu' with a warning; anything else is used as given."""
    if requested != "auto":
        return DeviceChoice(requested)
    import torch

    if torch.cuda.is_available():
        return DeviceChoice("cuda")
    return DeviceChoice("cpu", "device 'auto' found no CUDA GPU: running on the CPU, expect seconds per frame")


def weights_path(config: DepthNodeConfig, weights_file: str) -> Path:
    """The configured weights path, or models/<the preset's weights file> when none is configured."""
    return Path(config.weights) if config.weights else DEFAULT_WEIGHTS_DIR / weights_file


def build_depth_pipeline(config: DepthNodeConfig, device: str):
    """Load the model once and wire the depth stage for its output kind. Returns (pipeline, engine)."""
    from dpt_ros.core.engine import InferenceEngine
    from dpt_ros.core.model.presets import get_preset

    preset = get_preset(config.model)
    overrides = config.parsed_architecture_overrides()
    if overrides:
        preset = preset.with_architecture(**overrides)
    if config.input_size != (0, 0):
        preset = dataclasses.replace(preset, input_size=config.input_size)
    engine = InferenceEngine(
        preset,
        weights=weights_path(config, preset.weights_file),
        device=device,
        precision=config.precision,
        allow_random_weights=config.allow_random_weights,
    )
    return DepthPipeline(engine, ModelOutputDepth(preset.output_kind)), engine
