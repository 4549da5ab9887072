"""Synthetic scenes with exact ground truth: a vectorised ray caster (planes, boxes, spheres), a textured RGB
rendering for a pinhole camera and a simulated spinning LiDAR with noise, dropouts and edge leaks.

Used by the sample drive (`dpt_ros.sim.drive`), the alignment tests and benchmarks. Everything is
deterministic for a given seed.

Frames (ROS conventions, REP 103 / REP 105):
  * world ``W`` and vehicle ``base_link`` ``B``: x forward, y left, z up (metres);
  * camera optical frame ``C``: x right, y down, z forward along the optical axis;
  * LiDAR frame ``L``: x forward, y left, z up, mounted on the vehicle.
``T_a_b`` (4×4) maps coordinates in frame ``b`` into frame ``a``.

Depth is Z along the optical axis (REP 118), not Euclidean range; pixel centres sit at integer pixel
coordinates (the OpenCV / ROS convention), so pixel (u, v) looks along ((u − cx)/fx, (v − cy)/fy, 1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from dpt_ros.geometry.camera import PinholeIntrinsics
from dpt_ros.geometry.transforms import rotation_rpy

_EPS = 1e-6


# ----------------------------------------------------------------------------------------------------------------
# Scene description
# ----------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Surface:
    """Appearance of a primitive: base colour (RGB in [0, 1]), checker size (m) of its solid texture, albedo
    seen by the LiDAR (in [0, 1]), and the amplitude of a fine non-periodic texture within each checker cell
    (0: plain cells)."""

    color: tuple[float, float, float]
    checker_size: float = 1.0
    lidar_albedo: float = 0.5
    detail: float = 0.1


GREY = Surface((0.5, 0.5, 0.5))


@dataclass(frozen=True)
class Plane:
    """Infinite plane {x : normal · x = offset}; ``normal`` need not be unit length."""

    normal: tuple[float, float, float]
    offset: float
    surface: Surface = GREY


@dataclass(frozen=True)
class Box:
    """Box with centre, half extents (m) along its own axes, and a yaw (rad) about the frame's z axis."""

    center: tuple[float, float, float]
    half_size: tuple[float, float, float]
    surface: Surface = GREY
    yaw: float = 0.0

    @classmethod
    def from_corners(cls, lower: tuple[float, float, float], upper: tuple[float, float, float],
                     surface: Surface = GREY) -> "Box":
        """Axis-aligned box between two opposite corners."""
        low, high = np.asarray(lower, dtype=float), np.asarray(upper, dtype=float)
        return cls(tuple((low + high) / 2), tuple((high - low) / 2), surface)


@dataclass(frozen=True)
class Sphere:
    center: tuple[float, float, float]
    radius: float
    surface: Surface = GREY


Primitive = Plane | Box | Sphere


@dataclass(frozen=True)
class Scene:
    """Primitives and their lighting. ambient: the share of light every surface gets whatever its orientation
    (1: unlit, flat colours). fog_distance (metres): a camera sees surface colours fade towards the sky colour as
    exp(-depth / fog_distance), a depth cue even a tiny network can learn; inf = clear air."""

    primitives: tuple[Primitive, ...]
    sky_color: tuple[float, float, float] = (0.55, 0.7, 0.9)
    light_direction: tuple[float, float, float] = (0.4, 0.3, 1.0)  # towards the light, world frame
    ambient: float = 0.35
    fog_distance: float = math.inf


@dataclass(frozen=True)
class RayHits:
    """Nearest intersection per ray. ``distance`` is the ray parameter (inf where nothing is hit): with the
    direction given unnormalised, it is in units of that direction's length."""

    distance: np.ndarray  # (N,) float64
    primitive_index: np.ndarray  # (N,) int, −1 where nothing is hit
    normal: np.ndarray  # (N, 3) unit normals facing the ray origin (zeros where nothing is hit)


# ----------------------------------------------------------------------------------------------------------------
# Ray casting
# ----------------------------------------------------------------------------------------------------------------


