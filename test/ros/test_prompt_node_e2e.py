"""The depth node with a prompt preset, end to end over real rclpy/DDS, on a reduced random Prompt Depth
Anything network (the real engine, random weights): image + depth-camera prompt -> metres with the image's
header; image + LiDAR scan -> metres; no prompt -> relative depth only, with the reason on 'prompt'.

Random weights give no meaningful depth, but the network de-normalises its Sigmoid output with the prompt's
minimum and maximum, so metres must lie within the depth range the prompt saw; without a prompt the output
is unitless in (0, 1) and must never appear on 'depth'.
"""

import json
import threading

import numpy as np
import pytest
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter
from sensor_msgs.msg import CameraInfo, Image, PointCloud2, PointField

from dpt_ros.pipeline.image_codec import depth_to_16uc1_mm
from dpt_ros.ros.depth_node import DepthNode
from support.depth_node_harness import (
    RosPeer,
    camera_info,
    diagnostic_values,
    header,
    pattern_image,
    publish_until,
    raw_image,
    same_stamp,
    stamp,
)

pytestmark = pytest.mark.ros

WIDTH, HEIGHT, FOCAL = 96, 64, 80.0
TINY_PROMPT_MODEL = {
    "embed_dim": 32, "depth": 4, "num_heads": 2, "pretrain_grid": 4, "taps": [0, 1, 2, 3],
    "reassemble_channels": [8, 16, 32, 32], "features": 16, "head_hidden": 8,
}
BASE = {
    "model": "prompt_depth_anything_vits", "allow_random_weights": True, "device": "cpu", "qos_in": "reliable",
    "architecture_overrides": json.dumps(TINY_PROMPT_MODEL), "input_size": [56, 56],
}
OUTPUTS = (("depth", Image), ("depth/relative", Image), ("prompt", DiagnosticArray))


class RunningNode:
    """A DepthNode in this process (own context, executor thread) in `namespace`, with the peer's topics."""

    def __init__(self, peer: RosPeer, namespace: str, parameters: dict) -> None:
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = DepthNode(context=self.context, namespace=namespace,
                              parameter_overrides=[Parameter(k, value=v) for k, v in parameters.items()])
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.thread = threading.Thread(target=self.executor.spin, daemon=True)
        self.thread.start()
        self.collect = {topic: peer.collect(kind, f"{namespace}/{topic}") for topic, kind in OUTPUTS}
        self.publish = {topic: peer.publisher(kind, f"{namespace}/{topic}") for topic, kind in (
            ("image", Image), ("camera_info", CameraInfo), ("prompt_depth", Image),
            ("prompt_depth/camera_info", CameraInfo), ("lidar/points", PointCloud2))}

    def answered(self, at, topic: str):
        return self.collect[topic].find(same_stamp(at.stamp))

    def close(self) -> None:
        self.node.close()
        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.shutdown(context=self.context)
        self.thread.join(timeout=10)


@pytest.fixture(scope="module")
def peer():
    peer = RosPeer()
    yield peer
    peer.close()


def _pixels(msg: Image) -> np.ndarray:
    assert msg.encoding == "32FC1" and (msg.width, msg.height) == (WIDTH, HEIGHT)
    return np.frombuffer(bytes(msg.data), "<f4").reshape(HEIGHT, WIDTH)


def _status(msg: DiagnosticArray) -> dict[str, str]:
    return diagnostic_values(msg)


