"""The depth node's configuration: one typed dataclass that is also the parameter table.

Every field is a ROS parameter of the same name. Its default, type, description, allowed range or
choices, and whether it may change at runtime live in the field definition (`_param`); the ROS shell
declares parameters from `parameter_specs()` and builds the dataclass back from their values, so no
second mapping exists to drift. Validation is `__post_init__`: the same checks run for YAML files,
launch overrides and runtime `ros2 param set`, and a rejection carries the reason.
"""

import json
import math
import re
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields, replace
from typing import Any

import numpy as np

from dpt_ros.alignment.fit import AlignmentConfig
from dpt_ros.alignment.lidar_depth import LidarAlignmentSettings
from dpt_ros.alignment.temporal_filter import TemporalFilterConfig
from dpt_ros.geometry.transforms import transform_from_parameter
from dpt_ros.model.presets import METRIC_DEPTH, RELATIVE_INVERSE_DEPTH
from dpt_ros.pipeline.depth import OutputOptions
from dpt_ros.pipeline.image_codec import DEFAULT_MAX_IMAGE_PIXELS
from dpt_ros.prompt.sources import PromptSettings

DEVICE_PATTERN = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")
INPUT_SIZE_MULTIPLE = 32  # DPT's; each preset's own is its architecture's stride (14 for Depth Anything V2)
MAX_CAMERAS = 8  # one forward pass holds at most this many images: bounds device memory per batch
# A relative ROS name (slash-separated tokens): the camera's topics live under it in the node's namespace.
CAMERA_NAME_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(/[A-Za-z_][A-Za-z0-9_]*)*$")


@dataclass(frozen=True)
class ParameterSpec:
    """How one configuration field is exposed as a ROS parameter."""

    name: str
    default: Any
    description: str
    read_only: bool
    choices: tuple[str, ...] = ()
    low: float | None = None
    high: float | None = None
    lengths: tuple[int, ...] = ()  # accepted lengths of a variable-length array; () = the default's length
    item_type: type | None = None  # element type of an array parameter (None for scalars)


def _param(
    default: Any,
    description: str,
    *,
    runtime: bool = False,
    choices: tuple[str, ...] = (),
    low: float | None = None,
    high: float | None = None,
    lengths: tuple[int, ...] = (),
    item_type: type | None = None,
) -> Any:
    """A config field with its parameter metadata; item_type is needed only for an array whose default is empty."""
    if isinstance(default, tuple) and default:
        item_type = type(default[0])
    metadata = {
        "description": description, "read_only": not runtime, "choices": choices, "low": low, "high": high,
        "lengths": lengths, "item_type": item_type,
    }  # fmt: skip
    return field(default=default, metadata=metadata)


def input_size_multiple(model: str) -> int:
    """Network input sides must be multiples of this for `model` (DPT's 32 where it names no preset)."""
    from dpt_ros.model.presets import PRESETS

    preset = PRESETS.get(model)
    return preset.architecture.stride if preset is not None else INPUT_SIZE_MULTIPLE


def depth_preset_names() -> tuple[str, ...]:
    """Presets whose output is depth (metric or relative); segmentation presets cannot drive this node."""
    from dpt_ros.model.presets import PRESETS

    depth_kinds = (METRIC_DEPTH, RELATIVE_INVERSE_DEPTH)
    return tuple(sorted(name for name, preset in PRESETS.items() if preset.output_kind in depth_kinds))


