"""End-to-end test helpers: the depth node as a real subprocess, and a real rclpy node in the test process.

The subprocess inherits the test environment (conftest.py sets ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST
and a random ROS_DOMAIN_ID), imports this worktree's dpt_ros, and uses the shipped Fast DDS profile.
"""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import rclpy
import yaml
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2
from std_msgs.msg import Header

from support.environment import REPO_ROOT, subprocess_env

FASTDDS_PROFILE = REPO_ROOT / "config" / "fastdds_shm.xml"
DISCOVERY_TIMEOUT_S = 30.0  # first answer includes model loading and DDS discovery (~3 s) on a busy CPU
RELIABLE = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)

# A reduced but real DPT architecture (random weights): fast enough for CPU tests.
TEST_ARCHITECTURE = {
    "backbone": "vit",
    "embed_dim": 64,
    "depth": 4,
    "num_heads": 2,
    "taps": [0, 1, 2, 3],
    "reassemble_channels": [16, 32, 64, 64],
    "features": 32,
}
TEST_PARAMETERS = {
    "allow_random_weights": True,
    "architecture_overrides": json.dumps(TEST_ARCHITECTURE),
    "input_size": [96, 64],
    "device": "cpu",
}


def ros_environment() -> dict[str, str]:
    """This process's environment (domain id, localhost discovery) + worktree imports + the SHM profile."""
    env = subprocess_env()
    env["FASTDDS_DEFAULT_PROFILES_FILE"] = str(FASTDDS_PROFILE)
    env["PYTHONUNBUFFERED"] = "1"
    return env


class NodeProcess:
    """`python -m <module>` (the depth node by default) with a generated params file; output goes to a log file."""

    def __init__(
        self,
        parameters: dict[str, Any],
        workdir: Path,
        namespace: str = "/",
        module: str = "dpt_ros.ros.depth_node",
        extra_args: tuple[str, ...] | list[str] = (),
    ) -> None:
        """extra_args: the node's own arguments, before --ros-args (e.g. --managed)."""
        params_file = workdir / "params.yaml"
        params_file.write_text(yaml.safe_dump({"/**": {"ros__parameters": parameters}}))
        self.log_path = workdir / f"{module.rsplit('.', 1)[-1]}.log"
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", module, *extra_args, "--ros-args", "--params-file", str(params_file),
                 "-r", f"__ns:={namespace}"],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=ros_environment(),
                cwd=workdir,
            )

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def memory_bytes(self) -> dict[str, int]:
        """VmRSS (all resident), RssAnon (heap: where leaks show), RssShmem (DDS segments) of the node, from /proc."""
        values = {}
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "RssAnon", "RssShmem"):
                values[key] = int(rest.split()[0]) * 1024
        return values

    def stop(self, timeout_s: float = 30.0, signal_number: int = signal.SIGINT) -> int:
        """Ctrl-C (or another signal to) the node, idempotent; returns its exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal_number)
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
                raise AssertionError(f"node ignored Ctrl-C for {timeout_s} s:\n{self.output()}") from None
        return self.process.returncode


class Collector:
    """Every message received on one topic, with a wait for the first one matching a predicate."""

    def __init__(self) -> None:
        self.messages: list[Any] = []
        self.arrivals: list[float] = []
        self._condition = threading.Condition()

    def __call__(self, msg: Any) -> None:
        with self._condition:
            self.messages.append(msg)
            self.arrivals.append(time.time())
            self._condition.notify_all()

    def snapshot(self) -> tuple[list[Any], list[float]]:
        """Copies of the messages and their arrival times (wall clock, seconds) so far."""
        with self._condition:
            return list(self.messages), list(self.arrivals)

    def find(self, predicate: Callable[[Any], bool]) -> Any | None:
        with self._condition:
            return next((m for m in self.messages if predicate(m)), None)

    def wait_for(self, predicate: Callable[[Any], bool], timeout_s: float) -> Any | None:
        with self._condition:
            self._condition.wait_for(lambda: any(predicate(m) for m in self.messages), timeout_s)
        return self.find(predicate)


class RosPeer:
    """A real rclpy node in the test process (own context, executor thread) that talks to the depth node."""

    def __init__(self) -> None:
        os.environ.setdefault("FASTDDS_DEFAULT_PROFILES_FILE", str(FASTDDS_PROFILE))
        self.context = Context()
        rclpy.init(context=self.context)
        self.node = Node("depth_node_tester", context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self._thread = threading.Thread(target=self.executor.spin, daemon=True)
        self._thread.start()

    def publisher(self, msg_type: type, topic: str) -> Any:
        return self.node.create_publisher(msg_type, topic, RELIABLE)

    def collect(self, msg_type: type, topic: str) -> Collector:
        collector = Collector()
        self.node.create_subscription(msg_type, topic, collector, RELIABLE)
        return collector

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.shutdown(context=self.context)
        self._thread.join(timeout=10)


def stamp(seconds: int, nanoseconds: int = 0) -> Time:
    return Time(sec=seconds, nanosec=nanoseconds)


def header(at: Time, frame_id: str = "test_camera_optical") -> Header:
    return Header(stamp=at, frame_id=frame_id)


def pattern_image(width: int, height: int) -> np.ndarray:
    """(H, W, 3) uint8 RGB with horizontal, vertical and diagonal gradients (every encoding differs)."""
    u, v = np.meshgrid(np.arange(width), np.arange(height))
    return np.stack([u * 255 // max(width - 1, 1), v * 255 // max(height - 1, 1), (u + v) % 256], -1).astype(np.uint8)


def raw_image(at: Header, rgb: np.ndarray, encoding: str) -> Image:
    """Encode an RGB array as a sensor_msgs/Image with the given encoding (rows padded by 4 bytes)."""
    conversions = {
        "rgb8": lambda a: a,
        "bgr8": lambda a: a[..., ::-1],
        "rgba8": lambda a: np.dstack([a, np.full(a.shape[:2], 255, np.uint8)]),
        "bgra8": lambda a: np.dstack([a[..., ::-1], np.full(a.shape[:2], 255, np.uint8)]),
        "mono8": lambda a: a[..., 1],
    }
    pixels = np.ascontiguousarray(conversions[encoding](rgb)).reshape(rgb.shape[0], -1)
    padded = np.concatenate([pixels, np.zeros((pixels.shape[0], 4), np.uint8)], axis=1)
    height, width = rgb.shape[:2]
    return Image(header=at, height=height, width=width, encoding=encoding, step=padded.shape[1], data=padded.tobytes())


def compressed_image(at: Header, rgb: np.ndarray, image_format: str) -> CompressedImage:
    extension = {"jpeg": ".jpg", "png": ".png"}[image_format]
    ok, data = cv2.imencode(extension, rgb[..., ::-1])
    assert ok
    return CompressedImage(header=at, format=image_format, data=data.tobytes())


def camera_info(at: Header, width: int, height: int, focal: float = 100.0) -> CameraInfo:
    cx, cy = (width - 1) / 2, (height - 1) / 2
    return CameraInfo(
        header=at,
        width=width,
        height=height,
        distortion_model="plumb_bob",
        d=[0.0] * 5,
        k=[focal, 0, cx, 0, focal, cy, 0, 0, 1],
        r=[1.0, 0, 0, 0, 1, 0, 0, 0, 1],
        p=[focal, 0, cx, 0, 0, focal, cy, 0, 0, 0, 1, 0],
    )


def same_stamp(at: Time) -> Callable[[Any], bool]:
    return lambda msg: msg.header.stamp == at


def diagnostic_values(msg: DiagnosticArray) -> dict[str, str]:
    return {kv.key: kv.value for status in msg.status for kv in status.values}


def publish_until(
    send: Callable[[], None], done: Callable[[], bool], timeout_s: float = DISCOVERY_TIMEOUT_S, period_s: float = 0.5
) -> bool:
    """Re-send until `done()`: the first messages may go out before DDS discovery has matched the node."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        send()
        end_of_period = time.monotonic() + period_s
        while time.monotonic() < end_of_period:
            if done():
                return True
            time.sleep(0.02)
    return done()


