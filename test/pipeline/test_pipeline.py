"""The per-frame pipeline's own logic, with a fixed-output backend standing in for the network."""

import dataclasses

import numpy as np
import pytest

from dpt_ros.geometry.camera import PinholeIntrinsics
from dpt_ros.pipeline.depth import (
    METRIC_DEPTH,
    RELATIVE_INVERSE_DEPTH,
    DepthPipeline,
    Frame,
    ModelOutputDepth,
    OutputOptions,
)
from support.fake_engines import FakeEngine, fixed_prediction

PREDICTION = np.array([[1.0, 2.0, -1.0, np.inf], [4.0, 0.0, 3.0, 2.0]], np.float32)
FIXED = FakeEngine(predict=fixed_prediction(PREDICTION))  # the same prediction for any 2 x 4 image
CAMERA = PinholeIntrinsics(2.0, 2.0, 1.5, 0.5, 4, 2)
FRAME = Frame(rgb=np.zeros((2, 4, 3), np.uint8), camera=CAMERA)


def test_metric_model_output_invalid_values_become_nan_and_cloud_is_built() -> None:
    pipeline = DepthPipeline(FIXED, ModelOutputDepth(METRIC_DEPTH))
    outputs = pipeline.process(FRAME, OutputOptions(), want_cloud=True, want_colored=True)
    np.testing.assert_array_equal(outputs.depth.values, [[1, 2, np.nan, np.nan], [4, np.nan, 3, 2]])
    assert outputs.depth.is_metric and outputs.camera == CAMERA
    assert (outputs.cloud.height, outputs.cloud.width) == (2, 4)
    assert outputs.colored.shape == (2, 4, 3)
    assert {"inference", "depth_stage", "channels", "cloud", "colorize"} <= outputs.timings_ms.keys()


def test_relative_output_never_becomes_a_cloud() -> None:
    pipeline = DepthPipeline(FIXED, ModelOutputDepth(RELATIVE_INVERSE_DEPTH))
    outputs = pipeline.process(FRAME, OutputOptions(), want_cloud=True)
    assert outputs.depth.kind == RELATIVE_INVERSE_DEPTH and outputs.cloud is None
    np.testing.assert_array_equal(outputs.depth.values[0], [1, 2, -1, np.nan])  # negative is fine in relative


def test_no_camera_or_not_wanted_means_no_cloud() -> None:
    pipeline = DepthPipeline(FIXED, ModelOutputDepth(METRIC_DEPTH))
    assert pipeline.process(Frame(FRAME.rgb), OutputOptions()).cloud is None
    assert pipeline.process(FRAME, OutputOptions(), want_cloud=False).cloud is None


def test_output_scale_resizes_depth_camera_and_channels_consistently() -> None:
    def labels(frame, depth):
        return {"label": np.arange(8, dtype=np.uint16).reshape(2, 4)}

    pipeline = DepthPipeline(FIXED, ModelOutputDepth(METRIC_DEPTH), [labels])
    outputs = pipeline.process(FRAME, OutputOptions(output_scale=0.5, cloud_rgb=False))
    # nearest to output pixel centres: source (row, col) = (1, 1) and (1, 3)
    np.testing.assert_array_equal(outputs.depth.values, [[np.nan, 2.0]])
    assert outputs.camera == PinholeIntrinsics(1.0, 1.0, 0.5, 0.0, 2, 1)
    assert [f.name for f in outputs.cloud.fields] == ["x", "y", "z", "label"]


def test_each_frames_outputs_carry_their_own_alignment_result_through_the_resize() -> None:
    """A depth stage's per-frame result (the LiDAR fit) reaches FrameOutputs.alignment: no side channel."""
    stage = ModelOutputDepth(METRIC_DEPTH)
    results = iter(["fit of frame 1", "fit of frame 2"])  # stand-ins for AlignedDepth

    def aligning_stage(prediction, frame):
        return dataclasses.replace(stage(prediction, frame), alignment=next(results))

    pipeline = DepthPipeline(FIXED, aligning_stage)
    outputs = pipeline.process_batch([FRAME, FRAME], OutputOptions(output_scale=0.5), want_cloud=[False, False],
                                     want_colored=[False, False])  # fmt: skip
    assert [frame.alignment for frame in outputs] == ["fit of frame 1", "fit of frame 2"]
    assert DepthPipeline(FIXED, stage).process(FRAME, OutputOptions()).alignment is None


def test_segmentation_model_is_not_a_depth_stage() -> None:
    with pytest.raises(ValueError, match="depth model"):
        ModelOutputDepth("segmentation_logits")
