"""The depth node end to end: a real node subprocess, real rclpy messages from this process.

One node per configuration (metric raw, relative, compressed) lives for the module; every test sends
frames with fresh stamps and checks the answers. Models are the reduced real architecture with
random weights (TEST_PARAMETERS), so values are arbitrary but layouts, sizes and stamps are real.
"""

import itertools
import math
import signal
import time

import cv2
import numpy as np
import pytest
import torch
from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.srv import SetParameters
from rclpy.parameter import Parameter
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image

from support.depth_node_harness import (
    TEST_PARAMETERS,
    Collector,
    DepthNodeUnderTest,
    NodeProcess,
    RosPeer,
    camera_info,
    compressed_image,
    diagnostic_values,
    header,
    pattern_image,
    publish_until,
    raw_image,
    same_stamp,
    stamp,
)

pytestmark = pytest.mark.ros

LOG_PERIOD_S = 10.0  # the node logs each kind of bad input at most this often
_stamps = itertools.count(1000)  # strictly increasing across the module: the node rejects older stamps


def next_header(frame_id: str = "test_camera_optical"):
    return header(stamp(next(_stamps), 123_456_789), frame_id)


@pytest.fixture(scope="module")
def peer():
    ros = RosPeer()
    yield ros
    ros.close()


def _node(peer, tmp_path_factory, namespace: str, **parameters) -> DepthNodeUnderTest:
    workdir = tmp_path_factory.mktemp(namespace)
    return DepthNodeUnderTest(peer, workdir, f"/{namespace}", {**TEST_PARAMETERS, **parameters})


@pytest.fixture(scope="module")
def metric(peer, tmp_path_factory):
    node = _node(
        peer, tmp_path_factory, "metric", model="dpt_hybrid_kitti", publish_mm=True, publish_colored=True,
        max_range=10000.0,
    )
    yield node
    node.process.stop()


@pytest.fixture(scope="module")
def relative(peer, tmp_path_factory):
    node = _node(peer, tmp_path_factory, "relative", model="dpt_hybrid_midas", publish_mm=True, output_scale=0.5)
    yield node
    node.process.stop()


@pytest.fixture(scope="module")
def compressed(peer, tmp_path_factory):
    node = _node(peer, tmp_path_factory, "compressed", model="dpt_hybrid_nyu", image_transport="compressed")
    yield node
    node.process.stop()


def _pixels(msg: Image, dtype: str, channels: int = 1) -> np.ndarray:
    shape = (msg.height, msg.width) + ((channels,) if channels > 1 else ())
    return np.frombuffer(bytes(msg.data), dtype).reshape(shape)


def _cloud_fields(cloud) -> dict[str, np.ndarray]:
    dtype = np.dtype({"names": [f.name for f in cloud.fields], "formats": ["<f4"] * len(cloud.fields),
                      "offsets": [f.offset for f in cloud.fields], "itemsize": cloud.point_step})
    points = np.frombuffer(bytes(cloud.data), dtype).reshape(cloud.height, cloud.width)
    return {name: points[name] for name in dtype.names}


METRIC_TOPICS = ("depth", "depth/mm", "depth/colored", "depth/camera_info", "points")


