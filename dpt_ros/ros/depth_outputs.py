"""The depth output stage of a node shell: depth, depth/relative, depth/mm, depth/camera_info, depth/colored and
points per camera, plus (lidar_alignment) the LiDAR input, 'alignment' and 'lidar/depth_sparse', or (prompt
presets) the prompt input and 'prompt' (dpt_ros.ros.prompt_input).

Used alone by the depth node and after the segmentation stage by the perception node (whose labels then
become the cloud's 'label' field). Same-sized images of several cameras share one forward pass.
"""

import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from sensor_msgs.msg import CameraInfo, Image, PointCloud2

from dpt_ros import errors as input_errors
from dpt_ros.alignment.lidar_depth import NO_SCAN, AlignedDepth
from dpt_ros.app.depth_setup import EngineFactory, build_depth_pipeline
from dpt_ros.errors import InputError
from dpt_ros.geometry.camera import lens_distortion, lens_from_camera_info, require_resolution
from dpt_ros.model.checkpoint import WeightsError
from dpt_ros.model.engine import InferenceEngine
from dpt_ros.model.presets import get_preset
from dpt_ros.pipeline.depth import (
    DEPTH_UNITS,
    METRIC_DEPTH,
    RELATIVE_DEPTH,
    RELATIVE_INVERSE_DEPTH,
    DepthPipeline,
    FrameOutputs,
    LidarFrameInput,
)
from dpt_ros.pipeline.image_codec import depth_to_16uc1_mm, depth_to_32fc1
from dpt_ros.ros import conversions, lidar_input
from dpt_ros.ros.lidar_input import LidarInput
from dpt_ros.ros.node_shell import QOS, CameraIO, NodeShell, PreparedFrame, StartupError, camera_topic, weights_help
from dpt_ros.ros.prompt_input import PromptInputs


@dataclass
class DepthPublishers:
    """One camera's depth outputs; None where an optional output is off."""

    depth: dict[str, Any]  # output kind -> publisher ('depth' for metres, 'depth/relative' for both relative kinds)
    info: Any
    mm: Any
    colored: Any
    cloud: Any

    def all(self) -> list[Any]:
        publishers = (*self.depth.values(), self.info, self.mm, self.colored, self.cloud)
        return list({id(pub): pub for pub in publishers if pub is not None}.values())


