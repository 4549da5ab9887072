"""The depth pipeline's LiDAR stage: one frame's prediction + paired scan -> aligned (or honestly relative) depth."""

from __future__ import annotations

import numpy as np

from dpt_ros.alignment.lidar_depth import LidarAligner
from dpt_ros.model.presets import METRIC_DEPTH, RELATIVE_INVERSE_DEPTH
from dpt_ros.pipeline.depth import DepthEstimate, Frame


class LidarAlignedDepth:
    """The pipeline's depth stage with LiDAR alignment (see pipeline.DepthStage): each frame's DepthEstimate
    carries its AlignedDepth (sparse depth, fit, filter state). The aligner's temporal filter is the only state.
    """

    def __init__(self, aligner: LidarAligner) -> None:
        self.aligner = aligner

    def __call__(self, prediction: np.ndarray, frame: Frame) -> DepthEstimate:
        lidar = frame.lidar
        if lidar is None:
            raise ValueError("LidarAlignedDepth needs frames with a LidarFrameInput (frame.lidar)")
        aligned = self.aligner.align(prediction, lidar.stamp, lidar.lens, lidar.scan, lidar.missing_scan_reason)
        return DepthEstimate(aligned.values, METRIC_DEPTH if aligned.is_metric else RELATIVE_INVERSE_DEPTH, aligned)
