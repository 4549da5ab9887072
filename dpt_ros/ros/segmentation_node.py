"""ROS 2 segmentation node: camera image in -> semantic class ids, palette and overlay images, class table.

With a depth preset (`model`) the same node also runs depth (perception mode, launch/perception.launch.py):
one decode and one preprocessing per frame feed both networks, every output carries the image's header,
and the point cloud gains a `label` field (uint8 class ids; `ignore_classes` drops classes from it).
Everything else (threading, newest-only queue, stamps, diagnostics, parameters) is the depth node's.

Topics (relative to the namespace):
  semantic/labels   sensor_msgs/Image mono8: class id per pixel at the input resolution (255 = unlabelled)
  semantic/colored  sensor_msgs/Image bgr8: palette colours (publish_semantic_colored)
  semantic/overlay  sensor_msgs/Image bgr8: image blended with the palette (publish_semantic_overlay)
  semantic/classes  std_msgs/String, latched (transient local): the class table as JSON,
                    {"dataset", "unlabeled_id", "classes": [{"id", "name", "synonyms", "stuff", "color_rgb"}]}
Run with `ros2 run dpt_ros segmentation_node --ros-args --params-file config/segmentation.yaml`.
"""

import sys
from dataclasses import replace
from typing import Any

from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image
from std_msgs.msg import String

from dpt_ros.app.segmentation_config import SegmentationNodeConfig
from dpt_ros.app.segmentation_setup import build_segmentation
from dpt_ros.model.checkpoint import WeightsError
from dpt_ros.model.presets import get_preset
from dpt_ros.pipeline.depth import Frame
from dpt_ros.pipeline.segmentation import SemanticOutputs
from dpt_ros.ros import conversions
from dpt_ros.ros.depth_node import (
    QOS,
    CameraIO,
    DepthNode,
    PendingImage,
    PreparedFrame,
    StartupError,
    depth_network_ms,
    weights_help,
)
from dpt_ros.ros.depth_node import (
    main as run_node,
)

NODE_NAME = "segmentation_node"

# The class table is sent once; late subscribers get it from the publisher's durable history.
CLASSES_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)


