"""The shell every dpt_ros node shares, composed with the output stages that make it a depth, segmentation
or perception node.

    image callback (executor thread): stamp check, skip when unsubscribed -> LatestPerCamera slot
    inference thread: decode -> each stage's prepare -> same-sized images grouped -> each stage's process
                      (which publishes) -> the camera's stats; a timer publishes /diagnostics

The shell owns the parameters, the camera subscriptions, decoding, the newest-only hand-over, counting,
logging and diagnostics. An `OutputStage` owns its networks, its publishers and what it does with a frame.
Stages run in order on each frame, and a stage may add to the frame for the stages after it (the
segmentation stage adds the labels the depth stage puts in its cloud).

The shell's life follows the managed-node states (dpt_ros.ros.managed): `configure` builds the stages
(loads the networks), `activate` creates the topics and starts the inference thread, `deactivate` stops
both, `cleanup` releases the networks. A plain node runs configure + activate in its constructor.
"""

import gc
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Protocol

import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rclpy.clock import JumpThreshold, TimeJump
from rclpy.duration import Duration
from rclpy.executors import ExternalShutdownException
from rclpy.impl.implementation_singleton import rclpy_implementation  # RCLError's home in Jazzy and Kilted
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, CompressedImage, Image

from dpt_ros import errors as input_errors
from dpt_ros.app.depth_setup import EngineFactory
from dpt_ros.app.node_config import DepthNodeConfig
from dpt_ros.errors import InputError
from dpt_ros.geometry.camera import PinholeIntrinsics
from dpt_ros.model.checkpoint import missing_weights_message
from dpt_ros.model.presets import Preset, resolve_weights_path
from dpt_ros.pipeline.batching import LatestPerCamera, group_by_image_size
from dpt_ros.pipeline.depth import Frame
from dpt_ros.pipeline.stats import FrameStats, LogLimiter
from dpt_ros.pipeline.timeline import TIME_RESET_TOLERANCE_NS, StampOrder, Timeline, describe_reset
from dpt_ros.ros import conversions
from dpt_ros.ros.params import declare_config, watch_config

DROPPED = "frames_dropped_newer_arrived"
SKIPPED = "frames_skipped_no_subscribers"
PROCESSED = "frames_processed"
PROCESSING_ERROR = "processing_errors"
BATCHED = "frames_batched_with_other_cameras"  # shared their forward pass with another camera's image
TIME_RESETS = "time_resets"  # image stamps jumped back by more than the tolerance: a new timeline (bag loop, sim reset)
CLOCK_JUMPS = "clock_jumps_back"  # the ROS clock (use_sim_time: /clock) jumped back
COUNTERS = ("frames_received", PROCESSED, DROPPED, SKIPPED, BATCHED, PROCESSING_ERROR, TIME_RESETS,
            CLOCK_JUMPS) + input_errors.INPUT_ERROR_KINDS  # fmt: skip
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
    timeline: int = 0  # the camera's timeline number when the image arrived (CameraIO.timeline_number)


@dataclass
class PreparedFrame:
    """A decoded image on its way through the stages, with what publishing its outputs needs.

    Stages may replace `frame` for the stages after them (e.g. add labels) and add their network time to
    `inference_ms`; `failed` is set once the frame's failure has been counted (it is then not recorded).
    """

    frame: Frame
    pending: PendingImage
    camera_info: CameraInfo | None = None
    inference_ms: float = 0.0
    failed: bool = False

    @property
    def header(self) -> Any:
        return self.pending.msg.header


