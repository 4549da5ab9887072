"""ROS 2 depth node: camera image in -> depth, point cloud and diagnostics out.

Thin shell around dpt_ros.core.pipeline: callbacks only validate stamps and hand the newest image to
one inference thread (older pending images are dropped and counted, so latency never grows); the
thread decodes, runs the pipeline and converts its outputs to messages. Run with
`ros2 run dpt_ros depth_node --ros-args --params-file config/depth.yaml` or `python -m dpt_ros.ros.depth_node`.
"""

import sys
import threading
import time
import traceback
from dataclasses import dataclass
from typing import Any

import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rclpy.executors import ExternalShutdownException
from rclpy.impl.implementation_singleton import rclpy_implementation  # RCLError's home in Jazzy and Kilted
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2

from dpt_ros.core import input_errors
from dpt_ros.core.camera import PinholeIntrinsics, require_resolution
from dpt_ros.core.depth_setup import build_depth_pipeline
from dpt_ros.core.frame_stats import FrameStats, LogLimiter
from dpt_ros.core.image_codec import depth_to_16uc1_mm, depth_to_32fc1
from dpt_ros.core.input_errors import InputError
from dpt_ros.core.latest_slot import LatestSlot
from dpt_ros.core.lidar_depth import NO_SCAN, LidarFrameInput
from dpt_ros.core.model.checkpoint import WeightsError
from dpt_ros.core.model.presets import Preset, get_preset
from dpt_ros.core.node_config import DepthNodeConfig
from dpt_ros.core.pipeline import DEPTH_UNITS, METRIC_DEPTH, RELATIVE_INVERSE_DEPTH, Frame, FrameOutputs
from dpt_ros.ros import conversions
from dpt_ros.ros.lidar_input import LidarInput, lens_from_camera_info
from dpt_ros.ros.params import declare_config, watch_config

NODE_NAME = "depth_node"
DROPPED = "frames_dropped_newer_arrived"
SKIPPED = "frames_skipped_no_subscribers"
PROCESSED = "frames_processed"
PROCESSING_ERROR = "processing_errors"
COUNTERS = ("frames_received", PROCESSED, DROPPED, SKIPPED, PROCESSING_ERROR) + input_errors.INPUT_ERROR_KINDS
INFERENCE = "inference_latency"  # the network(s), depth stage and cloud channel providers
FRAME_AGE = "output_age"  # image arrival -> outputs published: waiting + decoding + inference + publishing

QOS = {
    "sensor_data": qos_profile_sensor_data,
    "reliable": QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE),
}


class StartupError(RuntimeError):
    """The node cannot start (bad parameters, missing weights); the message says what to do."""


@dataclass(frozen=True)
class PendingImage:
    msg: Image | CompressedImage
    arrival_s: float