@dataclass(frozen=True)
class DepthNodeConfig:
    """All depth node settings. Units: metres for ranges, seconds for periods, pixels for sizes."""

    model: str = _param(
        "dpt_hybrid_midas",
        "DPT preset: dpt_hybrid_kitti / dpt_hybrid_nyu give metres on 'depth'; dpt_large_midas / "
        "dpt_hybrid_midas give relative inverse depth on 'depth/relative'; prompt_depth_anything_vits / _vitl give "
        "metres from a depth prompt (prompt_source)",
    )
    weights: str = _param("", "weights file; empty = models/<the preset's weights file> under the working directory")
    allow_random_weights: bool = _param(
        False, "FOR DEMOS AND TESTS ONLY: run with random weights when the weights file is missing (outputs are noise)"
    )
    architecture_overrides: str = _param(
        "",
        "FOR TESTS AND DEMOS ONLY (needs allow_random_weights): JSON object of DPT architecture fields that shrink "
        'the preset, e.g. {"embed_dim": 64, "depth": 4, "num_heads": 2}',
    )
    device: str = _param("auto", "auto (CUDA if available, else CPU, with a warning), cpu, cuda or cuda:N")
    precision: str = _param(
        "fp32", "inference precision; fp16 / bf16 are faster on GPUs but less exact than fp32",
        choices=("fp32", "fp16", "bf16"),
    )
    input_size: tuple[int, int] = _param(
        (0, 0), "network input [width, height], multiples of 32 (DPT) or 14 (Depth Anything V2); [0, 0] = the preset's size"
    )
    compile: bool = _param(
        False, "torch.compile the network at start-up; the first frame of each new input shape then compiles "
        "(slow once), later frames run faster. Best on a GPU",
    )
    cuda_graphs: bool = _param(
        False, "replay the network from CUDA graphs, captured (and logged) once per input shape, i.e. per image size "
        "and camera batch size; needs a CUDA device",
    )
    image_transport: str = _param(
        "raw", "raw: subscribe to sensor_msgs/Image on 'image'; compressed: CompressedImage on 'image/compressed'",
        choices=("raw", "compressed"),
    )
    cameras: tuple[str, ...] = _param(
        (),
        "camera names, e.g. [front, left]: each camera's input is '<name>/image' (or '<name>/image/compressed') and "
        "'<name>/camera_info', its outputs '<name>/depth', '<name>/points', ...; same-sized images of different "
        "cameras share one forward pass. Empty = one camera on 'image', 'camera_info', 'depth', ...",
        item_type=str, lengths=tuple(range(MAX_CAMERAS + 1)),
    )
    batch_wait: float = _param(
        0.01,
        "seconds the inference thread waits, after the first camera's image, for the other cameras' images so they "
        "share a forward pass; it goes on as soon as every camera has one (0 = run whatever is pending)",
        runtime=True, low=0.0, high=1.0,
    )
    qos_in: str = _param(
        "sensor_data", "QoS of the image and camera_info subscriptions (sensor_data = best effort)",
        choices=("sensor_data", "reliable"),
    )
    qos_out: str = _param(
        "reliable", "QoS of the outputs; reliable reaches both reliable and best-effort subscribers",
        choices=("reliable", "sensor_data"),
    )
    publish_cloud: bool = _param(True, "publish the point cloud on 'points' (metric depth only)")
    publish_mm: bool = _param(False, "also publish 16UC1 millimetres on 'depth/mm' (0 = invalid; metric only)")
    publish_colored: bool = _param(False, "also publish a bgr8 colour-mapped depth on 'depth/colored' for people")
    intrinsics_source: str = _param(
        "K", "camera matrix for back-projection: K for raw images, P for rectified ones", runtime=True,
        choices=("K", "P"),
    )
    output_scale: float = _param(
        1.0, "publish depth, cloud and camera_info at this fraction of the image size", runtime=True, low=0.05, high=1.0
    )
    cloud_stride: int = _param(1, "keep every n-th row and column in the point cloud", runtime=True, low=1, high=64)
    max_range: float = _param(
        100.0, "metres; cloud points deeper than this are NaN", runtime=True, low=0.1, high=10000.0
    )
    cloud_rgb: bool = _param(True, "add the packed rgb field to the point cloud", runtime=True)
    colored_range: tuple[float, float] = _param(
        (0.0, 0.0), "[low, high] of the colour map in output units; [0, 0] stretches each frame", runtime=True
    )
    skip_when_unsubscribed: bool = _param(
        True, "skip inference while no output topic has a subscriber", runtime=True
    )
    diagnostics_period: float = _param(1.0, "seconds between /diagnostics messages", low=0.1, high=60.0)
    max_image_pixels: int = _param(
        DEFAULT_MAX_IMAGE_PIXELS, "images with more pixels (width x height; for compressed images read from the "
        "PNG/JPEG header) are refused before decoding and counted as image_too_large; the default is 8K UHD, "
        "7680 x 4320", runtime=True, low=1, high=1_000_000_000,
    )

    # LiDAR alignment (docs/lidar_alignment.md)
    lidar_alignment: bool = _param(
        False,
        "subscribe to sensor_msgs/PointCloud2 on 'lidar/points' and align depth to it: relative presets then publish "
        "metres on 'depth' while a fit holds (else 'depth/relative'), metric presets get diagnostics (and a "
        "scale-only refinement with lidar_refine_metric); per-frame fits go to 'alignment'",
    )
    lidar_to_camera: tuple[float, ...] = _param(
        (0.0,) * 7,
        "transform from the LiDAR frame to the camera optical frame: [x, y, z, qx, qy, qz, qw] or 16 values of a "
        "4x4 row-major matrix; all zeros = look it up in TF (needs tf2_ros) at each image stamp",
        lengths=(7, 16),
    )
    lidar_max_dt: float = _param(
        0.1, "seconds; an image is paired with the LiDAR scan nearest in time within this", low=0.0, high=1.0
    )
    lidar_tf_timeout: float = _param(
        0.05, "seconds to wait for the LiDAR -> camera TF at an image stamp", low=0.0, high=1.0
    )
    lidar_min_range: float = _param(
        0.5, "metres from the LiDAR; closer returns (ego vehicle, mount) are ignored", low=0.0, high=100.0
    )
    lidar_max_range: float = _param(120.0, "metres from the LiDAR; farther returns are ignored", low=1.0, high=10000.0)
    lidar_fit_method: str = _param(
        "robust", "robust: RANSAC + Huber IRLS; lstsq: the plain MiDaS least squares (no outlier rejection)",
        choices=("robust", "lstsq"),
    )
    lidar_inlier_threshold: float = _param(
        0.1, "a LiDAR point is an inlier when |z_lidar / z_predicted - 1| <= this", low=0.001, high=1.0
    )
    lidar_min_points: int = _param(
        20, "fewer valid LiDAR pixels (or inliers) than this in a frame -> no fit for that frame", low=2, high=1000000
    )
    lidar_min_inlier_ratio: float = _param(
        0.3, "fraction of a frame's LiDAR pixels that must agree with its fit", low=0.0, high=1.0
    )
    lidar_time_constant: float = _param(
        0.5, "seconds; time constant of the scale/shift smoothing (0 = use each frame's fit as is)", low=0.0, high=60.0
    )
    lidar_hold_time: float = _param(
        1.0, "seconds the last good fit stays in use through frames without one; then relative depth only",
        low=0.0, high=60.0,
    )
    lidar_gate: float = _param(
        0.15, "a frame's fit that changes depth by more than this (|log ratio|) is rejected as an outlier",
        low=0.01, high=10.0,
    )
    lidar_max_depth: float = _param(200.0, "metres; aligned depth beyond this is NaN", low=0.1, high=10000.0)
    lidar_refine_metric: bool = _param(False, "metric presets: rescale their metres by a scale-only LiDAR fit")
    publish_lidar_sparse: bool = _param(
        False, "also publish the projected LiDAR depth (32FC1 metres, NaN = no point) on 'lidar/depth_sparse', "
        "at the image's resolution",
    )

    # Depth prompts for prompt presets (docs/prompt_depth.md)
    prompt_source: str = _param(
        "lidar",
        "prompt presets (prompt_depth_anything_*) only: where the metric depth prompt comes from. lidar: the scan on "
        "'lidar/points' (lidar_to_camera, lidar_max_dt, lidar_min_range, lidar_max_range apply) projected onto the "
        "prompt grid and densified; depth_image: a depth camera's Image on 'prompt_depth' (16UC1 mm or 32FC1 m) with "
        "its CameraInfo on 'prompt_depth/camera_info', reprojected into the colour camera",
        choices=("lidar", "depth_image"),
    )
    prompt_to_camera: tuple[float, ...] = _param(
        (0.0,) * 7,
        "transform from the depth camera's optical frame to the colour camera's: [x, y, z, qx, qy, qz, qw] or 16 "
        "values of a 4x4 row-major matrix; all zeros = identity when both images carry the same frame_id, else TF "
        "(needs tf2_ros) at each image stamp",
        lengths=(7, 16),
    )
    prompt_max_dt: float = _param(
        0.1, "seconds; an image is paired with the prompt depth image nearest in time within this", low=0.0, high=1.0
    )
    prompt_densify: str = _param(
        "morphological",
        "how empty prompt-grid cells are filled: morphological (nearest surface grows 2 cells, then nearest fill) or "
        "nearest (nearest valid cell)",
        choices=("morphological", "nearest"),
    )
    prompt_long_side: int = _param(
        256, "cells on the longer side of the prompt grid (the released models saw 192 x 256 prompts)",
        low=16, high=2048,
    )
    prompt_min_cells: int = _param(
        64, "fewer valid prompt-grid cells than this -> no metres for that frame (relative depth only)",
        low=1, high=1000000,
    )
    prompt_min_fraction: float = _param(
        0.01, "fraction of the prompt grid that must hold valid depth, else relative depth only", low=0.0, high=1.0
    )
    prompt_min_span: float = _param(
        0.05, "metres; a prompt whose depths span less than this cannot be normalised -> relative depth only",
        low=0.001, high=1000.0,
    )

    def __post_init__(self) -> None:
        for spec in parameter_specs(type(self)):
            _check_spec(spec, getattr(self, spec.name))
        self._check_model()
        if not DEVICE_PATTERN.match(self.device):
            raise ValueError(f"device {self.device!r} is not auto, cpu, cuda or cuda:N")
        if self.cuda_graphs and self.device == "cpu":
            raise ValueError(
                "cuda_graphs needs a CUDA device, but device is 'cpu': set cuda_graphs false or device cuda"
            )
        multiple = input_size_multiple(self.model)
        if self.input_size != (0, 0) and not all(size > 0 and size % multiple == 0 for size in self.input_size):
            raise ValueError(
                f"input_size {list(self.input_size)} must be [0, 0] or positive multiples of {multiple} for {self.model}"
            )
        low, high = self.colored_range
        if (low, high) != (0.0, 0.0) and not (math.isfinite(low) and math.isfinite(high) and low < high):
            raise ValueError(
                f"colored_range {list(self.colored_range)} must be [0, 0] or finite [low, high], low < high"
            )
        for camera in self.cameras:
            if not CAMERA_NAME_PATTERN.match(camera):
                raise ValueError(
                    f"camera name {camera!r} is not a relative ROS name (letters, digits, '_', '/'-separated tokens)"
                )
        if len(set(self.cameras)) != len(self.cameras):
            raise ValueError(f"cameras {list(self.cameras)} names a camera twice")
        if self.cameras and self.lidar_alignment:
            raise ValueError(
                "lidar_alignment works with a single camera only (one LiDAR fit and filter per node): leave cameras "
                "empty and run one node per camera"
            )
        self._check_prompt_preset()
        if self.lidar_min_range > self.lidar_max_range:
            raise ValueError(f"lidar_min_range {self.lidar_min_range} exceeds lidar_max_range {self.lidar_max_range}")
        self.lidar_extrinsic()  # raises for a malformed lidar_to_camera
        self.prompt_extrinsic()  # raises for a malformed prompt_to_camera
        if self.architecture_overrides:
            self.parsed_architecture_overrides()
            if not self.allow_random_weights:
                raise ValueError("architecture_overrides only works with allow_random_weights (no weights fit it)")

    def _check_model(self) -> None:
        """`model` must be a depth preset (a subclass may also allow none)."""
        if self.model not in depth_preset_names():
            raise ValueError(f"model {self.model!r} is not a depth preset; use one of {list(depth_preset_names())}")

    def _check_prompt_preset(self) -> None:
        """A prompt preset takes its metres from the prompt: one camera, no LiDAR alignment on top."""
        from dpt_ros.model.presets import PRESETS

        preset = PRESETS.get(self.model)
        if preset is None or not preset.needs_prompt:
            return
        if self.lidar_alignment:
            raise ValueError(
                f"{self.model} takes the LiDAR (or a depth image) as its prompt: leave lidar_alignment false and "
                "choose the prompt with prompt_source"
            )
        if self.cameras:
            raise ValueError(f"{self.model} works with a single camera only (one prompt per node): leave cameras empty")

    def parsed_architecture_overrides(self) -> dict[str, Any]:
        """architecture_overrides as a dict; lists become tuples (the architecture's field types)."""
        if not self.architecture_overrides:
            return {}
        try:
            overrides = json.loads(self.architecture_overrides)
        except json.JSONDecodeError as error:
            raise ValueError(f"architecture_overrides is not valid JSON: {error}") from None
        if not isinstance(overrides, dict):
            raise ValueError("architecture_overrides must be a JSON object")
        return {key: tuple(value) if isinstance(value, list) else value for key, value in overrides.items()}

    def output_options(self) -> OutputOptions:
        """The per-frame output settings for the pipeline."""
        return OutputOptions(
            output_scale=self.output_scale,
            cloud_stride=self.cloud_stride,
            max_range=self.max_range,
            cloud_rgb=self.cloud_rgb,
            colored_range=None if self.colored_range == (0.0, 0.0) else self.colored_range,
        )

    def lidar_extrinsic(self) -> np.ndarray | None:
        """T_cam_lidar (4x4) from lidar_to_camera, or None when it is all zeros (use TF)."""
        if not any(self.lidar_to_camera):
            return None
        try:
            return transform_from_parameter(self.lidar_to_camera)
        except ValueError as error:
            raise ValueError(f"lidar_to_camera: {error}") from None

    def prompt_extrinsic(self) -> np.ndarray | None:
        """T_color_depth (4x4) from prompt_to_camera, or None when it is all zeros (same frame or TF)."""
        if not any(self.prompt_to_camera):
            return None
        try:
            return transform_from_parameter(self.prompt_to_camera)
        except ValueError as error:
            raise ValueError(f"prompt_to_camera: {error}") from None

    def prompt_settings(self) -> PromptSettings:
        """How prompts are built and refused, from the prompt_* (and, for LiDAR prompts, lidar_*_range) parameters."""
        return PromptSettings(
            long_side=self.prompt_long_side,
            method=self.prompt_densify,
            min_valid_cells=self.prompt_min_cells,
            min_valid_fraction=self.prompt_min_fraction,
            min_span_m=self.prompt_min_span,
            min_range=self.lidar_min_range,
            max_range=self.lidar_max_range,
        )

    def lidar_settings(self) -> LidarAlignmentSettings:
        """The LiDAR aligner's settings from the lidar_* parameters."""
        return LidarAlignmentSettings(
            method=self.lidar_fit_method,
            refine_metric=self.lidar_refine_metric,
            min_range=self.lidar_min_range,
            max_range=self.lidar_max_range,
            max_depth=self.lidar_max_depth,
            alignment=AlignmentConfig(
                min_points=self.lidar_min_points,
                min_inlier_ratio=self.lidar_min_inlier_ratio,
                inlier_threshold=self.lidar_inlier_threshold,
            ),
            temporal=TemporalFilterConfig(
                time_constant=self.lidar_time_constant, hold_time=self.lidar_hold_time, gate=self.lidar_gate
            ),
        )

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> "DepthNodeConfig":
        """Build from parameter values (YAML, ROS parameters); unknown names are an error, lists -> tuples."""
        unknown = set(values) - {spec.name for spec in parameter_specs(cls)}
        if unknown:
            raise ValueError(f"unknown depth node parameters: {sorted(unknown)}")
        return cls(**{name: _coerce(cls, name, value) for name, value in values.items()})

    def with_changes(self, changes: Mapping[str, Any]) -> "DepthNodeConfig":
        """A validated copy with some parameters changed (raises ValueError with the reason)."""
        return replace(self, **{name: _coerce(type(self), name, value) for name, value in changes.items()})


