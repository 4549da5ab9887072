"""ROS 2 segmentation node: camera image in -> semantic class ids, palette and overlay images, class table.

With a depth preset (`model`) the same node also runs depth (perception mode, launch/perception.launch.py):
one decode and one preprocessing per frame feed both networks, every output carries the image's header,
and the point cloud gains a `label` field (uint8 class ids; `ignore_classes` drops classes from it).
It is the depth node's shell (threading, newest-only queue, stamps, diagnostics, parameters) with the
segmentation output stage, followed in perception mode by the depth output stage.

Topics (relative to the namespace):
  semantic/labels   sensor_msgs/Image mono8: class id per pixel at the input resolution (255 = unlabelled)
  semantic/colored  sensor_msgs/Image bgr8: palette colours (publish_semantic_colored)
  semantic/overlay  sensor_msgs/Image bgr8: image blended with the palette (publish_semantic_overlay)
  semantic/classes  std_msgs/String, latched (transient local): the class table as JSON,
                    {"dataset", "unlabeled_id", "classes": [{"id", "name", "synonyms", "stuff", "color_rgb"}]}
Run with `ros2 run dpt_ros segmentation_node --ros-args --params-file config/segmentation.yaml`;
`--managed [--autostart]` (before --ros-args) starts the managed (lifecycle) node.
"""

import sys

from dpt_ros.app.segmentation_config import SegmentationNodeConfig
from dpt_ros.ros.managed import ManagedNode, run
from dpt_ros.ros.node_shell import NodeKind, ShellNode
from dpt_ros.ros.segmentation_outputs import CLASSES_QOS, build_segmentation_stages

__all__ = ["ManagedSegmentationNode", "CLASSES_QOS", "NODE_NAME", "SEGMENTATION_NODE", "SegmentationNode", "main"]

NODE_NAME = "segmentation_node"
SEGMENTATION_NODE = NodeKind(NODE_NAME, SegmentationNodeConfig, build_segmentation_stages)


class SegmentationNode(ShellNode):
    """Subscribes to image (+ camera_info with depth); publishes semantic/labels, semantic/colored,
    semantic/overlay, the latched semantic/classes and, with `model` set, the depth node's outputs."""

    KIND = SEGMENTATION_NODE


class ManagedSegmentationNode(ManagedNode):
    """The same node as a managed (lifecycle) node: see dpt_ros.ros.managed."""

    KIND = SEGMENTATION_NODE


def main(args: list[str] | None = None) -> int:
    """Console script entry point (exit codes as the depth node's)."""
    return run(SegmentationNode, ManagedSegmentationNode, NODE_NAME, args)


if __name__ == "__main__":
    sys.exit(main())
