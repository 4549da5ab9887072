"""One camera frame through a segmentation network to everything a node publishes about it, without ROS.

    RGB -> engine.infer (class logits at the image size) -> ids -> [palette image] -> [overlay]

The label image also feeds the depth pipeline's point cloud (`label` field) when depth runs too.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from dpt_ros.core.segmentation import ClassTable, blend_overlay, colorize_labels, labels_from_logits


class SegmentationBackend(Protocol):
    """What the stage needs of dpt_ros.InferenceEngine with a segmentation preset."""

    def infer(self, rgb: np.ndarray) -> np.ndarray: ...


@dataclass
class SemanticOutputs:
    """Per-frame segmentation products, all at the input image's size H x W.

    labels: H x W uint8 class ids (see the class table). colored: H x W x 3 uint8 BGR palette image or
    None. overlay: H x W x 3 uint8 BGR blend of image and palette or None. timings_ms: per stage.
    """

    labels: np.ndarray
    colored: np.ndarray | None = None
    overlay: np.ndarray | None = None
    timings_ms: dict[str, float] = field(default_factory=dict)


class SegmentationStage:
    """Runs a segmentation engine on frames and builds the label, palette and overlay images."""

    def __init__(self, engine: SegmentationBackend, table: ClassTable) -> None:
        self.engine = engine
        self.table = table

    def process(
        self, rgb: np.ndarray, *, want_colored: bool = False, want_overlay: bool = False, overlay_alpha: float = 0.5
    ) -> SemanticOutputs:
        """rgb: H x W x 3 uint8. Builds the palette / overlay images only when wanted.

        Raises ValueError when the network's class count does not match the class table.
        """
        timings: dict[str, float] = {}
        start = time.perf_counter()
        logits = self.engine.infer(rgb)
        timings["segmentation_inference"] = _elapsed_ms(start)
        if logits.shape[0] != self.table.num_classes:
            raise ValueError(
                f"the segmentation network predicts {logits.shape[0]} classes but the class table "
                f"({self.table.dataset}) has {self.table.num_classes}"
            )
        start = time.perf_counter()
        outputs = SemanticOutputs(labels=labels_from_logits(logits, rgb.shape[:2]), timings_ms=timings)
        if want_colored or want_overlay:
            colored = colorize_labels(outputs.labels, self.table)
            outputs.colored = colored if want_colored else None
            if want_overlay:
                outputs.overlay = blend_overlay(np.ascontiguousarray(rgb[..., ::-1]), colored, overlay_alpha)
        timings["labels_and_images"] = _elapsed_ms(start)
        return outputs


def _elapsed_ms(start: float) -> float:
    return (time.perf_counter() - start) * 1000.0
