"""From a SegmentationNodeConfig to ready networks: the segmentation stage and, in perception mode, the
depth pipeline, both fed by one preprocessing per frame.

Runs once at start-up. Missing weights raise WeightsError, an unusable device / class table / size
ValueError; their messages tell the user what to do. The node builds the depth half first (with the
depth node's own start-up help) and hands it over.
"""

from collections.abc import Callable
from dataclasses import dataclass

from dpt_ros.app.depth_setup import DEFAULT_WEIGHTS_DIR, EngineFactory
from dpt_ros.app.segmentation_config import SegmentationNodeConfig
from dpt_ros.model.engine import InferenceEngine
from dpt_ros.model.presets import get_preset
from dpt_ros.pipeline.depth import DepthPipeline
from dpt_ros.pipeline.segmentation import SegmentationStage
from dpt_ros.pipeline.shared_input import SharedInputBackend, SharedNetworkInput


@dataclass(frozen=True)
class SegmentationSetup:
    """segmentation: the stage. engine: its network. depth_pipeline / depth_engine: None without depth.
    shared_input: the frame's one preprocessing when both networks run, else None."""

    segmentation: SegmentationStage
    engine: InferenceEngine
    depth_pipeline: DepthPipeline | None = None
    depth_engine: InferenceEngine | None = None
    shared_input: SharedNetworkInput | None = None


def build_segmentation(
    config: SegmentationNodeConfig,
    depth: tuple[DepthPipeline, InferenceEngine] | None = None,
    on_graph_capture: Callable[[tuple[int, ...], int], None] | None = None,
    engine_factory: EngineFactory = InferenceEngine,
) -> SegmentationSetup:
    """Load the segmentation network once; `depth` is the depth pipeline and engine when `model` is set
    (from depth_setup.build_depth_pipeline), rewired here to share the segmentation's input.
    compile / cuda_graphs apply to it as to the depth network; on_graph_capture and engine_factory as in
    build_depth_pipeline.

    With depth, the segmentation network runs at the depth network's input size unless `input_size`
    is set, so that one preprocessed input feeds both (DPT runs at any multiple of 32).
    """
    table = config.loaded_class_table()
    depth_pipeline, depth_engine = depth if depth is not None else (None, None)
    preset = get_preset(config.segmentation_model)
    overrides = config.parsed_architecture_overrides()
    if overrides:
        preset = preset.with_architecture(**overrides)
    if preset.architecture.num_classes != table.num_classes:
        raise ValueError(
            f"segmentation model {preset.name} predicts {preset.architecture.num_classes} classes but the class "
            f"table ({table.dataset}) has {table.num_classes}; set class_table to the model's table"
        )
    if config.input_size != (0, 0):
        input_size = config.input_size
    elif depth_engine is not None:
        input_size = depth_engine.input_size or depth_engine.preset.input_size
    else:
        input_size = None
    engine = engine_factory(
        preset,
        weights=config.segmentation_weights_path(preset.weights_file, DEFAULT_WEIGHTS_DIR),
        device=config.device,
        precision=config.precision,
        allow_random_weights=config.allow_random_weights,
        input_size=input_size,
        compile_model=config.compile,
        cuda_graphs=config.cuda_graphs,
        on_graph_capture=on_graph_capture,
    )
    segmentation = SegmentationStage(engine, table)
    if depth_pipeline is None or depth_engine is None:
        return SegmentationSetup(segmentation, engine)
    shared_input = SharedNetworkInput([depth_engine, engine])
    depth_pipeline = DepthPipeline(
        SharedInputBackend(depth_engine, shared_input), depth_pipeline.depth_stage, depth_pipeline.channel_providers
    )
    return SegmentationSetup(segmentation, engine, depth_pipeline, depth_engine, shared_input)