def _intersect_plane(plane: Plane, origin: np.ndarray, directions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    normal = np.asarray(plane.normal, dtype=float)
    scale = np.linalg.norm(normal)
    normal, offset = normal / scale, plane.offset / scale
    denom = directions @ normal
    with np.errstate(divide="ignore", invalid="ignore"):
        distance = (offset - normal @ origin) / denom
    distance = np.where((np.abs(denom) > _EPS) & (distance > _EPS), distance, np.inf)
    normals = np.broadcast_to(normal, directions.shape)
    return distance, normals


def _intersect_sphere(sphere: Sphere, origin: np.ndarray, directions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    center = np.asarray(sphere.center, dtype=float)
    to_origin = origin - center
    a = np.einsum("ij,ij->i", directions, directions)
    b = 2.0 * directions @ to_origin
    c = to_origin @ to_origin - sphere.radius**2
    discriminant = b * b - 4.0 * a * c
    root = np.sqrt(np.maximum(discriminant, 0.0))
    near, far = (-b - root) / (2.0 * a), (-b + root) / (2.0 * a)
    distance = np.where(near > _EPS, near, far)
    distance = np.where((discriminant >= 0.0) & (distance > _EPS), distance, np.inf)
    hits = origin + np.where(np.isfinite(distance), distance, 0.0)[:, None] * directions
    return distance, (hits - center) / sphere.radius


def _intersect_box(box: Box, origin: np.ndarray, directions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Slab method in the box's own frame, on the rays that pass within the box's bounding sphere (most rays
    miss a small box; culling first keeps a street of boxes cheap). The normal is the entered slab's."""
    center = np.asarray(box.center, dtype=float)
    half = np.asarray(box.half_size, dtype=float)
    distance = np.full(len(directions), np.inf)
    normals = np.zeros_like(directions)
    to_center = center - origin
    along = directions @ to_center
    squared_length = np.einsum("ij,ij->i", directions, directions)
    squared_miss = to_center @ to_center - along**2 / squared_length
    radius_squared = half @ half
    origin_inside = to_center @ to_center <= radius_squared
    candidates = np.flatnonzero((squared_miss <= radius_squared) & ((along > 0) | origin_inside))
    if candidates.size == 0:
        return distance, normals
    rotation = rotation_rpy(0.0, 0.0, box.yaw)
    local_origin = rotation.T @ (origin - center)
    local_dirs = directions[candidates] @ rotation  # rows: Rᵀ d
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = 1.0 / local_dirs
        t1 = (-half - local_origin) * inv
        t2 = (half - local_origin) * inv
    # a direction component of 0 gives ±inf or nan (0·inf); inside the slab that axis never constrains
    t_low = np.where(np.isnan(t1), -np.inf, np.minimum(t1, t2))
    t_high = np.where(np.isnan(t2), np.inf, np.maximum(t1, t2))
    entry_axis = np.argmax(t_low, axis=1)
    t_enter = t_low.max(axis=1)
    t_exit = t_high.min(axis=1)
    hit = np.where(t_enter > _EPS, t_enter, t_exit)
    distance[candidates] = np.where((t_enter <= t_exit) & (hit > _EPS), hit, np.inf)
    # outward normal of the entered face: −sign(direction) along the entry axis
    local_normals = np.zeros_like(local_dirs)
    rows = np.arange(len(local_dirs))
    local_normals[rows, entry_axis] = -np.sign(local_dirs[rows, entry_axis])
    normals[candidates] = local_normals @ rotation.T
    return distance, normals


def cast_rays(scene: Scene, origin: np.ndarray, directions: np.ndarray) -> RayHits:
    """Nearest hit of each ray ``origin + t · directions[i]`` (t > 0) with the scene.

    origin: (3,) metres, world frame; directions: (N, 3), any non-zero length.
    """
    origin = np.asarray(origin, dtype=float)
    directions = np.asarray(directions, dtype=float)
    best = np.full(len(directions), np.inf)
    index = np.full(len(directions), -1, dtype=int)
    normals = np.zeros_like(directions)
    intersectors = {Plane: _intersect_plane, Sphere: _intersect_sphere, Box: _intersect_box}
    for i, primitive in enumerate(scene.primitives):
        distance, primitive_normals = intersectors[type(primitive)](primitive, origin, directions)
        closer = distance < best
        best = np.where(closer, distance, best)
        index = np.where(closer, i, index)
        normals = np.where(closer[:, None], primitive_normals, normals)
    # make normals face the viewer (planes and boxes hit from either side)
    facing = np.einsum("ij,ij->i", normals, directions) > 0.0
    normals = np.where(facing[:, None], -normals, normals)
    return RayHits(distance=best, primitive_index=index, normal=normals)


# ----------------------------------------------------------------------------------------------------------------
# Camera rendering
# ----------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CameraRender:
    rgb: np.ndarray  # (H, W, 3) uint8
    depth: np.ndarray  # (H, W) float32 metres along the optical axis, NaN where nothing is hit (sky)
    primitive_index: np.ndarray  # (H, W) int, −1 for sky


def _shade(scene: Scene, hits: RayHits, points: np.ndarray) -> np.ndarray:
    """(N, 3) float RGB in [0, 1]: base colour × solid checker texture × fine stripes × Lambert shading."""
    colors = np.tile(np.asarray(scene.sky_color, dtype=float), (len(points), 1))
    hit = hits.primitive_index >= 0
    if not hit.any():
        return colors
    surfaces = scene.primitives
    base = np.array([surfaces[i].surface.color for i in hits.primitive_index[hit]])
    checker_size = np.array([surfaces[i].surface.checker_size for i in hits.primitive_index[hit]])
    p = points[hit]
    cells = np.floor(p / checker_size[:, None]).astype(np.int64).sum(axis=1)
    checker = np.where(cells % 2 == 0, 1.0, 0.65)
    # fine, non-periodic-looking detail so a network has gradients to look at within each checker cell
    amplitude = np.array([surfaces[i].surface.detail for i in hits.primitive_index[hit]])
    detail = 1.0 - amplitude + amplitude * np.sin(7.1 * p[:, 0] + 3.3 * np.sin(2.9 * p[:, 1]) + 5.3 * p[:, 2])
    light = np.asarray(scene.light_direction, dtype=float)
    light /= np.linalg.norm(light)
    lambert = scene.ambient + (1.0 - scene.ambient) * np.clip(hits.normal[hit] @ light, 0.0, 1.0)
    colors[hit] = base * (checker * detail * lambert)[:, None]
    return np.clip(colors, 0.0, 1.0)


def render_camera(scene: Scene, camera: PinholeIntrinsics, T_world_optical: np.ndarray) -> CameraRender:
    """Exact depth (Z along the optical axis) and a textured RGB image of ``scene`` seen from the camera pose
    (an ideal pinhole: the camera's distortion, if any, is not rendered)."""
    rays_optical = camera.pixel_rays()
    directions = rays_optical @ T_world_optical[:3, :3].T
    origin = T_world_optical[:3, 3]
    hits = cast_rays(scene, origin, directions)
    # rays have unit optical Z, so the ray parameter *is* the depth along the optical axis
    depth = np.where(np.isfinite(hits.distance), hits.distance, np.nan)
    points = origin + np.nan_to_num(depth, nan=0.0)[:, None] * directions
    rgb = _shade(scene, hits, points)
    if math.isfinite(scene.fog_distance):
        visibility = np.exp(-np.nan_to_num(depth, nan=np.inf) / scene.fog_distance)[:, None]  # 0 for sky
        rgb = rgb * visibility + np.asarray(scene.sky_color) * (1.0 - visibility)
    shape = (camera.height, camera.width)
    return CameraRender(
        rgb=np.round(rgb * 255.0).astype(np.uint8).reshape(*shape, 3),
        depth=depth.astype(np.float32).reshape(shape),
        primitive_index=hits.primitive_index.reshape(shape),
    )


# ----------------------------------------------------------------------------------------------------------------
# Spinning LiDAR
# ----------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LidarConfig:
    """A spinning multi-beam LiDAR (defaults shaped like a 32-beam unit) and its error model."""

    n_beams: int = 32
    elevation_min_deg: float = -30.67
    elevation_max_deg: float = 10.67
    azimuth_steps: int = 720  # per revolution
    max_range: float = 100.0
    range_noise_std: float = 0.02  # metres, Gaussian along the beam
    dropout_probability: float = 0.05  # returns lost at random
    edge_leak_probability: float = 0.5  # chance that a return at a depth edge is a mixed (leaked) return
    edge_threshold: float = 1.0  # metres of range jump between azimuth neighbours that makes an edge

    def beam_directions(self) -> np.ndarray:
        """(n_beams, azimuth_steps, 3) unit directions in the LiDAR frame."""
        elevation = np.deg2rad(np.linspace(self.elevation_min_deg, self.elevation_max_deg, self.n_beams))
        azimuth = np.linspace(-np.pi, np.pi, self.azimuth_steps, endpoint=False)
        el, az = np.meshgrid(elevation, azimuth, indexing="ij")
        return np.stack([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)], axis=-1)


@dataclass(frozen=True)
class LidarScan:
    """Returns of one revolution, in the LiDAR frame."""

    points: np.ndarray  # (N, 3) float32 metres
    intensity: np.ndarray  # (N,) float32 in [0, 255]
    ring: np.ndarray  # (N,) uint16 beam index, 0 = lowest
    is_edge_leak: np.ndarray  # (N,) bool: a mixed return that lies on no surface


def simulate_lidar(
    scene: Scene, config: LidarConfig, T_world_lidar: np.ndarray, rng: np.random.Generator, keep_misses: bool = False
) -> LidarScan:
    """One instantaneous revolution (no motion skew): exact hits, then range noise, dropouts and edge leaks.

    keep_misses: return every beam x azimuth direction in order (an organised scan), with NaN points where
    there is no return, instead of the returns alone.
    """
    directions_lidar = config.beam_directions()
    grid_shape = directions_lidar.shape[:2]
    directions = directions_lidar.reshape(-1, 3) @ T_world_lidar[:3, :3].T
    hits = cast_rays(scene, T_world_lidar[:3, 3], directions)
    true_range = hits.distance.reshape(grid_shape)
    valid = np.isfinite(true_range) & (true_range <= config.max_range)

    # mixed returns at depth edges: the beam footprint straddles two surfaces and the unit reports a range
    # between them, a point floating in mid-air (the main error LiDAR-to-camera alignment must survive)
    exact = np.where(valid, true_range, 0.0)
    measured = exact.copy()
    is_leak = np.zeros(grid_shape, dtype=bool)
    for shift in (1, -1):
        neighbour = np.roll(exact, shift, axis=1)
        both_valid = valid & np.roll(valid, shift, axis=1)
        jump = np.abs(neighbour - exact)
        edge = both_valid & (jump > config.edge_threshold) & ~is_leak
        leak = edge & (rng.random(grid_shape) < config.edge_leak_probability)
        mix = rng.uniform(0.2, 0.8, grid_shape)
        measured = np.where(leak, mix * exact + (1.0 - mix) * neighbour, measured)
        is_leak |= leak

    measured = measured + rng.normal(0.0, config.range_noise_std, grid_shape)
    keep = valid & (rng.random(grid_shape) >= config.dropout_probability) & (measured > 0.0)

    albedo = np.array([p.surface.lidar_albedo for p in scene.primitives] + [0.0])[hits.primitive_index]
    incidence = np.abs(np.einsum("ij,ij->i", hits.normal, directions))
    intensity = (255.0 * albedo * incidence).reshape(grid_shape)
    ring = np.broadcast_to(np.arange(config.n_beams, dtype=np.uint16)[:, None], grid_shape)
    points = directions_lidar * measured[..., None]
    if keep_misses:
        points[~keep] = np.nan
        keep = np.ones(grid_shape, dtype=bool)
    return LidarScan(
        points=points[keep].astype(np.float32),
        intensity=intensity[keep].astype(np.float32),
        ring=ring[keep].copy(),
        is_edge_leak=is_leak[keep],
    )


# ----------------------------------------------------------------------------------------------------------------
# Static scenes in the camera optical frame (alignment tests and benchmarks): camera at the origin
# ----------------------------------------------------------------------------------------------------------------


def street_scene() -> Scene:
    """Ground 1.5 m below the camera, a wall at 30 m, and boxes between 4 and 15 m at different depths."""
    return Scene((
        Plane(normal=(0.0, 1.0, 0.0), offset=1.5),
        Plane(normal=(0.0, 0.0, 1.0), offset=30.0),
        Box.from_corners((-3.0, -0.5, 6.0), (-1.0, 1.5, 8.0)),
        Box.from_corners((0.5, -1.0, 4.0), (1.5, 1.5, 5.0)),
        Box.from_corners((2.0, -2.0, 12.0), (5.0, 1.5, 15.0)),
        Box.from_corners((-1.0, -3.0, 18.0), (1.0, 1.5, 20.0)),
    ))


def render_depth(scene: Scene, K: np.ndarray, image_size: tuple[int, int]) -> np.ndarray:
    """Exact z-depth (height, width) float64 metres of a pinhole camera at the origin; inf where nothing is hit.

    image_size is (width, height); rays go through pixel centres (integer pixel coordinates).
    """
    camera = PinholeIntrinsics.from_matrix(K, image_size)
    # pixel rays have unit z, so the ray parameter t is the depth
    return cast_rays(scene, np.zeros(3), camera.pixel_rays()).distance.reshape(camera.height, camera.width)


def spinning_lidar_scan(scene: Scene, T_cam_lidar: np.ndarray, n_beams: int = 64, n_azimuth: int = 1875,
                        elevation_deg: tuple[float, float] = (-25.0, 3.0)) -> np.ndarray:
    """Organised exact scan (n_beams · n_azimuth, 3) float32 in the LiDAR frame; NaN rows where a beam hits
    nothing. T_cam_lidar: 4×4 pose of the LiDAR in the camera optical frame (maps LiDAR points into it).
    64 beams × 1875 azimuth steps is a 120k-point, 360° scan like a 64-beam spinning sensor's.
    `simulate_lidar` without range limit, noise, dropouts or edge leaks."""
    config = LidarConfig(n_beams=n_beams, elevation_min_deg=elevation_deg[0], elevation_max_deg=elevation_deg[1],
                         azimuth_steps=n_azimuth, max_range=np.inf, range_noise_std=0.0, dropout_probability=0.0,
                         edge_leak_probability=0.0)
    scan = simulate_lidar(scene, config, np.asarray(T_cam_lidar, dtype=float), np.random.default_rng(0), True)
    return scan.points