@dataclass
class CameraIO:
    """One camera's input topics and state. name is "" for the single-camera node (topics without a prefix)."""

    name: str
    image_topic: str = ""
    camera_info_topic: str = ""
    subscriptions: list[Any] = field(default_factory=list)
    stats: FrameStats = field(default_factory=lambda: FrameStats(COUNTERS, latency_names=(INFERENCE, FRAME_AGE)))
    calibration: tuple[CameraInfo, PinholeIntrinsics] | None = None  # the last valid camera_info + intrinsics
    timeline: Timeline = field(default_factory=Timeline)  # image stamps: next, reordered or a time reset
    timeline_number: int = 0  # +1 at each time reset or ROS clock jump: stages forget the old timeline's state
    last_batch_size: int = 0
    errors_reported: int = 0  # input + processing errors counted at the last diagnostics message

    @property
    def log_prefix(self) -> str:
        return f"camera '{self.name}': " if self.name else ""


def camera_topic(camera: str, topic: str) -> str:
    """A camera's topic: '<camera>/<topic>', or just '<topic>' for the single unnamed camera."""
    return f"{camera}/{topic}" if camera else topic


class OutputStage(Protocol):
    """What a node does with a frame beyond the shell: its networks, its topics, its processing."""

    def engines(self) -> list[Any]:
        """The inference engines this stage runs (all on the node's one device)."""
        ...

    def open(self, cameras: Sequence[CameraIO]) -> None:
        """Create the stage's publishers (and extra inputs) for these cameras: the node becomes active."""
        ...

    def close(self) -> None:
        """Destroy everything `open` created: no output leaves the stage until the next `open`."""
        ...

    def has_subscribers(self, camera: CameraIO) -> bool:
        """Whether any of the camera's outputs of this stage has a subscriber."""
        ...

    def prepare(self, camera: CameraIO, item: PreparedFrame) -> PreparedFrame:
        """Everything before the network for this stage (camera model, LiDAR pairing); raises InputError."""
        ...

    def process(self, cameras: list[CameraIO], items: list[PreparedFrame]) -> None:
        """Same-sized frames of these cameras: run the network(s) and publish; count per-camera failures
        with `NodeShell.frame_failures`."""
        ...

    def describe(self) -> str:
        """What the stage runs and where its main output goes, for the start-up log line."""
        ...

    def diagnostic_values(self) -> dict[str, str]:
        """What the stage runs, for every camera's /diagnostics status."""
        ...

    def camera_values(self, camera: CameraIO) -> dict[str, str]:
        """Per-camera /diagnostics values of the stage (e.g. the last LiDAR fit)."""
        ...


@dataclass(frozen=True)
class NodeKind:
    """What makes a node a depth, segmentation or perception node: its name, parameter table and stages.

    build_stages(shell, engine_factory) loads the networks for shell.config and returns the stages in the
    order they run on a frame; it raises StartupError (or ValueError) with what to do.
    """

    name: str
    config_type: type[DepthNodeConfig]
    build_stages: Callable[["NodeShell", EngineFactory], list[OutputStage]]


