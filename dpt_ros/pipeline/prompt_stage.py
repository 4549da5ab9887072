"""The depth pipeline's stage for prompt presets: metres when the frame's prompt was used, else relative."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dpt_ros.model.presets import METRIC_DEPTH
from dpt_ros.pipeline.depth import RELATIVE_DEPTH, DepthEstimate, Frame


@dataclass(frozen=True)
class PromptedDepth:
    """The pipeline's depth stage for Prompt Depth Anything presets (see pipeline.DepthStage).

    A frame whose prompt was usable went through the network with it: its prediction is metres (non-finite
    or <= 0 -> NaN). A frame whose prompt was refused (none paired, too few points, one depth) ran without
    one: its prediction is the network's unitless (0, 1) depth, published as RELATIVE_DEPTH, never as
    metres. The estimate carries the frame's DepthPrompt (for the node's 'prompt' status).
    """

    def __call__(self, prediction: np.ndarray, frame: Frame) -> DepthEstimate:
        if frame.prompt is None:
            raise ValueError("PromptedDepth needs frames with a prompt input (frame.prompt)")
        values = np.asarray(prediction, dtype=np.float32)
        with np.errstate(invalid="ignore"):
            valid = np.isfinite(values) & (values > 0 if frame.prompt.usable else True)
        kind = METRIC_DEPTH if frame.prompt.usable else RELATIVE_DEPTH
        return DepthEstimate(np.where(valid, values, np.float32(np.nan)), kind, prompt=frame.prompt)
