"""`dpt-ros-make-sample`: write a small, deterministic rosbag of a synthetic drive (camera + 32-beam LiDAR + TF).

Topics (camera and LiDAR share each frame's header stamp; the bag records the image 5 ms after the scan):
  /camera/image_raw    sensor_msgs/Image rgb8,         frame camera_optical_frame
  /camera/camera_info  sensor_msgs/CameraInfo,         frame camera_optical_frame
  /lidar/points        sensor_msgs/PointCloud2 x,y,z,intensity float32 + ring uint16, frame lidar
  /tf_static           base_link→camera_optical_frame, base_link→lidar (latched)
  /tf                  odom→base_link per frame
  /camera/depth_gt     sensor_msgs/Image 32FC1 metres or 16UC1 mm, the exact depth (only with --ground-truth)
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from dpt_ros.bags.rosbag_io import (
    CAMERA_INFO,
    IMAGE,
    POINT_CLOUD,
    STORAGE_FORMATS,
    TF_MESSAGE,
    BagError,
    BagWriter,
    make_camera_info,
    make_image,
    make_point_cloud,
    make_tf_message,
)
from dpt_ros.pipeline.image_codec import depth_to_16uc1_mm
from dpt_ros.sim.drive import SequenceConfig, render_sequence
from dpt_ros.sim.scene import LidarConfig, PinholeCamera

IMAGE_TOPIC = "/camera/image_raw"
GROUND_TRUTH_TOPIC = "/camera/depth_gt"
CAMERA_INFO_TOPIC = "/camera/camera_info"
LIDAR_TOPIC = "/lidar/points"
CAMERA_FRAME = "camera_optical_frame"
LIDAR_FRAME = "lidar"
BASE_FRAME = "base_link"
ODOM_FRAME = "odom"
IMAGE_LATENCY_NS = 5_000_000  # receive time of an image after its header stamp


@dataclass(frozen=True)
class SampleBag:
    path: Path
    storage: str
    n_frames: int
    n_lidar_points: int


def write_sample_bag(path: Path | str, storage: str = "mcap", config: SequenceConfig = SequenceConfig(),
                     overwrite: bool = False, progress: bool = False, ground_truth: str | None = None,
                     ring_field: bool = True) -> SampleBag:
    """Render ``config``'s drive and record it; ``storage`` is one of mcap, sqlite3, ros1.

    ground_truth: "32FC1" or "16UC1" also records the exact depth on GROUND_TRUTH_TOPIC (same header stamp as
    the image). ring_field: False leaves the LiDAR cloud without its ``ring`` field (x, y, z, intensity only).
    """
    n_points = 0
    with BagWriter(path, storage, overwrite=overwrite) as bag:
        if ground_truth is not None:
            bag.add_topic(GROUND_TRUTH_TOPIC, IMAGE)
        bag.add_topic("/tf_static", TF_MESSAGE, latched=True)
        bag.add_topic("/tf", TF_MESSAGE)
        bag.add_topic(CAMERA_INFO_TOPIC, CAMERA_INFO)
        bag.add_topic(IMAGE_TOPIC, IMAGE)
        bag.add_topic(LIDAR_TOPIC, POINT_CLOUD)
        static = [(BASE_FRAME, CAMERA_FRAME, config.rig.T_base_optical),
                  (BASE_FRAME, LIDAR_FRAME, config.rig.T_base_lidar)]
        bag.write("/tf_static", config.start_time_ns, make_tf_message(static, config.start_time_ns))
        camera = config.camera
        frames = render_sequence(config)
        for frame in tqdm(frames, total=config.n_frames, desc="rendering sample", unit="frame", disable=not progress):
            stamp = frame.stamp_ns
            bag.write("/tf", stamp, make_tf_message([(ODOM_FRAME, BASE_FRAME, frame.T_world_base)], stamp))
            scan = frame.lidar
            cloud = {"x": scan.points[:, 0], "y": scan.points[:, 1], "z": scan.points[:, 2],
                     "intensity": scan.intensity, **({"ring": scan.ring} if ring_field else {})}
            bag.write(LIDAR_TOPIC, stamp, make_point_cloud(cloud, stamp, LIDAR_FRAME))
            # the image arrives a little after the scan taken at the same instant (transfer latency), so a live
            # node, which pairs an image with the scans it already has, sees the same pairs as the evaluator
            received = stamp + IMAGE_LATENCY_NS
            bag.write(CAMERA_INFO_TOPIC, received, make_camera_info(camera.K, camera.width, camera.height, stamp,
                                                                    CAMERA_FRAME))
            bag.write(IMAGE_TOPIC, received, make_image(frame.camera.rgb, "rgb8", stamp, CAMERA_FRAME))
            if ground_truth == "16UC1":
                bag.write(GROUND_TRUTH_TOPIC, received, make_image(depth_to_16uc1_mm(frame.camera.depth), "16UC1",
                                                                   stamp, CAMERA_FRAME))
            elif ground_truth is not None:
                bag.write(GROUND_TRUTH_TOPIC, received, make_image(frame.camera.depth, ground_truth, stamp,
                                                                   CAMERA_FRAME))
            n_points += len(scan.points)
    return SampleBag(Path(path), storage, config.n_frames, n_points)


def sample_config(frames: int = 20, width: int = 320, height: int = 240, seed: int = 0, noise: float = 0.02,
                  dropout: float = 0.05, edge_leak: float = 0.5) -> SequenceConfig:
    """The sample drive at another size or error model; the focal length scales with the width (≈65° HFOV)."""
    focal = 250.0 * width / 320.0
    camera = PinholeCamera(width=width, height=height, fx=focal, fy=focal, cx=(width - 1) / 2, cy=(height - 1) / 2)
    lidar = dataclasses.replace(LidarConfig(), range_noise_std=noise, dropout_probability=dropout,
                                edge_leak_probability=edge_leak)
    stop = (frames * 2 // 5, frames * 3 // 5) if frames >= 5 else None
    return SequenceConfig(n_frames=frames, camera=camera, lidar=lidar, seed=seed, stop_frames=stop)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dpt-ros-make-sample", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("output", type=Path, help="bag to write: a directory for mcap/sqlite3, a .bag file for ros1")
    parser.add_argument("--format", choices=STORAGE_FORMATS, default="mcap")
    parser.add_argument("--frames", type=int, default=20)
    parser.add_argument("--width", type=int, default=320)
    parser.add_argument("--height", type=int, default=240)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lidar-noise", type=float, default=0.02, help="range noise std (m)")
    parser.add_argument("--dropout", type=float, default=0.05, help="fraction of LiDAR returns lost")
    parser.add_argument("--edge-leak", type=float, default=0.5, help="probability of a mixed return at an edge")
    parser.add_argument("--ground-truth", choices=("32FC1", "16UC1"),
                        help=f"also record the exact depth on {GROUND_TRUTH_TOPIC} (32FC1 metres or 16UC1 mm)")
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args(argv)
    if args.frames < 1 or args.width < 16 or args.height < 16:
        parser.error("need at least 1 frame and a 16×16 image")
    config = sample_config(args.frames, args.width, args.height, args.seed, args.lidar_noise, args.dropout,
                           args.edge_leak)
    try:
        bag = write_sample_bag(args.output, args.format, config, overwrite=args.overwrite, progress=True,
                               ground_truth=args.ground_truth)
    except BagError as error:
        print(f"dpt-ros-make-sample: {error}", file=sys.stderr)
        return 2
    print(f"wrote {bag.path} ({bag.storage}): {bag.n_frames} frames, {bag.n_lidar_points} LiDAR points")
    return 0


if __name__ == "__main__":
    sys.exit(main())
