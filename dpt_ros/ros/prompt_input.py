"""The depth node's prompt side (prompt presets): a depth camera's images or the LiDAR scan -> one checked
prompt per image, and the per-frame 'prompt' status.

Callbacks only store raw messages; decoding, reprojection and densification run in the inference thread
when an image is paired (`PromptInputs.prompt_for`). Anything missing or malformed yields a refused
`DepthPrompt` with the reason (a malformed message is also counted), and the frame goes out as relative depth.
"""

from __future__ import annotations

import time
from typing import Any

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, Image

from dpt_ros.errors import CAMERA_INFO_MISMATCH, INVALID_POINT_CLOUD, InputError
from dpt_ros.geometry.camera import PinholeIntrinsics, lens_from_camera_info
from dpt_ros.pipeline.image_codec import decode_depth_image
from dpt_ros.pipeline.scan_buffer import NearestStampBuffer
from dpt_ros.prompt.sources import DepthPrompt, PromptSettings, prompt_from_depth_image, prompt_from_lidar
from dpt_ros.ros import conversions
from dpt_ros.ros.conversions import intrinsics_from_camera_info, stamp_ns
from dpt_ros.ros.lidar_input import LidarInput, SensorTransform
from dpt_ros.ros.node_shell import QOS, CameraIO, NodeShell, StartupError

NO_CAMERA_INFO = "no usable camera_info: cannot place the prompt in the image"

PROMPT_BUFFER_CAPACITY = 10  # ~0.3 s of a 30 Hz depth camera; pairing within prompt_max_dt never needs more


class DepthImagePrompts:
    """Depth images on `topic` with their CameraInfo on `<topic>/camera_info`, paired to colour images.

    T_color_depth: the static depth optical -> colour optical transform, or None: the identity for a shared
    frame_id, else TF at the image stamp (without tf2_ros such a frame gets a refusal with the reason).
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
        self._node = node
        self._subscription = node.create_subscription(Image, topic, self._on_image, qos)
        self._info_subscription = node.create_subscription(CameraInfo, f"{topic}/camera_info", self._on_info, qos)
        self.topic = self._subscription.topic_name

    def close(self) -> None:
        """Unsubscribe (and stop listening to TF); buffered images are dropped."""
        self._node.destroy_subscription(self._subscription)
        self._node.destroy_subscription(self._info_subscription)
        self._extrinsic.close()
        self._images = NearestStampBuffer(PROMPT_BUFFER_CAPACITY)

    def _on_image(self, msg: Image) -> None:
        self._images.add(stamp_ns(msg.header.stamp) * 1e-9, msg)

    def _on_info(self, msg: CameraInfo) -> None:
        self._camera_info = msg

    def prompt_for(self, image_header: Any, lens: PinholeIntrinsics, settings: PromptSettings) -> DepthPrompt:
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


class PromptInputs:
    """The prompt side of the depth output stage: its input topics, each frame's prompt, the 'prompt' status.

    prompt_source "lidar": scans on 'lidar/points' (lidar_* parameters); "depth_image": 'prompt_depth' and
    'prompt_depth/camera_info'. The configuration allows prompt presets with one camera only.
    """

    def __init__(self, shell: NodeShell) -> None:
        node, config = shell.node, shell.config
        self._shell = shell
        qos_in, qos_out = QOS[config.qos_in], QOS[config.qos_out]
        self._lidar: LidarInput | None = None
        self._depth_images: DepthImagePrompts | None = None
        try:
            if config.prompt_source == "lidar":
                self._lidar = LidarInput(
                    node, "lidar/points", qos_in, config.lidar_max_dt, config.lidar_extrinsic(), config.lidar_tf_timeout
                )
                source = f"LiDAR scans on '{self._lidar.topic}'"
            else:
                self._depth_images = DepthImagePrompts(
                    node, "prompt_depth", qos_in, config.prompt_max_dt, config.prompt_extrinsic(),
                    config.lidar_tf_timeout,
                )
                source = f"depth images on '{self._depth_images.topic}' (+ '/camera_info')"
        except ValueError as error:  # no extrinsic and no TF
            raise StartupError(str(error)) from None
        self.publisher = node.create_publisher(DiagnosticArray, "prompt", qos_out)
        self.last_values: dict[str, str] = {}
        shell.logger.info(f"depth prompts from {source}; per-frame prompt state on '{self.publisher.topic_name}'")

    def close(self) -> None:
        for source in (self._lidar, self._depth_images):
            if source is not None:
                source.close()
        self._shell.node.destroy_publisher(self.publisher)

    def prompt_for(
        self, camera: CameraIO, header: Any, camera_info: CameraInfo | None, width: int, height: int
    ) -> DepthPrompt:
        """This image's prompt from the configured source, or a refused one with the reason."""
        if camera_info is None:  # the prompt is placed with the colour camera's model
            return DepthPrompt(None, None, NO_CAMERA_INFO)
        config = self._shell.config
        lens = lens_from_camera_info(camera_info, config.intrinsics_source)
        settings = config.prompt_settings()
        try:
            if self._depth_images is not None:
                return self._depth_images.prompt_for(header, lens, settings)
            assert self._lidar is not None
            scan, reason = self._lidar.scan_for(header)
            return prompt_from_lidar(scan, lens, settings) if scan is not None else DepthPrompt(None, None, reason)
        except InputError as error:  # a malformed depth image or its camera_info
            self._shell.report(camera, error)
            return DepthPrompt(None, None, f"invalid prompt depth: {error}")
        except ValueError as error:  # a malformed cloud
            self._shell.report(camera, InputError(INVALID_POINT_CLOUD, str(error)))
            return DepthPrompt(None, None, f"invalid point cloud: {error}")

    def publish(self, header: Any, prompt: DepthPrompt) -> None:
        """This frame's prompt state on 'prompt', stamped like the image."""
        values = prompt.diagnostics()
        self.last_values = values
        if prompt.usable:
            level, message = DiagnosticStatus.OK, "metric (prompt used)"
        else:
            level, message = DiagnosticStatus.WARN, f"relative only: {prompt.reason}"
            if self._shell.log_limiter.allow("prompt refused", time.monotonic()) is not None:
                self._shell.logger.info(f"no metres this frame: {prompt.reason}")
        name = f"dpt_ros: {self._shell.node.get_fully_qualified_name()} prompt"
        status = conversions.diagnostic_status(name, self._shell.config.prompt_source, level, message, values)
        self.publisher.publish(conversions.diagnostic_array(header.stamp, [status]))