class DepthNode(Node):
    """Subscribes to image (+ camera_info); publishes depth, depth/relative, depth/mm, depth/camera_info,
    depth/colored, points and /diagnostics, all with the image's header."""

    def __init__(self, **node_kwargs: Any) -> None:
        super().__init__(NODE_NAME, **node_kwargs)
        try:
            self._config = declare_config(self)
        except ValueError as error:
            raise StartupError(f"invalid parameter: {error}") from None
        try:
            self._pipeline, self._engine = build_depth_pipeline(self._config, on_graph_capture=self._log_graph_capture)
        except WeightsError as error:  # missing, unreadable or wrong file: which one, and where to get it
            raise StartupError(weights_help(str(error), get_preset(self._config.model))) from None
        except ValueError as error:  # e.g. no such CUDA device
            raise StartupError(" ".join(str(error).split())) from None
        if self._config.device == "auto" and self._engine.device.type == "cpu":
            self.get_logger().warning("device 'auto' found no CUDA GPU: running on the CPU, expect slow inference")
        if self._engine.random_weights:
            banner = "!" * 20
            self.get_logger().warning(f"{banner} RANDOM WEIGHTS: outputs are noise, for demos and tests only {banner}")
        watch_config(self, lambda: self._config, self._apply_config)

        self._stats = FrameStats(COUNTERS, latency_names=(INFERENCE, FRAME_AGE))
        self._input_errors_reported = 0  # errors counted at the last diagnostics message
        self._log_limiter = LogLimiter(period_s=10.0)
        self._slot: LatestSlot[PendingImage] = LatestSlot()
        self._camera: tuple[CameraInfo, PinholeIntrinsics] | None = None
        self._last_stamp_ns = -1
        self._last_alignment: dict[str, str] = {}
        self._create_topics()
        self._worker = threading.Thread(target=self._run_worker, name="dpt_ros_inference")
        self._worker.start()
        preset = self._engine.preset
        self.get_logger().info(
            f"{preset.name} on {self._engine.device} ({self._engine.precision}{self._acceleration()}), output: "
            f"{DEPTH_UNITS[preset.output_kind]} on '{self._depth_topic_for(preset.output_kind)}'; "
            f"listening on '{self._image_sub.topic_name}'"
        )

    # --- set-up ---------------------------------------------------------------------------------

    def _acceleration(self) -> str:
        """', compiled, CUDA graphs' as far as they are on, for the start-up line."""
        enabled = [name for name, on in (("compiled", self._config.compile), ("CUDA graphs", self._config.cuda_graphs))
                   if on]  # fmt: skip
        return "".join(f", {name}" for name in enabled)

    def _create_topics(self) -> None:
        config = self._config
        qos_in, qos_out = QOS[config.qos_in], QOS[config.qos_out]
        if config.image_transport == "compressed":
            self._image_sub = self.create_subscription(CompressedImage, "image/compressed", self._on_image, qos_in)
        else:
            self._image_sub = self.create_subscription(Image, "image", self._on_image, qos_in)
        camera_info_sub = self.create_subscription(CameraInfo, "camera_info", self._on_camera_info, qos_in)
        self._camera_info_topic = camera_info_sub.topic_name
        self._depth_pubs = {
            METRIC_DEPTH: self.create_publisher(Image, "depth", qos_out),
            RELATIVE_INVERSE_DEPTH: self.create_publisher(Image, "depth/relative", qos_out),
        }
        self._info_pub = self.create_publisher(CameraInfo, "depth/camera_info", qos_out)
        self._mm_pub = self.create_publisher(Image, "depth/mm", qos_out) if config.publish_mm else None
        self._colored_pub = self.create_publisher(Image, "depth/colored", qos_out) if config.publish_colored else None
        self._cloud_pub = self.create_publisher(PointCloud2, "points", qos_out) if config.publish_cloud else None
        self._diagnostics_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.create_timer(config.diagnostics_period, self._publish_diagnostics)
        self._create_lidar_topics(qos_in, qos_out)

    def _create_lidar_topics(self, qos_in: QoSProfile, qos_out: QoSProfile) -> None:
        """LiDAR input and the alignment outputs, when lidar_alignment is on."""
        config = self._config
        self._lidar: LidarInput | None = None
        self._alignment_pub = self._sparse_pub = None
        if not config.lidar_alignment:
            return
        try:
            self._lidar = LidarInput(
                self, "lidar/points", qos_in, config.lidar_max_dt, config.lidar_extrinsic(), config.lidar_tf_timeout
            )
        except ValueError as error:
            raise StartupError(str(error)) from None
        self._alignment_pub = self.create_publisher(DiagnosticArray, "alignment", qos_out)
        if config.publish_lidar_sparse:
            self._sparse_pub = self.create_publisher(Image, "lidar/depth_sparse", qos_out)
        source = "parameter lidar_to_camera" if self._lidar.extrinsic_source == "parameter" else "TF"
        self.get_logger().info(
            f"LiDAR alignment: scans from '{self._lidar.topic}', LiDAR -> camera transform from {source}; "
            f"metres on '{self._depth_topic_for(METRIC_DEPTH)}' while a fit holds, fits on "
            f"'{self._alignment_pub.topic_name}'"
        )

    def _log_graph_capture(self, shape: tuple[int, ...], captured_before: int) -> None:
        self.get_logger().info(
            f"capturing a CUDA graph for network input {list(shape)} (a new image size or camera batch size; "
            f"{captured_before} captured before)"
        )

    def _apply_config(self, config: DepthNodeConfig) -> None:
        if config.intrinsics_source != self._config.intrinsics_source:
            self._camera = None  # the next camera_info is validated with the other matrix
        self._config = config

    def _depth_topic_for(self, kind: str) -> str:
        return self._depth_pubs[kind].topic_name

    # --- callbacks (executor thread): cheap checks only -----------------------------------------

    def _on_image(self, msg: Image | CompressedImage) -> None:
        now = time.monotonic()
        self._stats.record_arrival(now)
        self._stats.count("frames_received")
        stamp = conversions.stamp_ns(msg.header.stamp)
        if stamp < self._last_stamp_ns:
            self._report(InputError(input_errors.OUT_OF_ORDER_STAMP, "image stamp is older than the previous image's"))
            return
        self._last_stamp_ns = stamp
        if self._config.skip_when_unsubscribed and not self._has_subscribers():
            self._stats.count(SKIPPED)
            return
        if self._slot.put(PendingImage(msg, now)) is not None:
            self._stats.count(DROPPED)

    def _on_camera_info(self, msg: CameraInfo) -> None:
        try:
            self._camera = (msg, conversions.intrinsics_from_camera_info(msg, self._config.intrinsics_source))
        except InputError as error:
            self._report(error)

    def _has_subscribers(self) -> bool:
        publishers = [*self._depth_pubs.values(), self._info_pub, self._mm_pub, self._colored_pub, self._cloud_pub,
                      self._alignment_pub, self._sparse_pub]  # fmt: skip
        return any(pub.get_subscription_count() > 0 for pub in publishers if pub is not None)

    def _wanted(self, publisher: Any) -> bool:
        """Whether an optional output is enabled and (unless skipping is off) someone listens to it."""
        if publisher is None:
            return False
        return not self._config.skip_when_unsubscribed or publisher.get_subscription_count() > 0

    # --- inference thread -----------------------------------------------------------------------

    def _run_worker(self) -> None:
        while (pending := self._slot.take()) is not None:
            try:
                self._process(pending)
            except InputError as error:
                self._report(error)
            except Exception as error:  # a bug or a CUDA error must not kill the node: count, log, go on
                self._stats.count(PROCESSING_ERROR, repr(error))
                if self._log_limiter.allow(PROCESSING_ERROR, time.monotonic()) is not None:
                    self.get_logger().error(f"frame failed: {error!r}\n{traceback.format_exc()}")

    def _process(self, pending: PendingImage) -> None:
        msg = pending.msg
        if isinstance(msg, CompressedImage):
            rgb = conversions.rgb_from_compressed(msg)
        else:
            rgb = conversions.rgb_from_image(msg)
        height, width = rgb.shape[:2]
        camera_info, intrinsics = self._camera if self._camera is not None else (None, None)
        if intrinsics is None and self._log_limiter.allow("no_camera_info", time.monotonic()) is not None:
            self.get_logger().info(
                f"no valid camera_info on '{self._camera_info_topic}' yet: 'points' and 'depth/camera_info' wait for it"
            )
        if intrinsics is not None:
            try:
                require_resolution(intrinsics, width, height)
            except InputError as error:  # depth is still right; only the cloud and camera_info need K
                self._report(error)
                camera_info, intrinsics = None, None
        lidar = self._lidar_frame_input(msg.header, camera_info, width, height) if self._lidar is not None else None
        outputs = self._pipeline.process(
            Frame(rgb, intrinsics, lidar=lidar),
            self._config.output_options(),
            want_cloud=self._wanted(self._cloud_pub),
            want_colored=self._wanted(self._colored_pub),
        )
        self._publish(msg.header, outputs, camera_info)
        if self._lidar is not None:
            self._publish_alignment(msg.header)
        inference_ms = sum(outputs.timings_ms[stage] for stage in ("inference", "depth_stage", "channels"))
        self._stats.record_latency(INFERENCE, inference_ms / 1000.0)
        self._stats.record_latency(FRAME_AGE, time.monotonic() - pending.arrival_s)
        self._stats.count(PROCESSED)

    def _publish(self, header: Any, outputs: FrameOutputs, camera_info: CameraInfo | None) -> None:
        depth = outputs.depth
        self._depth_pubs[depth.kind].publish(conversions.image_msg(header, depth_to_32fc1(depth.values)))
        if depth.is_metric and self._mm_pub is not None:
            self._mm_pub.publish(conversions.image_msg(header, depth_to_16uc1_mm(depth.values)))
        if outputs.colored is not None and self._colored_pub is not None:
            self._colored_pub.publish(conversions.image_msg(header, outputs.colored))
        if camera_info is not None:
            height, width = depth.values.shape
            self._info_pub.publish(conversions.camera_info_at(camera_info, header, width, height))
        if outputs.cloud is not None and self._cloud_pub is not None:
            self._cloud_pub.publish(conversions.point_cloud_msg(header, outputs.cloud))

    def _lidar_frame_input(
        self, header: Any, camera_info: CameraInfo | None, width: int, height: int
    ) -> LidarFrameInput:
        """The image stamp, lens and paired scan for the LiDAR-aligned depth stage."""
        stamp = conversions.stamp_ns(header.stamp) * 1e-9
        if camera_info is None:  # nothing to project with: do not even parse the cloud
            return LidarFrameInput(stamp, None, None, "no usable camera_info: cannot project LiDAR points")
        lens = lens_from_camera_info(camera_info, self._config.intrinsics_source, width, height)
        try:
            scan, missing_reason = self._lidar.scan_for(header)
        except ValueError as error:  # a malformed cloud: count it, align this frame without LiDAR
            self._report(InputError(input_errors.INVALID_POINT_CLOUD, str(error)))
            scan, missing_reason = None, f"invalid point cloud: {error}"
        return LidarFrameInput(stamp, lens, scan, missing_reason or NO_SCAN)

    def _publish_alignment(self, header: Any) -> None:
        """This frame's fit and filter state on 'alignment' (stamped like the image), the sparse depth if wanted."""
        aligned = self._pipeline.depth_stage.last
        values = aligned.diagnostics()
        self._last_alignment = values
        if aligned.is_metric:
            level, message = DiagnosticStatus.OK, f"metric ({values['filter_state']})"
        else:
            level, message = DiagnosticStatus.WARN, f"relative only: {values['filter_reason'] or values['fit_reason']}"
        name = f"dpt_ros: {self.get_fully_qualified_name()} alignment"
        self._alignment_pub.publish(conversions.diagnostic_array(header.stamp, name, "lidar", level, message, values))
        if aligned.sparse_depth is not None and self._wanted(self._sparse_pub):
            self._sparse_pub.publish(conversions.image_msg(header, depth_to_32fc1(aligned.sparse_depth)))

    # --- reporting --------------------------------------------------------------------------------

    def _report(self, error: InputError) -> None:
        """Count a bad input; log it at most once per 10 s per kind."""
        self._stats.count(error.kind, str(error))
        suppressed = self._log_limiter.allow(error.kind, time.monotonic())
        if suppressed is not None:
            more = f" ({suppressed} more since the last report)" if suppressed else ""
            self.get_logger().warning(f"bad input ({error.kind}): {error}{more}")

    def _publish_diagnostics(self) -> None:
        snapshot = self._stats.snapshot(time.monotonic())
        engine, preset = self._engine, self._engine.preset
        values = {
            "model_preset": preset.name,
            "output_kind": preset.output_kind,
            "output_units": DEPTH_UNITS[preset.output_kind],
            "device": str(engine.device),
            "precision": engine.precision,
            "random_weights": str(engine.random_weights).lower(),
            "compile": str(self._config.compile).lower(),
            "cuda_graphs": str(self._config.cuda_graphs).lower(),
            "input_rate_hz": f"{snapshot.input_rate_hz:.2f}",
        }
        for name, (p50, p95) in snapshot.latencies_ms.items():
            values[f"{name}_p50_ms"], values[f"{name}_p95_ms"] = f"{p50:.1f}", f"{p95:.1f}"
        values.update({name: str(count) for name, count in snapshot.counters.items()})
        values["last_error"] = snapshot.last_error
        values.update({f"lidar_{key}": value for key, value in self._last_alignment.items()})
        errors = sum(snapshot.counters[name] for name in input_errors.INPUT_ERROR_KINDS + (PROCESSING_ERROR,))
        new_errors, self._input_errors_reported = errors > self._input_errors_reported, errors
        if engine.random_weights:
            level, message = DiagnosticStatus.WARN, "RANDOM WEIGHTS: outputs are noise"
        elif new_errors:
            level, message = DiagnosticStatus.WARN, snapshot.last_error
        else:
            level, message = DiagnosticStatus.OK, "ok"
        name = f"dpt_ros: {self.get_fully_qualified_name()}"
        stamp = self.get_clock().now().to_msg()
        self._diagnostics_pub.publish(
            conversions.diagnostic_array(stamp, name, str(engine.device), level, message, values)
        )

    def close(self) -> None:
        """Stop the inference thread (finishing the frame in flight) before the node is destroyed."""
        self._slot.close()
        self._worker.join()


def weights_help(error: str, preset: Preset) -> str:
    """The weights error on one line, with where to get the right file when it does not say so already."""
    message = " ".join(error.split())
    if preset.url not in message:
        message += (
            f" Expected {preset.weights_file} from {preset.url} (SHA-256 starts with {preset.sha256_prefix}); "
            "see models/README.md"
        )
    return message


def main(args: list[str] | None = None) -> int:
    """Console script entry point; returns the exit code (0 on Ctrl-C, 1 when start-up fails, 2 for bad ROS args)."""
    try:
        rclpy.init(args=args)
    except rclpy_implementation.RCLError as error:  # e.g. a malformed --ros-args rule: say so, no traceback
        print(f"{NODE_NAME}: cannot start ROS: {error}", file=sys.stderr)
        return 2
    node = None
    try:
        node = DepthNode()
        rclpy.spin(node)
    except StartupError as error:
        rclpy.logging.get_logger(NODE_NAME).fatal(str(error))
        return 1
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if node is not None:
            node.close()
            node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
