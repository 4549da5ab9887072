"""One camera frame through the model to everything a depth node publishes, without ROS.

    Frame (RGB + intrinsics) -> engine.infer_batch -> depth stage -> [resize] -> cloud, colour map -> FrameOutputs

Same-sized frames of several cameras share one forward pass (`process_batch`); everything after the
network runs per frame.

The depth stage decides what the numbers mean. `ModelOutputDepth` trusts the model: metric presets
give metres, the others relative inverse depth. A LiDAR-aligned stage (relative -> metres from
projected LiDAR points) is another `DepthStage`; extra per-pixel cloud fields (e.g. segmentation
labels) come from `ChannelProvider`s. A node only converts `FrameOutputs` to messages.

Prompt presets (Prompt Depth Anything) take a depth prompt into the network itself: a frame that
carries one (`Frame.prompt`) goes to the engine with it (`PromptInferenceBackend`), and the
`PromptedDepth` stage publishes metres only when that prompt was usable.
"""

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Final, Protocol

import cv2
import numpy as np

from dpt_ros.alignment.lidar_depth import NO_SCAN, AlignedDepth, LidarScan
from dpt_ros.geometry.camera import LensDistortion, PinholeIntrinsics, scale_intrinsics
from dpt_ros.geometry.pointcloud import PackedCloud, build_point_cloud
from dpt_ros.model.presets import METRIC_DEPTH, RELATIVE_INVERSE_DEPTH
from dpt_ros.pipeline.colorize import colorize_depth
from dpt_ros.pipeline.stats import StageClock
from dpt_ros.prompt.sources import DepthPrompt

# What a prompt model gives for a frame without a usable prompt: depth normalised to (0, 1) over an
# unknown range (larger = farther), published like relative inverse depth on 'depth/relative'.
RELATIVE_DEPTH: Final = "relative_depth"
DEPTH_KINDS: Final = (METRIC_DEPTH, RELATIVE_INVERSE_DEPTH)
# Point cloud field of the per-pixel semantic class ids (uint8, the ids of semantic/labels).
LABEL_FIELD: Final = "label"

# What the published numbers are, in words, for logs and diagnostics.
DEPTH_UNITS: Final[dict[str, str]] = {
    METRIC_DEPTH: "metres along the optical axis",
    RELATIVE_INVERSE_DEPTH: "relative inverse depth (unitless, larger = nearer; NOT metres)",
    RELATIVE_DEPTH: "relative depth (unitless, 0..1 over an unknown range, larger = farther; NOT metres)",
}


@dataclass(frozen=True)
class LidarFrameInput:
    """What a frame brings for alignment: the image stamp (seconds), the lens the prediction is for (None
    without camera_info), the paired scan (None when there is none) and, then, why there is none."""

    stamp: float
    lens: PinholeIntrinsics | None
    scan: LidarScan | None
    missing_scan_reason: str = NO_SCAN


@dataclass(frozen=True)
class Frame:
    """One input frame. New per-frame inputs (e.g. LiDAR points) are added as fields with defaults.

    rgb: (H, W, 3) uint8. camera: intrinsics at H x W, or None when no valid camera_info is known.
    lidar: the image stamp, lens and paired LiDAR scan, when LiDAR alignment is on.
    labels: (H, W) uint8 semantic class ids of this image (a segmentation network's output), or None;
        they become the cloud's LABEL_FIELD.
    prompt: for prompt presets, the frame's depth prompt (usable or with the reason it is not); None
        for every other preset.
    distortion: the lens distortion of a raw (unrectified) image, undone when back-projecting; None for
        rectified images or lenses without distortion.
    """

    rgb: np.ndarray
    camera: PinholeIntrinsics | None = None
    lidar: LidarFrameInput | None = None
    labels: np.ndarray | None = None
    prompt: DepthPrompt | None = None
    distortion: LensDistortion | None = None


@dataclass(frozen=True)
class DepthEstimate:
    """values: (H, W) float32, NaN where unknown; metres if kind == METRIC_DEPTH, else relative inverse depth
    (RELATIVE_INVERSE_DEPTH) or relative depth (RELATIVE_DEPTH, a prompt model without its prompt).

    alignment: what a LiDAR-aligned depth stage found for this frame (fit, filter state, sparse LiDAR depth at
    the input resolution), None from stages that do not align.
    prompt: the depth prompt a prompt model ran with (or why it ran without one), None for other models.
    """

    values: np.ndarray
    kind: str
    alignment: AlignedDepth | None = None
    prompt: DepthPrompt | None = None

    @property
    def is_metric(self) -> bool:
        return self.kind == METRIC_DEPTH


