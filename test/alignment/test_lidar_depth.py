"""Per-frame LiDAR alignment (project -> fit -> filter -> metres) on a ray-cast scene, and its fallbacks."""

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from dpt_ros.alignment.lidar_depth import LidarAligner, LidarAlignmentSettings, LidarScan
from dpt_ros.alignment.temporal_filter import TemporalFilterConfig
from dpt_ros.geometry.camera import PinholeIntrinsics
from dpt_ros.geometry.transforms import OPTICAL_FROM_LIDAR_ROTATION, transform_from_parameter, transform_from_xyz_quaternion
from dpt_ros.geometry.transforms import make_transform as pose
from dpt_ros.sim.scene import render_depth, spinning_lidar_scan, street_scene

K = np.array([[250.0, 0.0, 159.5], [0.0, 250.0, 119.5], [0.0, 0.0, 1.0]])
SIZE = (320, 240)
T_CAM_LIDAR = pose(OPTICAL_FROM_LIDAR_ROTATION, (0.0, -0.3, -0.1))
TRUE_SCALE, TRUE_SHIFT = 0.004, -0.02


@pytest.fixture(scope="module")
def world():
    scene = street_scene()
    truth = render_depth(scene, K, SIZE).astype(np.float32)
    cloud = spinning_lidar_scan(scene, T_CAM_LIDAR, n_beams=32, n_azimuth=1024)
    pred = ((1.0 / truth - TRUE_SHIFT) / TRUE_SCALE).astype(np.float32)
    return truth, cloud, pred


def scan(cloud, stamp=0.0):
    return LidarScan(cloud, T_CAM_LIDAR, stamp, "parameter")


def median_abs_rel(depth, truth):
    valid = np.isfinite(depth)
    return float(np.median(np.abs(depth[valid] - truth[valid]) / truth[valid]))


def test_relative_prediction_becomes_metric_with_a_scan(world):
    truth, cloud, pred = world
    aligner = LidarAligner("relative_inverse_depth")
    out = aligner.align(pred, 0.0, PinholeIntrinsics.from_matrix(K, SIZE), scan(cloud))
    assert out.is_metric and out.filtered.state.value == "fresh"
    assert median_abs_rel(out.values, truth) < 0.005
    diagnostics = out.diagnostics()
    assert diagnostics["filter_state"] == "fresh" and diagnostics["extrinsic_source"] == "parameter"
    assert float(diagnostics["scale"]) == pytest.approx(TRUE_SCALE, rel=0.01)
    assert int(diagnostics["n_inliers"]) > 1000 and diagnostics["fit_success"] == "true"


def test_without_scan_or_camera_the_output_stays_relative(world):
    truth, cloud, pred = world
    aligner = LidarAligner("relative_inverse_depth")
    for lens, lidar, note in ((PinholeIntrinsics.from_matrix(K, SIZE), None, "no LiDAR scan"), (None, scan(cloud), "no camera_info")):
        out = aligner.align(pred, 0.0, lens, lidar)
        assert not out.is_metric and out.note.startswith(note)
        np.testing.assert_array_equal(out.values, pred)
        assert out.diagnostics()["filter_state"] == "none" and out.diagnostics()["fit_reason"].startswith(note)


def test_held_fit_keeps_metres_until_it_goes_stale(world):
    truth, cloud, pred = world
    settings = LidarAlignmentSettings(temporal=TemporalFilterConfig(hold_time=1.0))
    aligner = LidarAligner("relative_inverse_depth", settings)
    aligner.align(pred, 10.0, PinholeIntrinsics.from_matrix(K, SIZE), scan(cloud, 10.0))
    held = aligner.align(pred, 10.5, PinholeIntrinsics.from_matrix(K, SIZE), None)
    assert held.is_metric and held.filtered.state.value == "held"
    assert median_abs_rel(held.values, truth) < 0.005
    stale = aligner.align(pred, 11.5, PinholeIntrinsics.from_matrix(K, SIZE), None)
    assert not stale.is_metric and stale.filtered.state.value == "stale"


