"""A tiny KITTI-format dataset rendered from synthetic street scenes with exact depth.

Each drive is a street of `dpt_ros.sim` primitives (a road, two building walls, a few boxes, sky, fog), ray-cast
by the simulator's camera renderer so every pixel's depth is known exactly; where ground truth exists comes from
the simulator's spinning LiDAR. The writer produces the real KITTI layout:

    <root>/raw/<date>/<date>_drive_<NNNN>_sync/image_02/data/<frame:010d>.png        RGB uint8
    <root>/raw/<date>/<date>_drive_<NNNN>_sync/velodyne_points/data/<frame:010d>.bin  float32 x y z r (optional)
    <root>/raw/<date>/calib_cam_to_cam.txt, calib_velo_to_cam.txt                     (optional)
    <root>/depth/<date>_drive_<NNNN>_sync/proj_depth/groundtruth/image_02/<frame:010d>.png  uint16, m*256
    <root>/splits/{train,val,test}.txt   lines "rgb_path gt_path focal", gt_path "None" without ground truth

Like the real annotated depth, ground truth starts at frame 5 of each drive and is sparse (the LiDAR's scan
lines over the lower part of the image), so earlier frames appear in the splits with "None".
Used by the tests and for smoke runs (docs/training.md, section 4); not a substitute for KITTI.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from dpt_ros.geometry.camera import PinholeIntrinsics
from dpt_ros.geometry.lidar_projection import project_points
from dpt_ros.geometry.transforms import OPTICAL_FROM_LIDAR_ROTATION, make_transform, rotation_rpy
from dpt_ros.sim.scene import Box, LidarConfig, Scene, Surface, render_camera, simulate_lidar

DATE = "2011_09_26"
KITTI_FOCAL = 721.5377
KITTI_WIDTH = 1242
CAMERA_HEIGHT = 1.65  # metres above the road, as on the KITTI car
FAR_LIMIT = 90.0  # walls and road end here; beyond is sky (no depth)
FOG_DISTANCE = 40.0  # metres; atmospheric fading gives the network a depth cue a tiny model can learn
SKY_RGB = np.array([170.0, 200.0, 235.0])
STEREO_BASELINE = 0.06  # metres between rectified camera 0 and camera 2 (x offset in P_rect_02)
# Scenes are built in the optical frame of camera 2 at frame 0 (x right, y down, z forward); the car drives
# along +z, so the road surface is the plane y = CAMERA_HEIGHT. Road and walls are slabs this thick (metres);
# the boxes are boards facing the car.
_SLAB = 1.0
_BOARD = 0.05
# Unlit, plain checkered surfaces under fog: the tiny test network learns metric depth from them well enough
# for the relative-to-metric recipe to recover the head constants (test_train_loop); shading and fine texture
# made its depth range shrink.
_ROAD = Surface((0.39, 0.39, 0.41), checker_size=2.0, lidar_albedo=0.2, detail=0.0)
_WALL = Surface((0.65, 0.5, 0.38), checker_size=1.5, lidar_albedo=0.6, detail=0.0)
_BOX_COLOURS = ((0.78, 0.16, 0.16), (0.16, 0.63, 0.24), (0.9, 0.78, 0.2), (0.24, 0.31, 0.78))


@dataclass(frozen=True)
class SyntheticKittiSpec:
    """Size and content of the generated dataset. Focal defaults to KITTI's, scaled to the width.

    lidar_rows: beams of the spinning LiDAR that cross the lower 60 % of the image; lidar_points_per_row:
    its azimuth steps across the image width.
    """

    height: int = 375
    width: int = 1242
    drives: int = 3
    frames_per_drive: int = 8
    first_annotated_frame: int = 5
    lidar_rows: int = 48
    lidar_points_per_row: int = 300
    write_velodyne: bool = False
    seed: int = 0

    @property
    def focal(self) -> float:
        return KITTI_FOCAL * self.width / KITTI_WIDTH

    @property
    def camera(self) -> PinholeIntrinsics:
        """Rectified camera 2: square pixels, principal point at the image centre."""
        return PinholeIntrinsics(self.focal, self.focal, (self.width - 1) / 2.0, (self.height - 1) / 2.0,
                                 self.width, self.height)


@dataclass(frozen=True)
class _Street:
    left_wall: float  # metres to the left wall (x = -left_wall)
    right_wall: float
    wall_height: float
    boxes: np.ndarray  # (B, 5): x_min, x_max, height, z at frame 0, colour index
    speed: float  # metres per frame


def _drive_street(spec: SyntheticKittiSpec, drive: int) -> _Street:
    rng = np.random.default_rng([spec.seed, drive])
    count = 4
    x_min = rng.uniform(-6.0, 4.0, count)
    boxes = np.stack(
        [x_min, x_min + rng.uniform(1.5, 3.0, count), rng.uniform(1.2, 3.0, count),
         rng.uniform(8.0, 60.0, count), rng.integers(0, 4, count)], axis=1
    )
    return _Street(rng.uniform(5.0, 9.0), rng.uniform(5.0, 9.0), rng.uniform(6.0, 15.0), boxes,
                   rng.uniform(0.5, 1.5))


def _frame_scene(street: _Street, camera_z: float) -> Scene:
    """The street as `dpt_ros.sim` primitives; boxes the camera at depth camera_z has (nearly) reached are gone."""
    road_top, far = CAMERA_HEIGHT, FAR_LIMIT + camera_z
    primitives = [
        Box.from_corners((-street.left_wall - _SLAB, road_top, camera_z), (street.right_wall + _SLAB,
                         road_top + _SLAB, far), _ROAD),
        Box.from_corners((-street.left_wall - _SLAB, road_top - street.wall_height, camera_z),
                         (-street.left_wall, road_top, far), _WALL),
        Box.from_corners((street.right_wall, road_top - street.wall_height, camera_z),
                         (street.right_wall + _SLAB, road_top, far), _WALL),
    ]
    for x_min, x_max, height, z0, colour in street.boxes:
        if z0 - camera_z > 1.0:
            surface = Surface(_BOX_COLOURS[int(colour)], checker_size=0.5, lidar_albedo=0.8, detail=0.0)
            primitives.append(Box.from_corners((x_min, road_top - height, z0), (x_max, road_top, z0 + _BOARD), surface))
    return Scene(tuple(primitives), sky_color=tuple(SKY_RGB / 255.0), ambient=1.0, fog_distance=FOG_DISTANCE)


def _camera_pose(street: _Street, frame: int) -> np.ndarray:
    """T_world_optical of camera 2 at `frame`: driving along +z (textures stay put in the world frame)."""
    return make_transform(np.eye(3), (0.0, 0.0, street.speed * frame))


def render_frame(spec: SyntheticKittiSpec, drive: int, frame: int) -> tuple[np.ndarray, np.ndarray]:
    """Ray-cast one frame of a drive (`dpt_ros.sim.scene.render_camera`).

    Returns rgb (H, W, 3) uint8 and depth (H, W) float64 metres along the optical axis of camera 2,
    0 where the ray sees sky. Deterministic in (spec, drive, frame).
    """
    street = _drive_street(spec, drive)
    pose = _camera_pose(street, frame)
    render = render_camera(_frame_scene(street, pose[2, 3]), spec.camera, pose)
    return render.rgb, np.nan_to_num(render.depth.astype(np.float64), nan=0.0)


def _lidar_config(spec: SyntheticKittiSpec) -> LidarConfig:
    """A spinning LiDAR whose `lidar_rows` beams span the lower 60 % of the image and whose azimuth steps put
    `lidar_points_per_row` returns across its width."""
    camera = spec.camera
    top, bottom = (np.array([0.4 * spec.height, spec.height - 1.0]) - camera.cy) / camera.fy  # y/z, y down
    horizontal_fov = 2.0 * np.arctan2(spec.width / 2.0, camera.fx)
    return LidarConfig(
        n_beams=spec.lidar_rows, elevation_min_deg=float(-np.rad2deg(np.arctan(bottom))),
        elevation_max_deg=float(-np.rad2deg(np.arctan(top))),
        azimuth_steps=max(1, round(spec.lidar_points_per_row * 2.0 * np.pi / horizontal_fov)),
        max_range=100.0,
    )  # fmt: skip


def lidar_mask(spec: SyntheticKittiSpec, drive: int, frame: int, depth: np.ndarray) -> np.ndarray:
    """Where ground truth exists: the pixels a simulated spinning LiDAR at the camera returns from
    (`dpt_ros.sim.scene.simulate_lidar`, with its dropouts; its azimuth phase differs per frame).

    Returns (H, W) bool, only where the camera ray hits a surface (no 80 m cap: that is an evaluation choice,
    the PNG keeps what the sensor saw).
    """
    rng = np.random.default_rng([spec.seed, drive, frame, 1])
    street = _drive_street(spec, drive)
    camera_pose = _camera_pose(street, frame)
    # LiDAR axes (x forward, y left, z up) at the camera centre, turned by a random fraction of an azimuth step
    config = _lidar_config(spec)
    phase = rotation_rpy(0.0, 0.0, rng.uniform(0.0, 2.0 * np.pi / config.azimuth_steps))
    T_optical_lidar = make_transform(OPTICAL_FROM_LIDAR_ROTATION @ phase, (0.0, 0.0, 0.0))
    scan = simulate_lidar(_frame_scene(street, camera_pose[2, 3]), config, camera_pose @ T_optical_lidar, rng)
    hits = project_points(scan.points, T_optical_lidar, spec.camera.K, (spec.width, spec.height), min_range=0.0)
    mask = np.zeros(depth.shape, dtype=bool)
    mask[hits.row, hits.col] = True
    return mask & (depth > 0)


def encode_depth_png(depth: np.ndarray) -> np.ndarray:
    """KITTI encoding: uint16 = round(metres * 256), 0 = invalid. depth: (H, W) metres, 0 where invalid."""
    return np.clip(np.rint(depth * 256.0), 0, np.iinfo(np.uint16).max).astype(np.uint16)


def synthetic_calibration(spec: SyntheticKittiSpec) -> dict[str, np.ndarray]:
    """KITTI-like calibration: P_rect_02 (3x4), R_rect_00 (3x3), velo-to-cam R (3x3) and T (3,)."""
    f, cx, cy = spec.focal, (spec.width - 1) / 2.0, (spec.height - 1) / 2.0
    projection = np.array([[f, 0.0, cx, f * STEREO_BASELINE], [0.0, f, cy, 0.0], [0.0, 0.0, 1.0, 0.0]])
    small = np.deg2rad(0.5)
    rectification = np.array(
        [[np.cos(small), 0.0, np.sin(small)], [0.0, 1.0, 0.0], [-np.sin(small), 0.0, np.cos(small)]]
    )
    # velodyne axes (x forward, y left, z up) to camera axes (x right, y down, z forward)
    velo_to_cam_rotation = np.array([[0.0, -1.0, 0.0], [0.0, 0.0, -1.0], [1.0, 0.0, 0.0]])
    return {"P_rect_02": projection, "R_rect_00": rectification, "R": velo_to_cam_rotation,
            "T": np.array([0.02, -0.08, -0.27])}


def velodyne_points(spec: SyntheticKittiSpec, depth: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Back-project the ground-truth pixels into the Velodyne frame. Returns (M, 4) float32 x, y, z, reflectance.

    Inverse of the KITTI projection pixel ~ P_rect_02 @ R_rect_00 @ (R @ x_velo + T), so projecting these
    points with the calibration reproduces the ground-truth PNG exactly (up to float32 rounding).
    """
    calib = synthetic_calibration(spec)
    rows, cols = np.nonzero(mask)
    z = depth[rows, cols]
    f, cx, cy = spec.focal, calib["P_rect_02"][0, 2], calib["P_rect_02"][1, 2]
    rectified = np.stack([(cols - cx) * z / f - STEREO_BASELINE, (rows - cy) * z / f, z], axis=1)
    camera = rectified @ calib["R_rect_00"]  # R_rect^T applied to row vectors
    velodyne = (camera - calib["T"]) @ calib["R"]
    reflectance = np.full((velodyne.shape[0], 1), 0.5)
    return np.concatenate([velodyne, reflectance], axis=1).astype(np.float32)