class InferenceBackend(Protocol):
    """What `DepthPipeline.process` needs of dpt_ros.InferenceEngine: one image -> its prediction."""

    def infer(self, rgb: np.ndarray) -> np.ndarray: ...


class BatchInferenceBackend(InferenceBackend, Protocol):
    """What `DepthPipeline.process_batch` needs too: same-sized images in one forward pass, one
    prediction at the image's size per image."""

    def infer_batch(self, images: Sequence[np.ndarray]) -> list[np.ndarray]: ...


class PromptInferenceBackend(BatchInferenceBackend, Protocol):
    """What frames with prompts need: same-sized images and, per image, an (h, w) metre prompt or None."""

    def infer_batch(
        self, images: Sequence[np.ndarray], prompts: Sequence[np.ndarray | None] | None = None
    ) -> list[np.ndarray]: ...


class DepthStage(Protocol):
    """Turns the network's (H, W) prediction for a frame into a DepthEstimate at the frame's size (with its
    alignment result when the stage aligns); no state of the last frame is kept for callers to read."""

    def __call__(self, prediction: np.ndarray, frame: Frame) -> DepthEstimate: ...


class ChannelProvider(Protocol):
    """Extra per-pixel point cloud fields for a frame: name -> (H, W) array of a PointField dtype."""

    def __call__(self, frame: Frame, depth: DepthEstimate) -> dict[str, np.ndarray]: ...


@dataclass(frozen=True)
class ModelOutputDepth:
    """The model's own output: metres for metric presets (<= 0 or non-finite -> NaN), else relative."""

    output_kind: str

    def __post_init__(self) -> None:
        if self.output_kind not in DEPTH_KINDS:
            raise ValueError(f"a depth stage needs a depth model, not one with output {self.output_kind!r}")

    def __call__(self, prediction: np.ndarray, frame: Frame) -> DepthEstimate:
        values = np.asarray(prediction, dtype=np.float32)
        with np.errstate(invalid="ignore"):
            valid = np.isfinite(values) & ((values > 0) if self.output_kind == METRIC_DEPTH else True)
        return DepthEstimate(np.where(valid, values, np.float32(np.nan)), self.output_kind)


@dataclass(frozen=True)
class OutputOptions:
    """Per-frame output choices (the runtime-changeable part of the node configuration).

    output_scale: depth, cloud and camera model are produced at this fraction of the input size.
    cloud_stride: keep every n-th row and column in the cloud. max_range: metres; deeper -> NaN.
    colored_range: (low, high) of the colour map in output units, or None to stretch per frame.
    cloud_dropped_labels: class ids whose points become NaN in the cloud (needs Frame.labels).
    """

    output_scale: float = 1.0
    cloud_stride: int = 1
    max_range: float = float("inf")
    cloud_rgb: bool = True
    colored_range: tuple[float, float] | None = None
    cloud_dropped_labels: tuple[int, ...] = ()


@dataclass
class FrameOutputs:
    """Everything published for one frame, at output size (w, h) = depth.values.shape[::-1].

    camera is the intrinsics at the output size (None without camera_info); cloud is None unless
    requested, the depth is metric and the camera is known; colored is (h, w, 3) uint8 BGR or None.
    timings_ms holds each stage's wall time. alignment is the depth stage's LiDAR alignment of this frame
    (None without LiDAR alignment).
    """

    depth: DepthEstimate
    camera: PinholeIntrinsics | None
    cloud: PackedCloud | None = None
    colored: np.ndarray | None = None
    timings_ms: dict[str, float] = field(default_factory=dict)

    @property
    def alignment(self) -> AlignedDepth | None:
        return self.depth.alignment

    @property
    def prompt(self) -> DepthPrompt | None:
        return self.depth.prompt


