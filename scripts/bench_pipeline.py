#!/usr/bin/env python3
"""Per-stage time of the depth node's work on one 640x480 frame, on this machine.

Stages: decode (Image / CompressedImage -> RGB), preprocess, network, postprocess (resize back +
depth stage), cloud build, message conversion, serialisation and publish (real rclpy, one matched
subscriber in another context, Fast DDS shared memory profile). Prints median milliseconds and
checks the budget: conversions + cloud building < 5 ms.

    python scripts/bench_pipeline.py                          # full dpt_hybrid_kitti, random weights
    python scripts/bench_pipeline.py --weights models/dpt_hybrid_kitti-cb926ef4.pt --device cuda
    python scripts/bench_pipeline.py --architecture-overrides '{"backbone": "vit", "embed_dim": 64, \
        "depth": 4, "num_heads": 2, "taps": [0, 1, 2, 3], "reassemble_channels": [16, 32, 64, 64], "features": 32}'
"""

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
os.environ.setdefault("FASTDDS_DEFAULT_PROFILES_FILE", str(REPO_ROOT / "config" / "fastdds_shm.xml"))
sys.path.insert(0, str(REPO_ROOT))

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from dpt_ros.geometry.camera import PinholeIntrinsics  # noqa: E402
from dpt_ros.geometry.pointcloud import build_point_cloud  # noqa: E402
from dpt_ros.model.engine import InferenceEngine  # noqa: E402
from dpt_ros.model.presets import get_preset  # noqa: E402
from dpt_ros.pipeline.depth import Frame, ModelOutputDepth  # noqa: E402
from dpt_ros.pipeline.image_codec import depth_to_16uc1_mm, depth_to_32fc1  # noqa: E402

WIDTH, HEIGHT = 640, 480
CONVERSION_BUDGET_MS = 5.0


def median_ms(function: Callable[[], object], repeats: int) -> float:
    """Median wall time of `function` in milliseconds after one warm-up call."""
    function()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append((time.perf_counter() - start) * 1000.0)
    return statistics.median(times)