def test_depth_camera_prompt_gives_metres_with_the_images_header_and_none_without(peer):
    # A ToF camera 5 cm to the colour camera's left (its own frame), half the resolution, seeing a ramp 2 m..4 m.
    node = RunningNode(peer, "/prompt_tof", {**BASE, "prompt_source": "depth_image",
                                             "prompt_to_camera": [-0.05, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0]})
    try:
        rgb = pattern_image(WIDTH, HEIGHT)
        ramp = np.tile(np.linspace(2.0, 4.0, WIDTH // 2, dtype=np.float32), (HEIGHT // 2, 1))
        at = header(stamp(10), "colour_optical")
        tof_header = header(stamp(10, 20_000_000), "tof_optical")  # 20 ms later: paired within prompt_max_dt
        mm = depth_to_16uc1_mm(ramp)
        tof_image = Image(header=tof_header, height=HEIGHT // 2, width=WIDTH // 2, encoding="16UC1",
                          step=WIDTH, data=mm.tobytes())
        tof_info = camera_info(tof_header, WIDTH // 2, HEIGHT // 2, focal=FOCAL / 2)
        image, info = raw_image(at, rgb, "rgb8"), camera_info(at, WIDTH, HEIGHT, focal=FOCAL)

        def send() -> None:
            for topic, msg in (("prompt_depth/camera_info", tof_info), ("prompt_depth", tof_image),
                               ("camera_info", info), ("image", image)):
                node.publish[topic].publish(msg)

        assert publish_until(send, lambda: node.answered(at, "depth") and node.answered(at, "prompt"))
        depth_msg = node.answered(at, "depth")
        assert depth_msg.header.frame_id == "colour_optical" and depth_msg.header.stamp == at.stamp
        depth = _pixels(depth_msg)
        status = _status(node.answered(at, "prompt"))
        assert status["prompt_usable"] == "true" and int(status["prompt_valid_cells"]) > 1000
        low, high = float(status["prompt_min_m"]), float(status["prompt_max_m"])
        assert 2.0 - 1e-3 <= low < high <= 4.0 + 1e-3  # the reprojected ramp's depths (mm-rounded)
        assert np.isfinite(depth).all() and low - 1e-3 <= depth.min() and depth.max() <= high + 1e-3
        assert not node.answered(at, "depth/relative")

        # 10 s later, no depth image near it: relative depth only, and the reason
        lonely = header(stamp(20), "colour_optical")
        lonely_image = raw_image(lonely, rgb, "rgb8")
        assert publish_until(lambda: node.publish["image"].publish(lonely_image),
                             lambda: node.answered(lonely, "depth/relative") and node.answered(lonely, "prompt"))
        relative = _pixels(node.answered(lonely, "depth/relative"))
        assert 0.0 < np.nanmin(relative) and np.nanmax(relative) < 1.0  # unitless, never metres
        status = _status(node.answered(lonely, "prompt"))
        assert status["prompt_usable"] == "false" and "no prompt depth" in status["prompt_reason"]
        assert not node.answered(lonely, "depth")

        # the depth camera's camera_info for another resolution: a counted bad input, relative depth only
        wrong = header(stamp(30), "colour_optical")
        wrong_tof = header(stamp(30), "tof_optical")
        tof_image.header, wrong_image = wrong_tof, raw_image(wrong, rgb, "rgb8")
        wrong_info = camera_info(wrong_tof, WIDTH, HEIGHT, focal=FOCAL)  # full size, the image is half

        def send_wrong() -> None:
            for topic, msg in (("prompt_depth/camera_info", wrong_info), ("prompt_depth", tof_image),
                               ("image", wrong_image)):
                node.publish[topic].publish(msg)

        # (the first sends may still meet the old camera_info, topics are not ordered among each other: wait for
        # the refusal rather than assume which send the node saw first)
        def refused(msg) -> bool:
            return msg.header.stamp == wrong.stamp and "invalid prompt depth" in _status(msg)["prompt_reason"]

        assert publish_until(send_wrong, lambda: node.collect["prompt"].find(refused) is not None)
        assert _status(node.collect["prompt"].find(refused))["prompt_usable"] == "false"
        assert publish_until(lambda: None, lambda: node.answered(wrong, "depth/relative"), timeout_s=5.0)
    finally:
        node.close()


def _cloud(at, points: np.ndarray) -> PointCloud2:
    fields = [PointField(name=n, offset=4 * i, datatype=PointField.FLOAT32, count=1) for i, n in enumerate("xyz")]
    data = np.ascontiguousarray(points, dtype="<f4")
    return PointCloud2(header=at, height=1, width=len(points), fields=fields, is_bigendian=False, point_step=12,
                       row_step=12 * len(points), data=data.tobytes(), is_dense=True)


def test_lidar_prompt_gives_metres(peer):
    # LiDAR = camera optical frame (identity extrinsic): 24 rings of points on a wall receding 3 m .. 6 m.
    node = RunningNode(peer, "/prompt_lidar", {**BASE, "prompt_source": "lidar",
                                               "lidar_to_camera": [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0]})
    try:
        u = np.linspace(-0.55, 0.55, 300)
        v = np.linspace(-0.35, 0.35, 24)
        uu, vv = np.meshgrid(u, v)
        z = 4.5 + 2.7 * uu  # 3 m .. 6 m
        points = np.stack([uu * z, vv * z, z], axis=-1).reshape(-1, 3)
        at = header(stamp(30), "colour_optical")
        scan = _cloud(header(stamp(29, 990_000_000), "lidar"), points)
        image, info = raw_image(at, pattern_image(WIDTH, HEIGHT), "rgb8"), camera_info(at, WIDTH, HEIGHT, FOCAL)

        def send() -> None:
            node.publish["lidar/points"].publish(scan)
            node.publish["camera_info"].publish(info)
            node.publish["image"].publish(image)

        assert publish_until(send, lambda: node.answered(at, "depth") and node.answered(at, "prompt"))
        depth = _pixels(node.answered(at, "depth"))
        status = _status(node.answered(at, "prompt"))
        assert status["prompt_usable"] == "true"
        low, high = float(status["prompt_min_m"]), float(status["prompt_max_m"])
        assert 3.0 - 1e-3 <= low < high <= 6.0 + 1e-3
        assert np.isfinite(depth).all() and low - 1e-3 <= depth.min() and depth.max() <= high + 1e-3

        # a scan of 20 points: too little prompt, relative depth only and the reason
        sparse_at = header(stamp(40), "colour_optical")
        sparse_scan = _cloud(header(stamp(40), "lidar"), points[::150])
        sparse_image = raw_image(sparse_at, pattern_image(WIDTH, HEIGHT), "rgb8")
        assert publish_until(
            lambda: (node.publish["lidar/points"].publish(sparse_scan), node.publish["image"].publish(sparse_image)),
            lambda: node.answered(sparse_at, "depth/relative") and node.answered(sparse_at, "prompt"),
        )
        status = _status(node.answered(sparse_at, "prompt"))
        assert status["prompt_usable"] == "false" and "too little prompt: 48 valid cells" in status["prompt_reason"]
        assert not node.answered(sparse_at, "depth")
    finally:
        node.close()
