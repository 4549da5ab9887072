"""The segmentation output stage of a node shell: semantic/labels, semantic/colored, semantic/overlay and the
latched semantic/classes.

Used alone by the segmentation node and, in perception mode, before the depth stage: one preprocessing
feeds both networks, and the frame's labels go on to the depth stage's point cloud ('label' field).
"""

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image
from std_msgs.msg import String

from dpt_ros.app.depth_setup import EngineFactory
from dpt_ros.app.segmentation_config import SegmentationNodeConfig
from dpt_ros.app.segmentation_setup import SegmentationSetup, build_segmentation
from dpt_ros.model.checkpoint import WeightsError
from dpt_ros.model.presets import get_preset
from dpt_ros.pipeline.segmentation import SemanticOutputs
from dpt_ros.ros import conversions
from dpt_ros.ros.depth_outputs import DepthOutputs, load_depth_pipeline
from dpt_ros.ros.node_shell import QOS, CameraIO, NodeShell, OutputStage, PreparedFrame, StartupError, weights_help

# The class table is sent once; late subscribers get it from the publisher's durable history.
CLASSES_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)


class SegmentationOutputs:
    """Runs the segmentation network on each frame and publishes its outputs.

    labels_for: the depth stage that runs after this one (perception), whose cloud gets the labels; None alone.
    """

    def __init__(self, shell: NodeShell, setup: SegmentationSetup, labels_for: DepthOutputs | None = None) -> None:
        self._shell = shell
        self.setup = setup
        self._labels_for = labels_for
        self._labels_pub: Any = None
        self._colored_pub: Any = None
        self._overlay_pub: Any = None
        self._classes_pub: Any = None

    def engines(self) -> list[Any]:
        return [self.setup.engine]

    def _semantic_publishers(self) -> list[Any]:
        return [pub for pub in (self._labels_pub, self._colored_pub, self._overlay_pub) if pub is not None]

    def open(self, cameras: Sequence[CameraIO]) -> None:
        node, config = self._shell.node, self._shell.config
        qos_out = QOS[config.qos_out]
        self._labels_pub = node.create_publisher(Image, "semantic/labels", qos_out)
        self._colored_pub = (
            node.create_publisher(Image, "semantic/colored", qos_out) if config.publish_semantic_colored else None
        )
        self._overlay_pub = (
            node.create_publisher(Image, "semantic/overlay", qos_out) if config.publish_semantic_overlay else None
        )
        self._classes_pub = node.create_publisher(String, "semantic/classes", CLASSES_QOS)
        self._classes_pub.publish(String(data=self.setup.segmentation.table.to_json()))

    def close(self) -> None:
        for pub in (*self._semantic_publishers(), self._classes_pub):
            if pub is not None:
                self._shell.node.destroy_publisher(pub)
        self._labels_pub = self._colored_pub = self._overlay_pub = self._classes_pub = None

    def has_subscribers(self, camera: CameraIO) -> bool:
        return any(pub.get_subscription_count() > 0 for pub in self._semantic_publishers())

    def prepare(self, camera: CameraIO, item: PreparedFrame) -> PreparedFrame:
        return item  # the image alone: no camera model needed

    def process(self, cameras: list[CameraIO], items: list[PreparedFrame]) -> None:
        """Segment each frame (the config allows one camera) when an output or the depth stage's cloud wants it."""
        shell, config = self._shell, self._shell.config
        for camera, item in zip(cameras, items):
            with shell.frame_failures(camera, item):
                want_labels = self._labels_for is not None and self._labels_for.wants_cloud(camera)
                if not (want_labels or any(shell.wanted(pub) for pub in self._semantic_publishers())):
                    continue
                rgb, shared_input = item.frame.rgb, self.setup.shared_input
                semantic = self.setup.segmentation.process(
                    rgb,
                    network_input=shared_input.prepare(rgb) if shared_input is not None else None,
                    want_colored=shell.wanted(self._colored_pub),
                    want_overlay=shell.wanted(self._overlay_pub),
                    overlay_alpha=config.overlay_alpha,
                )
                self._publish(item.header, semantic)
                item.inference_ms += semantic.timings_ms["segmentation"]
                if want_labels:
                    item.frame = replace(item.frame, labels=semantic.labels)

    def _publish(self, header: Any, semantic: SemanticOutputs) -> None:
        if self._shell.wanted(self._labels_pub):  # computed for the cloud alone otherwise
            self._labels_pub.publish(conversions.image_msg(header, semantic.labels))
        if semantic.colored is not None and self._colored_pub is not None:
            self._colored_pub.publish(conversions.image_msg(header, semantic.colored))
        if semantic.overlay is not None and self._overlay_pub is not None:
            self._overlay_pub.publish(conversions.image_msg(header, semantic.overlay))

    def describe(self) -> str:
        engine, table = self.setup.engine, self.setup.segmentation.table
        labels_topic = self._labels_pub.topic_name if self._labels_pub is not None else "semantic/labels"
        described = (
            f"{engine.preset.name} on {engine.device} ({engine.precision}{self._shell.acceleration()}): "
            f"{table.num_classes} {table.dataset} classes on '{labels_topic}'"
        )
        if self._labels_for is not None:
            described += " and the cloud's 'label' field (one preprocessing)"
        return described

    def diagnostic_values(self) -> dict[str, str]:
        engine, table = self.setup.engine, self.setup.segmentation.table
        return {
            "device": str(engine.device),
            "precision": engine.precision,
            "segmentation_preset": engine.preset.name,
            "segmentation_random_weights": str(engine.random_weights).lower(),
            "class_table": f"{table.num_classes} classes ({table.dataset})",
            "ignore_classes": self._shell.config.ignore_classes,
        }

    def camera_values(self, camera: CameraIO) -> dict[str, str]:
        return {}


def build_segmentation_stages(shell: NodeShell, engine_factory: EngineFactory) -> list[OutputStage]:
    """The segmentation stage, then (with `model`: perception) the depth stage fed by the same preprocessing."""
    config = shell.config
    assert isinstance(config, SegmentationNodeConfig)
    depth = load_depth_pipeline(shell, engine_factory) if config.model else None  # with the depth node's help
    try:
        setup = build_segmentation(config, depth, shell.log_graph_capture, engine_factory)
    except WeightsError as error:
        raise StartupError(weights_help(str(error), get_preset(config.segmentation_model))) from None
    if setup.depth_pipeline is None or setup.depth_engine is None:
        return [SegmentationOutputs(shell, setup)]
    depth_outputs = DepthOutputs(shell, setup.depth_pipeline, setup.depth_engine)  # fed by the shared preprocessing
    return [SegmentationOutputs(shell, setup, labels_for=depth_outputs), depth_outputs]

