"""The synthetic scene generator against analytic geometry."""

import dataclasses

import numpy as np
import pytest

from dpt_ros.geometry.camera import PinholeIntrinsics
from dpt_ros.geometry.transforms import R_BASE_OPTICAL, invert_transform, make_transform, rotation_rpy
from dpt_ros.sim.drive import SensorRig, SequenceConfig, drive_scene, render_sequence
from dpt_ros.sim.scene import Box, LidarConfig, Plane, Scene, Sphere, Surface, cast_rays, render_camera, simulate_lidar

GREY = Surface((0.5, 0.5, 0.5))
CAMERA = PinholeIntrinsics(width=64, height=48, fx=50.0, fy=50.0, cx=31.5, cy=23.5)
EXACT_LIDAR = LidarConfig(range_noise_std=0.0, dropout_probability=0.0, edge_leak_probability=0.0)


def _level_camera_at(x: float, y: float, z: float) -> np.ndarray:
    """Camera looking along world +x, level, at (x, y, z)."""
    return make_transform(R_BASE_OPTICAL, (x, y, z))


def test_fronto_parallel_wall_has_constant_analytic_depth():
    scene = Scene((Plane((-1.0, 0.0, 0.0), -12.0, GREY),))  # x = 12
    render = render_camera(scene, CAMERA, _level_camera_at(2.0, 0.0, 1.0))
    np.testing.assert_allclose(render.depth, 10.0, rtol=1e-6)


def test_ground_plane_depth_is_height_times_focal_over_row_offset():
    scene = Scene((Plane((0.0, 0.0, 1.0), 0.0, GREY),))
    height = 1.5
    render = render_camera(scene, CAMERA, _level_camera_at(0.0, 0.0, height))
    rows = np.arange(CAMERA.height, dtype=float)
    below = rows > CAMERA.cy
    expected = height * CAMERA.fy / (rows[below] - CAMERA.cy)
    np.testing.assert_allclose(render.depth[below], np.broadcast_to(expected[:, None], (below.sum(), CAMERA.width)),
                               rtol=1e-6)
    assert np.isnan(render.depth[~below]).all()  # horizon and sky: no hit
    assert (render.primitive_index[~below] == -1).all()


def test_sphere_and_rotated_box_nearest_hits():
    sphere = Sphere((10.0, 0.0, 0.0), 2.0, GREY)
    box = Box((20.0, 0.0, 0.0), (1.0, 3.0, 3.0), GREY, yaw=np.deg2rad(30.0))
    scene = Scene((box, sphere))
    origin = np.zeros(3)
    hits = cast_rays(scene, origin, np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [2.0, 0.0, 0.0]]))
    assert hits.distance[0] == pytest.approx(8.0)  # sphere front, not the box behind it
    assert hits.primitive_index[0] == 1
    np.testing.assert_allclose(hits.normal[0], [-1.0, 0.0, 0.0], atol=1e-12)
    assert np.isinf(hits.distance[1]) and hits.primitive_index[1] == -1
    assert hits.distance[2] == pytest.approx(4.0)  # ray parameter scales with the direction's length

    # a ray past the sphere hits the yawed box on its −x face: distance (20 − 1/cos 30°) along x
    hits = cast_rays(scene, np.array([0.0, 0.0, 2.5]), np.array([[1.0, 0.0, 0.0]]))
    assert hits.primitive_index[0] == 0
    assert hits.distance[0] == pytest.approx(20.0 - 1.0 / np.cos(np.deg2rad(30.0)))
    np.testing.assert_allclose(hits.normal[0], [-np.cos(np.deg2rad(30)), -np.sin(np.deg2rad(30)), 0.0], atol=1e-12)


def _signed_distances(scene: Scene, points: np.ndarray) -> np.ndarray:
    """(N, n_primitives) unsigned distance of world points to each primitive's surface, computed independently."""
    columns = []
    for primitive in scene.primitives:
        if isinstance(primitive, Plane):
            normal = np.asarray(primitive.normal) / np.linalg.norm(primitive.normal)
            columns.append(np.abs(points @ normal - primitive.offset / np.linalg.norm(primitive.normal)))
        elif isinstance(primitive, Sphere):
            columns.append(np.abs(np.linalg.norm(points - primitive.center, axis=1) - primitive.radius))
        else:
            local = (points - primitive.center) @ rotation_rpy(0.0, 0.0, primitive.yaw)
            q = np.abs(local) - primitive.half_size
            outside = np.linalg.norm(np.maximum(q, 0.0), axis=1)
            inside = np.minimum(q.max(axis=1), 0.0)
            columns.append(np.abs(outside + inside))
    return np.stack(columns, axis=1)


