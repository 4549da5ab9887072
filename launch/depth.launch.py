"""Start dpt_ros's depth_node with config/depth.yaml (or another params file) for one camera, or for several
cameras batched in one network (`cameras`).

    ros2 launch dpt_ros depth.launch.py namespace:=camera image_topic:=image_rect \
        model:=dpt_hybrid_kitti weights:=/data/models/dpt_hybrid_kitti.pt

    ros2 launch dpt_ros depth.launch.py namespace:=robot cameras:="[front, left]"   # one batched node

    ros2 launch dpt_ros depth.launch.py managed:=true   # lifecycle node (autostart:=false: stays unconfigured)

Launch arguments left empty keep the params file's value. Topics are resolved in `namespace`, so
with namespace:=camera the node reads /camera/image_rect and /camera/camera_info and publishes
/camera/depth, /camera/points, ... Only the public launch / launch_ros API is used.
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from launch import LaunchContext, LaunchDescription

PACKAGE = "dpt_ros"

# name -> (default, description)
LAUNCH_ARGUMENTS = {
    "namespace": ("camera", "camera namespace the node's topics live in"),
    "image_topic": ("image_raw", "camera image topic (relative to namespace); '/compressed' is appended for "
                                 "image_transport compressed"),
    "camera_info_topic": ("camera_info", "CameraInfo topic (relative to namespace)"),
    "params_file": ("", "parameters YAML; empty = the installed config/depth.yaml"),
    "model": ("", "DPT preset, e.g. dpt_hybrid_kitti; empty = the params file's"),
    "weights": ("", "weights file; empty = the params file's"),
    "image_transport": ("", "raw or compressed; empty = the params file's"),
    "cameras": ("", "camera names for one batched node, e.g. [front, left]: topics <namespace>/<camera>/image, ... "
                    "(image_topic and camera_info_topic then do not apply); empty = the params file's"),
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


def _depth_node(context: LaunchContext) -> list[Node]:
    share = get_package_share_directory(PACKAGE)
    args = {name: LaunchConfiguration(name).perform(context) for name in LAUNCH_ARGUMENTS}
    overrides = {}
    if args["model"]:
        overrides["model"] = args["model"]
    if args["weights"]:
        overrides["weights"] = args["weights"]
    if args["image_transport"]:
        overrides["image_transport"] = args["image_transport"]
    if args["cameras"]:  # "[front, left]" or "front,left" -> a string array (ROS types it by its elements)
        overrides["cameras"] = [name.strip(" '\"") for name in args["cameras"].strip("[] ").split(",")]
    environment = {}
    if args["use_shm_profile"].lower() == "true" and "FASTDDS_DEFAULT_PROFILES_FILE" not in os.environ:
        environment["FASTDDS_DEFAULT_PROFILES_FILE"] = os.path.join(share, "config", "fastdds_shm.xml")
    image_topic = args["image_topic"]
    return [
        Node(
            package=PACKAGE,
            executable="depth_node",
            name="depth_node",
            namespace=args["namespace"],
            parameters=[args["params_file"] or os.path.join(share, "config", "depth.yaml"), overrides],
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
        + [OpaqueFunction(function=_depth_node)]
    )
