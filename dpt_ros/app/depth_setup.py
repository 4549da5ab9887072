"""From a DepthNodeConfig to a ready DepthPipeline: preset, weights path, engine, depth stage.

Runs once at start-up. A missing or unusable weights file raises WeightsError, an unusable device
ValueError; both messages tell the user what to do, and the node logs them as one line and exits.
"""

from collections.abc import Callable
from typing import Any

from dpt_ros.alignment.lidar_depth import LidarAligner
from dpt_ros.app.node_config import DepthNodeConfig
from dpt_ros.model.engine import InferenceEngine
from dpt_ros.model.presets import Preset, get_preset, resolve_weights_path
from dpt_ros.pipeline.depth import DepthPipeline, DepthStage, ModelOutputDepth
from dpt_ros.pipeline.lidar_stage import LidarAlignedDepth
from dpt_ros.pipeline.prompt_stage import PromptedDepth

# Builds an inference engine from InferenceEngine's constructor arguments: InferenceEngine itself in the
# nodes and tools; tests hand a node a factory of stand-in engines instead.
EngineFactory = Callable[..., Any]


def build_depth_pipeline(
    config: DepthNodeConfig,
    on_graph_capture: Callable[[tuple[int, ...], int], None] | None = None,
    engine_factory: EngineFactory = InferenceEngine,
) -> tuple[DepthPipeline, InferenceEngine]:
    """Load the model once and wire the depth stage for its output kind.

    on_graph_capture(input shape, graphs captured before) is called at each CUDA graph capture (cuda_graphs).
    engine_factory builds the engine from the preset and InferenceEngine's keyword arguments.
    """
    preset = configured_preset(config, config.model)
    input_size = None if config.input_size == (0, 0) else config.input_size
    engine = build_engine(config, preset, config.weights, input_size, on_graph_capture, engine_factory)
    stage = PromptedDepth() if preset.needs_prompt else depth_stage(config, preset.output_kind)
    return DepthPipeline(engine, stage), engine


def configured_preset(config: DepthNodeConfig, name: str) -> Preset:
    """The preset called `name` with the configuration's architecture_overrides applied."""
    preset = get_preset(name)
    overrides = config.parsed_architecture_overrides()
    return preset.with_architecture(**overrides) if overrides else preset


def build_engine(
    config: DepthNodeConfig,
    preset: Preset,
    weights: str,
    input_size: tuple[int, int] | None,
    on_graph_capture: Callable[[tuple[int, ...], int], None] | None = None,
    engine_factory: EngineFactory = InferenceEngine,
) -> InferenceEngine:
    """The engine for `preset` on the configuration's device and precision (compile, CUDA graphs, random
    weights as configured); `weights` is the configured file ("" = the preset's default path)."""
    return engine_factory(
        preset,
        weights=resolve_weights_path(weights, preset),
        device=config.device,
        precision=config.precision,
        allow_random_weights=config.allow_random_weights,
        input_size=input_size,
        compile_model=config.compile,
        cuda_graphs=config.cuda_graphs,
        on_graph_capture=on_graph_capture,
    )


def depth_stage(config: DepthNodeConfig, output_kind: str) -> DepthStage:
    """The model's own output, or (lidar_alignment) the LiDAR-aligned stage for it. (Prompt presets take their
    metres from the prompt inside the network: `PromptedDepth`.)"""
    if config.lidar_alignment:
        return LidarAlignedDepth(LidarAligner(output_kind, config.lidar_settings()))
    return ModelOutputDepth(output_kind)
