"""Analytic scenes (planes and boxes) with exact depth, for tests, benchmarks and demos of LiDAR alignment.

Scenes live in the camera optical frame (x right, y down, z forward, metres). A camera image and a
spinning LiDAR are rendered by exact ray casting against the same shapes, so the LiDAR points, the
camera depth and the parallax between the two sensors (points seen by the LiDAR but hidden from the
camera: real edge leaks) are all consistent.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Rotation taking LiDAR axes (x forward, y left, z up; REP 103) to camera optical axes (x right, y down, z forward).
OPTICAL_FROM_LIDAR_ROTATION = np.array([[0.0, -1.0, 0.0], [0.0, 0.0, -1.0], [1.0, 0.0, 0.0]])


@dataclass(frozen=True)
class Plane:
    """Infinite plane {p : normal . p = offset} (camera optical frame)."""

    normal: tuple[float, float, float]
    offset: float


@dataclass(frozen=True)
class Box:
    """Axis-aligned box between two corners (camera optical frame)."""

    lower: tuple[float, float, float]
    upper: tuple[float, float, float]


Shape = Plane | Box


def street_scene() -> tuple[Shape, ...]:
    """Ground 1.5 m below the camera, a wall at 30 m, and boxes between 4 and 15 m at different depths."""
    return (
        Plane(normal=(0.0, 1.0, 0.0), offset=1.5),
        Plane(normal=(0.0, 0.0, 1.0), offset=30.0),
        Box(lower=(-3.0, -0.5, 6.0), upper=(-1.0, 1.5, 8.0)),
        Box(lower=(0.5, -1.0, 4.0), upper=(1.5, 1.5, 5.0)),
        Box(lower=(2.0, -2.0, 12.0), upper=(5.0, 1.5, 15.0)),
        Box(lower=(-1.0, -3.0, 18.0), upper=(1.0, 1.5, 20.0)),
    )


def ray_cast(origin: np.ndarray, directions: np.ndarray, scene: tuple[Shape, ...]) -> np.ndarray:
    """Distance parameter t of the first hit along origin + t * directions; (N,) float64, inf where none.

    origin: (3,) ray start; directions: (N, 3) (not necessarily unit: t is in units of the direction).
    """
    origin = np.asarray(origin, dtype=np.float64)
    directions = np.asarray(directions, dtype=np.float64)
    nearest = np.full(directions.shape[0], np.inf)
    with np.errstate(divide="ignore", invalid="ignore"):
        for shape in scene:
            if isinstance(shape, Plane):
                normal = np.asarray(shape.normal, dtype=np.float64)
                hit = (shape.offset - normal @ origin) / (directions @ normal)
            else:
                t_lower = (np.asarray(shape.lower) - origin) / directions
                t_upper = (np.asarray(shape.upper) - origin) / directions
                t_enter = np.minimum(t_lower, t_upper).max(axis=1)
                t_exit = np.maximum(t_lower, t_upper).min(axis=1)
                hit = np.where(t_enter <= t_exit, np.where(t_enter > 0, t_enter, t_exit), np.inf)
            nearest = np.where((hit > 0) & (hit < nearest), hit, nearest)
    return nearest


def render_depth(scene: tuple[Shape, ...], K: np.ndarray, image_size: tuple[int, int]) -> np.ndarray:
    """Exact z-depth (height, width) float64 metres of a pinhole camera at the origin; inf where nothing is hit.

    image_size is (width, height); rays go through pixel centres (integer pixel coordinates).
    """
    width, height = image_size
    cols, rows = np.meshgrid(np.arange(width, dtype=np.float64), np.arange(height, dtype=np.float64))
    pixels = np.stack((cols.ravel(), rows.ravel(), np.ones(cols.size)), axis=1)
    directions = pixels @ np.linalg.inv(np.asarray(K, dtype=np.float64)).T  # z component is 1: t is depth
    return ray_cast(np.zeros(3), directions, scene).reshape(height, width)


def spinning_lidar_scan(
    scene: tuple[Shape, ...],
    T_cam_lidar: np.ndarray,
    n_beams: int = 64,
    n_azimuth: int = 1875,
    elevation_deg: tuple[float, float] = (-25.0, 3.0),
) -> np.ndarray:
    """Organised scan (n_beams * n_azimuth, 3) float32 in the LiDAR frame; NaN rows where a beam hits nothing.

    T_cam_lidar: 4x4 pose of the LiDAR in the camera optical frame (maps LiDAR points into it).
    64 beams x 1875 azimuth steps is a 120k-point, 360-degree scan like a 64-beam spinning sensor's.
    """
    elevation = np.deg2rad(np.linspace(elevation_deg[0], elevation_deg[1], n_beams))
    azimuth = np.linspace(-np.pi, np.pi, n_azimuth, endpoint=False)
    elevation, azimuth = np.meshgrid(elevation, azimuth, indexing="ij")
    directions_lidar = np.stack(
        (np.cos(elevation) * np.cos(azimuth), np.cos(elevation) * np.sin(azimuth), np.sin(elevation)), axis=-1
    ).reshape(-1, 3)
    T = np.asarray(T_cam_lidar, dtype=np.float64)
    ranges = ray_cast(T[:3, 3], directions_lidar @ T[:3, :3].T, scene)
    points = directions_lidar * ranges[:, None]
    points[~np.isfinite(ranges)] = np.nan
    return points.astype(np.float32)


def pose(rotation: np.ndarray, translation: tuple[float, float, float]) -> np.ndarray:
    """4x4 rigid transform from a 3x3 rotation and a translation."""
    T = np.eye(4)
    T[:3, :3] = rotation
    T[:3, 3] = translation
    return T
