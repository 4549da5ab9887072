r"""Depth prompts from the robot's sensors, on the colour camera's coarse prompt grid, checked and filled.

    LiDAR scan  --project_lidar-->   \
                                      sparse depth on the prompt grid --check--> densify --> prompt (metres)
    depth image --reproject_depth--> /                                  \--> rejected: reason, no prompt

The prompt grid is the colour camera scaled to `long_side` pixels on its longer side (the released
models were trained on 192 x 256 iPhone LiDAR prompts for 4:3 images: 256 on the long side), so one
grid cell covers the same field of view whatever the sensor. Projecting straight onto the grid (the
colour intrinsics rescaled with `scale_camera_matrices`) keeps the nearest return per cell.

A prompt is refused, never faked, when it cannot carry metres: no data, fewer valid cells than
`min_valid_cells` or than `min_valid_fraction` of the grid, or a depth span under `min_span_m` (the
model normalises the prompt by its min and max; a one-depth prompt has no span to normalise by).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dpt_ros.alignment.lidar_depth import LidarScan
from dpt_ros.geometry.camera import PinholeIntrinsics, scale_camera_matrices
from dpt_ros.geometry.depth_reprojection import reproject_depth
from dpt_ros.geometry.lidar_projection import project_lidar
from dpt_ros.prompt.densify import DENSIFY_METHODS, densify, valid_depth_mask

NO_PROMPT = "no prompt depth within prompt_max_dt of the image"


@dataclass(frozen=True)
class PromptSettings:
    """How a prompt is built and when it is refused (depths in metres)."""

    long_side: int = 256
    method: str = "morphological"
    min_valid_cells: int = 64
    min_valid_fraction: float = 0.01
    min_span_m: float = 0.05
    min_range: float = 0.5  # LiDAR returns closer than this (mount, ego vehicle) are dropped
    max_range: float = 120.0  # LiDAR range, or a depth image's depth, beyond which data is dropped

    def __post_init__(self) -> None:
        if self.long_side < 2 or self.method not in DENSIFY_METHODS:
            raise ValueError(f"need long_side >= 2 and method in {DENSIFY_METHODS}, got {self.long_side}, {self.method!r}")
        if not (0.0 <= self.min_valid_fraction <= 1.0 and self.min_valid_cells >= 1 and self.min_span_m > 0):
            raise ValueError("need 0 <= min_valid_fraction <= 1, min_valid_cells >= 1 and min_span_m > 0")


@dataclass(frozen=True)
class DepthPrompt:
    """One frame's prompt or the reason there is none.

    depth: (h, w) float32 metres, dense and finite, or None when refused. sparse: the (h, w) grid before
    filling (NaN = no data) or None without any sensor data. reason: "" when usable, else why not.
    """

    depth: np.ndarray | None
    sparse: np.ndarray | None
    reason: str

    @property
    def usable(self) -> bool:
        return self.depth is not None

    @property
    def valid_cells(self) -> int:
        return 0 if self.sparse is None else int(np.count_nonzero(valid_depth_mask(self.sparse)))

    def diagnostics(self) -> dict[str, str]:
        """Flat key/value strings for a diagnostic_msgs status (units in the key names)."""
        values = {"prompt_usable": str(self.usable).lower(), "prompt_reason": self.reason,
                  "prompt_valid_cells": str(self.valid_cells)}
        if self.depth is not None:
            values.update(prompt_min_m=f"{float(self.depth.min()):.4g}", prompt_max_m=f"{float(self.depth.max()):.4g}")
        return values


def prompt_grid_size(image_size: tuple[int, int], long_side: int) -> tuple[int, int]:
    """(width, height) of the prompt grid: the image's aspect with `long_side` cells on its longer side (the
    image's own size when that is smaller: a prompt finer than the image adds nothing)."""
    width, height = image_size
    if width <= 0 or height <= 0:
        raise ValueError(f"image size must be positive, got {image_size}")
    scale = min(1.0, long_side / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def grid_lens(lens: PinholeIntrinsics, settings: PromptSettings) -> PinholeIntrinsics:
    """The colour camera (`lens`, at its image size) as seen on the prompt grid."""
    grid = prompt_grid_size(lens.image_size, settings.long_side)
    k, _ = scale_camera_matrices(np.asarray(lens.K).reshape(9), np.zeros(12), lens.image_size, grid)
    return PinholeIntrinsics.from_matrix(k.reshape(3, 3), grid, lens.D, lens.distortion_model)


def check_prompt(sparse: np.ndarray | None, settings: PromptSettings) -> DepthPrompt:
    """Refuse or densify a sparse (h, w) grid in metres (NaN or <= 0 = no data); see the module doc."""
    if sparse is None:
        return DepthPrompt(None, None, NO_PROMPT)
    valid = valid_depth_mask(sparse)
    count = int(np.count_nonzero(valid))
    needed = max(settings.min_valid_cells, int(np.ceil(settings.min_valid_fraction * valid.size)))
    if count < needed:
        return DepthPrompt(None, sparse, f"too little prompt: {count} valid cells, need {needed}")
    values = sparse[valid]
    span = float(values.max() - values.min())
    if span < settings.min_span_m:
        return DepthPrompt(
            None, sparse, f"prompt spans {span:.3g} m (< {settings.min_span_m:g} m): no range to normalise by"
        )
    return DepthPrompt(densify(sparse, settings.method), sparse, "")


def prompt_from_lidar(scan: LidarScan | None, lens: PinholeIntrinsics, settings: PromptSettings) -> DepthPrompt:
    """A scan projected onto the prompt grid of the colour camera `lens`, checked and densified."""
    if scan is None:
        return check_prompt(None, settings)
    on_grid = grid_lens(lens, settings)
    sparse = project_lidar(
        scan.points_xyz, scan.T_cam_lidar, on_grid.K, on_grid.image_size, on_grid.D, on_grid.distortion_model,
        min_range=settings.min_range, max_range=settings.max_range,
    )
    return check_prompt(sparse, settings)


def prompt_from_depth_image(
    depth_m: np.ndarray | None,
    depth_intrinsics: PinholeIntrinsics,
    T_color_depth: np.ndarray,
    lens: PinholeIntrinsics,
    settings: PromptSettings,
) -> DepthPrompt:
    """A depth camera's image (metres, NaN/0 invalid) reprojected onto the colour camera's prompt grid.

    T_color_depth is the identity when both images share one optical frame (a registered depth image);
    the depth camera's own intrinsics still map its pixels, so its resolution may differ from the image's.
    """
    if depth_m is None:
        return check_prompt(None, settings)
    on_grid = grid_lens(lens, settings)
    sparse = reproject_depth(
        depth_m, depth_intrinsics, T_color_depth, on_grid.K, on_grid.image_size, on_grid.D,
        on_grid.distortion_model, max_range=settings.max_range,
    )
    return check_prompt(sparse, settings)
