"""Start dpt_ros's segmentation_node with config/segmentation.yaml (or another params file) for one camera.

    ros2 launch dpt_ros segmentation.launch.py namespace:=camera image_topic:=image_rect \
        segmentation_model:=dpt_large_ade20k segmentation_weights:=/data/models/dpt_large-ade20k-b12dca68.pt

managed:=true starts the lifecycle node (configured and activated at start unless autostart:=false).
Launch arguments left empty keep the params file's value. Topics are resolved in `namespace`:
with namespace:=camera the node reads /camera/image_rect and publishes /camera/semantic/labels, ...
perception.launch.py includes this file with config/perception.yaml (depth + segmentation in one
process). Only the public launch / launch_ros API is used.
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.launch_context import LaunchContext
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from launch import LaunchDescription

PACKAGE = "dpt_ros"

# Launch arguments that, when not empty, override the params file's parameter of the same name.
PARAMETER_ARGUMENTS = {
    "model": "depth preset to run in the same process, e.g. dpt_hybrid_nyu; empty = the params file's",
    "weights": "depth weights file; empty = the params file's",
    "segmentation_model": "dpt_hybrid_ade20k or dpt_large_ade20k; empty = the params file's",
    "segmentation_weights": "segmentation weights file; empty = the params file's",
    "image_transport": "raw or compressed; empty = the params file's",
}

# name -> (default, description)
LAUNCH_ARGUMENTS = {
    "namespace": ("camera", "camera namespace the node's topics live in"),
    "node_name": ("segmentation_node", "ROS node name"),
    "image_topic": ("image_raw", "camera image topic (relative to namespace); '/compressed' is appended for "
                                 "image_transport compressed"),
    "camera_info_topic": ("camera_info", "CameraInfo topic (relative to namespace; used with depth)"),
    "params_file": ("", "parameters YAML; empty = the installed config/segmentation.yaml"),
    **{name: ("", description) for name, description in PARAMETER_ARGUMENTS.items()},
    "use_shm_profile": ("true", "use config/fastdds_shm.xml unless FASTDDS_DEFAULT_PROFILES_FILE is already set"),
    "managed": ("false", "true: start the managed (lifecycle) node; configure loads the model, activate starts "
                         "processing (ros2 lifecycle set <node> configure / activate ...)"),
    "autostart": ("true", "with managed: run configure and activate at start; a failed configure leaves the node "
                          "unconfigured and running, with the reason in its log"),
}


def _start_arguments(managed: str, autostart: str) -> list[str]:
    """The node's own command-line flags (dpt_ros.ros.managed.parse_start_options) for these launch arguments."""
    if managed.lower() != "true":
        return []
    return ["--managed"] + (["--autostart"] if autostart.lower() == "true" else [])


def _segmentation_node(context: LaunchContext) -> list[Node]:
    share = get_package_share_directory(PACKAGE)
    args = {name: LaunchConfiguration(name).perform(context) for name in LAUNCH_ARGUMENTS}
    overrides = {name: args[name] for name in PARAMETER_ARGUMENTS if args[name]}
    environment = {}
    if args["use_shm_profile"].lower() == "true" and "FASTDDS_DEFAULT_PROFILES_FILE" not in os.environ:
        environment["FASTDDS_DEFAULT_PROFILES_FILE"] = os.path.join(share, "config", "fastdds_shm.xml")
    image_topic = args["image_topic"]
    return [
        Node(
            package=PACKAGE,
            executable="segmentation_node",
            name=args["node_name"],
            namespace=args["namespace"],
            parameters=[args["params_file"] or os.path.join(share, "config", "segmentation.yaml"), overrides],
            remappings=[
                ("image", image_topic),
                ("image/compressed", image_topic + "/compressed"),
                ("camera_info", args["camera_info_topic"]),
            ],
            arguments=_start_arguments(args["managed"], args["autostart"]),
            additional_env=environment,
            output="screen",
            emulate_tty=True,
        )
    ]


def generate_launch_description() -> LaunchDescription:
    return LaunchDescription(
        [DeclareLaunchArgument(name, default_value=default, description=description)
         for name, (default, description) in LAUNCH_ARGUMENTS.items()]
        + [OpaqueFunction(function=_segmentation_node)]
    )
