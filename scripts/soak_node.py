#!/usr/bin/env python3
"""Soak the depth node: a 30 Hz camera + 10 Hz LiDAR for --minutes, sampling the node's memory.

The node runs as a child process (`python scripts/soak_node.py --child ...`) with tracemalloc on: every
--trace-period seconds it appends its Python heap total and top allocation sites to `tracemalloc.csv`.
This process publishes a 640x480 rgb8 image + camera_info at 30 Hz and an organised 16-beam scan at
10 Hz (wall-clock stamps), counts the node's depth outputs and samples /proc/<pid>/status (VmRSS, RssAnon)
every second into `rss.csv`. At the end: `soak.png` (RSS, RssAnon and traced Python heap over time, plus the
five largest allocation sites) and a one-line summary with the heap floor of each tenth of the run.

Reduced random-weight architecture, metric preset (dpt_hybrid_kitti), LiDAR alignment on, CPU:

    nice -n 19 python scripts/soak_node.py --minutes 30 --out /tmp/soak
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import signal
import subprocess
import sys
import threading
import time
import tracemalloc
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

WIDTH, HEIGHT, FOCAL = 640, 480, 500.0
CAMERA_HZ, LIDAR_HZ = 30.0, 10.0
LIDAR_POSITION = (0.0, -0.3, -0.1)  # camera optical frame: 0.3 m up, 0.1 m back
REDUCED_ARCHITECTURE = {"backbone": "vit", "embed_dim": 64, "depth": 4, "num_heads": 2, "taps": [0, 1, 2, 3],
                        "reassemble_channels": [16, 32, 64, 64], "features": 32}  # fmt: skip
TOP_SITES = 10


# --- child: the node with tracemalloc -------------------------------------------------------------------


def _trace_loop(path: Path, period_s: float, stop: threading.Event) -> None:
    """Append (t, traced current/peak, rank, site, size, count) rows every period_s until `stop`."""
    started = time.monotonic()
    with open(path, "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["t_s", "traced_bytes", "traced_peak_bytes", "rank", "site", "size_bytes", "count"])
        while not stop.wait(period_s):
            current, peak = tracemalloc.get_traced_memory()
            stats = tracemalloc.take_snapshot().filter_traces(
                [tracemalloc.Filter(False, tracemalloc.__file__)]).statistics("lineno")  # fmt: skip
            now = time.monotonic() - started
            for rank, stat in enumerate(stats[:TOP_SITES]):
                frame = stat.traceback[0]
                site = f"{os.path.relpath(frame.filename, REPO_ROOT)}:{frame.lineno}"
                writer.writerow([f"{now:.1f}", current, peak, rank, site, stat.size, stat.count])
            file.flush()


def run_child(trace_csv: Path, period_s: float, ros_args: list[str]) -> int:
    tracemalloc.start(1)
    stop = threading.Event()
    tracer = threading.Thread(target=_trace_loop, args=(trace_csv, period_s, stop), daemon=True)
    tracer.start()
    from dpt_ros.ros.depth_node import main

    try:
        return main([sys.argv[0], *ros_args])
    finally:
        stop.set()
        tracer.join(timeout=period_s + 60)


# --- parent: the sensors and the sampling ---------------------------------------------------------------


def _memory(pid: int) -> dict[str, int]:
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "RssAnon"):
            values[key] = int(rest.split()[0]) * 1024
    return values


def _sensor_messages():
    """A camera image, camera_info and a LiDAR cloud of the sim's street scene (stamps set when sent)."""
    from scipy.spatial.transform import Rotation
    from sensor_msgs.msg import CameraInfo, Image, PointCloud2, PointField

    from dpt_ros.sim.scene import OPTICAL_FROM_LIDAR_ROTATION, pose, spinning_lidar_scan, street_scene

    u, v = np.meshgrid(np.arange(WIDTH), np.arange(HEIGHT))
    rgb = np.stack([u * 255 // (WIDTH - 1), v * 255 // (HEIGHT - 1), (u + v) % 256], -1).astype(np.uint8)
    image = Image(height=HEIGHT, width=WIDTH, encoding="rgb8", step=WIDTH * 3, data=rgb.tobytes())
    image.header.frame_id = "camera_optical"
    cx, cy = (WIDTH - 1) / 2, (HEIGHT - 1) / 2
    info = CameraInfo(width=WIDTH, height=HEIGHT, distortion_model="plumb_bob", d=[0.0] * 5,
                      k=[FOCAL, 0, cx, 0, FOCAL, cy, 0, 0, 1], r=[1.0, 0, 0, 0, 1, 0, 0, 0, 1],
                      p=[FOCAL, 0, cx, 0, 0, FOCAL, cy, 0, 0, 0, 1, 0])  # fmt: skip
    info.header.frame_id = "camera_optical"
    T_cam_lidar = pose(OPTICAL_FROM_LIDAR_ROTATION, LIDAR_POSITION)
    beams, azimuths = 16, 1024
    points = spinning_lidar_scan(street_scene(), T_cam_lidar, n_beams=beams, n_azimuth=azimuths)
    fields = [PointField(name=n, offset=4 * k, datatype=PointField.FLOAT32, count=1) for k, n in enumerate("xyz")]
    cloud = PointCloud2(height=beams, width=azimuths, fields=fields, is_bigendian=False, point_step=12,
                        row_step=12 * azimuths, data=points.astype("<f4").tobytes(), is_dense=False)  # fmt: skip
    cloud.header.frame_id = "lidar"
    quaternion = Rotation.from_matrix(OPTICAL_FROM_LIDAR_ROTATION).as_quat()
    return image, info, cloud, [float(x) for x in (*LIDAR_POSITION, *quaternion)]


def _stamp(now: float):
    from builtin_interfaces.msg import Time

    return Time(sec=int(now), nanosec=int((now % 1) * 1e9))


def run_parent(args: argparse.Namespace) -> int:
    import rclpy
    import yaml
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import CameraInfo, Image, PointCloud2

    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    image, info, cloud, lidar_to_camera = _sensor_messages()
    parameters = {"model": "dpt_hybrid_kitti", "allow_random_weights": True, "device": "cpu",
                  "architecture_overrides": json.dumps(REDUCED_ARCHITECTURE), "input_size": [384, 288],
                  "lidar_alignment": True, "lidar_to_camera": lidar_to_camera}  # fmt: skip
    params_file = out / "params.yaml"
    params_file.write_text(yaml.safe_dump({"/**": {"ros__parameters": parameters}}))
    env = {**os.environ, "PYTHONPATH": f"{REPO_ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
           "FASTDDS_DEFAULT_PROFILES_FILE": str(REPO_ROOT / "config" / "fastdds_shm.xml")}  # fmt: skip
    env.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    os.environ["FASTDDS_DEFAULT_PROFILES_FILE"] = env["FASTDDS_DEFAULT_PROFILES_FILE"]
    log = open(out / "node.log", "wb")
    child = subprocess.Popen(
        [sys.executable, __file__, "--child", "--trace-csv", str(out / "tracemalloc.csv"), "--trace-period",
         str(args.trace_period), "--", "--ros-args", "--params-file", str(params_file), "-r", "__ns:=/soak"],
        stdout=log, stderr=subprocess.STDOUT, env=env)  # fmt: skip

    rclpy.init()
    node = rclpy.create_node("soak_sensors")
    reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
    image_pub = node.create_publisher(Image, "/soak/image", reliable)
    info_pub = node.create_publisher(CameraInfo, "/soak/camera_info", reliable)
    cloud_pub = node.create_publisher(PointCloud2, "/soak/lidar/points", reliable)
    outputs = {"depth": 0, "relative": 0}
    node.create_subscription(Image, "/soak/depth", lambda _: outputs.__setitem__("depth", outputs["depth"] + 1),
                             reliable)  # fmt: skip
    node.create_subscription(Image, "/soak/depth/relative",
                             lambda _: outputs.__setitem__("relative", outputs["relative"] + 1), reliable)
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    threading.Thread(target=executor.spin, daemon=True).start()

    stop = threading.Event()

    def camera() -> None:
        next_time, sent = time.monotonic(), 0
        while not stop.is_set():
            at = _stamp(time.time())
            image.header.stamp = info.header.stamp = at
            info_pub.publish(info)
            image_pub.publish(image)
            if sent % round(CAMERA_HZ / LIDAR_HZ) == 0:
                cloud.header.stamp = at
                cloud_pub.publish(cloud)
            sent += 1
            next_time += 1.0 / CAMERA_HZ
            stop.wait(max(0.0, next_time - time.monotonic()))

    deadline_first = time.monotonic() + 120
    while sum(outputs.values()) == 0 and time.monotonic() < deadline_first and child.poll() is None:
        image.header.stamp = info.header.stamp = cloud.header.stamp = _stamp(time.time())
        cloud_pub.publish(cloud), info_pub.publish(info), image_pub.publish(image)
        time.sleep(0.5)
    if sum(outputs.values()) == 0:
        print("soak: the node never answered; see " + str(out / "node.log"), file=sys.stderr)
        child.kill()
        return 2
    sender = threading.Thread(target=camera, daemon=True)
    sender.start()
    started = time.monotonic()
    with open(out / "rss.csv", "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["t_s", "vmrss_bytes", "rss_anon_bytes", "depth_outputs", "relative_outputs"])
        while time.monotonic() - started < args.minutes * 60 and child.poll() is None:
            memory = _memory(child.pid)
            writer.writerow([f"{time.monotonic() - started:.1f}", memory["VmRSS"], memory["RssAnon"],
                             outputs["depth"], outputs["relative"]])  # fmt: skip
            file.flush()
            time.sleep(1.0)
    elapsed = time.monotonic() - started
    stop.set()
    sender.join(timeout=5)
    crashed = child.poll() is not None
    child.send_signal(signal.SIGINT)
    code = child.wait(timeout=120)
    executor.shutdown()
    node.destroy_node()
    rclpy.try_shutdown()
    summary = summarise(out, elapsed)
    print(summary)
    (out / "summary.txt").write_text(summary + "\n")
    if crashed or code != 0:
        print(f"soak: node exited with {code} during the run; see {out / 'node.log'}", file=sys.stderr)
        return 1
    return 0


def summarise(out: Path, elapsed_s: float) -> str:
    """Floors (5th percentile) of RssAnon and the traced heap per tenth of the run; the plot."""
    rss = np.genfromtxt(out / "rss.csv", delimiter=",", names=True)
    trace_rows = list(csv.DictReader(open(out / "tracemalloc.csv")))
    trace_t = np.array(sorted({float(r["t_s"]) for r in trace_rows}))
    traced = {float(r["t_s"]): int(r["traced_bytes"]) for r in trace_rows}
    traced_mib = np.array([traced[t] for t in trace_t]) / 2**20
    anon_mib = rss["rss_anon_bytes"] / 2**20
    tenths = np.array_split(anon_mib, 10)
    floors = [float(np.percentile(part, 5)) for part in tenths if len(part)]
    traced_tenths = [float(np.min(part)) for part in np.array_split(traced_mib, 10) if len(part)]
    outputs = int(rss["depth_outputs"][-1] + rss["relative_outputs"][-1])
    summary = (
        f"{elapsed_s / 60:.1f} min at {CAMERA_HZ:.0f} Hz + LiDAR {LIDAR_HZ:.0f} Hz: {outputs} outputs "
        f"({outputs / elapsed_s:.1f} Hz, {int(rss['depth_outputs'][-1])} metric); RssAnon floor per tenth (MiB): "
        + " ".join(f"{f:.0f}" for f in floors)
        + f"; VmRSS {rss['vmrss_bytes'][0] / 2**20:.0f} -> {rss['vmrss_bytes'][-1] / 2**20:.0f} MiB; traced Python "
        + "heap min per tenth (MiB): " + " ".join(f"{f:.1f}" for f in traced_tenths)
    )
    _plot(out / "soak.png", rss, trace_rows, trace_t, traced_mib, summary)
    return summary


def _plot(path: Path, rss, trace_rows: list[dict], trace_t: np.ndarray, traced_mib: np.ndarray, summary: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (memory_axis, heap_axis, sites_axis) = plt.subplots(3, 1, figsize=(11, 9), sharex=True)
    minutes = rss["t_s"] / 60
    memory_axis.plot(minutes, rss["vmrss_bytes"] / 2**20, label="VmRSS")
    memory_axis.plot(minutes, rss["rss_anon_bytes"] / 2**20, label="RssAnon (heap)")
    memory_axis.set_ylabel("node memory (MiB)")
    memory_axis.legend()
    heap_axis.plot(trace_t / 60, traced_mib, ".-", label="tracemalloc: all Python allocations")
    heap_axis.set_ylabel("traced heap (MiB)")
    heap_axis.legend()
    final_t = max(float(r["t_s"]) for r in trace_rows)
    largest = [r["site"] for r in trace_rows if float(r["t_s"]) == final_t][:5]
    for site in largest:
        points = sorted((float(r["t_s"]), int(r["size_bytes"])) for r in trace_rows if r["site"] == site)
        heap_axis_t, sizes = zip(*points)
        sites_axis.plot(np.array(heap_axis_t) / 60, np.array(sizes) / 2**20, ".-", label=site)
    sites_axis.set_ylabel("top sites (MiB)")
    sites_axis.set_xlabel("minutes after warm-up")
    sites_axis.legend(fontsize=6)
    figure.suptitle(summary, fontsize=6, wrap=True)
    figure.tight_layout()
    figure.savefig(path, dpi=100)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--out", type=Path, default=Path("soak_out"))
    parser.add_argument("--trace-period", type=float, default=30.0, help="seconds between tracemalloc samples")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--trace-csv", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("ros_args", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        ros_args = args.ros_args[1:] if args.ros_args[:1] == ["--"] else args.ros_args
        return run_child(args.trace_csv, args.trace_period, ros_args)
    if args.minutes <= 0 or args.trace_period <= 0:
        print("soak_node: --minutes and --trace-period must be > 0", file=sys.stderr)
        return 2
    return run_parent(args)


if __name__ == "__main__":
    sys.exit(main())
