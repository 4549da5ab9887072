"""Segmentation stage: engine logits -> labels, palette and overlay images at the input size."""

import numpy as np
import pytest
import torch

from dpt_ros.pipeline.segmentation import SegmentationStage
from dpt_ros.segmentation.classes import load_class_table


class FixedLogitsEngine:
    """Network stages of an InferenceEngine whose logits have a given id image as argmax."""

    def __init__(self, ids: np.ndarray, num_classes: int = 150):
        logits = (np.eye(num_classes, dtype=np.float32)[ids] * 10.0).transpose(2, 0, 1)
        self.logits = torch.from_numpy(np.ascontiguousarray(logits))[None]
        self.prepared = []
        self.forwarded = []

    def prepare_batch(self, images):
        self.prepared.append(images)
        return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float()

    def forward(self, batch):
        self.forwarded.append(batch)
        return self.logits


IDS = np.array([[0, 2, 2], [12, 12, 149]])


def test_stage_gives_labels_palette_and_overlay_of_the_frame():
    table = load_class_table()
    engine = FixedLogitsEngine(IDS)
    rgb = np.zeros((2, 3, 3), np.uint8)
    rgb[..., 0] = 200  # pure red in RGB -> (0, 0, 200) in BGR
    outputs = SegmentationStage(engine, table).process(rgb, want_colored=True, want_overlay=True, overlay_alpha=0.5)
    assert engine.prepared == [[rgb]] and len(engine.forwarded) == 1
    assert outputs.labels.dtype == np.uint8
    np.testing.assert_array_equal(outputs.labels, IDS)
    np.testing.assert_array_equal(outputs.colored[1, 0], [61, 5, 150])  # person, BGR
    np.testing.assert_array_equal(outputs.colored[0, 1], [230, 230, 6])  # sky, BGR
    # overlay of person: 0.5 * (0, 0, 200) + 0.5 * (61, 5, 150) = (30.5, 2.5, 175) -> half to even
    np.testing.assert_array_equal(outputs.overlay[1, 0], [30, 2, 175])
    assert set(outputs.timings_ms) == {"segmentation", "semantic_images"}


def test_stage_upsamples_network_logits_to_the_image_and_reuses_a_prepared_input():
    engine = FixedLogitsEngine(np.array([[3, 3, 7, 7]] * 2))  # network output 2 x 4
    shared_input = torch.zeros(1, 3, 2, 4)
    outputs = SegmentationStage(engine, load_class_table()).process(
        np.zeros((4, 8, 3), np.uint8), network_input=shared_input
    )
    assert engine.prepared == [] and engine.forwarded[0] is shared_input
    np.testing.assert_array_equal(outputs.labels, [[3] * 4 + [7] * 4] * 4)


def test_stage_skips_images_nobody_wants():
    outputs = SegmentationStage(FixedLogitsEngine(IDS), load_class_table()).process(np.zeros((2, 3, 3), np.uint8))
    assert outputs.colored is None and outputs.overlay is None


def test_overlay_alone_does_not_publish_the_palette_image():
    outputs = SegmentationStage(FixedLogitsEngine(IDS), load_class_table()).process(
        np.zeros((2, 3, 3), np.uint8), want_overlay=True, overlay_alpha=1.0
    )
    assert outputs.colored is None
    np.testing.assert_array_equal(outputs.overlay[1, 2], [255, 0, 92])  # flag, RGB (92, 0, 255)


def test_stage_refuses_non_finite_logits():
    engine = FixedLogitsEngine(IDS)
    engine.logits[0, 3, 1, 1] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        SegmentationStage(engine, load_class_table()).process(np.zeros((2, 3, 3), np.uint8))


def test_stage_refuses_a_network_that_does_not_match_the_class_table():
    stage = SegmentationStage(FixedLogitsEngine(np.zeros((2, 2), int), num_classes=21), load_class_table())
    with pytest.raises(ValueError, match="21 classes"):
        stage.process(np.zeros((2, 2, 3), np.uint8))


# --- test-time augmentation on a real (reduced, random-weight) DPT segmentation network -------------


@pytest.fixture(scope="module")
def small_engine():
    import torch

    from dpt_ros.model.engine import InferenceEngine
    from dpt_ros.model.presets import get_preset

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
    from dpt_ros.pipeline.segmentation import augmented_class_probabilities
    from dpt_ros.segmentation.classes import TestTimeAugmentation

    image = np.random.default_rng(1).integers(0, 256, (64, 96, 3), dtype=np.uint8)
    probabilities = augmented_class_probabilities(small_engine, image, TestTimeAugmentation())
    np.testing.assert_allclose(probabilities, softmax(small_engine.infer(image)), atol=1e-5)


def test_flip_augmentation_averages_the_engine_on_the_image_and_its_mirror(small_engine):
    from dpt_ros.pipeline.segmentation import augmented_class_probabilities
    from dpt_ros.segmentation.classes import TestTimeAugmentation

    image = np.random.default_rng(2).integers(0, 256, (64, 96, 3), dtype=np.uint8)
    probabilities = augmented_class_probabilities(small_engine, image, TestTimeAugmentation(flip=True))
    mirrored = softmax(small_engine.infer(np.ascontiguousarray(image[:, ::-1])))[:, :, ::-1]
    expected = (softmax(small_engine.infer(image)) + mirrored) / 2
    np.testing.assert_allclose(probabilities, expected, atol=1e-5)


def test_stage_on_a_real_engine_gives_the_argmax_of_its_logits(small_engine):
    image = np.random.default_rng(3).integers(0, 256, (64, 96, 3), dtype=np.uint8)
    outputs = SegmentationStage(small_engine, load_class_table()).process(image)
    np.testing.assert_array_equal(outputs.labels, small_engine.infer(image).argmax(axis=0))