@pytest.mark.parametrize(
    "encoding, width, height",
    [("rgb8", 160, 120), ("bgr8", 160, 120), ("rgba8", 160, 120), ("bgra8", 160, 120), ("mono8", 160, 120),
     ("bgr8", 150, 100), ("mono8", 150, 100)],  # 150 x 100: not a multiple of 32
)
def test_metric_node_answers_on_every_topic(metric, encoding, width, height) -> None:
    rgb = pattern_image(width, height)
    at = next_header()
    answers = metric.exchange(raw_image(at, rgb, encoding), camera_info(at, width, height), METRIC_TOPICS)
    for topic, msg in answers.items():
        assert msg.header.stamp == at.stamp and msg.header.frame_id == "test_camera_optical", topic
        assert (msg.width, msg.height) == (width, height), topic

    depth = answers["depth"]
    assert (depth.encoding, depth.step, depth.is_bigendian) == ("32FC1", 4 * width, 0)
    metres = _pixels(depth, "<f4")
    assert np.all(np.isnan(metres) | (metres > 0))  # REP 118: NaN for unknown, never 0 or negative
    mm = answers["depth/mm"]
    assert (mm.encoding, mm.step) == ("16UC1", 2 * width)
    expected_mm = np.where(np.isfinite(metres) & (metres * 1000 <= 65535), np.rint(metres * 1000), 0)
    np.testing.assert_array_equal(_pixels(mm, "<u2"), expected_mm)
    assert (answers["depth/colored"].encoding, answers["depth/colored"].step) == ("bgr8", 3 * width)
    np.testing.assert_array_equal(answers["depth/camera_info"].k, camera_info(at, width, height).k)

    cloud = answers["points"]
    assert [(f.name, f.offset, f.datatype, f.count) for f in cloud.fields] == [
        ("x", 0, 7, 1), ("y", 4, 7, 1), ("z", 8, 7, 1), ("rgb", 12, 7, 1)
    ]
    assert (cloud.point_step, cloud.row_step, cloud.is_dense, len(cloud.data)) == (16, 16 * width, False,
                                                                                     16 * width * height)
    fields = _cloud_fields(cloud)
    np.testing.assert_array_equal(fields["z"], metres)
    u = np.arange(width)[None, :]
    np.testing.assert_allclose(fields["x"], (u - (width - 1) / 2) * metres / 100.0, rtol=1e-5, atol=1e-6)
    expected_rgb = np.repeat(rgb[..., 1:2], 3, axis=2) if encoding == "mono8" else rgb
    packed = (expected_rgb[..., 0].astype(np.uint32) << 16) | (expected_rgb[..., 1].astype(np.uint32) << 8) | \
        expected_rgb[..., 2]
    np.testing.assert_array_equal(fields["rgb"].view(np.uint32), packed)  # colours survived every encoding
    assert metric.outputs["depth/relative"].find(lambda m: m.header.stamp == at.stamp) is None


def test_best_effort_subscribers_receive_the_reliable_outputs(peer, metric) -> None:
    best_effort = Collector()
    peer.node.create_subscription(Image, "/metric/depth", best_effort, qos_profile_sensor_data)
    at = next_header()
    image, info = raw_image(at, pattern_image(160, 120), "rgb8"), camera_info(at, 160, 120)
    assert publish_until(lambda: metric.send(image, info), lambda: best_effort.find(same_stamp(at.stamp)) is not None)


def test_relative_model_never_publishes_metres_and_scales_camera_info(relative) -> None:
    at = next_header()
    answers = relative.exchange(
        raw_image(at, pattern_image(150, 100), "rgb8"), camera_info(at, 150, 100), ("depth/relative",
                                                                                    "depth/camera_info")
    )
    inverse, info = answers["depth/relative"], answers["depth/camera_info"]
    assert (inverse.encoding, inverse.width, inverse.height) == ("32FC1", 75, 50)  # output_scale 0.5
    assert (info.width, info.height) == (75, 50)
    np.testing.assert_allclose(info.k, [50, 0, 74.5 * 0.5 - 0.25, 0, 50, 49.5 * 0.5 - 0.25, 0, 0, 1])
    _after_every_earlier_output(relative, "depth/relative")
    for topic in ("depth", "depth/mm", "points"):
        assert not relative.outputs[topic].messages, f"relative model published on {topic}"
    diagnostics = relative.latest_diagnostics() or _wait_diagnostics(relative)
    assert diagnostics["output_kind"] == "relative_inverse_depth"
    assert "NOT metres" in diagnostics["output_units"]


@pytest.mark.parametrize("image_format", ["jpeg", "png"])
def test_compressed_stream(compressed, image_format) -> None:
    at = next_header()
    image = compressed_image(at, pattern_image(160, 120), image_format)
    answers = compressed.exchange(image, camera_info(at, 160, 120), ("depth", "points"))
    assert (answers["depth"].width, answers["depth"].height) == (160, 120)
    colours = _cloud_fields(answers["points"])["rgb"].view(np.uint32)
    received_rgb = np.stack([(colours >> 16) & 255, (colours >> 8) & 255, colours & 255], axis=-1)
    expected_bgr = cv2.imdecode(np.frombuffer(bytes(image.data), np.uint8), cv2.IMREAD_COLOR)
    np.testing.assert_array_equal(received_rgb, expected_bgr[..., ::-1])


