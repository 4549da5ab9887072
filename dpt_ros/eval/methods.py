"""The depth methods an evaluation compares, as a small registry of named callables over the same frame inputs.

Each method turns one frame's inputs (image, raw network prediction, the node's published depth, the LiDAR
pixels the node's fit saw) into dense metric depth, (H, W) metres with NaN where it gives none, or None when
it does not apply (e.g. "as published" for a relative model). Everything is then scored on exactly the same
pixels (held-out LiDAR points, dense ground truth). Adding a method is one more ``DepthMethod`` in the list.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from dpt_ros.alignment.fit import DEPTH, INVERSE_DEPTH, fit_samples, to_metric
from dpt_ros.eval.densify import ip_basic_fill, nearest_neighbour_fill
from dpt_ros.eval.holdout import median_scale
from dpt_ros.model.presets import METRIC_DEPTH, RELATIVE_INVERSE_DEPTH


@dataclass(frozen=True)
class MethodInputs:
    """One frame as every method sees it.

    rgb: (H, W, 3) uint8. K: (3, 3) the camera matrix of the image (pixels).
    prediction: (H, W) float32 raw network output in ``output_kind`` units (relative inverse depth or metres).
    node_depth: (H, W) float32 metres the node published for this frame, or None when it gave no metres.
    sparse: (H, W) float32 metres of the LiDAR points the node's fit saw (its z-buffered projection), NaN
        where none landed. max_depth: metres, the node's cap on metric output.
    prompt: a prompt model's dense (h, w) metre prompt as the network got it, None otherwise (other models, or
        a refused prompt; then ``output_kind`` is the unitless RELATIVE_DEPTH, never metres).
    """

    rgb: np.ndarray
    K: np.ndarray
    prediction: np.ndarray
    output_kind: str
    node_depth: np.ndarray | None
    sparse: np.ndarray
    max_depth: float
    prompt: np.ndarray | None = None

    def sparse_samples(self) -> tuple[np.ndarray, np.ndarray]:
        """(M,) prediction values and (M,) LiDAR metres at the LiDAR pixels."""
        rows, cols = np.nonzero(np.isfinite(self.sparse))
        return self.prediction[rows, cols].astype(np.float64), self.sparse[rows, cols].astype(np.float64)


@dataclass(frozen=True)
class DepthMethod:
    """key: short name for files and JSON; label: for tables and legends; uses_network: False for
    LiDAR-only methods (they are the same for every model, so a model comparison shows them once);
    dense: MethodInputs -> (H, W) metres (NaN = none), or None when the method does not apply."""

    key: str
    label: str
    uses_network: bool
    dense: Callable[[MethodInputs], np.ndarray | None]


def _space(output_kind: str) -> str:
    return INVERSE_DEPTH if output_kind == RELATIVE_INVERSE_DEPTH else DEPTH


def node_output(inputs: MethodInputs) -> np.ndarray | None:
    """What the node published: robust fit + temporal filter (NaN everywhere when it gave no metres)."""
    if inputs.node_depth is None:
        return np.full(inputs.prediction.shape, np.nan, np.float32)
    return inputs.node_depth


def least_squares(inputs: MethodInputs) -> np.ndarray | None:
    """This frame's closed-form least-squares fit to the LiDAR pixels (MiDaS/DPT evaluation form: scale and
    shift in inverse depth for relative models, scale only for metric ones), no robustness, no filter."""
    prediction, lidar = inputs.sparse_samples()
    fit = fit_samples(prediction, lidar, space=_space(inputs.output_kind), method="lstsq")
    if not fit.success:
        return np.full(inputs.prediction.shape, np.nan, np.float32)
    return to_metric(inputs.prediction, fit, max_depth=inputs.max_depth)


def median_scaling(inputs: MethodInputs) -> np.ndarray | None:
    """Depth up to scale (1 / prediction for relative inverse depth) × median(LiDAR) / median(prediction)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        values = inputs.prediction.astype(np.float64)
        up_to_scale = 1.0 / values if inputs.output_kind == RELATIVE_INVERSE_DEPTH else values
        up_to_scale = np.where(up_to_scale > 0, up_to_scale, np.nan)
    rows, cols = np.nonzero(np.isfinite(inputs.sparse))
    scale = median_scale(up_to_scale[rows, cols], inputs.sparse[rows, cols])
    return (scale * up_to_scale).astype(np.float32)


def as_published(inputs: MethodInputs) -> np.ndarray | None:
    """A metric preset's own metres, no LiDAR at all (the published model); None for relative models."""
    if inputs.output_kind != METRIC_DEPTH:
        return None
    with np.errstate(invalid="ignore"):
        return np.where(np.isfinite(inputs.prediction) & (inputs.prediction > 0), inputs.prediction,
                        np.float32(np.nan)).astype(np.float32)


def prompt_only(inputs: MethodInputs) -> np.ndarray | None:
    """A prompt model's prompt itself, resized bilinearly to the image: what the network adds is the difference
    to this row. None for other models and for frames whose prompt was refused."""
    if inputs.prompt is None:
        return None
    height, width = inputs.prediction.shape
    return cv2.resize(inputs.prompt, (width, height), interpolation=cv2.INTER_LINEAR)


def lidar_nearest(inputs: MethodInputs) -> np.ndarray | None:
    return nearest_neighbour_fill(inputs.sparse)


def lidar_ip_basic(inputs: MethodInputs) -> np.ndarray | None:
    return ip_basic_fill(inputs.sparse)


NODE = "node"
LIDAR_ONLY = "lidar_only"  # the nearest-neighbour LiDAR baseline (the headline's comparison)

DEFAULT_METHODS: tuple[DepthMethod, ...] = (
    DepthMethod(NODE, "DPT + robust alignment + temporal filter (the node)", True, node_output),
    DepthMethod("least_squares", "DPT + plain least squares", True, least_squares),
    DepthMethod("median_scaling", "DPT + median scaling", True, median_scaling),
    DepthMethod("published", "DPT metric preset as published (no LiDAR)", True, as_published),
    DepthMethod("prompt_only", "the prompt alone (densified grid, bilinear; prompt models)", True, prompt_only),
    DepthMethod(LIDAR_ONLY, "LiDAR only: nearest neighbour", False, lidar_nearest),
    DepthMethod("ip_basic", "LiDAR only: IP-Basic morphological fill", False, lidar_ip_basic),
)
