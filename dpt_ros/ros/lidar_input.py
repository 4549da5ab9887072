"""The depth node's LiDAR side: subscribe to a PointCloud2, pair scans with images, resolve the extrinsic.

Callbacks only store the raw message (parsing waits until a scan is actually paired with an image, in
the inference thread). The LiDAR -> camera transform comes from the `lidar_to_camera` parameter when it
is set, else from TF (tf2_ros, when importable) looked up at the image stamp with a timeout. Anything
missing yields no scan plus the reason, and the node publishes relative depth only.
"""

from __future__ import annotations

import importlib.util
from typing import Any

import numpy as np
from rclpy.duration import Duration
from rclpy.node import Node
from rclpy.time import Time
from sensor_msgs.msg import PointCloud2

from dpt_ros.alignment.lidar_depth import LidarScan
from dpt_ros.geometry.cloud_fields import xyz_from_cloud_buffer
from dpt_ros.geometry.transforms import transform_from_xyz_quaternion
from dpt_ros.pipeline.scan_buffer import NearestStampBuffer, ScanBufferCounts
from dpt_ros.ros.conversions import stamp_ns

SCAN_BUFFER_CAPACITY = 10  # ~1 s of a 10 Hz LiDAR; pairing within lidar_max_dt never needs more
PARAMETER, TF, SAME_FRAME = "parameter", "tf", "same_frame"
NO_EXTRINSIC = (
    "lidar_alignment needs the LiDAR -> camera transform: set lidar_to_camera (7 or 16 values) "
    "or install tf2_ros (system ROS) and publish the transform on TF"
)


def tf_available() -> bool:
    """Whether tf2_ros can be imported (it is not on PyPI; system ROS installs have it)."""
    return importlib.util.find_spec("tf2_ros") is not None


class SensorTransform:
    """Where a sensor -> camera optical transform comes from: a static parameter or TF at the image stamp.

    T_static: the 4x4 transform, or None to look it up in TF (tf2_ros).
    `same_frame_is_identity`: with no static transform, a sensor sharing the image's frame_id needs no
    lookup (a registered depth image). Raises ValueError(no_extrinsic) when TF is needed but tf2_ros is
    not importable.
    """

    def __init__(
        self, node: Node, T_static: np.ndarray | None, tf_timeout: float, no_extrinsic: str,
        same_frame_is_identity: bool = False,
    ) -> None:
        self._static_transform = T_static
        self._same_frame_is_identity = same_frame_is_identity
        self._tf_timeout = Duration(seconds=tf_timeout)
        if T_static is not None:
            self.source = PARAMETER
        elif tf_available():
            from tf2_ros import Buffer, TransformListener

            self._tf_buffer = Buffer()
            self._tf_listener = TransformListener(self._tf_buffer, node, spin_thread=True)
            self.source = TF
        elif same_frame_is_identity:
            self.source = SAME_FRAME  # shared frame_ids only; another frame gets a reason, not a transform
        else:
            raise ValueError(no_extrinsic)

    def close(self) -> None:
        """Stop listening to TF (when it was used)."""
        if self.source == TF:
            self._tf_listener.unregister()

    def lookup(self, image_header: Any, sensor_frame: str) -> tuple[np.ndarray | None, str]:
        """The 4x4 sensor -> image optical transform at the image stamp, or (None, why not)."""
        if self._static_transform is not None:
            return self._static_transform, ""
        if self._same_frame_is_identity and sensor_frame == image_header.frame_id:
            return np.eye(4), ""
        if self.source != TF:
            return None, (
                f"frame {sensor_frame!r} differs from the image's {image_header.frame_id!r}: set the transform "
                "parameter or install tf2_ros"
            )
        from tf2_ros import TransformException

        try:
            stamped = self._tf_buffer.lookup_transform(
                image_header.frame_id, sensor_frame, Time.from_msg(image_header.stamp), self._tf_timeout
            )
        except TransformException as error:
            return None, f"TF {sensor_frame!r} -> {image_header.frame_id!r} unavailable: {error}"
        translation, rotation = stamped.transform.translation, stamped.transform.rotation
        return (
            transform_from_xyz_quaternion(
                (translation.x, translation.y, translation.z), (rotation.x, rotation.y, rotation.z, rotation.w)
            ),
            "",
        )


class LidarInput:
    """Scans from `topic`, the extrinsic source, and `scan_for(image header)` for the inference thread.

    T_cam_lidar: the static 4x4 LiDAR -> camera optical transform, or None to use TF.
    Raises ValueError when there is no static transform and tf2_ros is not importable.
    """

    def __init__(
        self, node: Node, topic: str, qos: Any, max_dt: float, T_cam_lidar: np.ndarray | None, tf_timeout: float
    ) -> None:
        self.max_dt = max_dt
        self._scans: NearestStampBuffer[PointCloud2] = NearestStampBuffer(SCAN_BUFFER_CAPACITY)
        self._extrinsic = SensorTransform(node, T_cam_lidar, tf_timeout, NO_EXTRINSIC)
        self.extrinsic_source = self._extrinsic.source
        self._node = node
        self._subscription = node.create_subscription(PointCloud2, topic, self._on_cloud, qos)
        self.topic = self._subscription.topic_name

    def close(self) -> None:
        """Unsubscribe (and stop listening to TF); buffered scans are dropped."""
        self._node.destroy_subscription(self._subscription)
        self._extrinsic.close()
        self._scans = NearestStampBuffer(SCAN_BUFFER_CAPACITY)

    def _on_cloud(self, msg: PointCloud2) -> None:
        self._scans.add(stamp_ns(msg.header.stamp) * 1e-9, msg)  # far-future scans are counted and evicted first

    def observe_image(self, stamp: float) -> None:
        """An image continued its timeline at `stamp` seconds: scans far beyond it count as future scans."""
        self._scans.observe_reference(stamp)

    def image_time_reset(self, stamp: float) -> None:
        """The images started a new timeline at `stamp` seconds: scans of the old one never pair again."""
        self._scans.reference_reset(stamp)

    def counts(self) -> ScanBufferCounts:
        return self._scans.counts()

    def scan_for(self, image_header: Any) -> tuple[LidarScan | None, str]:
        """The scan nearest the image in time, in LiDAR coordinates with its extrinsic; or (None, reason).

        Raises ValueError for a malformed cloud (the node counts it as a bad input).
        """
        image_stamp = stamp_ns(image_header.stamp) * 1e-9
        paired = self._scans.nearest(image_stamp, self.max_dt)
        if paired is None:
            return None, f"no LiDAR scan on '{self.topic}' within lidar_max_dt={self.max_dt} s of the image"
        scan_stamp, cloud = paired
        transform, reason = self._extrinsic.lookup(image_header, cloud.header.frame_id)
        if transform is None:
            return None, reason
        points = xyz_from_cloud_buffer(
            cloud.data, cloud.fields, cloud.point_step, cloud.row_step, cloud.width, cloud.height, cloud.is_bigendian
        )
        return LidarScan(points, transform, scan_stamp, self.extrinsic_source), ""