def test_metric_preset_is_left_alone_unless_refinement_is_on(world):
    truth, cloud, _ = world
    pred_metres = truth / 1.1  # a metric model 10 % short
    plain = LidarAligner("metric_depth").align(pred_metres, 0.0, PinholeIntrinsics.from_matrix(K, SIZE), scan(cloud))
    assert plain.is_metric and plain.filtered is None
    np.testing.assert_allclose(plain.values, pred_metres)
    assert plain.fit.scale == pytest.approx(1.1, rel=0.005)  # still measured, for diagnostics
    refined = LidarAligner("metric_depth", LidarAlignmentSettings(refine_metric=True)).align(
        pred_metres, 0.0, PinholeIntrinsics.from_matrix(K, SIZE), scan(cloud)
    )
    assert refined.is_metric and median_abs_rel(refined.values, truth) < 0.005


def test_bad_lens_or_size_is_reported_not_raised(world):
    _, cloud, pred = world
    aligner = LidarAligner("relative_inverse_depth")
    fisheye = PinholeIntrinsics.from_matrix(K, SIZE, D=np.array([0.1, 0.0, 0.0, 0.0]), distortion_model="equidistant")
    out = aligner.align(pred, 0.0, fisheye, scan(cloud))
    assert not out.is_metric and "unsupported distortion_model" in out.note
    out = aligner.align(pred, 0.1, PinholeIntrinsics.from_matrix(K, (640, 480)), scan(cloud))
    assert not out.is_metric and "does not match" in out.note
    with pytest.raises(ValueError, match="depth model"):
        LidarAligner("segmentation_logits")


def test_quaternion_extrinsic_matches_scipy_and_hand_values():
    quaternion = np.array([0.1, -0.3, 0.2, 0.9])
    T = transform_from_xyz_quaternion((1.0, 2.0, 3.0), quaternion)
    np.testing.assert_allclose(T[:3, :3], Rotation.from_quat(quaternion).as_matrix(), atol=1e-12)
    np.testing.assert_allclose(T[:3, 3], (1.0, 2.0, 3.0))
    # 90 degrees about z: x -> y
    quarter = transform_from_parameter([0, 0, 0, 0, 0, np.sqrt(0.5), np.sqrt(0.5)])
    np.testing.assert_allclose(quarter[:3, :3] @ (1.0, 0.0, 0.0), (0.0, 1.0, 0.0), atol=1e-12)
    np.testing.assert_allclose(transform_from_parameter(T_CAM_LIDAR.ravel().tolist()), T_CAM_LIDAR)
    for bad in ([0.0] * 6, [0.0] * 7, [1.0] * 16):
        with pytest.raises(ValueError):
            transform_from_parameter(bad)


def test_node_lidar_parameters_map_to_settings_and_extrinsics():
    from dpt_ros.app.depth_setup import depth_stage
    from dpt_ros.app.node_config import DepthNodeConfig
    from dpt_ros.pipeline.depth import ModelOutputDepth
    from dpt_ros.pipeline.lidar_stage import LidarAlignedDepth

    quaternion = Rotation.from_matrix(OPTICAL_FROM_LIDAR_ROTATION).as_quat()
    config = DepthNodeConfig.from_mapping(
        {"lidar_alignment": True, "lidar_to_camera": [0.0, -0.3, -0.1, *quaternion], "lidar_gate": 0.3,
         "lidar_min_points": 50, "lidar_fit_method": "lstsq"}
    )  # fmt: skip
    np.testing.assert_allclose(config.lidar_extrinsic(), T_CAM_LIDAR, atol=1e-12)
    settings = config.lidar_settings()
    assert (settings.method, settings.temporal.gate, settings.alignment.min_points) == ("lstsq", 0.3, 50)
    assert isinstance(depth_stage(config, "relative_inverse_depth"), LidarAlignedDepth)
    assert isinstance(depth_stage(DepthNodeConfig(), "relative_inverse_depth"), ModelOutputDepth)
    assert DepthNodeConfig().lidar_extrinsic() is None  # all zeros: TF
    matrix = DepthNodeConfig.from_mapping({"lidar_to_camera": T_CAM_LIDAR.ravel().tolist()})
    np.testing.assert_allclose(matrix.lidar_extrinsic(), T_CAM_LIDAR)
    for bad, reason in (
        ({"lidar_to_camera": [1.0] * 5}, "must be like"),
        ({"lidar_to_camera": T_CAM_LIDAR.T.ravel().tolist()}, "lidar_to_camera: .*bottom row"),
        ({"lidar_min_range": 50.0, "lidar_max_range": 10.0}, "exceeds"),
        ({"lidar_fit_method": "median"}, "not one of"),
    ):
        with pytest.raises(ValueError, match=reason):
            DepthNodeConfig.from_mapping(bad)
