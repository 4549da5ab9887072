"""Segmentation stage: engine logits -> labels, palette and overlay images at the input size."""

import numpy as np
import pytest

from dpt_ros.core.segmentation import load_class_table
from dpt_ros.core.segmentation_pipeline import SegmentationStage


class FixedLogitsEngine:
    """Returns logits whose argmax is a given id image (what a real engine returns: C x H x W)."""

    def __init__(self, ids: np.ndarray, num_classes: int = 150):
        self.logits = (np.eye(num_classes, dtype=np.float32)[ids] * 10.0).transpose(2, 0, 1).copy()
        self.inputs = []

    def infer(self, rgb):
        self.inputs.append(rgb)
        return self.logits


IDS = np.array([[0, 2, 2], [12, 12, 149]])


def test_stage_gives_labels_palette_and_overlay_of_the_frame():
    table = load_class_table()
    engine = FixedLogitsEngine(IDS)
    rgb = np.zeros((2, 3, 3), np.uint8)
    rgb[..., 0] = 200  # pure red in RGB -> (0, 0, 200) in BGR
    outputs = SegmentationStage(engine, table).process(rgb, want_colored=True, want_overlay=True, overlay_alpha=0.5)
    assert engine.inputs[0] is rgb
    assert outputs.labels.dtype == np.uint8
    np.testing.assert_array_equal(outputs.labels, IDS)
    np.testing.assert_array_equal(outputs.colored[1, 0], [61, 5, 150])  # person, BGR
    np.testing.assert_array_equal(outputs.colored[0, 1], [230, 230, 6])  # sky, BGR
    # overlay of person: 0.5 * (0, 0, 200) + 0.5 * (61, 5, 150) = (30.5, 2.5, 175) -> half to even
    np.testing.assert_array_equal(outputs.overlay[1, 0], [30, 2, 175])
    assert set(outputs.timings_ms) == {"segmentation_inference", "labels_and_images"}


def test_stage_skips_images_nobody_wants():
    outputs = SegmentationStage(FixedLogitsEngine(IDS), load_class_table()).process(np.zeros((2, 3, 3), np.uint8))
    assert outputs.colored is None and outputs.overlay is None


def test_overlay_alone_does_not_publish_the_palette_image():
    outputs = SegmentationStage(FixedLogitsEngine(IDS), load_class_table()).process(
        np.zeros((2, 3, 3), np.uint8), want_overlay=True, overlay_alpha=1.0
    )
    assert outputs.colored is None
    np.testing.assert_array_equal(outputs.overlay[1, 2], [255, 0, 92])  # flag, RGB (92, 0, 255)


def test_stage_refuses_a_network_that_does_not_match_the_class_table():
    stage = SegmentationStage(FixedLogitsEngine(np.zeros((2, 2), int), num_classes=21), load_class_table())
    with pytest.raises(ValueError, match="21 classes"):
        stage.process(np.zeros((2, 2, 3), np.uint8))