class SegmentationNode(DepthNode):
    """Subscribes to image (+ camera_info with depth); publishes semantic/labels, semantic/colored,
    semantic/overlay, the latched semantic/classes and, with `model` set, the depth node's outputs."""

    NAME = NODE_NAME
    CONFIG_TYPE = SegmentationNodeConfig

    # --- set-up (hooks of DepthNode) ---------------------------------------------------------

    def _build_networks(self) -> None:
        config, depth = self._config, None
        if config.model:
            super()._build_networks()  # the depth network, with the depth node's start-up help
            depth = (self._pipeline, self._engine)
        try:
            self._setup = build_segmentation(config, depth, on_graph_capture=self._log_graph_capture)
        except WeightsError as error:
            preset = get_preset(config.segmentation_model)
            raise StartupError(weights_help(str(error), preset, config.segmentation_weights)) from None
        if self._runs_depth:
            self._pipeline = self._setup.depth_pipeline  # now fed by the shared preprocessing

    @property
    def _runs_depth(self) -> bool:
        return self._setup.depth_pipeline is not None

    def _engines(self) -> list[Any]:
        return [engine for engine in (self._setup.depth_engine, self._setup.engine) if engine is not None]

    def _describe_outputs(self) -> str:
        engine, table = self._setup.engine, self._setup.segmentation.table
        semantic = (
            f"{engine.preset.name} on {engine.device} ({engine.precision}{self._acceleration()}): "
            f"{table.num_classes} {table.dataset} classes on '{self._labels_pub.topic_name}'"
        )
        if not self._runs_depth:
            return semantic
        return f"{super()._describe_outputs()}; {semantic} and the cloud's 'label' field (one preprocessing)"

    def _create_output_topics(self, camera: CameraIO) -> None:
        if self._runs_depth:
            super()._create_output_topics(camera)
        config = self._config
        qos_out = QOS[config.qos_out]
        self._labels_pub = self.create_publisher(Image, "semantic/labels", qos_out)
        self._semantic_colored_pub = (
            self.create_publisher(Image, "semantic/colored", qos_out) if config.publish_semantic_colored else None
        )
        self._overlay_pub = (
            self.create_publisher(Image, "semantic/overlay", qos_out) if config.publish_semantic_overlay else None
        )
        self._classes_pub = self.create_publisher(String, "semantic/classes", CLASSES_QOS)
        self._classes_pub.publish(String(data=self._setup.segmentation.table.to_json()))

    def _semantic_publishers(self) -> list[Any]:
        return [pub for pub in (self._labels_pub, self._semantic_colored_pub, self._overlay_pub) if pub is not None]

    def _has_subscribers(self, camera: CameraIO) -> bool:
        if any(pub.get_subscription_count() > 0 for pub in self._semantic_publishers()):
            return True
        return self._runs_depth and super()._has_subscribers(camera)

    def _diagnostic_values(self) -> dict[str, str]:
        engine, table = self._setup.engine, self._setup.segmentation.table
        values = super()._diagnostic_values() if self._runs_depth else {
            "device": str(engine.device),
            "precision": engine.precision,
        }
        values.update({
            "segmentation_preset": engine.preset.name,
            "segmentation_random_weights": str(engine.random_weights).lower(),
            "class_table": f"{table.num_classes} classes ({table.dataset})",
            "ignore_classes": self._config.ignore_classes,
        })
        return values

    # --- inference thread ----------------------------------------------------------------------

    def _prepare(self, camera: CameraIO, pending: PendingImage) -> PreparedFrame:
        if self._runs_depth:
            return super()._prepare(camera, pending)
        return PreparedFrame(Frame(self._decode(pending.msg)), pending, camera_info=None)  # no camera model needed

    def _process_group(self, cameras: list[CameraIO], prepared: list[PreparedFrame]) -> None:
        (camera,), (item,) = cameras, prepared  # the config refuses `cameras`: one camera, one image per group
        with self._failures_counted(camera):
            self._process_frame(camera, item)

    def _process_frame(self, camera: CameraIO, item: PreparedFrame) -> None:
        """Segmentation, then (with `model`) depth whose cloud gets the class ids, of one frame."""
        config, rgb, header = self._config, item.frame.rgb, item.pending.msg.header
        want_cloud = self._runs_depth and self._wanted(camera.cloud_pub)
        semantic: SemanticOutputs | None = None
        if want_cloud or any(self._wanted(pub) for pub in self._semantic_publishers()):
            shared_input = self._setup.shared_input
            semantic = self._setup.segmentation.process(
                rgb,
                network_input=shared_input.prepare(rgb) if shared_input is not None else None,
                want_colored=self._wanted(self._semantic_colored_pub),
                want_overlay=self._wanted(self._overlay_pub),
                overlay_alpha=config.overlay_alpha,
            )
            self._publish_semantic(header, semantic)
        inference_ms = semantic.timings_ms["segmentation"] if semantic is not None else 0.0
        if self._runs_depth:
            labels = semantic.labels if want_cloud and semantic is not None else None
            outputs = self._pipeline.process(
                replace(item.frame, labels=labels),
                config.output_options(),
                want_cloud=want_cloud,
                want_colored=self._wanted(camera.colored_pub),
            )
            self._publish_depth(camera, item, outputs)
            inference_ms += depth_network_ms(outputs)
        self._record_frame(camera, item.pending, inference_ms)

    def _publish_semantic(self, header: Any, semantic: SemanticOutputs) -> None:
        if self._wanted(self._labels_pub):  # computed for the cloud alone otherwise
            self._labels_pub.publish(conversions.image_msg(header, semantic.labels))
        if semantic.colored is not None and self._semantic_colored_pub is not None:
            self._semantic_colored_pub.publish(conversions.image_msg(header, semantic.colored))
        if semantic.overlay is not None and self._overlay_pub is not None:
            self._overlay_pub.publish(conversions.image_msg(header, semantic.overlay))


def main(args: list[str] | None = None) -> int:
    """Console script entry point (exit codes as the depth node's)."""
    return run_node(args, node_type=SegmentationNode)


if __name__ == "__main__":
    sys.exit(main())
