"""The depth pipeline's point cloud with semantic labels: a `label` field and dropped classes."""

import numpy as np

from dpt_ros.geometry.camera import PinholeIntrinsics
from dpt_ros.geometry.pointcloud import POINT_FIELD_DATATYPES
from dpt_ros.pipeline.depth import LABEL_FIELD, METRIC_DEPTH, DepthPipeline, Frame, ModelOutputDepth, OutputOptions
from support.fake_engines import FakeEngine, fixed_prediction

DEPTH = np.array([[1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0]], np.float32)
LABELS = np.array([[0, 2, 2, 5], [12, 12, 149, 5]], np.uint8)
CAMERA = PinholeIntrinsics(2.0, 2.0, 1.5, 0.5, 4, 2)


def cloud_points(cloud):
    dtype = np.dtype({
        "names": [f.name for f in cloud.fields],
        "formats": [{2: "u1", 7: "<f4"}[f.datatype] for f in cloud.fields],
        "offsets": [f.offset for f in cloud.fields],
        "itemsize": cloud.point_step,
    })
    return cloud.data.view(dtype).reshape(cloud.height, cloud.width)


def test_cloud_gains_a_uint8_label_field_with_the_frame_s_class_ids():
    pipeline = DepthPipeline(FakeEngine(predict=fixed_prediction(DEPTH)), ModelOutputDepth(METRIC_DEPTH))
    frame = Frame(np.zeros((2, 4, 3), np.uint8), CAMERA, labels=LABELS)
    cloud = pipeline.process(frame, OutputOptions(cloud_rgb=False)).cloud
    label_field = next(f for f in cloud.fields if f.name == LABEL_FIELD)
    assert label_field.datatype == POINT_FIELD_DATATYPES[np.dtype(np.uint8)]
    points = cloud_points(cloud)
    np.testing.assert_array_equal(points[LABEL_FIELD], LABELS)
    np.testing.assert_array_equal(points["z"], DEPTH)


def test_dropped_classes_leave_the_cloud_but_not_the_depth_image():
    pipeline = DepthPipeline(FakeEngine(predict=fixed_prediction(DEPTH)), ModelOutputDepth(METRIC_DEPTH))
    frame = Frame(np.zeros((2, 4, 3), np.uint8), CAMERA, labels=LABELS)
    outputs = pipeline.process(frame, OutputOptions(cloud_rgb=False, cloud_dropped_labels=(2, 149)))
    z = cloud_points(outputs.cloud)["z"]
    np.testing.assert_array_equal(z, [[1, np.nan, np.nan, 4], [5, 6, np.nan, 8]])
    np.testing.assert_array_equal(outputs.depth.values, DEPTH)


def test_labels_follow_the_output_scale_by_nearest_neighbour():
    pipeline = DepthPipeline(FakeEngine(predict=fixed_prediction(DEPTH)), ModelOutputDepth(METRIC_DEPTH))
    frame = Frame(np.zeros((2, 4, 3), np.uint8), CAMERA, labels=LABELS)
    cloud = pipeline.process(frame, OutputOptions(output_scale=0.5, cloud_rgb=False)).cloud
    # 4 x 2 -> 2 x 1: output pixel centres fall on input columns 1 and 3 of row 1 (pixel-centre rule)
    np.testing.assert_array_equal(cloud_points(cloud)[LABEL_FIELD], [[12, 5]])


def test_without_labels_the_cloud_is_unchanged():
    pipeline = DepthPipeline(FakeEngine(predict=fixed_prediction(DEPTH)), ModelOutputDepth(METRIC_DEPTH))
    frame = Frame(np.zeros((2, 4, 3), np.uint8), CAMERA)
    cloud = pipeline.process(frame, OutputOptions(cloud_dropped_labels=(2,))).cloud
    assert LABEL_FIELD not in [f.name for f in cloud.fields]
    assert not np.isnan(cloud_points(cloud)["z"]).any()