def _after_every_earlier_output(node: DepthNodeUnderTest, topic: str = "depth") -> None:
    """Returns once a fresh frame's `topic` answered. The node handles frames one at a time and publishes all
    of a frame's outputs before it starts the next, so whatever it published for earlier frames went out at
    least one inference earlier: a check that something was NOT published is then not just a slow node."""
    at = next_header()
    node.exchange(raw_image(at, pattern_image(160, 120), "rgb8"), None, (topic,))


def _next_diagnostics(node: DepthNodeUnderTest, timeout_s: float = 15.0) -> dict:
    """The values of a diagnostics message from the node published after this call: the second new one, as the
    first may have been on its way already."""
    def mine() -> list:
        return [m for m in node.diagnostics.snapshot()[0] if any(s.name == node.status_name for s in m.status)]

    seen = len(mine())
    deadline = time.monotonic() + timeout_s
    while len(mine()) <= seen + 1:
        assert time.monotonic() < deadline, f"no diagnostics from {node.status_name} in {timeout_s} s"
        time.sleep(0.05)
    return diagnostic_values(mine()[seen + 1])


def _wait_diagnostics(node: DepthNodeUnderTest, predicate=lambda values: True, timeout_s: float = 15.0) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        values = node.latest_diagnostics()
        if values and predicate(values):
            return values
        time.sleep(0.1)
    raise AssertionError(f"no matching diagnostics from {node.status_name}: {node.latest_diagnostics()}")


def test_diagnostics_say_what_the_numbers_are(metric) -> None:
    for _ in range(3):  # the input rate needs at least two arrivals
        at = next_header()
        metric.exchange(raw_image(at, pattern_image(160, 120), "rgb8"), camera_info(at, 160, 120), ("depth",))
    values = _wait_diagnostics(metric, lambda v: int(v["frames_processed"]) >= 3 and float(v["input_rate_hz"]) > 0)
    assert values["model_preset"] == "dpt_hybrid_kitti"
    assert values["output_kind"] == "metric_depth" and values["output_units"].startswith("metres")
    assert (values["device"], values["precision"], values["random_weights"]) == ("cpu", "fp32", "true")
    assert (values["compile"], values["cuda_graphs"]) == ("false", "false")
    assert float(values["input_rate_hz"]) > 0
    for latency in ("inference_latency", "output_age"):
        p50, p95 = float(values[f"{latency}_p50_ms"]), float(values[f"{latency}_p95_ms"])
        assert 0 < p50 <= p95 and math.isfinite(p95), latency
    assert float(values["inference_latency_p50_ms"]) <= float(values["output_age_p50_ms"])
    for key in ("frames_dropped_newer_arrived", "frames_skipped_no_subscribers", "processing_errors", "last_error"):
        assert key in values


# --- bad input: the node keeps running, says why once, counts it ----------------------------------------


def _expect_rejected(node: DepthNodeUnderTest, counter: str, send_bad, good_topics=("depth",)) -> None:
    before = node.counter(counter)
    started = time.monotonic()
    while node.counter(counter) <= before and time.monotonic() < started + 30:
        send_bad()
        time.sleep(0.4)
    counted = node.counter(counter)
    assert counted > before, node.process.output()
    for _ in range(3):  # more of the same: still counted, but not logged again within the log period
        send_bad()
        time.sleep(0.3)
    assert _wait_diagnostics(node, lambda values: int(values[counter]) > counted)
    logged = node.process.output().count(f"bad input ({counter})")
    assert 1 <= logged <= 1 + int((time.monotonic() - started) / LOG_PERIOD_S), node.process.output()
    at = next_header()
    width, height = 160, 120
    if "compressed" in node.namespace:
        image = compressed_image(at, pattern_image(width, height), "png")
    else:
        image = raw_image(at, pattern_image(width, height), "rgb8")
    node.exchange(image, camera_info(at, width, height), good_topics)  # still alive and answering
    assert node.process.process.poll() is None


def test_unknown_encoding(metric) -> None:
    def send() -> None:
        image = raw_image(next_header(), pattern_image(16, 8), "rgb8")
        image.encoding = "yuv422"
        metric.send(image)

    _expect_rejected(metric, "unknown_encoding", send)


def test_data_length_not_matching_step_times_height(metric) -> None:
    def send() -> None:
        image = raw_image(next_header(), pattern_image(16, 8), "rgb8")
        image.data = image.data[:-7]
        metric.send(image)

    _expect_rejected(metric, "data_length_mismatch", send)