class NodeShell:
    """The shared node machinery, on an rclpy node (plain or managed) it does not own.

    Declares the kind's parameters at construction (so parameter tools work in every state). With
    `frozen_when_configured` (managed nodes) parameters that cannot change at runtime may be changed while
    the node is unconfigured and are refused, with the reason, once it is configured.
    """

    def __init__(
        self, node: Node, kind: NodeKind, engine_factory: EngineFactory, *, frozen_when_configured: bool = False
    ) -> None:
        self.node = node
        self.kind = kind
        self._engine_factory = engine_factory
        try:
            self.config = declare_config(node, kind.config_type, read_only=not frozen_when_configured)
        except ValueError as error:
            raise StartupError(f"invalid parameter: {error}") from None
        watch_config(node, lambda: self.config, self._apply_config, frozen=lambda: bool(self._stages))
        self.log_limiter = LogLimiter(period_s=10.0)
        self._stages: list[OutputStage] = []
        self._cameras: dict[str, CameraIO] = {}
        self._slots: LatestPerCamera[PendingImage] | None = None
        self._worker: threading.Thread | None = None
        self._diagnostics_pub: Any = None
        self._diagnostics_timer: Any = None
        self._clock_jump: Any = None

    @property
    def logger(self) -> Any:
        return self.node.get_logger()

    @property
    def active(self) -> bool:
        return self._worker is not None

    # --- life cycle -------------------------------------------------------------------------------

    def configure(self) -> None:
        """Load the networks and build the stages. Raises StartupError with the reason (nothing is kept then)."""
        if self._stages:
            return
        try:
            stages = self.kind.build_stages(self, self._engine_factory)
        except ValueError as error:  # e.g. no such CUDA device, a class table that does not fit
            raise StartupError(" ".join(str(error).split())) from None
        engines = [engine for stage in stages for engine in stage.engines()]
        if self.config.device == "auto" and engines[0].device.type == "cpu":
            self.logger.warning("device 'auto' found no CUDA GPU: running on the CPU, expect slow inference")
        if any(engine.random_weights for engine in engines):
            banner = "!" * 20
            self.logger.warning(f"{banner} RANDOM WEIGHTS: outputs are noise, for demos and tests only {banner}")
        for notice in {engine.preset.licence_notice for engine in engines} - {None}:
            self.logger.warning(notice)
        self._stages = stages

    def activate(self) -> None:
        """Create the topics, subscribe, and start the inference thread (configure first)."""
        if not self._stages:
            raise RuntimeError("activate needs a configured node")
        if self.active:
            return
        names = self.config.cameras or ("",)
        self._cameras = {name: self._open_camera(name) for name in names}
        self._diagnostics_pub = self.node.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._diagnostics_timer = self.node.create_timer(self.config.diagnostics_period, self.publish_diagnostics)
        # use_sim_time: a /clock reset (simulator restart, bag loop) jumps the ROS clock back. (Switching
        # use_sim_time itself is not such a jump: the image stamps then show a time reset of their own.)
        self._clock_jump = self.node.get_clock().create_jump_callback(
            JumpThreshold(min_forward=None, min_backward=Duration(nanoseconds=-TIME_RESET_TOLERANCE_NS),
                          on_clock_change=False),  # fmt: skip
            post_callback=self._on_clock_jump,
        )
        try:
            for stage in self._stages:
                stage.open(list(self._cameras.values()))
        except ValueError as error:
            self._close_topics()
            raise StartupError(str(error)) from None
        self._slots = LatestPerCamera(names)
        self._worker = threading.Thread(target=self._run_worker, name="dpt_ros_inference")
        self._worker.start()
        image_topics = ", ".join(f"'{camera.image_topic}'" for camera in self._cameras.values())
        self.logger.info(f"{'; '.join(stage.describe() for stage in self._stages)}; listening on {image_topics}")

    def deactivate(self) -> None:
        """Stop the inference thread (finishing the frames in flight), then unsubscribe and stop publishing."""
        if self._slots is not None:
            self._slots.close()
        if self._worker is not None:
            self._worker.join()
        self._worker = self._slots = None
        self._close_topics()

    def cleanup(self) -> None:
        """Deactivate if needed and release the networks and their device memory."""
        self.deactivate()
        on_cuda = any(engine.device.type == "cuda" for stage in self._stages for engine in stage.engines())
        self._stages = []
        gc.collect()  # the engines' tensors go now, not at some later collection
        if on_cuda:
            import torch

            torch.cuda.empty_cache()

    def _open_camera(self, name: str) -> CameraIO:
        """A camera's subscriptions, all under '<name>/' (or unprefixed for the single camera)."""
        config = self.config
        qos_in = QOS[config.qos_in]
        camera = CameraIO(name)
        image_type, image_topic = (
            (CompressedImage, "image/compressed") if config.image_transport == "compressed" else (Image, "image")
        )
        image_sub = self.node.create_subscription(
            image_type, camera_topic(name, image_topic), partial(self._on_image, camera), qos_in
        )
        info_sub = self.node.create_subscription(
            CameraInfo, camera_topic(name, "camera_info"), partial(self._on_camera_info, camera), qos_in
        )
        camera.subscriptions = [image_sub, info_sub]
        camera.image_topic, camera.camera_info_topic = image_sub.topic_name, info_sub.topic_name
        return camera

    def _close_topics(self) -> None:
        for stage in self._stages:
            stage.close()
        for camera in self._cameras.values():
            for subscription in camera.subscriptions:
                self.node.destroy_subscription(subscription)
            camera.subscriptions = []
        if self._clock_jump is not None:
            self._clock_jump.unregister()
        if self._diagnostics_timer is not None:
            self.node.destroy_timer(self._diagnostics_timer)
        if self._diagnostics_pub is not None:
            self.node.destroy_publisher(self._diagnostics_pub)
        self._diagnostics_timer = self._diagnostics_pub = self._clock_jump = None

    def log_graph_capture(self, shape: tuple[int, ...], captured_before: int) -> None:
        self.logger.info(
            f"capturing a CUDA graph for network input {list(shape)} (a new image size or camera batch size; "
            f"{captured_before} captured before)"
        )

    def _apply_config(self, config: DepthNodeConfig) -> None:
        if config.intrinsics_source != self.config.intrinsics_source:
            for camera in self._cameras.values():
                camera.calibration = None  # the next camera_info is validated with the other matrix
        self.config = config

    # --- callbacks (executor thread): cheap checks only -----------------------------------------

    def _on_image(self, camera: CameraIO, msg: Image | CompressedImage) -> None:
        slots = self._slots
        if slots is None:  # a callback already taken when the node deactivated
            return
        now = time.monotonic()
        camera.stats.record_arrival(now)
        camera.stats.count("frames_received")
        stamp = conversions.stamp_ns(msg.header.stamp)
        verdict = camera.timeline.check(stamp)
        if verdict.order is StampOrder.REORDERED:
            error = InputError(
                input_errors.OUT_OF_ORDER_STAMP,
                f"image stamp is up to {TIME_RESET_TOLERANCE_NS / 1e9:g} s older than the previous image's "
                "(reordered in transport); further back would be a time reset",
            )
            self.report(camera, error)
            return
        if verdict.order is StampOrder.RESET:  # a bag loop, a simulator reset: answer the new timeline
            camera.timeline_number += 1
            camera.stats.count(TIME_RESETS)
            self.logger.warning(f"{camera.log_prefix}{describe_reset(verdict.previous_ns, stamp)}")
        if self.config.skip_when_unsubscribed and not any(stage.has_subscribers(camera) for stage in self._stages):
            camera.stats.count(SKIPPED)
            return
        if slots.put(camera.name, PendingImage(msg, now, camera.timeline_number)) is not None:
            camera.stats.count(DROPPED)

    def _on_clock_jump(self, jump: TimeJump) -> None:
        """The ROS clock jumped back: every camera starts a new timeline with its next image."""
        for camera in self._cameras.values():
            camera.timeline.restart()
            camera.timeline_number += 1
            camera.stats.count(CLOCK_JUMPS)
        self.logger.warning(
            f"ROS clock jumped by {jump.delta.nanoseconds / 1e9:.3f} s: image stamps and LiDAR scans start over"
        )

    def _on_camera_info(self, camera: CameraIO, msg: CameraInfo) -> None:
        try:
            camera.calibration = (msg, conversions.intrinsics_from_camera_info(msg, self.config.intrinsics_source))
        except InputError as error:
            self.report(camera, error)

    def wanted(self, publisher: Any) -> bool:
        """Whether an optional output is enabled and (unless skipping is off) someone listens to it."""
        if publisher is None:
            return False
        return not self.config.skip_when_unsubscribed or publisher.get_subscription_count() > 0

    # --- inference thread -----------------------------------------------------------------------

    def _run_worker(self) -> None:
        assert self._slots is not None
        while (pending := self._slots.take_all(self.config.batch_wait)) is not None:
            prepared: dict[str, PreparedFrame] = {}
            for name, image in pending.items():
                camera = self._cameras[name]
                with self.failures_counted(camera):
                    prepared[name] = self._prepare(camera, image)
            for names in group_by_image_size({name: item.frame for name, item in prepared.items()}):
                self._process_group([self._cameras[name] for name in names], [prepared[name] for name in names])

    def _prepare(self, camera: CameraIO, pending: PendingImage) -> PreparedFrame:
        """Decode the image, then each stage's preparation: everything before the networks."""
        msg, max_pixels = pending.msg, self.config.max_image_pixels  # too large: refused before decoding
        if isinstance(msg, CompressedImage):
            rgb = conversions.rgb_from_compressed(msg, max_pixels)
        else:
            rgb = conversions.rgb_from_image(msg, max_pixels)
        item = PreparedFrame(Frame(rgb), pending)
        for stage in self._stages:
            item = stage.prepare(camera, item)
        return item

    def _process_group(self, cameras: list[CameraIO], items: list[PreparedFrame]) -> None:
        """Same-sized images of these cameras through every stage, then each camera's stats."""
        with self.failures_counted(*cameras):
            for stage in self._stages:
                live = [(camera, item) for camera, item in zip(cameras, items) if not item.failed]
                if live:
                    stage.process([camera for camera, _ in live], [item for _, item in live])
            for camera, item in zip(cameras, items):
                if not item.failed:
                    self._record_frame(camera, item, batch_size=len(cameras))

    @contextmanager
    def failures_counted(self, *cameras: CameraIO) -> Iterator[None]:
        """Run one step for these cameras; if it fails, count it for them and let the worker go on.

        A bad input is reported for its camera; anything else (a bug, a CUDA error) must not kill the
        node either: counted for every camera it hit, logged with its traceback (rate-limited).
        """
        try:
            yield
        except InputError as error:
            for camera in cameras:
                self.report(camera, error)
        except Exception as error:
            for camera in cameras:
                camera.stats.count(PROCESSING_ERROR, repr(error))
            if self.log_limiter.allow(PROCESSING_ERROR, time.monotonic()) is not None:
                names = ", ".join(repr(camera.name) for camera in cameras if camera.name)
                where = f" (cameras {names})" if names else ""
                self.logger.error(f"frame failed{where}: {error!r}\n{traceback.format_exc()}")

    @contextmanager
    def frame_failures(self, camera: CameraIO, item: PreparedFrame) -> Iterator[None]:
        """`failures_counted` for one camera's frame; a failed frame is marked so that it is not recorded."""
        failed = True
        with self.failures_counted(camera):
            yield
            failed = False
        item.failed = item.failed or failed

    def _record_frame(self, camera: CameraIO, item: PreparedFrame, batch_size: int) -> None:
        """A processed frame in the camera's stats: network ms, output age, how many images shared its batch."""
        camera.stats.record_latency(INFERENCE, item.inference_ms / 1000.0)
        camera.stats.record_latency(FRAME_AGE, time.monotonic() - item.pending.arrival_s)
        camera.stats.count(PROCESSED)
        camera.last_batch_size = batch_size
        if batch_size > 1:
            camera.stats.count(BATCHED)

    # --- reporting --------------------------------------------------------------------------------

    def report(self, camera: CameraIO, error: InputError) -> None:
        """Count a bad input for its camera; log it at most once per 10 s per kind and camera."""
        camera.stats.count(error.kind, str(error))
        suppressed = self.log_limiter.allow(f"{error.kind} {camera.name}", time.monotonic())
        if suppressed is not None:
            more = f" ({suppressed} more since the last report)" if suppressed else ""
            self.logger.warning(f"{camera.log_prefix}bad input ({error.kind}): {error}{more}")

    def acceleration(self) -> str:
        """', compiled, CUDA graphs' as far as they are on, for the start-up line."""
        enabled = [name for name, on in (("compiled", self.config.compile), ("CUDA graphs", self.config.cuda_graphs))
                   if on]  # fmt: skip
        return "".join(f", {name}" for name in enabled)

    def publish_diagnostics(self) -> None:
        """One status per camera: the stages' model settings plus that camera's rates, latencies and counters."""
        if self._diagnostics_pub is None:
            return
        shared: dict[str, str] = {}
        for stage in self._stages:
            shared.update(stage.diagnostic_values())
        shared.update({"compile": str(self.config.compile).lower(), "cuda_graphs": str(self.config.cuda_graphs).lower()})
        now = time.monotonic()
        statuses = [self._camera_status(camera, shared, now) for camera in self._cameras.values()]
        self._diagnostics_pub.publish(conversions.diagnostic_array(self.node.get_clock().now().to_msg(), statuses))

    def _camera_status(self, camera: CameraIO, shared: dict[str, str], now: float) -> DiagnosticStatus:
        snapshot = camera.stats.snapshot(now)
        values = {**shared, "input_rate_hz": f"{snapshot.input_rate_hz:.2f}"}
        for name, (p50, p95) in snapshot.latencies_ms.items():
            values[f"{name}_p50_ms"], values[f"{name}_p95_ms"] = f"{p50:.1f}", f"{p95:.1f}"
        values.update({name: str(count) for name, count in snapshot.counters.items()})
        values["last_batch_size"] = str(camera.last_batch_size)
        values["last_error"] = snapshot.last_error
        for stage in self._stages:
            values.update(stage.camera_values(camera))
        errors = sum(snapshot.counters[name] for name in input_errors.INPUT_ERROR_KINDS + (PROCESSING_ERROR,))
        new_errors, camera.errors_reported = errors > camera.errors_reported, errors
        engines = [engine for stage in self._stages for engine in stage.engines()]
        if any(engine.random_weights for engine in engines):
            level, message = DiagnosticStatus.WARN, "RANDOM WEIGHTS: outputs are noise"
        elif new_errors:
            level, message = DiagnosticStatus.WARN, snapshot.last_error
        else:
            level, message = DiagnosticStatus.OK, "ok"
        name = f"dpt_ros: {self.node.get_fully_qualified_name()}" + (f" {camera.name}" if camera.name else "")
        return conversions.diagnostic_status(name, str(engines[0].device), level, message, values)


