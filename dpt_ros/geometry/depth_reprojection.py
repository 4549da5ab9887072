"""A depth camera's image seen from another camera: back-project, move, project with a z-buffer.

A ToF or stereo depth camera usually sits beside the colour camera, with its own resolution, intrinsics
and optical frame. Its depth becomes a sparse depth image of the colour camera exactly like a LiDAR scan:
every valid depth pixel is a 3-D point (`back_project`), moved by the rigid transform between the two
optical frames and projected with the colour camera's intrinsics and lens model (`project_points`),
nearest point winning per pixel (`rasterize_depth`). Depth is z along the *colour* camera's optical axis.

The depth image is taken as rectified (its CameraInfo distortion is zero, as depth drivers publish it);
conventions (optical frames, pixel centres at integers, sizes as (width, height)) are those of
`lidar_projection`.
"""

from __future__ import annotations

import numpy as np

from dpt_ros.geometry.camera import PinholeIntrinsics
from dpt_ros.geometry.lidar_projection import project_points, rasterize_depth
from dpt_ros.geometry.pointcloud import back_project


def reproject_depth(
    depth_m: np.ndarray,
    depth_intrinsics: PinholeIntrinsics,
    T_color_depth: np.ndarray | list[float],
    color_K: np.ndarray | list[float],
    color_size: tuple[int, int],
    color_D: np.ndarray | list[float] | None = None,
    distortion_model: str = "plumb_bob",
    max_range: float = np.inf,
) -> np.ndarray:
    """(h, w) depth of the depth camera -> (H, W) float32 sparse depth of the colour camera, NaN = no data.

    depth_m:          (h, w) metres along the depth camera's optical axis; NaN, inf, <= 0 are invalid.
    depth_intrinsics: pinhole model of that image (its own camera_info, w x h pixels).
    T_color_depth:    4x4 (or 16 row-major values) mapping depth-optical-frame points into the colour
                      camera's optical frame (tf2 `lookup_transform(target=colour_optical, source=depth_optical)`).
    color_K, color_size=(W, H), color_D, distortion_model: the colour camera's model.
    max_range:        metres; depth pixels deeper than this (along the depth camera's z) are dropped.
    Points behind the colour camera or outside its image are dropped; where several land in one pixel the
    nearest wins, so background seen past a foreground edge from the other viewpoint does not overwrite it.
    """
    xyz = back_project(depth_m, depth_intrinsics, max_range=max_range).reshape(-1, 3)
    projected = project_points(xyz, T_color_depth, color_K, color_size, color_D, distortion_model, min_range=0.0)
    return rasterize_depth(projected, color_size)