def _write_calibration(spec: SyntheticKittiSpec, date_dir: Path) -> None:
    calib = synthetic_calibration(spec)

    def line(key: str, values: np.ndarray) -> str:
        return f"{key}: " + " ".join(f"{v:.12e}" for v in values.ravel()) + "\n"

    (date_dir / "calib_cam_to_cam.txt").write_text(
        "calib_time: synthetic\n" + line("R_rect_00", calib["R_rect_00"]) + line("P_rect_02", calib["P_rect_02"])
    )
    (date_dir / "calib_velo_to_cam.txt").write_text(
        "calib_time: synthetic\n" + line("R", calib["R"]) + line("T", calib["T"])
    )


def _write_png(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), array):
        raise OSError(f"could not write {path}")


def write_synthetic_kitti(root: str | Path, spec: SyntheticKittiSpec = SyntheticKittiSpec()) -> dict[str, Path]:
    """Write the dataset under root. Drives 1..drives-1 go to train, the last drive to val and test.

    Returns {"image_root", "depth_root", "train", "val", "test"} paths (split files list frames without
    ground truth with gt "None"; the train split keeps only annotated frames, as the public lists do).
    """
    root = Path(root)
    image_root, depth_root, split_dir = root / "raw", root / "depth", root / "splits"
    split_dir.mkdir(parents=True, exist_ok=True)
    if spec.write_velodyne:
        (image_root / DATE).mkdir(parents=True, exist_ok=True)
        _write_calibration(spec, image_root / DATE)
    lines: dict[str, list[str]] = {"train": [], "val": [], "test": []}
    for drive in range(1, spec.drives + 1):
        drive_name = f"{DATE}_drive_{drive:04d}_sync"
        for frame in range(spec.frames_per_drive):
            rgb, depth = render_frame(spec, drive, frame)
            rgb_relative = f"{DATE}/{drive_name}/image_02/data/{frame:010d}.png"
            _write_png(image_root / rgb_relative, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
            mask = lidar_mask(spec, drive, frame, depth)
            if spec.write_velodyne:  # raw scans exist for every frame, annotations only from frame 5 on
                bin_path = image_root / f"{DATE}/{drive_name}/velodyne_points/data/{frame:010d}.bin"
                bin_path.parent.mkdir(parents=True, exist_ok=True)
                velodyne_points(spec, depth, mask).tofile(bin_path)
            gt_relative = "None"
            if frame >= spec.first_annotated_frame:
                gt_relative = f"{drive_name}/proj_depth/groundtruth/image_02/{frame:010d}.png"
                _write_png(depth_root / gt_relative, encode_depth_png(np.where(mask, depth, 0.0)))
            line = f"{rgb_relative} {gt_relative} {spec.focal:.4f}"
            if drive < spec.drives:
                if gt_relative != "None":
                    lines["train"].append(line)
            else:
                lines["val"].append(line)
                lines["test"].append(line)
    paths = {"image_root": image_root, "depth_root": depth_root}
    for split, split_lines in lines.items():
        paths[split] = split_dir / f"{split}.txt"
        paths[split].write_text("\n".join(split_lines) + "\n")
    return paths


def main(argv: list[str] | None = None) -> None:
    """`python -m dpt_train.synthetic_kitti OUT_DIR [--height H --width W ...]`"""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root")
    parser.add_argument("--height", type=int, default=375)
    parser.add_argument("--width", type=int, default=1242)
    parser.add_argument("--drives", type=int, default=3)
    parser.add_argument("--frames-per-drive", type=int, default=8)
    parser.add_argument("--velodyne", action="store_true")
    args = parser.parse_args(argv)
    spec = SyntheticKittiSpec(height=args.height, width=args.width, drives=args.drives,
                              frames_per_drive=args.frames_per_drive, write_velodyne=args.velodyne)
    for name, path in write_synthetic_kitti(args.root, spec).items():
        print(f"{name}: {path}")


if __name__ == "__main__":
    main()
