"""The sample drive: a street scene, a vehicle with a camera + LiDAR rig, a trajectory with a stop, and the
frames the sensors see along it (exact depth, textured RGB, LiDAR returns with their error model).

Built on the ray caster and sensor models of `dpt_ros.sim.scene`; used by the sample rosbag
generator, the demo and the tests. Deterministic for a given seed. Frames follow ROS conventions: world and
``base_link`` x forward, y left, z up; ``T_a_b`` maps frame-b coordinates into frame a.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from dpt_ros.geometry.camera import PinholeIntrinsics
from dpt_ros.geometry.transforms import R_BASE_OPTICAL, invert_transform, make_transform, rotation_rpy
from dpt_ros.sim.scene import (
    Box,
    CameraRender,
    LidarConfig,
    LidarScan,
    Plane,
    Primitive,
    Scene,
    Sphere,
    Surface,
    render_camera,
    simulate_lidar,
)


@dataclass(frozen=True)
class SensorRig:
    """Sensor mounting on the vehicle: ``T_base_optical`` and ``T_base_lidar``."""

    T_base_optical: np.ndarray = field(
        default_factory=lambda: make_transform(R_BASE_OPTICAL @ rotation_rpy(0.0, 0.0, 0.0), (1.2, 0.1, 1.5))
    )
    # the LiDAR sits higher and further back, slightly yawed and pitched, so the extrinsic is not a pure shift
    T_base_lidar: np.ndarray = field(
        default_factory=lambda: make_transform(rotation_rpy(0.0, np.deg2rad(1.5), np.deg2rad(2.0)), (0.9, 0.0, 1.9))
    )

    @property
    def T_optical_lidar(self) -> np.ndarray:
        """Maps LiDAR-frame points into the camera optical frame (the projection extrinsic)."""
        return invert_transform(self.T_base_optical) @ self.T_base_lidar


def drive_scene(seed: int = 0) -> Scene:
    """A street canyon: road, two façades, a far wall ~70 m ahead, parked boxes, poles and spheres at 4–60 m."""
    rng = np.random.default_rng(seed)
    road = Surface((0.45, 0.45, 0.47), checker_size=2.0, lidar_albedo=0.2)
    primitives: list[Primitive] = [
        Plane((0.0, 0.0, 1.0), 0.0, road),
        Plane((0.0, -1.0, 0.0), -9.0, Surface((0.75, 0.55, 0.45), checker_size=1.5, lidar_albedo=0.6)),  # y=9
        Plane((0.0, 1.0, 0.0), -9.0, Surface((0.6, 0.62, 0.7), checker_size=1.2, lidar_albedo=0.5)),  # y=−9
        Plane((-1.0, 0.0, 0.0), -75.0, Surface((0.7, 0.7, 0.6), checker_size=3.0, lidar_albedo=0.7)),  # x=75
    ]
    palette = [(0.8, 0.2, 0.2), (0.2, 0.35, 0.8), (0.9, 0.8, 0.2), (0.2, 0.7, 0.3), (0.85, 0.85, 0.85)]
    for x in np.linspace(8.0, 60.0, 7):
        side = rng.choice([-1.0, 1.0])
        lane_offset = rng.uniform(3.5, 6.5)
        half = (rng.uniform(1.6, 2.4), rng.uniform(0.8, 1.0), rng.uniform(0.7, 1.1))
        color = palette[int(rng.integers(len(palette)))]
        primitives.append(
            Box((x + rng.uniform(-2, 2), side * lane_offset, half[2]), half, Surface(color, 0.5, 0.8),
                yaw=rng.uniform(-0.2, 0.2))
        )
    for x in np.linspace(6.0, 50.0, 5):
        side = rng.choice([-1.0, 1.0])
        primitives.append(Box((x, side * 7.5, 2.5), (0.12, 0.12, 2.5), Surface((0.3, 0.3, 0.3), 0.3, 0.4)))
    for x in (12.0, 25.0, 40.0):
        radius = rng.uniform(0.6, 1.2)
        primitives.append(
            Sphere((x, rng.uniform(-2.5, 2.5), radius + rng.uniform(0.0, 1.5)), radius,
                   Surface(palette[int(rng.integers(len(palette)))], 0.4, 0.5))
        )
    return Scene(primitives=tuple(primitives))


def vehicle_trajectory(
    n_frames: int, frame_period: float = 0.1, speed: float = 5.0, stop_frames: tuple[int, int] | None = None,
    yaw_amplitude_deg: float = 2.0,
) -> list[np.ndarray]:
    """``T_world_base`` per frame: driving along +x at ``speed`` m/s with a gentle yaw sway, standing still
    for frames in ``[stop_frames[0], stop_frames[1])`` (so some consecutive frames see a static scene)."""
    poses, x = [], 0.0
    for i in range(n_frames):
        moving = stop_frames is None or not (stop_frames[0] <= i < stop_frames[1])
        if i > 0 and moving:
            x += speed * frame_period
        yaw = np.deg2rad(yaw_amplitude_deg) * np.sin(0.35 * x)
        poses.append(make_transform(rotation_rpy(0.0, 0.0, yaw), (x, 0.4 * np.sin(0.2 * x), 0.0)))
    return poses


@dataclass(frozen=True)
class SequenceConfig:
    """Everything that defines a synthetic drive; equal configs give bit-identical frames."""

    n_frames: int = 20
    frame_period: float = 0.1  # seconds
    start_time_ns: int = 1_700_000_000_000_000_000
    speed: float = 5.0
    stop_frames: tuple[int, int] | None = (8, 12)
    camera: PinholeIntrinsics = PinholeIntrinsics(fx=250.0, fy=250.0, cx=159.5, cy=119.5, width=320, height=240)
    lidar: LidarConfig = LidarConfig()
    rig: SensorRig = field(default_factory=SensorRig)
    seed: int = 0
    scene: Scene | None = None  # None: drive_scene(seed)


@dataclass(frozen=True)
class SyntheticFrame:
    index: int
    stamp_ns: int
    T_world_base: np.ndarray
    camera: CameraRender
    lidar: LidarScan


def render_sequence(config: SequenceConfig = SequenceConfig()) -> Iterator[SyntheticFrame]:
    """Yields the frames of the drive; camera and LiDAR share each frame's stamp and vehicle pose."""
    scene = config.scene if config.scene is not None else drive_scene(config.seed)
    rng = np.random.default_rng(config.seed + 1)
    poses = vehicle_trajectory(config.n_frames, config.frame_period, config.speed, config.stop_frames)
    for index, T_world_base in enumerate(poses):
        yield SyntheticFrame(
            index=index,
            stamp_ns=config.start_time_ns + round(index * config.frame_period * 1e9),
            T_world_base=T_world_base,
            camera=render_camera(scene, config.camera, T_world_base @ config.rig.T_base_optical),
            lidar=simulate_lidar(scene, config.lidar, T_world_base @ config.rig.T_base_lidar, rng),
        )