def test_zero_size_image(metric) -> None:
    _expect_rejected(metric, "zero_size_image",
                     lambda: metric.send(Image(header=next_header(), width=0, height=0, encoding="rgb8", step=0)))


def test_corrupt_jpeg(compressed) -> None:
    def send() -> None:
        image = compressed_image(next_header(), pattern_image(64, 48), "jpeg")
        image.data = b"\xff\xd8" + bytes(100) + b"\xff\xd9"  # JPEG start and end markers, garbage between
        compressed.send(image)

    _expect_rejected(compressed, "corrupt_compressed_image", send)


def test_camera_info_with_k_all_zeros(metric) -> None:
    def send() -> None:
        at = next_header()
        info = camera_info(at, 160, 120)
        info.k = [0.0] * 9
        metric.send(raw_image(at, pattern_image(160, 120), "rgb8"), info)

    _expect_rejected(metric, "invalid_camera_info", send, good_topics=("depth", "points"))


def test_camera_info_of_another_resolution(metric) -> None:
    def send() -> None:
        at = next_header()
        metric.send(raw_image(at, pattern_image(160, 120), "rgb8"), camera_info(at, 320, 240))

    _expect_rejected(metric, "camera_info_resolution_mismatch", send, good_topics=("depth", "points"))
    # While the camera_info does not fit, depth is still published, but no cloud or camera_info for it.
    # The node keeps the latest camera_info: once an image without one is counted as a mismatch, the
    # node holds the 320 x 240 one (no waiting for its delivery on a fixed sleep).
    _after_every_earlier_output(metric)  # every mismatch sent above is counted in the next diagnostics
    mismatches = int(_next_diagnostics(metric)["camera_info_resolution_mismatch"])
    metric.info_pub.publish(camera_info(next_header(), 320, 240))
    assert publish_until(lambda: metric.send(raw_image(next_header(), pattern_image(160, 120), "rgb8")),
                         lambda: metric.counter("camera_info_resolution_mismatch") > mismatches), metric.process.output()
    at = next_header()
    metric.exchange(raw_image(at, pattern_image(160, 120), "rgb8"), None, ("depth",))
    _after_every_earlier_output(metric)
    assert metric.outputs["points"].find(lambda m: m.header.stamp == at.stamp) is None
    assert metric.outputs["depth/camera_info"].find(lambda m: m.header.stamp == at.stamp) is None


def test_reordered_stamps(metric) -> None:
    """A stamp at most the time-reset tolerance (0.25 s) older than the newest is a reordering: dropped.
    Further back is a time reset, answered (test_robust_node_e2e.py)."""
    at = next_header()
    metric.exchange(raw_image(at, pattern_image(16, 8), "rgb8"), None, ("depth",))
    old = header(stamp(at.stamp.sec, at.stamp.nanosec - 100_000_000))  # 0.1 s older

    _expect_rejected(metric, "out_of_order_stamp", lambda: metric.send(raw_image(old, pattern_image(16, 8), "rgb8")))
    assert metric.outputs["depth"].find(lambda m: m.header.stamp == old.stamp) is None


# --- parameters, start-up errors, shutdown ---------------------------------------------------------------


def _set_parameters(peer: RosPeer, node: DepthNodeUnderTest, **values):
    client = peer.node.create_client(SetParameters, f"{node.namespace}/depth_node/set_parameters")
    assert client.wait_for_service(timeout_sec=30)
    request = SetParameters.Request(parameters=[Parameter(k, value=v).to_parameter_msg() for k, v in values.items()])
    future = client.call_async(request)
    deadline = time.monotonic() + 30
    while not future.done() and time.monotonic() < deadline:
        time.sleep(0.05)
    peer.node.destroy_client(client)
    return future.result().results


def test_runtime_parameter_changes_are_validated(peer, metric) -> None:
    rejected = {
        "cloud_stride": 0,
        "model": "dpt_hybrid_midas",  # read-only: needs a restart
        "colored_range": [5.0, 1.0],
        "intrinsics_source": "Q",
    }
    for name, value in rejected.items():
        (result,) = _set_parameters(peer, metric, **{name: value})
        assert not result.successful and result.reason, name
    (result,) = _set_parameters(peer, metric, cloud_stride=4)
    assert result.successful, result.reason
    at = next_header()
    cloud = metric.exchange(raw_image(at, pattern_image(150, 100), "rgb8"), camera_info(at, 150, 100),
                            ("points",))["points"]
    assert (cloud.width, cloud.height) == (38, 25)  # ceil(150 / 4), ceil(100 / 4)
    (result,) = _set_parameters(peer, metric, cloud_stride=1)
    assert result.successful


