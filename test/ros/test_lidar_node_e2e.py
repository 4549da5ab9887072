"""The depth node with LiDAR alignment, end to end over real rclpy/DDS.

A test peer publishes a camera image, camera_info and an organised PointCloud2 ray-cast from a known scene
by a LiDAR mounted 0.3 m above and 0.1 m behind the camera (static extrinsic parameter, quaternion form).
The network is replaced by an oracle (a FakeEngine handed to the node) that returns the scene's exact relative inverse depth
(1/z - t) / s, so the node must find s and t from the LiDAR alone and publish metres on 'depth'.
"""


import numpy as np
import pytest
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.parameter import Parameter
from scipy.spatial.transform import Rotation
from sensor_msgs.msg import CameraInfo, Image, PointCloud2, PointField

from dpt_ros.geometry.camera import lens_from_camera_info
from dpt_ros.geometry.transforms import OPTICAL_FROM_LIDAR_ROTATION
from dpt_ros.geometry.transforms import make_transform as pose
from dpt_ros.ros.depth_node import DepthNode, StartupError
from dpt_ros.sim.scene import render_depth, spinning_lidar_scan, street_scene
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
from support.fake_engines import fake_engine_factory, fixed_prediction
from support.ros_runtime import SpinningContext

pytestmark = pytest.mark.ros

WIDTH, HEIGHT, FOCAL = 160, 120, 125.0
K = np.array([[FOCAL, 0.0, (WIDTH - 1) / 2], [0.0, FOCAL, (HEIGHT - 1) / 2], [0.0, 0.0, 1.0]])
LIDAR_POSITION = (0.0, -0.3, -0.1)  # in the camera optical frame: 0.3 m up, 0.1 m back
TRUE_SCALE, TRUE_SHIFT = 0.004, -0.02
NAMESPACE = "/lidar_e2e"


def cloud_message(at, points: np.ndarray, beams: int) -> PointCloud2:
    """Organised cloud, x/y/z float32 after a float32 intensity, 4 bytes of padding per point."""
    layout = np.dtype({"names": ["intensity", "x", "y", "z"], "formats": ["<f4"] * 4, "offsets": [0, 4, 8, 12],
                       "itemsize": 20})  # fmt: skip
    packed = np.zeros(len(points), dtype=layout)
    for axis, name in enumerate("xyz"):
        packed[name] = points[:, axis]
    fields = [PointField(name=n, offset=o, datatype=PointField.FLOAT32, count=1) for n, o in
              (("intensity", 0), ("x", 4), ("y", 8), ("z", 12))]  # fmt: skip
    width = len(points) // beams
    return PointCloud2(header=at, height=beams, width=width, fields=fields, is_bigendian=False, point_step=20,
                       row_step=20 * width, data=packed.tobytes(), is_dense=False)  # fmt: skip


@pytest.fixture(scope="module")
def scene():
    shapes = street_scene()
    truth = render_depth(shapes, K, (WIDTH, HEIGHT)).astype(np.float32)
    T_cam_lidar = pose(OPTICAL_FROM_LIDAR_ROTATION, LIDAR_POSITION)
    cloud = spinning_lidar_scan(shapes, T_cam_lidar, n_beams=16, n_azimuth=1024)
    prediction = ((1.0 / truth - TRUE_SHIFT) / TRUE_SCALE).astype(np.float32)
    return truth, cloud, prediction


@pytest.fixture(scope="module")
def running_node(scene):
    truth, cloud, prediction = scene
    peer = RosPeer()
    runtime = SpinningContext()
    quaternion = Rotation.from_matrix(OPTICAL_FROM_LIDAR_ROTATION).as_quat()  # x, y, z, w
    overrides = {
        "model": "dpt_hybrid_midas",
        "device": "cpu",
        "qos_in": "reliable",
        "lidar_alignment": True,
        "lidar_to_camera": [*LIDAR_POSITION, *quaternion],
        "publish_lidar_sparse": True,
    }
    node = DepthNode(
        engine_factory=fake_engine_factory(fixed_prediction(prediction)),
        context=runtime.context,
        namespace=NAMESPACE,
        parameter_overrides=[Parameter(name, value=value) for name, value in overrides.items()],
    )
    runtime.add(node)
    yield peer
    node.close()
    runtime.close()
    peer.close()


