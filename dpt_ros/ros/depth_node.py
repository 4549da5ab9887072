"""ROS 2 depth node: camera image(s) in -> depth, point cloud and diagnostics out.

Thin shell around dpt_ros.pipeline.depth and dpt_ros.pipeline.batching: callbacks only validate stamps
and hand each camera's newest image to one inference thread (older pending images of that camera are
dropped and counted, so latency never grows); the thread decodes, runs same-sized images of all cameras
in one forward pass and converts each camera's outputs to messages. One camera (`cameras: []`) is the
same path with a single unnamed camera. Run with
`ros2 run dpt_ros depth_node --ros-args --params-file config/depth.yaml` or `python -m dpt_ros.ros.depth_node`.
"""

import sys
import threading
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rclpy.executors import ExternalShutdownException
from rclpy.impl.implementation_singleton import rclpy_implementation  # RCLError's home in Jazzy and Kilted
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2

from dpt_ros import errors as input_errors
from dpt_ros.alignment.lidar_depth import NO_SCAN
from dpt_ros.app.depth_setup import build_depth_pipeline
from dpt_ros.app.node_config import DepthNodeConfig
from dpt_ros.errors import InputError
from dpt_ros.geometry.camera import PinholeIntrinsics, require_resolution
from dpt_ros.model.checkpoint import WeightsError
from dpt_ros.model.presets import Preset, get_preset
from dpt_ros.pipeline.batching import LatestPerCamera, group_by_image_size
from dpt_ros.pipeline.depth import (
    DEPTH_UNITS,
    METRIC_DEPTH,
    RELATIVE_INVERSE_DEPTH,
    Frame,
    FrameOutputs,
    LidarFrameInput,
)
from dpt_ros.pipeline.image_codec import depth_to_16uc1_mm, depth_to_32fc1
from dpt_ros.pipeline.stats import FrameStats, LogLimiter
from dpt_ros.ros import conversions
from dpt_ros.ros.lidar_input import LidarInput, lens_from_camera_info
from dpt_ros.ros.params import declare_config, watch_config

NODE_NAME = "depth_node"
DROPPED = "frames_dropped_newer_arrived"
SKIPPED = "frames_skipped_no_subscribers"
PROCESSED = "frames_processed"
PROCESSING_ERROR = "processing_errors"
BATCHED = "frames_batched_with_other_cameras"  # shared their forward pass with another camera's image
COUNTERS = ("frames_received", PROCESSED, DROPPED, SKIPPED, BATCHED, PROCESSING_ERROR) + input_errors.INPUT_ERROR_KINDS
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


@dataclass(frozen=True)
class PreparedFrame:
    """A decoded image ready for the pipeline, with what publishing its outputs needs."""

    frame: Frame
    pending: PendingImage
    camera_info: CameraInfo | None


@dataclass
class CameraIO:
    """One camera's topics and state. name is "" for the single-camera node (topics without a prefix)."""

    name: str
    depth_pubs: dict[str, Any] = field(default_factory=dict)  # output publishers: None / empty when not published
    info_pub: Any = None
    mm_pub: Any = None
    colored_pub: Any = None
    cloud_pub: Any = None
    image_topic: str = ""
    camera_info_topic: str = ""
    stats: FrameStats = field(default_factory=lambda: FrameStats(COUNTERS, latency_names=(INFERENCE, FRAME_AGE)))
    calibration: tuple[CameraInfo, PinholeIntrinsics] | None = None  # the last valid camera_info + intrinsics
    last_stamp_ns: int = -1
    last_batch_size: int = 0
    errors_reported: int = 0  # input + processing errors counted at the last diagnostics message

    @property
    def log_prefix(self) -> str:
        return f"camera '{self.name}': " if self.name else ""


def camera_topic(camera: str, topic: str) -> str:
    """A camera's topic: '<camera>/<topic>', or just '<topic>' for the single unnamed camera."""
    return f"{camera}/{topic}" if camera else topic