class DepthOutputs:
    """Runs the depth pipeline on each frame and publishes its outputs (see the module docstring)."""

    def __init__(self, shell: NodeShell, pipeline: DepthPipeline, engine: InferenceEngine) -> None:
        self._shell = shell
        self.pipeline = pipeline
        self.engine = engine
        config = shell.config
        if config.lidar_alignment and config.lidar_extrinsic() is None and not lidar_input.tf_available():
            raise StartupError(lidar_input.NO_EXTRINSIC)
        self._publishers: dict[str, DepthPublishers] = {}
        self._lidar: LidarInput | None = None
        self._alignment_pub: Any = None
        self._sparse_pub: Any = None
        self._last_alignment: dict[str, str] = {}
        self._prompts: PromptInputs | None = None
        self._timelines: dict[str, int] = {}  # camera -> the timeline number of its last prepared frame

    def engines(self) -> list[Any]:
        return [self.engine]

    # --- topics -----------------------------------------------------------------------------------

    def open(self, cameras: Sequence[CameraIO]) -> None:
        node, config = self._shell.node, self._shell.config
        qos_out = QOS[config.qos_out]
        for camera in cameras:

            def publisher(msg_type: type, topic: str, enabled: bool = True, name: str = camera.name) -> Any:
                return node.create_publisher(msg_type, camera_topic(name, topic), qos_out) if enabled else None

            relative = publisher(Image, "depth/relative")
            self._publishers[camera.name] = DepthPublishers(
                depth={METRIC_DEPTH: publisher(Image, "depth"), RELATIVE_INVERSE_DEPTH: relative, RELATIVE_DEPTH: relative},
                info=publisher(CameraInfo, "depth/camera_info"),
                mm=publisher(Image, "depth/mm", config.publish_mm),
                colored=publisher(Image, "depth/colored", config.publish_colored),
                cloud=publisher(PointCloud2, "points", config.publish_cloud),
            )
        if config.lidar_alignment:
            self._open_lidar(cameras)
        if get_preset(config.model).needs_prompt:
            self._prompts = PromptInputs(self._shell)

    def _open_lidar(self, cameras: Sequence[CameraIO]) -> None:
        """LiDAR input and the alignment outputs (the configuration allows them with one camera only)."""
        node, config = self._shell.node, self._shell.config
        qos_out = QOS[config.qos_out]
        self._lidar = LidarInput(
            node, "lidar/points", QOS[config.qos_in], config.lidar_max_dt, config.lidar_extrinsic(),
            config.lidar_tf_timeout,
        )  # fmt: skip
        self._alignment_pub = node.create_publisher(DiagnosticArray, "alignment", qos_out)
        if config.publish_lidar_sparse:
            self._sparse_pub = node.create_publisher(Image, "lidar/depth_sparse", qos_out)
        source = "parameter lidar_to_camera" if self._lidar.extrinsic_source == lidar_input.PARAMETER else "TF"
        (camera,) = cameras
        self._shell.logger.info(
            f"LiDAR alignment: scans from '{self._lidar.topic}', LiDAR -> camera transform from {source}; "
            f"metres on '{self._publishers[camera.name].depth[METRIC_DEPTH].topic_name}' while a fit holds, fits "
            f"on '{self._alignment_pub.topic_name}'"
        )

    def close(self) -> None:
        node = self._shell.node
        for publishers in self._publishers.values():
            for pub in publishers.all():
                node.destroy_publisher(pub)
        self._publishers = {}
        if self._lidar is not None:
            self._lidar.close()
        for pub in (self._alignment_pub, self._sparse_pub):
            if pub is not None:
                node.destroy_publisher(pub)
        self._lidar = self._alignment_pub = self._sparse_pub = None
        if self._prompts is not None:
            self._prompts.close()
            self._prompts = None

    def has_subscribers(self, camera: CameraIO) -> bool:
        publishers = [*self._publishers[camera.name].all(), self._alignment_pub, self._sparse_pub,
                      self._prompts.publisher if self._prompts is not None else None]  # fmt: skip
        return any(pub.get_subscription_count() > 0 for pub in publishers if pub is not None)

    def wants_cloud(self, camera: CameraIO) -> bool:
        """Whether this camera's point cloud is published for the next frame (the labels stage asks)."""
        return self._shell.wanted(self._publishers[camera.name].cloud)

    # --- inference thread -------------------------------------------------------------------------

    def prepare(self, camera: CameraIO, item: PreparedFrame) -> PreparedFrame:
        """The frame's camera model (from the camera's last valid camera_info) and paired LiDAR input."""
        shell = self._shell
        height, width = item.frame.rgb.shape[:2]
        camera_info, intrinsics = camera.calibration if camera.calibration is not None else (None, None)
        no_camera_info = f"no_camera_info {camera.name}"
        if intrinsics is None and shell.log_limiter.allow(no_camera_info, time.monotonic()) is not None:
            shell.logger.info(
                f"no valid camera_info on '{camera.camera_info_topic}' yet: "
                f"'{self._publishers[camera.name].info.topic_name}' and the point cloud wait for it"
            )
        if intrinsics is not None:
            try:
                require_resolution(intrinsics, width, height)
            except InputError as error:  # depth is still right; only the cloud and camera_info need K
                shell.report(camera, error)
                camera_info, intrinsics = None, None
        distortion = None
        if camera_info is not None:
            try:
                distortion = lens_distortion(camera_info.d, camera_info.distortion_model, shell.config.intrinsics_source)
            except InputError as error:  # depth and camera_info are still right; a cloud would not be
                shell.report(camera, error)
                intrinsics = None
        lidar = prompt = None
        if self._lidar is not None:
            self._follow_timeline(camera, item)
            lidar = self._lidar_frame_input(camera, item.header, camera_info, width, height)
        if self._prompts is not None:
            prompt = self._prompts.prompt_for(camera, item.header, camera_info, width, height)
        frame = replace(item.frame, camera=intrinsics, lidar=lidar, prompt=prompt, distortion=distortion)
        return replace(item, frame=frame, camera_info=camera_info)

    def _follow_timeline(self, camera: CameraIO, item: PreparedFrame) -> None:
        """Tell the scan buffer where the images are: the first frame of a new timeline (time reset, clock
        jump) drops the old timeline's scans; every frame moves the horizon beyond which scans are future.
        (The temporal filter resets itself on the first frame stamped before its last one.)"""
        assert self._lidar is not None
        stamp = conversions.stamp_ns(item.header.stamp) * 1e-9
        if self._timelines.get(camera.name, 0) != item.pending.timeline:
            self._timelines[camera.name] = item.pending.timeline
            self._lidar.image_time_reset(stamp)
        else:
            self._lidar.observe_image(stamp)

    def _lidar_frame_input(
        self, camera: CameraIO, header: Any, camera_info: CameraInfo | None, width: int, height: int
    ) -> LidarFrameInput:
        """The image stamp, lens and paired scan for the LiDAR-aligned depth stage."""
        assert self._lidar is not None
        stamp = conversions.stamp_ns(header.stamp) * 1e-9
        if camera_info is None:  # nothing to project with: do not even parse the cloud
            return LidarFrameInput(stamp, None, None, "no usable camera_info: cannot project LiDAR points")
        lens = lens_from_camera_info(camera_info, self._shell.config.intrinsics_source)
        try:
            scan, missing_reason = self._lidar.scan_for(header)
        except ValueError as error:  # a malformed cloud: count it, align this frame without LiDAR
            self._shell.report(camera, InputError(input_errors.INVALID_POINT_CLOUD, str(error)))
            scan, missing_reason = None, f"invalid point cloud: {error}"
        return LidarFrameInput(stamp, lens, scan, missing_reason or NO_SCAN)

    def process(self, cameras: list[CameraIO], items: list[PreparedFrame]) -> None:
        """Same-sized frames in one forward pass, then each camera's outputs."""
        shell = self._shell
        publishers = [self._publishers[camera.name] for camera in cameras]
        outputs = self.pipeline.process_batch(
            [item.frame for item in items],
            shell.config.output_options(),
            want_cloud=[shell.wanted(pubs.cloud) for pubs in publishers],
            want_colored=[shell.wanted(pubs.colored) for pubs in publishers],
        )
        for camera, pubs, item, frame_outputs in zip(cameras, publishers, items, outputs):
            with shell.frame_failures(camera, item):
                self._publish(pubs, item, frame_outputs)
                if frame_outputs.alignment is not None:
                    self._publish_alignment(item.header, frame_outputs.alignment)
                if frame_outputs.prompt is not None and self._prompts is not None:
                    self._prompts.publish(item.header, frame_outputs.prompt)
                item.inference_ms += depth_network_ms(frame_outputs)

    def _publish(self, pubs: DepthPublishers, item: PreparedFrame, outputs: FrameOutputs) -> None:
        """The frame's depth outputs, with its image's header."""
        header, depth = item.header, outputs.depth
        pubs.depth[depth.kind].publish(conversions.image_msg(header, depth_to_32fc1(depth.values)))
        if depth.is_metric and pubs.mm is not None:
            pubs.mm.publish(conversions.image_msg(header, depth_to_16uc1_mm(depth.values)))
        if outputs.colored is not None and pubs.colored is not None:
            pubs.colored.publish(conversions.image_msg(header, outputs.colored))
        if item.camera_info is not None:
            height, width = depth.values.shape
            pubs.info.publish(conversions.camera_info_at(item.camera_info, header, width, height))
        if outputs.cloud is not None and pubs.cloud is not None:
            pubs.cloud.publish(conversions.point_cloud_msg(header, outputs.cloud))

    def _publish_alignment(self, header: Any, aligned: AlignedDepth) -> None:
        """This frame's fit and filter state on 'alignment' (stamped like the image), the sparse depth if wanted."""
        values = aligned.diagnostics()
        self._last_alignment = values
        if aligned.is_metric:
            level, message = DiagnosticStatus.OK, f"metric ({values['filter_state']})"
        else:
            level, message = DiagnosticStatus.WARN, f"relative only: {values['filter_reason'] or values['fit_reason']}"
        name = f"dpt_ros: {self._shell.node.get_fully_qualified_name()} alignment"
        status = conversions.diagnostic_status(name, "lidar", level, message, values)
        self._alignment_pub.publish(conversions.diagnostic_array(header.stamp, [status]))
        if aligned.sparse_depth is not None and self._shell.wanted(self._sparse_pub):
            self._sparse_pub.publish(conversions.image_msg(header, depth_to_32fc1(aligned.sparse_depth)))

    # --- reporting --------------------------------------------------------------------------------

    def describe(self) -> str:
        preset = self.engine.preset
        depth_topics = ", ".join(f"'{pubs.depth[preset.output_kind].topic_name}'" for pubs in self._publishers.values())
        return (
            f"{preset.name} on {self.engine.device} ({self.engine.precision}{self._shell.acceleration()}), output: "
            f"{DEPTH_UNITS[preset.output_kind]} on {depth_topics}"
        )

    def diagnostic_values(self) -> dict[str, str]:
        engine, preset = self.engine, self.engine.preset
        return {
            "model_preset": preset.name,
            "output_kind": preset.output_kind,
            "output_units": DEPTH_UNITS[preset.output_kind],
            "device": str(engine.device),
            "precision": engine.precision,
            "random_weights": str(engine.random_weights).lower(),
        }

    def camera_values(self, camera: CameraIO) -> dict[str, str]:
        values = {f"lidar_{key}": value for key, value in self._last_alignment.items()}
        if self._prompts is not None:
            values.update(self._prompts.last_values)
        if self._lidar is not None:
            scans = self._lidar.counts()
            values["lidar_future_scans"] = str(scans.future_scans)
            values["lidar_scan_time_resets"] = str(scans.scan_resets)
        return values


def depth_network_ms(outputs: FrameOutputs) -> float:
    """The network + depth stage + cloud channel ms of a frame's depth outputs (its INFERENCE latency)."""
    return sum(outputs.timings_ms[stage] for stage in ("inference", "depth_stage", "channels"))


def load_depth_pipeline(shell: NodeShell, engine_factory: EngineFactory) -> tuple[DepthPipeline, InferenceEngine]:
    """Load the depth network for shell.config; a weights problem becomes a StartupError saying what to do."""
    config = shell.config
    try:
        return build_depth_pipeline(config, shell.log_graph_capture, engine_factory)
    except WeightsError as error:  # missing, unreadable or wrong file: which one, and where to get it
        raise StartupError(weights_help(str(error), get_preset(config.model), config.weights)) from None


def build_depth_outputs(shell: NodeShell, engine_factory: EngineFactory) -> DepthOutputs:
    """The depth node's one stage."""
    return DepthOutputs(shell, *load_depth_pipeline(shell, engine_factory))
