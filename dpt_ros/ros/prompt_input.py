"""The depth node's prompt side: a depth camera's images (or the LiDAR scan) -> one checked prompt per image.

Callbacks only store raw messages; decoding, reprojection and densification run in the inference thread
when an image is paired (`prompt_for`). Anything missing or malformed yields a refused `DepthPrompt` with
the reason, and the frame is published as relative depth.
"""

from __future__ import annotations

from typing import Any

from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, Image

from dpt_ros.alignment.lidar_depth import LensModel
from dpt_ros.errors import CAMERA_INFO_MISMATCH, InputError
from dpt_ros.pipeline.image_codec import decode_depth_image
from dpt_ros.pipeline.scan_buffer import NearestStampBuffer
from dpt_ros.prompt.sources import DepthPrompt, PromptSettings, prompt_from_depth_image, prompt_from_lidar
from dpt_ros.ros.conversions import intrinsics_from_camera_info, stamp_ns
from dpt_ros.ros.lidar_input import LidarInput, SensorTransform

PROMPT_BUFFER_CAPACITY = 10  # ~0.3 s of a 30 Hz depth camera; pairing within prompt_max_dt never needs more


class DepthImagePrompts:
    """Depth images on `topic` with their CameraInfo on `<topic>/camera_info`, paired to colour images.

    T_color_depth: the static depth optical -> colour optical transform, or None (identity for a shared
    frame_id, else TF). Raises ValueError when TF would be needed but tf2_ros is missing.
    """

    def __init__(
        self, node: Node, topic: str, qos: Any, max_dt: float, T_color_depth: Any, tf_timeout: float
    ) -> None:
        self.max_dt = max_dt
        self._images: NearestStampBuffer[Image] = NearestStampBuffer(PROMPT_BUFFER_CAPACITY)
        self._camera_info: CameraInfo | None = None
        self._extrinsic = SensorTransform(
            node, T_color_depth, tf_timeout, "a depth prompt in another frame needs prompt_to_camera",
            same_frame_is_identity=True,
        )
        self._subscription = node.create_subscription(Image, topic, self._on_image, qos)
        self._info_subscription = node.create_subscription(CameraInfo, f"{topic}/camera_info", self._on_info, qos)
        self.topic = self._subscription.topic_name

    def _on_image(self, msg: Image) -> None:
        self._images.add(stamp_ns(msg.header.stamp) * 1e-9, msg)

    def _on_info(self, msg: CameraInfo) -> None:
        self._camera_info = msg

    def prompt_for(self, image_header: Any, lens: LensModel, settings: PromptSettings) -> DepthPrompt:
        """The prompt from the depth image nearest the colour image in time. Raises InputError for a
        malformed depth image or camera_info (the node counts it; the frame goes out relative)."""
        paired = self._images.nearest(stamp_ns(image_header.stamp) * 1e-9, self.max_dt)
        if paired is None:
            return DepthPrompt(None, None, f"no prompt depth on '{self.topic}' within prompt_max_dt={self.max_dt} s")
        _, msg = paired
        info = self._camera_info
        if info is None:
            return DepthPrompt(None, None, f"no camera_info for the prompt depth on '{self.topic}/camera_info' yet")
        transform, reason = self._extrinsic.lookup(image_header, msg.header.frame_id)
        if transform is None:
            return DepthPrompt(None, None, reason)
        intrinsics = intrinsics_from_camera_info(info, "K")
        if (intrinsics.width, intrinsics.height) != (msg.width, msg.height):
            raise InputError(
                CAMERA_INFO_MISMATCH,
                f"prompt camera_info is {intrinsics.width}x{intrinsics.height} but the depth image is "
                f"{msg.width}x{msg.height}",
            )
        depth = decode_depth_image(msg.data, msg.width, msg.height, msg.encoding, msg.step, bool(msg.is_bigendian))
        return prompt_from_depth_image(depth, intrinsics, transform, lens, settings)


def lidar_prompt_for(lidar: LidarInput, image_header: Any, lens: LensModel, settings: PromptSettings) -> DepthPrompt:
    """The prompt from the LiDAR scan nearest the image; raises ValueError for a malformed cloud."""
    scan, reason = lidar.scan_for(image_header)
    if scan is None:
        return DepthPrompt(None, None, reason)
    return prompt_from_lidar(scan, lens, settings)