@pytest.mark.slow
def test_no_inference_while_nobody_subscribes(peer, tmp_path) -> None:
    process = NodeProcess({**TEST_PARAMETERS, "model": "dpt_hybrid_kitti"}, tmp_path, "/idle")
    try:
        image_pub = peer.publisher(Image, "/idle/image")
        diagnostics = peer.collect(DiagnosticArray, "/diagnostics")

        def skipped() -> bool:
            messages, _ = diagnostics.snapshot()
            statuses = [s for m in messages for s in m.status if s.name == "dpt_ros: /idle/depth_node"]
            values = {kv.key: kv.value for kv in statuses[-1].values} if statuses else {}
            return int(values.get("frames_skipped_no_subscribers", 0)) >= 3 and values["frames_processed"] == "0"

        assert publish_until(lambda: image_pub.publish(raw_image(next_header(), pattern_image(64, 48), "rgb8")),
                             skipped), process.output()
    finally:
        assert process.stop() == 0


@pytest.mark.slow
@pytest.mark.parametrize("weights", ["", "corrupt.pt"])
def test_missing_or_bad_weights_stop_the_node_with_one_clear_line(tmp_path, weights) -> None:
    (tmp_path / "corrupt.pt").write_bytes(b"not a checkpoint\n" * 10)
    process = NodeProcess({"model": "dpt_hybrid_kitti", "device": "cpu", "weights": weights}, tmp_path)
    assert process.process.wait(timeout=120) == 1
    output = process.output()
    fatal = [line for line in output.splitlines() if "FATAL" in line]
    assert len(fatal) == 1 and output.strip().endswith(fatal[0].strip()), output  # one line, nothing after
    # which file, where to get it, its SHA-256
    assert (weights or "models/dpt_hybrid_kitti-cb926ef4.pt") in fatal[0], output
    assert "https://github.com/isl-org/DPT/releases/download/1_0/dpt_hybrid_kitti-cb926ef4.pt" in fatal[0]
    assert "SHA-256" in fatal[0]
    assert "dpt-ros-weights download dpt_hybrid_kitti" in fatal[0]
    assert "Traceback" not in output


@pytest.mark.skipif(torch.cuda.is_available(), reason="device auto finds a GPU here, so CUDA graphs can run")
def test_cuda_graphs_without_a_gpu_stop_the_node_with_one_clear_line(tmp_path) -> None:
    process = NodeProcess({**TEST_PARAMETERS, "device": "auto", "cuda_graphs": True}, tmp_path)
    assert process.process.wait(timeout=120) == 1
    output = process.output()
    fatal = [line for line in output.splitlines() if "FATAL" in line]
    assert len(fatal) == 1 and "cuda_graphs needs a CUDA device" in fatal[0] and "Traceback" not in output, output


def test_invalid_parameter_file_stops_the_node_with_the_reason(tmp_path) -> None:
    process = NodeProcess({**TEST_PARAMETERS, "colored_range": [3.0, 1.0]}, tmp_path)
    assert process.process.wait(timeout=120) == 1
    output = process.output()
    assert "colored_range" in output and "Traceback" not in output


@pytest.mark.timing
@pytest.mark.parametrize(
    "node_fixture, signal_number",
    [("metric", signal.SIGINT), ("relative", signal.SIGTERM), ("compressed", signal.SIGINT)],  # launch sends both
)
def test_ctrl_c_shuts_down_cleanly(request, node_fixture, signal_number) -> None:
    node = request.getfixturevalue(node_fixture)
    _wait_diagnostics(node, timeout_s=60)  # fully started (a signal during interpreter start-up is not ours)
    assert node.process.process.poll() is None, node.process.output()
    started = time.monotonic()
    assert node.process.stop(signal_number=signal_number) == 0, node.process.output()
    assert time.monotonic() - started < 15
    output = node.process.output()
    for noise in ("terminate called", "Traceback", "Segmentation fault", "Exception"):
        assert noise not in output, output
