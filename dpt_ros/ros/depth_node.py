"""ROS 2 depth node: camera image(s) in -> depth, point cloud and diagnostics out.

A node shell (dpt_ros.ros.node_shell: subscriptions, newest-only hand-over to one inference thread,
decoding, stats, diagnostics) with the depth output stage (dpt_ros.ros.depth_outputs). Callbacks only
validate stamps; the thread decodes, runs same-sized images of all cameras in one forward pass and
publishes each camera's outputs. One camera (`cameras: []`) is the same path with a single unnamed camera.
Run with `ros2 run dpt_ros depth_node --ros-args --params-file config/depth.yaml` or
`python -m dpt_ros.ros.depth_node`; `depth_node --managed [--autostart] --ros-args ...` starts the
managed (lifecycle) node (dpt_ros.ros.managed).
"""

import sys

from dpt_ros.app.node_config import DepthNodeConfig
from dpt_ros.ros.depth_outputs import build_depth_outputs
from dpt_ros.ros.managed import ManagedNode, run
from dpt_ros.ros.node_shell import NodeKind, ShellNode, StartupError

__all__ = ["ManagedDepthNode", "DEPTH_NODE", "DepthNode", "NODE_NAME", "StartupError", "main"]

NODE_NAME = "depth_node"
DEPTH_NODE = NodeKind(NODE_NAME, DepthNodeConfig, lambda shell, factory: [build_depth_outputs(shell, factory)])


class DepthNode(ShellNode):
    """Subscribes to image (+ camera_info) per camera; publishes depth, depth/relative, depth/mm,
    depth/camera_info, depth/colored and points per camera, each with its image's header, and /diagnostics.

    `DepthNode(engine_factory=..., context=..., namespace=..., parameter_overrides=...)`: engine_factory
    builds the network (InferenceEngine by default); the other keywords go to rclpy's Node.
    """

    KIND = DEPTH_NODE


class ManagedDepthNode(ManagedNode):
    """The same node as a managed (lifecycle) node: see dpt_ros.ros.managed."""

    KIND = DEPTH_NODE


def main(args: list[str] | None = None) -> int:
    """Console script entry point; returns the exit code (0 on Ctrl-C, 1 when start-up fails, 2 for bad ROS args)."""
    return run(DepthNode, ManagedDepthNode, NODE_NAME, args)


if __name__ == "__main__":
    sys.exit(main())