def scene(width: int, height: int) -> np.ndarray:
    """A textured RGB test image (gradients + noise), so JPEG and the network see real content."""
    rng = np.random.default_rng(0)
    u, v = np.meshgrid(np.linspace(0, 1, width), np.linspace(0, 1, height))
    base = np.stack([u, v, 0.5 * (u + v)], -1) * 200 + rng.normal(0, 20, (height, width, 3))
    return np.clip(base, 0, 255).astype(np.uint8)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="dpt_hybrid_kitti", help="metric depth preset")
    parser.add_argument("--weights", default=None, help="weights file (default: random weights)")
    parser.add_argument("--architecture-overrides", default="", help="JSON, a reduced architecture for quick runs")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="fp32", choices=("fp32", "fp16", "bf16"))
    parser.add_argument("--repeats", type=int, default=50, help="repeats of the cheap stages")
    parser.add_argument("--model-repeats", type=int, default=3, help="repeats of the network stages")
    args = parser.parse_args()

    from rclpy.serialization import serialize_message
    from std_msgs.msg import Header

    from dpt_ros.ros import conversions

    preset = get_preset(args.model)
    if args.architecture_overrides:
        overrides = json.loads(args.architecture_overrides)
        overrides = {k: tuple(v) if isinstance(v, list) else v for k, v in overrides.items()}
        preset = preset.with_architecture(**overrides)
    engine = InferenceEngine(
        preset, args.weights, args.device, args.precision, allow_random_weights=args.weights is None
    )
    stage = ModelOutputDepth(preset.output_kind)
    rgb = scene(WIDTH, HEIGHT)
    camera = PinholeIntrinsics(525.0, 525.0, 319.5, 239.5, WIDTH, HEIGHT)
    header = Header(frame_id="camera_optical")
    raw_msg = conversions.image_msg(header, rgb[..., ::-1].copy())  # bgr8, as most drivers publish
    from sensor_msgs.msg import CameraInfo, CompressedImage

    jpeg_msg = CompressedImage(header=header, format="jpeg", data=cv2.imencode(".jpg", rgb[..., ::-1])[1].tobytes())
    info_msg = CameraInfo(width=WIDTH, height=HEIGHT, k=[525.0, 0, 319.5, 0, 525, 239.5, 0, 0, 1],
                          p=[525.0, 0, 319.5, 0, 0, 525, 239.5, 0, 0, 0, 1, 0])

    batch = engine.prepare_batch([rgb])
    depth = stage(engine.infer(rgb), Frame(rgb, camera))
    cloud = build_point_cloud(depth.values, camera, rgb=rgb)

    def synchronised(function: Callable[[], object]) -> Callable[[], object]:
        def run() -> object:
            result = function()
            if engine.device.type == "cuda":
                torch.cuda.synchronize()
            return result
        return run

    network_output = engine.forward(batch)

    def postprocess() -> None:
        """The engine's resize back to the image size and copy to the host, then the depth stage."""
        with torch.inference_mode():
            resized = engine.resize_to_image(network_output, HEIGHT, WIDTH)[0].cpu().numpy()
        stage(resized, Frame(rgb, camera))

    times = {
        "decode bgr8 Image": median_ms(lambda: conversions.rgb_from_image(raw_msg), args.repeats),
        "decode jpeg CompressedImage": median_ms(lambda: conversions.rgb_from_compressed(jpeg_msg), args.repeats),
        "preprocess": median_ms(synchronised(lambda: engine.prepare_batch([rgb])), args.model_repeats),
        "network": median_ms(synchronised(lambda: engine.forward(batch)), args.model_repeats),
        "postprocess (resize back + depth stage)": median_ms(postprocess, args.repeats),
        "cloud build (xyz+rgb)": median_ms(lambda: build_point_cloud(depth.values, camera, rgb=rgb), args.repeats),
        "depth -> 32FC1 Image msg": median_ms(
            lambda: conversions.image_msg(header, depth_to_32fc1(depth.values)), args.repeats),
        "depth -> 16UC1 mm Image msg": median_ms(
            lambda: conversions.image_msg(header, depth_to_16uc1_mm(depth.values)), args.repeats),
        "cloud -> PointCloud2 msg": median_ms(lambda: conversions.point_cloud_msg(header, cloud), args.repeats),
        "camera_info msg": median_ms(lambda: conversions.camera_info_at(info_msg, header, WIDTH, HEIGHT), args.repeats),
    }
    depth_msg = conversions.image_msg(header, depth_to_32fc1(depth.values))
    cloud_msg = conversions.point_cloud_msg(header, cloud)
    times["serialise depth + cloud"] = median_ms(
        lambda: (serialize_message(depth_msg), serialize_message(cloud_msg)), args.repeats)
    times["publish depth + cloud (1 subscriber)"] = publish_ms(depth_msg, cloud_msg, args.repeats)

    conversion_stages = ("decode bgr8 Image", "cloud build (xyz+rgb)", "depth -> 32FC1 Image msg",
                         "cloud -> PointCloud2 msg", "camera_info msg")
    conversions_total = sum(times[name] for name in conversion_stages)
    print(f"dpt_ros depth pipeline, one {WIDTH}x{HEIGHT} frame, {preset.name} "
          f"({'reduced ' if args.architecture_overrides else ''}architecture, network input "
          f"{tuple(batch.shape[-1:-3:-1])}), {engine.device}, {engine.precision}, "
          f"torch threads {torch.get_num_threads()}")
    for name, value in times.items():
        print(f"  {name:<48s} {value:9.2f} ms")
    verdict = "OK" if conversions_total < CONVERSION_BUDGET_MS else "OVER BUDGET"
    print(f"  {'conversions + cloud (' + ', '.join(conversion_stages) + ')':<48s}")
    print(f"  {'  total':<48s} {conversions_total:9.2f} ms  (budget {CONVERSION_BUDGET_MS} ms: {verdict})")
    return 0 if conversions_total < CONVERSION_BUDGET_MS else 1


def publish_ms(depth_msg, cloud_msg, repeats: int) -> float:
    """Median time of publishing both messages with one matched subscriber in a separate context."""
    import rclpy
    from rclpy.context import Context
    from rclpy.node import Node
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image, PointCloud2

    qos = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)
    contexts = [Context(), Context()]
    for context in contexts:
        rclpy.init(context=context)
    publisher_node = Node("bench_publisher", context=contexts[0])
    subscriber_node = Node("bench_subscriber", context=contexts[1])
    try:
        depth_pub = publisher_node.create_publisher(Image, "bench/depth", qos)
        cloud_pub = publisher_node.create_publisher(PointCloud2, "bench/points", qos)
        subscriber_node.create_subscription(Image, "bench/depth", lambda _: None, qos)
        subscriber_node.create_subscription(PointCloud2, "bench/points", lambda _: None, qos)
        deadline = time.monotonic() + 15
        while (depth_pub.get_subscription_count() == 0 or cloud_pub.get_subscription_count() == 0) and \
                time.monotonic() < deadline:
            time.sleep(0.05)
        return median_ms(lambda: (depth_pub.publish(depth_msg), cloud_pub.publish(cloud_msg)), repeats)
    finally:
        publisher_node.destroy_node()
        subscriber_node.destroy_node()
        for context in contexts:
            rclpy.shutdown(context=context)


if __name__ == "__main__":
    sys.exit(main())
