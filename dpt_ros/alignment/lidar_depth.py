"""Per-frame LiDAR alignment of a depth prediction: project the scan, fit, filter over time, convert.

    prediction + LiDAR scan + camera -> project_into_camera -> rasterize_depth -> fit_scale_shift / fit_scale
                                     -> temporal filter -> metres (to_metric) when the filter is usable, else the relative input

Relative presets give metres only while the filter holds a usable fit (fresh or held); otherwise the
frame stays relative and says so, never fake metres. Metric presets stay metric; with `refine_metric`
a scale-only fit refines them. ROS-free: the node feeds it arrays and publishes what comes out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from dpt_ros.alignment.fit import AlignmentConfig, AlignmentResult, fit_scale, fit_scale_shift, to_metric
from dpt_ros.alignment.temporal_filter import FilteredAlignment, TemporalAlignmentFilter, TemporalFilterConfig
from dpt_ros.geometry.camera import PinholeIntrinsics
from dpt_ros.geometry.lidar_projection import project_into_camera, rasterize_depth
from dpt_ros.model.presets import METRIC_DEPTH, RELATIVE_INVERSE_DEPTH

NO_SCAN = "no LiDAR scan within lidar_max_dt of the image"


@dataclass(frozen=True)
class LidarScan:
    """One LiDAR scan ready for projection.

    points_xyz: (N, 3) float32 metres in the LiDAR frame. T_cam_lidar: 4x4 LiDAR -> camera optical frame.
    stamp: seconds. extrinsic_source: where T_cam_lidar came from ("parameter" or "tf"), for diagnostics.
    """

    points_xyz: np.ndarray
    T_cam_lidar: np.ndarray
    stamp: float
    extrinsic_source: str


@dataclass(frozen=True)
class LidarAlignmentSettings:
    """How the aligner fits and filters. max_depth caps metric output (metres; beyond -> NaN)."""

    method: str = "robust"
    refine_metric: bool = False  # metric presets: apply a scale-only LiDAR refinement
    min_range: float = 0.5  # metres from the LiDAR; closer returns (ego vehicle, mount) are dropped
    max_range: float = 120.0
    max_depth: float = math.inf
    alignment: AlignmentConfig = field(default_factory=AlignmentConfig)
    temporal: TemporalFilterConfig = field(default_factory=TemporalFilterConfig)


@dataclass(frozen=True)
class AlignedDepth:
    """One frame's result.

    values: (H, W) float32; metres when is_metric, else the relative prediction (NaN where not finite).
    sparse_depth: the projected LiDAR depth (H, W) or None without a scan; fit: this frame's fit or None;
    filtered: the temporal filter's output (None for metric presets without refinement);
    note: why there is no fit when there is none.
    """

    values: np.ndarray
    is_metric: bool
    sparse_depth: np.ndarray | None
    fit: AlignmentResult | None
    filtered: FilteredAlignment | None
    extrinsic_source: str
    note: str

    def diagnostics(self) -> dict[str, str]:
        """Flat key/value strings for a diagnostic_msgs status (units in the key names)."""
        fit, filtered = self.fit, self.filtered
        n_pixels = 0 if self.sparse_depth is None else int(np.count_nonzero(np.isfinite(self.sparse_depth)))
        values = {
            "metric": str(self.is_metric).lower(),
            "filter_state": filtered.state.value if filtered else "disabled",
            "filter_reason": filtered.reason if filtered else "",
            "extrinsic_source": self.extrinsic_source,
            "lidar_pixels": str(n_pixels),
            "fit_success": str(bool(fit and fit.success)).lower(),
            "fit_reason": fit.reason if fit else self.note,
        }
        if filtered is not None and filtered.usable:
            values.update(scale=f"{filtered.scale:.6g}", shift=f"{filtered.shift:.6g}", age_s=f"{filtered.age:.3f}")
        if fit is not None:
            values.update(
                frame_scale=f"{fit.scale:.6g}",
                frame_shift=f"{fit.shift:.6g}",
                n_points=str(fit.n_points),
                n_inliers=str(fit.n_inliers),
                inlier_ratio=f"{fit.inlier_ratio:.3f}",
                rms_inverse_residual_per_m=f"{fit.rms_inverse_residual:.4g}",
                median_abs_rel=f"{fit.median_abs_rel:.4f}",
            )
        return values


class LidarAligner:
    """Stateful per-stream aligner (it owns the temporal filter); call `align` once per frame in order."""

    def __init__(self, output_kind: str, settings: LidarAlignmentSettings = LidarAlignmentSettings()) -> None:
        if output_kind not in (RELATIVE_INVERSE_DEPTH, METRIC_DEPTH):
            raise ValueError(f"LiDAR alignment needs a depth model, not output {output_kind!r}")
        self.output_kind = output_kind
        self.settings = settings
        self._filter = TemporalAlignmentFilter(settings.temporal)

    @property
    def applies_fit(self) -> bool:
        """Whether fits change the output (relative presets always, metric ones with refine_metric)."""
        return self.output_kind == RELATIVE_INVERSE_DEPTH or self.settings.refine_metric

    def align(
        self,
        prediction: np.ndarray,
        stamp: float,
        lens: PinholeIntrinsics | None,
        scan: LidarScan | None,
        missing_scan_reason: str = NO_SCAN,
    ) -> AlignedDepth:
        """Align one (H, W) prediction taken at `stamp` seconds; lens/scan None when unknown/unavailable
        (missing_scan_reason then says why there is no scan)."""
        prediction = np.asarray(prediction, dtype=np.float32)
        sparse, note = self._project(prediction.shape, lens, scan, missing_scan_reason)
        fit = self._fit(prediction, sparse) if sparse is not None else None
        source = scan.extrinsic_source if scan is not None else "none"
        if not self.applies_fit:
            return AlignedDepth(_model_output(prediction, True), True, sparse, fit, None, source, note)
        filtered = self._filter.update(fit, stamp)
        if filtered.usable:
            metric = to_metric(prediction, filtered, max_depth=self.settings.max_depth)
            return AlignedDepth(metric, True, sparse, fit, filtered, source, note)
        is_metric = self.output_kind == METRIC_DEPTH  # unrefined metric output is still metres
        return AlignedDepth(_model_output(prediction, is_metric), is_metric, sparse, fit, filtered, source, note)

    def reset(self) -> None:
        self._filter.reset()

    def _project(
        self, shape: tuple[int, ...], lens: PinholeIntrinsics | None, scan: LidarScan | None, missing_scan_reason: str
    ) -> tuple[np.ndarray | None, str]:
        if scan is None:
            return None, missing_scan_reason
        if lens is None:
            return None, "no camera_info: cannot project LiDAR points"
        if tuple(lens.image_size) != (shape[1], shape[0]):
            return None, f"camera_info size {tuple(lens.image_size)} does not match the prediction {shape[::-1]}"
        try:
            projected = project_into_camera(
                scan.points_xyz, scan.T_cam_lidar, lens, self.settings.min_range, self.settings.max_range
            )
        except ValueError as error:  # e.g. an unsupported distortion model: report, stay relative
            return None, f"projection failed: {error}"
        return rasterize_depth(projected, lens.image_size), ""

    def _fit(self, prediction: np.ndarray, sparse: np.ndarray) -> AlignmentResult:
        fit = fit_scale_shift if self.output_kind == RELATIVE_INVERSE_DEPTH else fit_scale
        return fit(prediction, sparse, method=self.settings.method, config=self.settings.alignment)


def _model_output(values: np.ndarray, is_metric: bool) -> np.ndarray:
    """The prediction as published unaligned: NaN where not finite (and, for metres, where <= 0)."""
    with np.errstate(invalid="ignore"):
        valid = np.isfinite(values) & (values > 0 if is_metric else True)
    return np.where(valid, values, np.float32(np.nan)).astype(np.float32, copy=False)