class DepthNode(Node):
    """Subscribes to image (+ camera_info) per camera; publishes depth, depth/relative, depth/mm,
    depth/camera_info, depth/colored and points per camera, each with its image's header, and /diagnostics.

    Extended by SegmentationNode (dpt_ros.ros.segmentation_node) through NAME, CONFIG_TYPE and the
    `_build_networks`, `_engines`, `_describe_outputs`, `_create_output_topics`, `_has_subscribers`,
    `_prepare`, `_process_group` (reusing `_publish_depth` and `_record_frame`) and `_diagnostic_values` hooks.
    """

    NAME = NODE_NAME
    CONFIG_TYPE: type[DepthNodeConfig] = DepthNodeConfig

    def __init__(self, **node_kwargs: Any) -> None:
        super().__init__(self.NAME, **node_kwargs)
        try:
            self._config = declare_config(self, self.CONFIG_TYPE)
        except ValueError as error:
            raise StartupError(f"invalid parameter: {error}") from None
        try:
            self._build_networks()
        except ValueError as error:  # e.g. no such CUDA device
            raise StartupError(" ".join(str(error).split())) from None
        if self._config.device == "auto" and self._engines()[0].device.type == "cpu":
            self.get_logger().warning("device 'auto' found no CUDA GPU: running on the CPU, expect slow inference")
        if self._random_weights():
            banner = "!" * 20
            self.get_logger().warning(f"{banner} RANDOM WEIGHTS: outputs are noise, for demos and tests only {banner}")
        for notice in {engine.preset.licence_notice for engine in self._engines()} - {None}:
            self.get_logger().warning(notice)
        watch_config(self, lambda: self._config, self._apply_config)

        self._log_limiter = LogLimiter(period_s=10.0)
        self._last_alignment: dict[str, str] = {}
        names = self._config.cameras or ("",)
        self._slots: LatestPerCamera[PendingImage] = LatestPerCamera(names)
        self._cameras = {name: self._create_camera_topics(name) for name in names}
        self._diagnostics_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.create_timer(self._config.diagnostics_period, self._publish_diagnostics)
        self._create_lidar_topics(QOS[self._config.qos_in], QOS[self._config.qos_out])
        self._worker = threading.Thread(target=self._run_worker, name="dpt_ros_inference")
        self._worker.start()
        image_topics = ", ".join(f"'{camera.image_topic}'" for camera in self._cameras.values())
        self.get_logger().info(f"{self._describe_outputs()}; listening on {image_topics}")

    # --- set-up ---------------------------------------------------------------------------------

    def _build_networks(self) -> None:
        """Load the networks (once, at start-up); a weights problem becomes a StartupError saying what to do."""
        try:
            self._pipeline, self._engine = build_depth_pipeline(self._config, on_graph_capture=self._log_graph_capture)
        except WeightsError as error:  # missing, unreadable or wrong file: which one, and where to get it
            raise StartupError(weights_help(str(error), get_preset(self._config.model))) from None

    def _engines(self) -> list[Any]:
        """The inference engines this node runs (all on one device)."""
        return [self._engine]

    def _random_weights(self) -> bool:
        return any(engine.random_weights for engine in self._engines())

    def _describe_outputs(self) -> str:
        preset = self._engine.preset
        depth_topics = ", ".join(
            f"'{camera.depth_pubs[preset.output_kind].topic_name}'" for camera in self._cameras.values()
        )
        return (
            f"{preset.name} on {self._engine.device} ({self._engine.precision}{self._acceleration()}), output: "
            f"{DEPTH_UNITS[preset.output_kind]} on {depth_topics}"
        )

    def _acceleration(self) -> str:
        """', compiled, CUDA graphs' as far as they are on, for the start-up line."""
        enabled = [name for name, on in (("compiled", self._config.compile), ("CUDA graphs", self._config.cuda_graphs))
                   if on]  # fmt: skip
        return "".join(f", {name}" for name in enabled)

    def _create_camera_topics(self, name: str) -> CameraIO:
        """A camera's subscriptions and publishers, all under '<name>/' (or unprefixed for the single camera)."""
        config = self._config
        qos_in = QOS[config.qos_in]
        camera = CameraIO(name)
        self._create_output_topics(camera)
        image_type, image_topic = (
            (CompressedImage, "image/compressed") if config.image_transport == "compressed" else (Image, "image")
        )
        image_sub = self.create_subscription(
            image_type, camera_topic(name, image_topic), partial(self._on_image, camera), qos_in
        )
        info_sub = self.create_subscription(
            CameraInfo, camera_topic(name, "camera_info"), partial(self._on_camera_info, camera), qos_in
        )
        camera.image_topic, camera.camera_info_topic = image_sub.topic_name, info_sub.topic_name
        return camera

    def _create_output_topics(self, camera: CameraIO) -> None:
        """The camera's depth outputs."""
        config = self._config
        qos_out = QOS[config.qos_out]

        def publisher(msg_type: type, topic: str, enabled: bool = True) -> Any:
            return self.create_publisher(msg_type, camera_topic(camera.name, topic), qos_out) if enabled else None

        camera.depth_pubs = {
            METRIC_DEPTH: publisher(Image, "depth"),
            RELATIVE_INVERSE_DEPTH: publisher(Image, "depth/relative"),
        }
        camera.info_pub = publisher(CameraInfo, "depth/camera_info")
        camera.mm_pub = publisher(Image, "depth/mm", config.publish_mm)
        camera.colored_pub = publisher(Image, "depth/colored", config.publish_colored)
        camera.cloud_pub = publisher(PointCloud2, "points", config.publish_cloud)

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
        (camera,) = self._cameras.values()  # the configuration allows LiDAR alignment with one camera only
        self.get_logger().info(
            f"LiDAR alignment: scans from '{self._lidar.topic}', LiDAR -> camera transform from {source}; "
            f"metres on '{camera.depth_pubs[METRIC_DEPTH].topic_name}' while a fit holds, fits on "
            f"'{self._alignment_pub.topic_name}'"
        )

    def _log_graph_capture(self, shape: tuple[int, ...], captured_before: int) -> None:
        self.get_logger().info(
            f"capturing a CUDA graph for network input {list(shape)} (a new image size or camera batch size; "
            f"{captured_before} captured before)"
        )

    def _apply_config(self, config: DepthNodeConfig) -> None:
        if config.intrinsics_source != self._config.intrinsics_source:
            for camera in self._cameras.values():
                camera.calibration = None  # the next camera_info is validated with the other matrix
        self._config = config

    # --- callbacks (executor thread): cheap checks only -----------------------------------------

    def _on_image(self, camera: CameraIO, msg: Image | CompressedImage) -> None:
        now = time.monotonic()
        camera.stats.record_arrival(now)
        camera.stats.count("frames_received")
        stamp = conversions.stamp_ns(msg.header.stamp)
        if stamp < camera.last_stamp_ns:
            error = InputError(input_errors.OUT_OF_ORDER_STAMP, "image stamp is older than the previous image's")
            self._report(camera, error)
            return
        camera.last_stamp_ns = stamp
        if self._config.skip_when_unsubscribed and not self._has_subscribers(camera):
            camera.stats.count(SKIPPED)
            return
        if self._slots.put(camera.name, PendingImage(msg, now)) is not None:
            camera.stats.count(DROPPED)

    def _on_camera_info(self, camera: CameraIO, msg: CameraInfo) -> None:
        try:
            camera.calibration = (msg, conversions.intrinsics_from_camera_info(msg, self._config.intrinsics_source))
        except InputError as error:
            self._report(camera, error)

    def _has_subscribers(self, camera: CameraIO) -> bool:
        publishers = [*camera.depth_pubs.values(), camera.info_pub, camera.mm_pub, camera.colored_pub,
                      camera.cloud_pub, self._alignment_pub, self._sparse_pub]  # fmt: skip
        return any(pub.get_subscription_count() > 0 for pub in publishers if pub is not None)

    def _wanted(self, publisher: Any) -> bool:
        """Whether an optional output is enabled and (unless skipping is off) someone listens to it."""
        if publisher is None:
            return False
        return not self._config.skip_when_unsubscribed or publisher.get_subscription_count() > 0

    # --- inference thread -----------------------------------------------------------------------

    def _run_worker(self) -> None:
        while (pending := self._slots.take_all(self._config.batch_wait)) is not None:
            prepared: dict[str, PreparedFrame] = {}
            for name, image in pending.items():
                camera = self._cameras[name]
                with self._failures_counted(camera):
                    prepared[name] = self._prepare(camera, image)
            for names in group_by_image_size({name: item.frame for name, item in prepared.items()}):
                self._process_group([self._cameras[name] for name in names], [prepared[name] for name in names])

    @contextmanager
    def _failures_counted(self, *cameras: CameraIO) -> Iterator[None]:
        """Run one step for these cameras; if it fails, count it for them and let the worker go on.

        A bad input is reported for its camera; anything else (a bug, a CUDA error) must not kill the
        node either: counted for every camera it hit, logged with its traceback (rate-limited).
        """
        try:
            yield
        except InputError as error:
            for camera in cameras:
                self._report(camera, error)
        except Exception as error:
            for camera in cameras:
                camera.stats.count(PROCESSING_ERROR, repr(error))
            if self._log_limiter.allow(PROCESSING_ERROR, time.monotonic()) is not None:
                names = ", ".join(repr(camera.name) for camera in cameras if camera.name)
                where = f" (cameras {names})" if names else ""
                self.get_logger().error(f"frame failed{where}: {error!r}\n{traceback.format_exc()}")

    def _prepare(self, camera: CameraIO, pending: PendingImage) -> PreparedFrame:
        """Decode the image, check its camera_info and pair LiDAR input: everything before the network."""
        msg = pending.msg
        rgb = self._decode(msg)
        height, width = rgb.shape[:2]
        camera_info, intrinsics = camera.calibration if camera.calibration is not None else (None, None)
        no_camera_info = f"no_camera_info {camera.name}"
        if intrinsics is None and self._log_limiter.allow(no_camera_info, time.monotonic()) is not None:
            self.get_logger().info(
                f"no valid camera_info on '{camera.camera_info_topic}' yet: "
                f"'{camera.info_pub.topic_name}' and the point cloud wait for it"
            )
        if intrinsics is not None:
            try:
                require_resolution(intrinsics, width, height)
            except InputError as error:  # depth is still right; only the cloud and camera_info need K
                self._report(camera, error)
                camera_info, intrinsics = None, None
        lidar = None
        if self._lidar is not None:
            lidar = self._lidar_frame_input(camera, msg.header, camera_info, width, height)
        return PreparedFrame(Frame(rgb, intrinsics, lidar=lidar), pending, camera_info)

    @staticmethod
    def _decode(msg: Image | CompressedImage) -> np.ndarray:
        """The message's image as (H, W, 3) uint8 RGB; raises InputError."""
        if isinstance(msg, CompressedImage):
            return conversions.rgb_from_compressed(msg)
        return conversions.rgb_from_image(msg)

    def _process_group(self, cameras: list[CameraIO], prepared: list[PreparedFrame]) -> None:
        """Same-sized images of these cameras in one forward pass, then each camera's outputs."""
        with self._failures_counted(*cameras):
            outputs = self._pipeline.process_batch(
                [item.frame for item in prepared],
                self._config.output_options(),
                want_cloud=[self._wanted(camera.cloud_pub) for camera in cameras],
                want_colored=[self._wanted(camera.colored_pub) for camera in cameras],
            )
            for camera, item, frame_outputs in zip(cameras, prepared, outputs):
                with self._failures_counted(camera):
                    self._publish_depth(camera, item, frame_outputs)
                    self._record_frame(camera, item.pending, depth_network_ms(frame_outputs), batch_size=len(cameras))

    def _publish_depth(self, camera: CameraIO, item: PreparedFrame, outputs: FrameOutputs) -> None:
        """The frame's depth outputs (and LiDAR alignment), with its image's header."""
        header = item.pending.msg.header
        self._publish(camera, header, outputs, item.camera_info)
        if self._lidar is not None:
            self._publish_alignment(header)

    def _record_frame(self, camera: CameraIO, pending: PendingImage, inference_ms: float, batch_size: int = 1) -> None:
        """A processed frame in the camera's stats: network ms, output age, how many images shared its batch."""
        camera.stats.record_latency(INFERENCE, inference_ms / 1000.0)
        camera.stats.record_latency(FRAME_AGE, time.monotonic() - pending.arrival_s)
        camera.stats.count(PROCESSED)
        camera.last_batch_size = batch_size
        if batch_size > 1:
            camera.stats.count(BATCHED)

    def _publish(self, camera: CameraIO, header: Any, outputs: FrameOutputs, camera_info: CameraInfo | None) -> None:
        depth = outputs.depth
        camera.depth_pubs[depth.kind].publish(conversions.image_msg(header, depth_to_32fc1(depth.values)))
        if depth.is_metric and camera.mm_pub is not None:
            camera.mm_pub.publish(conversions.image_msg(header, depth_to_16uc1_mm(depth.values)))
        if outputs.colored is not None and camera.colored_pub is not None:
            camera.colored_pub.publish(conversions.image_msg(header, outputs.colored))
        if camera_info is not None:
            height, width = depth.values.shape
            camera.info_pub.publish(conversions.camera_info_at(camera_info, header, width, height))
        if outputs.cloud is not None and camera.cloud_pub is not None:
            camera.cloud_pub.publish(conversions.point_cloud_msg(header, outputs.cloud))

    def _lidar_frame_input(
        self, camera: CameraIO, header: Any, camera_info: CameraInfo | None, width: int, height: int
    ) -> LidarFrameInput:
        """The image stamp, lens and paired scan for the LiDAR-aligned depth stage."""
        stamp = conversions.stamp_ns(header.stamp) * 1e-9
        if camera_info is None:  # nothing to project with: do not even parse the cloud
            return LidarFrameInput(stamp, None, None, "no usable camera_info: cannot project LiDAR points")
        lens = lens_from_camera_info(camera_info, self._config.intrinsics_source, width, height)
        try:
            scan, missing_reason = self._lidar.scan_for(header)
        except ValueError as error:  # a malformed cloud: count it, align this frame without LiDAR
            self._report(camera, InputError(input_errors.INVALID_POINT_CLOUD, str(error)))
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
        status = conversions.diagnostic_status(name, "lidar", level, message, values)
        self._alignment_pub.publish(conversions.diagnostic_array(header.stamp, [status]))
        if aligned.sparse_depth is not None and self._wanted(self._sparse_pub):
            self._sparse_pub.publish(conversions.image_msg(header, depth_to_32fc1(aligned.sparse_depth)))

    # --- reporting --------------------------------------------------------------------------------

    def _report(self, camera: CameraIO, error: InputError) -> None:
        """Count a bad input for its camera; log it at most once per 10 s per kind and camera."""
        camera.stats.count(error.kind, str(error))
        suppressed = self._log_limiter.allow(f"{error.kind} {camera.name}", time.monotonic())
        if suppressed is not None:
            more = f" ({suppressed} more since the last report)" if suppressed else ""
            self.get_logger().warning(f"{camera.log_prefix}bad input ({error.kind}): {error}{more}")

    def _diagnostic_values(self) -> dict[str, str]:
        """What the node runs, for /diagnostics (the same in every camera's status)."""
        engine, preset = self._engine, self._engine.preset
        return {
            "model_preset": preset.name,
            "output_kind": preset.output_kind,
            "output_units": DEPTH_UNITS[preset.output_kind],
            "device": str(engine.device),
            "precision": engine.precision,
            "random_weights": str(engine.random_weights).lower(),
        }

    def _publish_diagnostics(self) -> None:
        """One status per camera: the shared model settings plus that camera's rates, latencies and counters."""
        shared = {
            **self._diagnostic_values(),
            "compile": str(self._config.compile).lower(),
            "cuda_graphs": str(self._config.cuda_graphs).lower(),
        }
        now = time.monotonic()
        statuses = [self._camera_status(camera, shared, now) for camera in self._cameras.values()]
        self._diagnostics_pub.publish(conversions.diagnostic_array(self.get_clock().now().to_msg(), statuses))

    def _camera_status(self, camera: CameraIO, shared: dict[str, str], now: float) -> DiagnosticStatus:
        snapshot = camera.stats.snapshot(now)
        values = {**shared, "input_rate_hz": f"{snapshot.input_rate_hz:.2f}"}
        for name, (p50, p95) in snapshot.latencies_ms.items():
            values[f"{name}_p50_ms"], values[f"{name}_p95_ms"] = f"{p50:.1f}", f"{p95:.1f}"
        values.update({name: str(count) for name, count in snapshot.counters.items()})
        values["last_batch_size"] = str(camera.last_batch_size)
        values["last_error"] = snapshot.last_error
        values.update({f"lidar_{key}": value for key, value in self._last_alignment.items()})
        errors = sum(snapshot.counters[name] for name in input_errors.INPUT_ERROR_KINDS + (PROCESSING_ERROR,))
        new_errors, camera.errors_reported = errors > camera.errors_reported, errors
        if self._random_weights():
            level, message = DiagnosticStatus.WARN, "RANDOM WEIGHTS: outputs are noise"
        elif new_errors:
            level, message = DiagnosticStatus.WARN, snapshot.last_error
        else:
            level, message = DiagnosticStatus.OK, "ok"
        name = f"dpt_ros: {self.get_fully_qualified_name()}" + (f" {camera.name}" if camera.name else "")
        return conversions.diagnostic_status(name, str(self._engines()[0].device), level, message, values)

    def close(self) -> None:
        """Stop the inference thread (finishing the frames in flight) before the node is destroyed."""
        self._slots.close()
        self._worker.join()


