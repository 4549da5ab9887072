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


# --- test-time augmentation on a real (reduced, random-weight) DPT segmentation network -------------


@pytest.fixture(scope="module")
def small_engine():
    import torch

    from dpt_ros.core.engine import InferenceEngine
    from dpt_ros.core.model.presets import get_preset

    torch.manual_seed(0)
    preset = get_preset("dpt_large_ade20k").with_architecture(
        embed_dim=64, depth=4, num_heads=2, taps=(0, 1, 2, 3), reassemble_channels=(16, 32, 64, 64), features=32
    )
    # network input 64 x 96 for a 64 x 96 image: the engine does not resample, so its logits are the net's
    return InferenceEngine(preset, allow_random_weights=True, input_size=(96, 64))


def softmax(logits):
    exp = np.exp(logits - logits.max(axis=0))
    return exp / exp.sum(axis=0)


def test_default_augmentation_is_the_engine_s_plain_prediction(small_engine):
    from dpt_ros.core.segmentation import TestTimeAugmentation
    from dpt_ros.core.segmentation_pipeline import augmented_class_probabilities

    image = np.random.default_rng(1).integers(0, 256, (64, 96, 3), dtype=np.uint8)
    probabilities = augmented_class_probabilities(small_engine, image, TestTimeAugmentation())
    np.testing.assert_allclose(probabilities, softmax(small_engine.infer(image)), atol=1e-5)


def test_flip_augmentation_averages_the_engine_on_the_image_and_its_mirror(small_engine):
    from dpt_ros.core.segmentation import TestTimeAugmentation
    from dpt_ros.core.segmentation_pipeline import augmented_class_probabilities

    image = np.random.default_rng(2).integers(0, 256, (64, 96, 3), dtype=np.uint8)
    probabilities = augmented_class_probabilities(small_engine, image, TestTimeAugmentation(flip=True))
    mirrored = softmax(small_engine.infer(np.ascontiguousarray(image[:, ::-1])))[:, :, ::-1]
    expected = (softmax(small_engine.infer(image)) + mirrored) / 2
    np.testing.assert_allclose(probabilities, expected, atol=1e-5)
