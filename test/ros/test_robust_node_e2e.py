"""The depth node as a robot, a simulator and a bag player drive it: time resets, a looped bag, a
decompression bomb, mislabelled and distorted images, a /clock jump. Real rclpy, the node as a subprocess."""

import signal
import subprocess
import sys
import threading
import time

import cv2
import numpy as np
import pytest
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter
from rosgraph_msgs.msg import Clock
from scipy.spatial.transform import Rotation
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2

from dpt_ros.geometry.camera import LensDistortion, PinholeIntrinsics
from dpt_ros.geometry.pointcloud import ray_grid
from dpt_ros.geometry.transforms import OPTICAL_FROM_LIDAR_ROTATION
from dpt_ros.geometry.transforms import make_transform as pose
from dpt_ros.ros.depth_node import DepthNode
from dpt_ros.sim.scene import render_depth, spinning_lidar_scan, street_scene
from dpt_ros.tools.make_sample_bag import sample_config, write_sample_bag
from support.depth_node_harness import (
    TEST_PARAMETERS,
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
from support.environment import subprocess_env
from support.fake_engines import fake_engine_factory, fixed_prediction
from support.image_bomb import png_bomb
from support.lidar_clouds import xyz_cloud

pytestmark = pytest.mark.ros
WIDTH, HEIGHT = 64, 48


@pytest.fixture(scope="module")
def peer():
    ros = RosPeer()
    yield ros
    ros.close()


def _node(peer, tmp_path_factory, namespace: str, **parameters) -> DepthNodeUnderTest:
    return DepthNodeUnderTest(peer, tmp_path_factory.mktemp(namespace), f"/{namespace}",
                              {**TEST_PARAMETERS, **parameters})  # fmt: skip


def _wait_counter(node: DepthNodeUnderTest, name: str, at_least: int, timeout_s: float = 15.0) -> int:
    deadline = time.monotonic() + timeout_s
    while node.counter(name) < at_least and time.monotonic() < deadline:
        time.sleep(0.1)
    return node.counter(name)


def test_time_going_backwards_is_a_reset_answered_at_once(peer, tmp_path_factory):
    node = _node(peer, tmp_path_factory, "backwards", model="dpt_hybrid_midas")
    try:
        rgb = pattern_image(WIDTH, HEIGHT)
        answer = lambda at: node.exchange(raw_image(header(at), rgb, "rgb8"), None, ("depth/relative",))  # noqa: E731
        for second in (100, 101, 102):
            answer(stamp(second))
        # every one of these is a new timeline and answered: a loop to 50 s, a sim reset to 0, 0.5 s back
        for at in (stamp(50), stamp(55), stamp(0), stamp(1), stamp(0, 500_000_000)):
            answer(at)
        assert _wait_counter(node, "time_resets", 3) == 3  # to 50, to 0, to 0.5 after 1; 55 and 1 continue
        # 0.1 s back on the new timeline is a reordering: dropped and counted
        reordered = stamp(0, 400_000_000)
        node.send(raw_image(header(reordered), rgb, "rgb8"))
        assert _wait_counter(node, "out_of_order_stamp", 1) == 1
        assert node.outputs["depth/relative"].find(same_stamp(reordered)) is None
        log = node.process.output()
        assert "time reset: stamp 50.000000000 s after 102.000000000 s (52.000 s back)" in log
        assert log.count("time reset:") == 3  # one line per reset
    finally:
        assert node.process.stop() == 0


@pytest.mark.slow
def test_a_looped_replay_is_answered_every_frame_of_every_loop(peer, tmp_path_factory):
    frames, loops = 5, 3
    workdir = tmp_path_factory.mktemp("loop")
    bag = write_sample_bag(workdir / "bag", "mcap", sample_config(frames=frames, width=WIDTH, height=HEIGHT)).path
    node = _node(peer, tmp_path_factory, "loop", model="dpt_hybrid_midas")
    replay = None
    try:
        answers = node.outputs["depth/relative"]
        replay = subprocess.Popen(
            [sys.executable, "-m", "dpt_ros.tools.replay_bag", str(bag), "--loop", "--rate", "0.5", "--topics",
             "/camera/image_raw", "--remap", "/camera/image_raw:=/loop/image", "--wait-for-subscriber",
             "/loop/image"],
            env=subprocess_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
        stamps = lambda: [(m.header.stamp.sec, m.header.stamp.nanosec) for m in answers.snapshot()[0]]  # noqa: E731
        assert publish_until(lambda: None, lambda: len(stamps()) >= frames * (loops + 1), timeout_s=60, period_s=0.2)
    finally:
        if replay is not None:
            replay.send_signal(signal.SIGINT)
            replay.communicate(timeout=30)
        assert node.process.stop() == 0
    answered = stamps()
    first_loop = sorted(set(answered))
    assert len(first_loop) == frames
    # frame by frame, loop after loop: the whole bag every loop (the first loop may start mid-bag if the
    # node's subscription matched late; the loops after it are complete)
    start = answered.index(first_loop[0])
    assert answered[start: start + frames * loops] == first_loop * loops, answered
    assert node.counter("out_of_order_stamp") == 0 and node.counter("time_resets") >= loops - 1


def test_a_png_bomb_is_refused_before_decoding_and_memory_stays(peer, tmp_path_factory):
    node = _node(peer, tmp_path_factory, "bomb", model="dpt_hybrid_midas", image_transport="compressed")
    try:
        rgb = pattern_image(WIDTH, HEIGHT)
        node.exchange(compressed_image(header(stamp(10)), rgb, "png"), None, ("depth/relative",))  # warm
        peak_before = _peak_rss(node)
        bomb = CompressedImage(header=header(stamp(11)), format="png", data=png_bomb(12000, 12000))
        node.send(bomb)
        assert _wait_counter(node, "image_too_large", 1) == 1
        peak_after = _peak_rss(node)
        # decoding it would take 432 MB (measured: +830 MiB peak for the decode function alone)
        assert peak_after - peak_before < 64 * 2**20, (peak_before / 2**20, peak_after / 2**20)
        assert "12000x12000 = 144000000 pixels, more than max_image_pixels=33177600" in node.process.output()
        # decoded by what the bytes are: a PNG labelled jpeg is answered, a WebP labelled png refused and named
        mislabelled = compressed_image(header(stamp(12)), rgb, "png")
        mislabelled.format = "jpeg"
        node.exchange(mislabelled, None, ("depth/relative",))
        ok, webp = cv2.imencode(".webp", rgb)
        node.send(CompressedImage(header=header(stamp(13)), format="png", data=webp.tobytes()))
        assert _wait_counter(node, "unknown_encoding", 1) == 1
        assert "compressed image is WebP data, not JPEG or PNG" in node.process.output()
    finally:
        assert node.process.stop() == 0


def node_status(diagnostics, namespace: str) -> dict[str, str]:
    """The values of the latest /diagnostics status of the node in `namespace` ({} before the first)."""
    mine = [m for m in diagnostics.snapshot()[0] if any(f"{namespace}/" in s.name for s in m.status)]
    return diagnostic_values(mine[-1]) if mine else {}


def _peak_rss(node: DepthNodeUnderTest) -> int:
    for line in open(f"/proc/{node.process.process.pid}/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


def _cloud_xyz(cloud) -> np.ndarray:
    dtype = np.dtype({"names": ["x", "y", "z"], "formats": ["<f4"] * 3,
                      "offsets": [f.offset for f in cloud.fields[:3]], "itemsize": cloud.point_step})  # fmt: skip
    points = np.frombuffer(bytes(cloud.data), dtype).reshape(cloud.height, cloud.width)
    return np.stack([points["x"], points["y"], points["z"]], axis=-1)


def test_distorted_images_back_project_along_undistorted_rays_or_are_counted(peer, tmp_path_factory):
    node = _node(peer, tmp_path_factory, "distorted", model="dpt_hybrid_kitti", max_range=10000.0)
    try:
        rgb = pattern_image(WIDTH, HEIGHT)
        at = header(stamp(20))
        info = camera_info(at, WIDTH, HEIGHT, focal=60.0)
        info.d = [-0.3, 0.08, 0.001, -0.002, 0.0]
        cloud = node.exchange(raw_image(at, rgb, "rgb8"), info, ("points",))["points"]
        xyz = _cloud_xyz(cloud)
        intrinsics = PinholeIntrinsics(60.0, 60.0, (WIDTH - 1) / 2, (HEIGHT - 1) / 2, WIDTH, HEIGHT)
        x_per_z, y_per_z = ray_grid(intrinsics, LensDistortion(tuple(info.d), "plumb_bob"), 1)
        valid = np.isfinite(xyz[..., 2])
        assert valid.mean() > 0.9
        np.testing.assert_allclose(xyz[..., 0][valid] / xyz[..., 2][valid], x_per_z[valid], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(xyz[..., 1][valid] / xyz[..., 2][valid], y_per_z[valid], rtol=1e-5, atol=1e-6)
        # a fisheye model this node cannot undo: depth still answered, no cloud, counted
        fisheye_at = header(stamp(21))
        fisheye = camera_info(fisheye_at, WIDTH, HEIGHT, focal=60.0)
        fisheye.distortion_model, fisheye.d = "equidistant", [0.1, 0.01, 0.0, 0.0]
        node.exchange(raw_image(fisheye_at, rgb, "rgb8"), fisheye, ("depth",))
        assert _wait_counter(node, "unsupported_distortion", 1) >= 1
        assert node.outputs["points"].find(same_stamp(fisheye_at.stamp)) is None
    finally:
        assert node.process.stop() == 0


def test_a_clock_jump_under_use_sim_time_is_counted_and_logged(peer, tmp_path_factory):
    node = _node(peer, tmp_path_factory, "simtime", model="dpt_hybrid_midas", use_sim_time=True)
    try:
        clock = peer.node.create_publisher(Clock, "/clock", 10)
        rgb = pattern_image(WIDTH, HEIGHT)
        for second in (100, 101):
            clock.publish(Clock(clock=stamp(second)))
            node.exchange(raw_image(header(stamp(second)), rgb, "rgb8"), None, ("depth/relative",))
        assert publish_until(lambda: clock.publish(Clock(clock=stamp(5))),
                             lambda: "ROS clock jumped by -96.000 s" in node.process.output())  # fmt: skip
        node.exchange(raw_image(header(stamp(5)), rgb, "rgb8"), None, ("depth/relative",))
        ticks = iter(range(6, 1000))  # /diagnostics runs on the (simulated) ROS clock: let it tick
        assert publish_until(lambda: clock.publish(Clock(clock=stamp(next(ticks)))),
                             lambda: node.counter("clock_jumps_back") == 1, period_s=0.2)  # fmt: skip
        assert node.counter("time_resets") == 0  # the clock jump restarted the timeline before the image came
    finally:
        assert node.process.stop() == 0


def test_the_perception_node_answers_a_time_reset_and_refuses_oversized_images(peer, tmp_path_factory):
    """The segmentation / perception node shares the shell: the same timelines and size checks."""
    namespace = "/perception_robust"
    parameters = {**TEST_PARAMETERS, "model": "dpt_hybrid_nyu", "segmentation_model": "dpt_large_ade20k"}
    process = NodeProcess(parameters, tmp_path_factory.mktemp("perception"), namespace,
                          module="dpt_ros.ros.segmentation_node")  # fmt: skip
    image_pub = peer.publisher(Image, f"{namespace}/image")
    labels = peer.collect(Image, f"{namespace}/semantic/labels")
    depth = peer.collect(Image, f"{namespace}/depth")
    diagnostics = peer.collect(DiagnosticArray, "/diagnostics")
    try:
        rgb = pattern_image(WIDTH, HEIGHT)
        for at in (stamp(100), stamp(101), stamp(50)):
            image = raw_image(header(at), rgb, "rgb8")
            answered = lambda at=at: labels.find(same_stamp(at)) and depth.find(same_stamp(at))  # noqa: E731
            assert publish_until(lambda image=image: image_pub.publish(image), answered), process.output()
        # a raw image claiming 12000 x 12000 pixels: refused on width x height, before its buffer is looked at
        image_pub.publish(Image(header=header(stamp(51)), width=12000, height=12000, encoding="bgr8", step=36000))

        counters = lambda: node_status(diagnostics, namespace)  # noqa: E731
        assert publish_until(lambda: None, lambda: counters().get("image_too_large") == "1", timeout_s=15)
        assert counters()["time_resets"] == "1" and "time reset: stamp 50.000000000 s" in process.output()
    finally:
        assert process.stop() == 0, process.output()


def test_lidar_pairing_across_time_resets_and_far_future_scans(peer):
    """In-process node with an oracle network: the scans a frame pairs with always belong to its timeline."""
    width, height, focal = 160, 120, 125.0
    K = np.array([[focal, 0.0, (width - 1) / 2], [0.0, focal, (height - 1) / 2], [0.0, 0.0, 1.0]])
    shapes = street_scene()
    truth = render_depth(shapes, K, (width, height)).astype(np.float32)
    lidar_position = (0.0, -0.3, -0.1)
    points = spinning_lidar_scan(shapes, pose(OPTICAL_FROM_LIDAR_ROTATION, lidar_position), n_beams=16, n_azimuth=1024)
    prediction = ((1.0 / truth + 0.02) / 0.004).astype(np.float32)  # relative inverse depth of the scene
    context = rclpy.Context()
    rclpy.init(context=context)
    overrides = {"model": "dpt_hybrid_midas", "device": "cpu", "qos_in": "reliable", "lidar_alignment": True,
                 "lidar_to_camera": [*lidar_position, *Rotation.from_matrix(OPTICAL_FROM_LIDAR_ROTATION).as_quat()]}
    namespace = "/lidar_timelines"
    node = DepthNode(engine_factory=fake_engine_factory(fixed_prediction(prediction)), context=context,
                     namespace=namespace,
                     parameter_overrides=[Parameter(name, value=value) for name, value in overrides.items()])  # fmt: skip
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    try:
        image_pub, info_pub = peer.publisher(Image, f"{namespace}/image"), peer.publisher(CameraInfo, f"{namespace}/camera_info")
        cloud_pub = peer.publisher(PointCloud2, f"{namespace}/lidar/points")
        alignment = peer.collect(DiagnosticArray, f"{namespace}/alignment")
        diagnostics = peer.collect(DiagnosticArray, "/diagnostics")
        rgb = pattern_image(width, height)

        def frame(at, scans=()) -> dict[str, str]:
            """Send the scans, then the image, until its alignment status comes back (with a successful fit
            when scans were sent: the first try may beat its scan); returns that status."""
            image = raw_image(header(at), rgb, "rgb8")

            def send() -> None:
                for scan_at in scans:
                    cloud_pub.publish(xyz_cloud(header(scan_at, "lidar"), points, beams=16))
                info_pub.publish(camera_info(header(at), width, height, focal=focal))
                image_pub.publish(image)

            def status(msg) -> bool:
                return same_stamp(at)(msg) and (not scans or diagnostic_values(msg)["fit_success"] == "true")

            assert publish_until(send, lambda: alignment.find(status) is not None)
            return diagnostic_values(alignment.find(status))

        assert frame(stamp(200), [stamp(199, 970_000_000)])["fit_success"] == "true"
        # a driver before its clock sync, an hour ahead: 12 scans at its 20 Hz (the input keeps 1 sample, so
        # paced like a sensor) fill the 10-scan buffer; the good scan must still pair, the next one too
        for k in range(12):
            cloud_pub.publish(xyz_cloud(header(stamp(3800 + k), "lidar"), points, beams=16))
            time.sleep(0.05)
        assert frame(stamp(200, 20_000_000))["fit_success"] == "true"
        assert frame(stamp(200, 500_000_000), [stamp(200, 470_000_000)])["fit_success"] == "true"
        # 0.6 s back: a time reset; the scan at 199.97 (old timeline) is within lidar_max_dt of the new
        # image at 199.9 but must not pair with it
        status = frame(stamp(199, 900_000_000))
        assert status["fit_success"] == "false" and "no LiDAR scan" in status["fit_reason"], status
        # the new timeline's own scans pair at once
        assert frame(stamp(199, 950_000_000), [stamp(199, 930_000_000)])["fit_success"] == "true"
        counters = lambda: node_status(diagnostics, namespace)  # noqa: E731
        assert publish_until(lambda: None, lambda: counters().get("time_resets") == "1", timeout_s=10)
        assert int(counters()["lidar_future_scans"]) >= 10
    finally:
        node.close()
        executor.shutdown()
        node.destroy_node()
        rclpy.shutdown(context=context)
        spinner.join(timeout=10)