OUTPUT_TOPICS = {
    "depth": Image,
    "depth/relative": Image,
    "depth/mm": Image,
    "depth/colored": Image,
    "depth/camera_info": CameraInfo,
    "points": PointCloud2,
}


class DepthNodeUnderTest:
    """One depth node process in its own namespace, with the peer's publishers and output collectors."""

    def __init__(self, peer: RosPeer, workdir: Path, namespace: str, parameters: dict[str, Any]) -> None:
        self.namespace = namespace
        self.process = NodeProcess(parameters, workdir, namespace)
        compressed = parameters.get("image_transport") == "compressed"
        image_topic = f"{namespace}/image/compressed" if compressed else f"{namespace}/image"
        self.image_pub = peer.publisher(CompressedImage if compressed else Image, image_topic)
        self.info_pub = peer.publisher(CameraInfo, f"{namespace}/camera_info")
        self.outputs = {
            topic: peer.collect(msg_type, f"{namespace}/{topic}") for topic, msg_type in OUTPUT_TOPICS.items()
        }
        self.diagnostics = peer.collect(DiagnosticArray, "/diagnostics")
        self.status_name = f"dpt_ros: {namespace}/depth_node"

    def send(self, image: Image | CompressedImage, info: CameraInfo | None = None) -> None:
        if info is not None:
            self.info_pub.publish(info)
        self.image_pub.publish(image)

    def exchange(
        self, image: Image | CompressedImage, info: CameraInfo | None, topics: tuple[str, ...]
    ) -> dict[str, Any]:
        """Send until every topic in `topics` answered with the image's stamp; returns those answers."""
        answered = lambda: all(self.outputs[t].find(same_stamp(image.header.stamp)) for t in topics)  # noqa: E731
        assert publish_until(lambda: self.send(image, info), answered), (
            f"no answer on {[t for t in topics if not self.outputs[t].find(same_stamp(image.header.stamp))]}\n"
            + self.process.output()
        )
        return {t: self.outputs[t].find(same_stamp(image.header.stamp)) for t in topics}

    def latest_diagnostics(self) -> dict[str, str]:
        messages, _ = self.diagnostics.snapshot()
        mine = [m for m in messages if any(s.name == self.status_name for s in m.status)]
        return diagnostic_values(mine[-1]) if mine else {}

    def counter(self, name: str) -> int:
        return int(self.latest_diagnostics().get(name, "0"))