def test_depth_is_relative_without_lidar_metric_within_2_percent_with_it_then_held_then_stale(scene, running_node):
    truth, cloud, _ = scene
    peer = running_node
    publish = {topic: peer.publisher(msg_type, f"{NAMESPACE}/{topic}") for topic, msg_type in
               (("image", Image), ("camera_info", CameraInfo), ("lidar/points", PointCloud2))}  # fmt: skip
    collect = {topic: peer.collect(msg_type, f"{NAMESPACE}/{topic}") for topic, msg_type in
               (("depth", Image), ("depth/relative", Image), ("lidar/depth_sparse", Image),
                ("alignment", DiagnosticArray))}  # fmt: skip
    rgb = pattern_image(WIDTH, HEIGHT)

    # no scan yet: relative inverse depth only, and the alignment topic says why
    lonely = header(stamp(100))
    info, lonely_frame = camera_info(lonely, WIDTH, HEIGHT, focal=FOCAL), raw_image(lonely, rgb, "rgb8")
    answered = lambda at, topic: collect[topic].find(same_stamp(at.stamp)) is not None  # noqa: E731

    def with_camera_info(msg) -> bool:  # the first image may be processed before the first camera_info
        return same_stamp(lonely.stamp)(msg) and "camera_info" not in diagnostic_values(msg)["fit_reason"]

    assert publish_until(
        lambda: (publish["camera_info"].publish(info), publish["image"].publish(lonely_frame)),
        lambda: answered(lonely, "depth/relative") and collect["alignment"].find(with_camera_info) is not None,
    )
    status = diagnostic_values(collect["alignment"].find(with_camera_info))
    assert status["metric"] == "false" and status["filter_state"] == "none" and "no LiDAR scan" in status["fit_reason"]
    assert not answered(lonely, "depth")

    # a scan 30 ms from the image: metres on 'depth'
    at = header(stamp(200))
    scan = cloud_message(header(stamp(199, 970_000_000), "lidar"), cloud, beams=16)
    frame = raw_image(at, rgb, "rgb8")

    def send() -> None:
        publish["lidar/points"].publish(scan)
        publish["camera_info"].publish(camera_info(at, WIDTH, HEIGHT, focal=FOCAL))
        publish["image"].publish(frame)

    assert publish_until(send, lambda: answered(at, "depth") and answered(at, "alignment"))
    depth_msg = collect["depth"].find(same_stamp(at.stamp))
    assert depth_msg.encoding == "32FC1" and (depth_msg.width, depth_msg.height) == (WIDTH, HEIGHT)
    depth = np.frombuffer(bytes(depth_msg.data), "<f4").reshape(HEIGHT, WIDTH)
    valid = np.isfinite(depth)
    assert valid.mean() > 0.99
    relative_error = np.abs(depth[valid] - truth[valid]) / truth[valid]
    assert np.median(relative_error) < 0.005 and np.mean(relative_error < 0.02) > 0.99

    status = diagnostic_values(collect["alignment"].find(same_stamp(at.stamp)))
    assert status["metric"] == "true" and status["filter_state"] == "fresh"
    assert status["extrinsic_source"] == "parameter" and int(status["n_inliers"]) > 300
    assert float(status["scale"]) == pytest.approx(TRUE_SCALE, rel=0.01)
    assert publish_until(lambda: None, lambda: answered(at, "lidar/depth_sparse"), timeout_s=5.0)
    sparse_msg = collect["lidar/depth_sparse"].find(same_stamp(at.stamp))
    sparse = np.frombuffer(bytes(sparse_msg.data), "<f4").reshape(HEIGHT, WIDTH)
    assert np.count_nonzero(np.isfinite(sparse)) == int(status["lidar_pixels"])

    # a malformed cloud half a second later: counted, and the last fit is held (still metres)
    later = header(stamp(200, 500_000_000))
    broken = cloud_message(header(stamp(200, 500_000_000), "lidar"), cloud, beams=16)
    broken.fields = [field for field in broken.fields if field.name != "z"]
    later_frame = raw_image(later, rgb, "rgb8")
    assert publish_until(
        lambda: (publish["lidar/points"].publish(broken), publish["image"].publish(later_frame)),
        lambda: answered(later, "depth") and answered(later, "alignment"),
    )
    status = diagnostic_values(collect["alignment"].find(same_stamp(later.stamp)))
    assert status["filter_state"] == "held" and "invalid point cloud" in status["fit_reason"]

    # five seconds without LiDAR: the fit is stale, back to relative inverse depth
    stale = header(stamp(205))
    stale_frame = raw_image(stale, rgb, "rgb8")
    assert publish_until(lambda: publish["image"].publish(stale_frame),
                         lambda: answered(stale, "depth/relative") and answered(stale, "alignment"))  # fmt: skip
    status = diagnostic_values(collect["alignment"].find(same_stamp(stale.stamp)))
    assert status["filter_state"] == "stale" and status["metric"] == "false"


def test_node_without_extrinsic_or_tf_refuses_to_start_and_says_why(monkeypatch):
    monkeypatch.setattr("dpt_ros.ros.lidar_input.tf_available", lambda: False)
    context = rclpy.Context()
    rclpy.init(context=context)
    try:
        with pytest.raises(StartupError, match="set lidar_to_camera"):
            DepthNode(engine_factory=fake_engine_factory(), context=context,
                      parameter_overrides=[Parameter("lidar_alignment", value=True)])
    finally:
        rclpy.shutdown(context=context)


def test_lens_follows_the_intrinsics_source():
    info = camera_info(header(stamp(1)), WIDTH, HEIGHT, focal=FOCAL)
    info.d = [-0.1, 0.01, 0.0, 0.0, 0.0]
    info.p = [150.0, 0.0, 80.0, 0.0, 0.0, 151.0, 60.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    raw = lens_from_camera_info(info, "K")
    np.testing.assert_array_equal(raw.K, K)
    assert raw.D.tolist() == info.d.tolist() and raw.distortion_model == "plumb_bob"
    rectified = lens_from_camera_info(info, "P")
    assert rectified.D is None and rectified.K[0, 0] == 150.0 and rectified.K[1, 2] == 60.0