def test_exact_lidar_returns_lie_on_scene_surfaces():
    scene = drive_scene(seed=3)
    T_world_lidar = make_transform(rotation_rpy(0.0, 0.02, 0.1), (1.0, 0.5, 1.9))
    scan = simulate_lidar(scene, EXACT_LIDAR, T_world_lidar, np.random.default_rng(0))
    assert len(scan.points) > 10_000 and not scan.is_edge_leak.any()
    world = scan.points.astype(float) @ T_world_lidar[:3, :3].T + T_world_lidar[:3, 3]
    assert _signed_distances(scene, world).min(axis=1).max() < 1e-4  # float32 storage of ~75 m coordinates
    assert set(np.unique(scan.ring)) <= set(range(EXACT_LIDAR.n_beams))


def test_lidar_noise_dropouts_and_edge_leaks_are_applied():
    scene = drive_scene(seed=3)
    T_world_lidar = make_transform(np.eye(3), (0.0, 0.0, 1.9))
    config = LidarConfig(range_noise_std=0.05, dropout_probability=0.2, edge_leak_probability=1.0)
    exact = simulate_lidar(scene, EXACT_LIDAR, T_world_lidar, np.random.default_rng(0))
    noisy = simulate_lidar(scene, config, T_world_lidar, np.random.default_rng(0))
    assert 0.75 < len(noisy.points) / len(exact.points) < 0.85
    measured_range = np.linalg.norm(noisy.points.astype(float), axis=1)
    exact_range = cast_rays(scene, T_world_lidar[:3, 3], noisy.points.astype(float)).distance * measured_range
    range_error = np.abs(measured_range - exact_range)
    assert noisy.is_edge_leak.sum() > 50
    # leaked returns lie at 20-80 % of a > 1 m range jump, well off the surface the beam points at
    assert np.mean(range_error[noisy.is_edge_leak] > 0.15) > 0.95
    assert np.std(range_error[~noisy.is_edge_leak]) == pytest.approx(0.05 * np.sqrt(1 - 2 / np.pi), rel=0.1)


def test_extrinsic_projects_lidar_points_onto_the_rendered_depth():
    """Against a fronto-parallel wall the depth is constant, so projection with T_optical_lidar is exact."""
    scene = Scene((Plane((-1.0, 0.0, 0.0), -30.0, GREY),))
    rig = SensorRig()
    T_world_base = make_transform(np.eye(3), (0.0, 0.0, 0.0))
    render = render_camera(scene, CAMERA, T_world_base @ rig.T_base_optical)
    scan = simulate_lidar(scene, EXACT_LIDAR, T_world_base @ rig.T_base_lidar, np.random.default_rng(0))
    camera_points = scan.points.astype(float) @ rig.T_optical_lidar[:3, :3].T + rig.T_optical_lidar[:3, 3]
    in_front = camera_points[camera_points[:, 2] > 0]
    uv = in_front @ CAMERA.K.T
    u, v = np.round(uv[:, 0] / uv[:, 2]).astype(int), np.round(uv[:, 1] / uv[:, 2]).astype(int)
    inside = (u >= 0) & (u < CAMERA.width) & (v >= 0) & (v < CAMERA.height)
    assert inside.sum() > 100
    np.testing.assert_allclose(in_front[inside, 2], render.depth[v[inside], u[inside]], rtol=1e-5)
    # and the rig's extrinsic is the composition of the two mounts
    np.testing.assert_allclose(rig.T_optical_lidar @ invert_transform(rig.T_base_lidar),
                               invert_transform(rig.T_base_optical), atol=1e-12)


def test_sequence_is_deterministic_by_seed_and_stands_still_in_the_stop():
    config = SequenceConfig(n_frames=4, stop_frames=(1, 3), camera=CAMERA,
                            lidar=dataclasses.replace(LidarConfig(), azimuth_steps=90))
    first, second = list(render_sequence(config)), list(render_sequence(config))
    other = list(render_sequence(dataclasses.replace(config, seed=1)))
    for a, b in zip(first, second):
        assert np.array_equal(a.camera.rgb, b.camera.rgb)
        assert np.array_equal(a.lidar.points, b.lidar.points)
    assert not np.array_equal(first[0].lidar.points, other[0].lidar.points)
    assert [f.stamp_ns - first[0].stamp_ns for f in first] == [0, 100_000_000, 200_000_000, 300_000_000]
    np.testing.assert_array_equal(first[1].T_world_base, first[2].T_world_base)  # stopped
    assert first[3].T_world_base[0, 3] > first[2].T_world_base[0, 3]
    assert first[0].camera.rgb.dtype == np.uint8 and first[0].camera.rgb.std() > 10  # textured, not flat
