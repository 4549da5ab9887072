"""From a DepthNodeConfig to a ready DepthPipeline: preset, weights path, engine, depth stage.

Runs once at start-up. A missing or unusable weights file raises WeightsError, an unusable device
ValueError; both messages tell the user what to do, and the node logs them as one line and exits.
"""

from collections.abc import Callable
from pathlib import Path
from typing import Any

from dpt_ros.alignment.lidar_depth import LidarAligner
from dpt_ros.app.node_config import DepthNodeConfig
from dpt_ros.model.engine import InferenceEngine
from dpt_ros.model.presets import get_preset
from dpt_ros.pipeline.depth import DepthPipeline, DepthStage, ModelOutputDepth
from dpt_ros.pipeline.lidar_stage import LidarAlignedDepth

DEFAULT_WEIGHTS_DIR = Path("models")

# Builds an inference engine from InferenceEngine's constructor arguments: InferenceEngine itself in the
# nodes and tools; tests hand a node a factory of stand-in engines instead.
EngineFactory = Callable[..., Any]


def weights_path(config: DepthNodeConfig, weights_file: str) -> Path:
    """The configured weights path, or models/<the preset's weights file> when none is configured."""
    return Path(config.weights) if config.weights else DEFAULT_WEIGHTS_DIR / weights_file


def build_depth_pipeline(
    config: DepthNodeConfig,
    on_graph_capture: Callable[[tuple[int, ...], int], None] | None = None,
    engine_factory: EngineFactory = InferenceEngine,
) -> tuple[DepthPipeline, InferenceEngine]:
    """Load the model once and wire the depth stage for its output kind.

    on_graph_capture(input shape, graphs captured before) is called at each CUDA graph capture (cuda_graphs).
    engine_factory builds the engine from the preset and InferenceEngine's keyword arguments.
    """
    preset = get_preset(config.model)
    overrides = config.parsed_architecture_overrides()
    if overrides:
        preset = preset.with_architecture(**overrides)
    engine = engine_factory(
        preset,
        weights=weights_path(config, preset.weights_file),
        device=config.device,
        precision=config.precision,
        allow_random_weights=config.allow_random_weights,
        input_size=None if config.input_size == (0, 0) else config.input_size,
        compile_model=config.compile,
        cuda_graphs=config.cuda_graphs,
        on_graph_capture=on_graph_capture,
    )
    return DepthPipeline(engine, depth_stage(config, preset.output_kind)), engine


def depth_stage(config: DepthNodeConfig, output_kind: str) -> DepthStage:
    """The model's own output, or (lidar_alignment) the LiDAR-aligned stage for it."""
    if config.lidar_alignment:
        return LidarAlignedDepth(LidarAligner(output_kind, config.lidar_settings()))
    return ModelOutputDepth(output_kind)