class ShellNode(Node):
    """A plain (unmanaged) node of one kind: configured and active from construction until `close()`.

    engine_factory builds the inference engines (InferenceEngine's signature); tests pass stand-ins.
    """

    KIND: NodeKind

    def __init__(self, engine_factory: EngineFactory | None = None, **node_kwargs: Any) -> None:
        super().__init__(self.KIND.name, **node_kwargs)
        self.shell = NodeShell(self, self.KIND, engine_factory or default_engine_factory())
        self.shell.configure()
        self.shell.activate()

    def close(self) -> None:
        """Stop the inference thread (finishing the frames in flight) before the node is destroyed."""
        self.shell.deactivate()


def default_engine_factory() -> EngineFactory:
    """dpt_ros.model.engine.InferenceEngine (imported here: torch loads only when a node is built)."""
    from dpt_ros.model.engine import InferenceEngine

    return InferenceEngine


def weights_help(error: str, preset: Preset, configured_weights: str) -> str:
    """The weights error on one line, with where to get the right file when it does not say so already."""
    message = " ".join(error.split())
    if preset.url not in message:
        message += " " + missing_weights_message(preset, resolve_weights_path(configured_weights, preset))
    return message


def run_node(make_node: Callable[[], Any], name: str, args: list[str] | None = None) -> int:
    """Init ROS, spin the node (an rclpy node with a `close()`) until Ctrl-C; returns the exit code: 0 on
    Ctrl-C, 1 when start-up fails, 2 for bad ROS args."""
    try:
        rclpy.init(args=args)
    except rclpy_implementation.RCLError as error:  # e.g. a malformed --ros-args rule: say so, no traceback
        print(f"{name}: cannot start ROS: {error}", file=sys.stderr)
        return 2
    node = None
    try:
        node = make_node()
        rclpy.spin(node)
    except StartupError as error:
        rclpy.logging.get_logger(name).fatal(str(error))
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