def parameter_specs(config_type: type[DepthNodeConfig] = DepthNodeConfig) -> tuple[ParameterSpec, ...]:
    """One spec per field of `config_type` (DepthNodeConfig or a node config extending it), in order."""
    return tuple(
        ParameterSpec(name=f.name, default=f.default, **f.metadata)
        for f in fields(config_type)
        if f.default is not MISSING
    )


def _coerce(config_type: type[DepthNodeConfig], name: str, value: Any) -> Any:
    """Parameter values arrive as lists (or array.array) and ints for doubles; match the field's default."""
    spec = next(spec for spec in parameter_specs(config_type) if spec.name == name)
    default = spec.default
    if isinstance(default, tuple):
        return tuple(spec.item_type(v) for v in value)
    if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def _check_spec(spec: ParameterSpec, value: Any) -> None:
    lengths = (spec.lengths or (len(spec.default),)) if isinstance(spec.default, tuple) else ()
    if type(value) is not type(spec.default) or (
        isinstance(value, tuple) and (len(value) not in lengths or any(type(v) is not spec.item_type for v in value))
    ):
        raise ValueError(f"{spec.name} must be like {spec.default!r}, got {value!r}")
    if spec.choices and value not in spec.choices:
        raise ValueError(f"{spec.name} {value!r} is not one of {list(spec.choices)}")
    if spec.low is not None and not spec.low <= value <= spec.high:
        raise ValueError(f"{spec.name} {value!r} is outside [{spec.low}, {spec.high}]")
