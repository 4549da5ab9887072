"""The evaluator tests' exact scene: a static camera with a co-located LiDAR (no parallax) facing fronto-parallel
boards whose edges fall on pixel boundaries, so every LiDAR point's pixel shows exactly that point's depth, and
a predictor that returns the rendered truth (optionally affinely distorted or with a wrong region)."""

import hashlib

import numpy as np

from dpt_ros.sim.drive import SensorRig, SequenceConfig, render_sequence
from dpt_ros.sim.scene import (
    R_BASE_OPTICAL,
    Box,
    LidarConfig,
    PinholeCamera,
    Plane,
    Scene,
    Surface,
    make_transform,
    rotation_rpy,
)

CAMERA = PinholeCamera(width=160, height=120, fx=125.0, fy=125.0, cx=79.5, cy=59.5)
CAMERA_HEIGHT = 1.5
# (depth m, first col, last col, first row, last row): edges at half-pixel coordinates
BOARDS = ((6.0, 10, 60, 50, 110), (15.0, 70, 110, 30, 90), (30.0, 115, 150, 20, 70), (45.0, 20, 50, 10, 40))
N_FRAMES = 4


def _board(depth: float, col0: int, col1: int, row0: int, row1: int) -> Box:
    """A thin box whose front face, seen from the camera at the origin, covers exactly those pixels."""
    u0, u1 = col0 - 0.5, col1 + 0.5
    v0, v1 = row0 - 0.5, row1 + 0.5
    # optical x = −world y, optical y = −(world z − camera height), optical z = world x
    y_left, y_right = -(u0 - CAMERA.cx) / CAMERA.fx * depth, -(u1 - CAMERA.cx) / CAMERA.fx * depth
    z_top = CAMERA_HEIGHT - (v0 - CAMERA.cy) / CAMERA.fy * depth
    z_bottom = CAMERA_HEIGHT - (v1 - CAMERA.cy) / CAMERA.fy * depth
    center = (depth + 1e-5, (y_left + y_right) / 2, (z_top + z_bottom) / 2)
    half = (1e-5, (y_left - y_right) / 2, (z_top - z_bottom) / 2)  # paper-thin: no side faces in view
    return Box(center, half, Surface((0.8, 0.3, 0.2), checker_size=0.3))


def exact_config(seed: int = 0) -> SequenceConfig:
    scene = Scene((Plane((-1.0, 0.0, 0.0), -70.0, Surface((0.6, 0.6, 0.5), 2.0)),) + tuple(_board(*b) for b in BOARDS))
    optical = make_transform(R_BASE_OPTICAL, (0.0, 0.0, CAMERA_HEIGHT))
    lidar = make_transform(rotation_rpy(0.01, 0.03, 0.2), (0.0, 0.0, CAMERA_HEIGHT))  # same centre, rotated
    return SequenceConfig(
        n_frames=N_FRAMES, speed=0.0, stop_frames=None, camera=CAMERA, seed=seed, scene=scene,
        lidar=LidarConfig(range_noise_std=0.0, dropout_probability=0.1, edge_leak_probability=0.0),
        rig=SensorRig(T_base_optical=optical, T_base_lidar=lidar),
    )


class TruthPredictor:
    """Relative inverse depth a/z + b from the rendered truth (images are looked up by content)."""

    def __init__(self, config: SequenceConfig, a: float = 1.0, b: float = 0.0, corrupt_cols: int = 0) -> None:
        self.depth = {hashlib.sha1(f.camera.rgb.tobytes()).hexdigest(): f.camera.depth for f in render_sequence(config)}
        self.a, self.b, self.corrupt_cols = a, b, corrupt_cols

    def infer(self, rgb: np.ndarray) -> np.ndarray:
        depth = self.depth[hashlib.sha1(rgb.tobytes()).hexdigest()].copy()
        depth[:, : self.corrupt_cols] *= 1.5  # a wrong region: 50 % too far
        return (self.a / depth + self.b).astype(np.float32)