class DepthPipeline:
    """Runs frames through an inference backend, a depth stage and the output builders."""

    def __init__(
        self,
        engine: InferenceBackend | BatchInferenceBackend | PromptInferenceBackend,
        depth_stage: DepthStage,
        channel_providers: Sequence[ChannelProvider] = (),
    ) -> None:
        self.engine = engine
        self.depth_stage = depth_stage
        self.channel_providers = tuple(channel_providers)

    def process(
        self, frame: Frame, options: OutputOptions, *, want_cloud: bool = True, want_colored: bool = False
    ) -> FrameOutputs:
        """Run one frame; builds the cloud / colour map only when wanted (nobody subscribed -> no cost)."""
        clock = StageClock()
        with clock("inference"):
            prediction = self.engine.infer(frame.rgb) if frame.prompt is None else self._infer([frame])[0]
        return self._outputs(frame, prediction, options, want_cloud, want_colored, clock.timings_ms)

    def process_batch(
        self,
        frames: Sequence[Frame],
        options: OutputOptions,
        *,
        want_cloud: Sequence[bool],
        want_colored: Sequence[bool],
    ) -> list[FrameOutputs]:
        """Same-sized frames (e.g. several cameras) through ONE forward pass, then each frame's depth stage
        and outputs on its own; one FrameOutputs per frame, in order. want_* are per frame.

        Every frame's "inference" time is the whole batch's: each waited that long for its prediction.
        Needs a BatchInferenceBackend.
        """
        if not len(frames) == len(want_cloud) == len(want_colored):
            raise ValueError(f"{len(frames)} frames need as many want_cloud / want_colored flags")
        clock = StageClock()
        with clock("inference"):
            predictions = self._infer(frames)
        return [
            self._outputs(frame, prediction, options, cloud, colored, dict(clock.timings_ms))
            for frame, prediction, cloud, colored in zip(frames, predictions, want_cloud, want_colored)
        ]

    def _infer(self, frames: Sequence[Frame]) -> list[np.ndarray]:
        """One forward pass; frames with a prompt input hand their prompt (or None when refused) to the engine."""
        images = [frame.rgb for frame in frames]
        if all(frame.prompt is None for frame in frames):
            return self.engine.infer_batch(images)
        prompts = [None if frame.prompt is None else frame.prompt.depth for frame in frames]
        return self.engine.infer_batch(images, prompts=prompts)

    def _outputs(
        self,
        frame: Frame,
        prediction: np.ndarray,
        options: OutputOptions,
        want_cloud: bool,
        want_colored: bool,
        timings: dict[str, float],
    ) -> FrameOutputs:
        """One frame's depth stage, channels, resize, cloud and colour map from its network prediction."""
        clock = StageClock(timings)
        with clock("depth_stage"):
            depth = self.depth_stage(prediction, frame)
        channels: dict[str, np.ndarray] = {}
        with clock("channels"):
            for provider in self.channel_providers:
                channels.update(provider(frame, depth))
            if frame.labels is not None:
                channels[LABEL_FIELD] = frame.labels
        with clock("resize"):
            depth, rgb, channels, camera = _rescale(depth, frame, channels, options.output_scale)
        outputs = FrameOutputs(depth=depth, camera=camera, timings_ms=timings)
        if want_cloud and depth.is_metric and camera is not None:
            with clock("cloud"):
                outputs.cloud = build_point_cloud(
                    _without_dropped_labels(depth.values, channels.get(LABEL_FIELD), options.cloud_dropped_labels),
                    camera,
                    stride=options.cloud_stride,
                    max_range=options.max_range,
                    rgb=rgb if options.cloud_rgb else None,
                    channels=channels,
                    distortion=frame.distortion,
                )
        if want_colored:
            with clock("colorize"):
                outputs.colored = colorize_depth(
                    depth.values, options.colored_range, near_is_high=depth.kind == RELATIVE_INVERSE_DEPTH
                )
        return outputs


def _without_dropped_labels(
    depth: np.ndarray, labels: np.ndarray | None, dropped_labels: tuple[int, ...]
) -> np.ndarray:
    """Depth with NaN where the class id is one of `dropped_labels` (those points leave the cloud)."""
    if labels is None or not dropped_labels:
        return depth
    return np.where(np.isin(labels, dropped_labels), np.float32(np.nan), depth)


def output_size(width: int, height: int, scale: float) -> tuple[int, int]:
    """(width, height) of outputs for an input of width x height at `scale` (at least 1 x 1)."""
    return max(1, round(width * scale)), max(1, round(height * scale))


def _rescale(
    depth: DepthEstimate, frame: Frame, channels: dict[str, np.ndarray], scale: float
) -> tuple[DepthEstimate, np.ndarray, dict[str, np.ndarray], PinholeIntrinsics | None]:
    """Nearest-neighbour resize (pixel-centre convention, like the scaled intrinsics): never blends depths."""
    height, width = depth.values.shape
    size = output_size(width, height, scale)
    if size == (width, height):
        return depth, frame.rgb, channels, frame.camera

    def resize(array: np.ndarray) -> np.ndarray:
        return cv2.resize(array, size, interpolation=cv2.INTER_NEAREST_EXACT)

    camera = scale_intrinsics(frame.camera, *size) if frame.camera is not None else None
    return (
        replace(depth, values=resize(depth.values)),
        resize(frame.rgb),
        {name: resize(values) for name, values in channels.items()},
        camera,
    )
