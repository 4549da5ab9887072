"""Depth + segmentation for one camera in ONE process on one GPU: one image decode, one preprocessing,
both networks, every output with the image's header; the point cloud gains a `label` field.

    ros2 launch dpt_ros perception.launch.py namespace:=camera model:=dpt_hybrid_kitti

This is segmentation.launch.py with config/perception.yaml (which sets a depth `model`); every
segmentation.launch.py argument works here too. Only the public launch / launch_ros API is used.
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration

from launch import LaunchDescription

PACKAGE = "dpt_ros"


def generate_launch_description() -> LaunchDescription:
    share = get_package_share_directory(PACKAGE)
    return LaunchDescription(
        [
            DeclareLaunchArgument(
                "params_file",
                default_value=os.path.join(share, "config", "perception.yaml"),
                description="parameters YAML with a depth `model` and a `segmentation_model`",
            ),
            DeclareLaunchArgument("node_name", default_value="perception", description="ROS node name"),
            IncludeLaunchDescription(
                PythonLaunchDescriptionSource(os.path.join(share, "launch", "segmentation.launch.py")),
                launch_arguments={
                    "params_file": LaunchConfiguration("params_file"),
                    "node_name": LaunchConfiguration("node_name"),
                }.items(),
            ),
        ]
    )
