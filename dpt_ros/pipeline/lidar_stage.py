"""The depth pipeline's LiDAR stage: one frame's prediction + paired scan -> aligned (or honestly relative) depth."""

from __future__ import annotations

import numpy as np

from dpt_ros.alignment.lidar_depth import AlignedDepth, LidarAligner
from dpt_ros.model.presets import METRIC_DEPTH, RELATIVE_INVERSE_DEPTH
from dpt_ros.pipeline.depth import DepthEstimate, Frame


class LidarAlignedDepth:
    """The pipeline's depth stage with LiDAR alignment (see pipeline.DepthStage).

    `last` holds the latest frame's AlignedDepth (sparse depth, fit, filter state) for the node's
    diagnostics; the stage runs in the one inference thread, which also reads `last`.
    """

    def __init__(self, aligner: LidarAligner) -> None:
        self.aligner = aligner
        self.last: AlignedDepth | None = None

    def __call__(self, prediction: np.ndarray, frame: Frame) -> DepthEstimate:
        lidar = frame.lidar
        if lidar is None:
            raise ValueError("LidarAlignedDepth needs frames with a LidarFrameInput (frame.lidar)")
        self.last = self.aligner.align(prediction, lidar.stamp, lidar.lens, lidar.scan, lidar.missing_scan_reason)
        return DepthEstimate(self.last.values, METRIC_DEPTH if self.last.is_metric else RELATIVE_INVERSE_DEPTH)