def depth_network_ms(outputs: FrameOutputs) -> float:
    """The network + depth stage + cloud channel ms of a frame's depth outputs (its INFERENCE latency)."""
    return sum(outputs.timings_ms[stage] for stage in ("inference", "depth_stage", "channels"))


def weights_help(error: str, preset: Preset) -> str:
    """The weights error on one line, with where to get the right file when it does not say so already."""
    message = " ".join(error.split())
    if preset.url not in message:
        message += (
            f" Expected {preset.weights_file} from {preset.url}"
            + (f" (SHA-256 starts with {preset.sha256_prefix})" if preset.sha256_prefix else "")
            + "; see models/README.md"
        )
    return message


def main(args: list[str] | None = None, node_type: type[DepthNode] = DepthNode) -> int:
    """Console script entry point; returns the exit code (0 on Ctrl-C, 1 when start-up fails, 2 for bad ROS args)."""
    try:
        rclpy.init(args=args)
    except rclpy_implementation.RCLError as error:  # e.g. a malformed --ros-args rule: say so, no traceback
        print(f"{node_type.NAME}: cannot start ROS: {error}", file=sys.stderr)
        return 2
    node = None
    try:
        node = node_type()
        rclpy.spin(node)
    except StartupError as error:
        rclpy.logging.get_logger(node_type.NAME).fatal(str(error))
        return 1
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except Exception:
        # Ctrl-C shuts the context down underneath the executor; whatever rclpy raises from the wait set
        # or take_message then belongs to that normal shutdown. Anything else is a real failure.
        if rclpy.ok():
            raise
    finally:
        if node is not None:
            node.close()
            node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
