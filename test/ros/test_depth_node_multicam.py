"""Several cameras in one depth node, end to end: a real node subprocess, real rclpy messages.

front and left share a size (160 x 120) and must share a forward pass; rear (150 x 100) runs as its own
batch. Every camera's outputs come back under its own name with its own stamp and frame_id.
"""

import time

import pytest
from diagnostic_msgs.msg import DiagnosticArray
from sensor_msgs.msg import CameraInfo, Image, PointCloud2

from support.depth_node_harness import (
    TEST_PARAMETERS,
    NodeProcess,
    RosPeer,
    camera_info,
    header,
    pattern_image,
    publish_until,
    raw_image,
    stamp,
)

NAMESPACE = "/multi"
CAMERA_SIZES = {"front": (160, 120), "left": (160, 120), "rear": (150, 100)}
OUTPUTS = {"depth": Image, "depth/camera_info": CameraInfo, "points": PointCloud2}


@pytest.fixture(scope="module")
def rig(tmp_path_factory):
    peer = RosPeer()
    parameters = {
        **TEST_PARAMETERS, "model": "dpt_hybrid_kitti", "cameras": list(CAMERA_SIZES),
        "batch_wait": 0.5,  # generous: the test's three images must meet even on a busy machine
    }  # fmt: skip
    process = NodeProcess(parameters, tmp_path_factory.mktemp("multi"), NAMESPACE)
    cameras = {
        name: {
            "image": peer.publisher(Image, f"{NAMESPACE}/{name}/image"),
            "info": peer.publisher(CameraInfo, f"{NAMESPACE}/{name}/camera_info"),
            **{topic: peer.collect(msg_type, f"{NAMESPACE}/{name}/{topic}") for topic, msg_type in OUTPUTS.items()},
        }
        for name in CAMERA_SIZES
    }
    unprefixed_depth = peer.collect(Image, f"{NAMESPACE}/depth")
    diagnostics = peer.collect(DiagnosticArray, "/diagnostics")
    yield peer, process, cameras, unprefixed_depth, diagnostics
    assert process.stop() == 0, process.output()
    peer.close()


def _camera_diagnostics(diagnostics, camera: str) -> dict[str, str]:
    """The latest diagnostics values of one camera's status ({} before the first)."""
    name = f"dpt_ros: {NAMESPACE}/depth_node {camera}"
    messages, _ = diagnostics.snapshot()
    statuses = [status for msg in messages for status in msg.status if status.name == name]
    return {kv.key: kv.value for kv in statuses[-1].values} if statuses else {}


def test_each_camera_gets_its_own_outputs_and_same_sized_cameras_share_a_forward_pass(rig) -> None:
    peer, process, cameras, unprefixed_depth, diagnostics = rig
    headers = {
        name: header(stamp(2000, 1_000_000 * index), f"{name}_optical") for index, name in enumerate(CAMERA_SIZES)
    }

    def send_all() -> None:
        for name, (width, height) in CAMERA_SIZES.items():
            cameras[name]["info"].publish(camera_info(headers[name], width, height))
        for name, (width, height) in CAMERA_SIZES.items():  # back to back, as synchronised cameras would
            cameras[name]["image"].publish(raw_image(headers[name], pattern_image(width, height), "rgb8"))

    def answered(name: str, topic: str):
        return cameras[name][topic].find(lambda msg: msg.header.stamp == headers[name].stamp)

    everything = lambda: all(answered(n, t) for n in CAMERA_SIZES for t in OUTPUTS)  # noqa: E731
    assert publish_until(send_all, everything), process.output()

    for name, (width, height) in CAMERA_SIZES.items():
        for topic in OUTPUTS:
            msg = answered(name, topic)
            assert msg.header.frame_id == f"{name}_optical", (name, topic)
            assert (msg.width, msg.height) == (width, height), (name, topic)
        for topic in OUTPUTS:  # and no camera's stamp shows up on another camera's topics
            for other in CAMERA_SIZES:
                if other != name:
                    sent = headers[name].stamp
                    assert cameras[other][topic].find(lambda m, sent=sent: m.header.stamp == sent) is None
    assert not unprefixed_depth.messages  # with cameras, nothing goes to the single-camera topics

    def batched() -> bool:
        values = {name: _camera_diagnostics(diagnostics, name) for name in CAMERA_SIZES}
        return all(values.values()) and [values[n]["last_batch_size"] for n in CAMERA_SIZES] == ["2", "2", "1"]

    deadline = time.monotonic() + 15
    while not batched() and time.monotonic() < deadline:
        time.sleep(0.1)
    values = {name: _camera_diagnostics(diagnostics, name) for name in CAMERA_SIZES}
    assert batched(), values
    assert int(values["front"]["frames_batched_with_other_cameras"]) >= 1
    assert int(values["left"]["frames_batched_with_other_cameras"]) >= 1
    assert values["rear"]["frames_batched_with_other_cameras"] == "0"  # another size: never in their batch
    for name in CAMERA_SIZES:
        assert int(values[name]["frames_processed"]) >= 1 and values[name]["processing_errors"] == "0", name
