"""Segmentation core: class table data, ids at the input resolution, palette, overlay, TTA, metrics."""

import json
import math

import numpy as np
import pytest

from dpt_ros.eval.segmentation_metrics import class_iou, confusion_matrix, mean_iou, pixel_accuracy
from dpt_ros.segmentation.classes import (
    ClassTable,
    SemanticClass,
    TestTimeAugmentation,
    UnknownClassError,
    blend_overlay,
    class_probabilities,
    colorize_labels,
    labels_from_ade20k_annotation,
    labels_from_logits,
    labels_from_scores,
    load_class_table,
    predict_class_probabilities,
    resize_labels,
)


@pytest.fixture(scope="module")
def ade20k() -> ClassTable:
    return load_class_table()


def one_hot_logits(ids: np.ndarray, num_classes: int, margin: float = 20.0) -> np.ndarray:
    """C x H x W logits whose argmax is `ids` (margin in logit units)."""
    return (np.eye(num_classes, dtype=np.float32)[ids] * margin).transpose(2, 0, 1).copy()


def two_class_logits(probability_of_class_1: np.ndarray) -> np.ndarray:
    """2 x H x W logits whose softmax gives class 1 exactly the given probabilities."""
    p = probability_of_class_1.astype(np.float64)
    return np.stack([np.zeros_like(p), np.log(p / (1 - p))]).astype(np.float32)


# --- class table data ---------------------------------------------------------------------------


def test_ade20k_table_has_the_150_official_classes_in_order(ade20k):
    assert ade20k.num_classes == 150
    assert [c.id for c in ade20k.classes] == list(range(150))
    assert ade20k.unlabeled_id == 255
    # spot checks against objectInfo150 (1-based Idx there = our id + 1)
    assert ade20k.names[:8] == ("wall", "building", "sky", "floor", "tree", "ceiling", "road", "bed")
    assert ade20k.names[12] == "person" and ade20k.names[20] == "car" and ade20k.names[136] == "traffic light"
    assert ade20k.names[-3:] == ("glass", "clock", "flag")
    assert ade20k.classes[1].synonyms == ("building", "edifice")
    assert ade20k.classes[2].stuff and not ade20k.classes[12].stuff
    assert all(c.synonyms[0] == c.name for c in ade20k.classes)


def test_ade20k_palette_is_the_standard_one(ade20k):
    colors = [c.color_rgb for c in ade20k.classes]
    assert colors[0] == (120, 120, 120)  # wall
    assert colors[2] == (6, 230, 230)  # sky
    assert colors[12] == (150, 5, 61)  # person
    assert colors[149] == (92, 0, 255)  # flag
    # The published palette repeats exactly one colour: road and skyscraper share grey 140.
    repeated = {color for color in colors if colors.count(color) > 1}
    assert repeated == {(140, 140, 140)}
    assert [i for i, color in enumerate(colors) if color == (140, 140, 140)] == [6, 48]


def test_class_table_json_round_trips(ade20k):
    decoded = json.loads(ade20k.to_json())
    assert decoded["classes"][12] == {
        "id": 12,
        "name": "person",
        "synonyms": ["person", "individual", "someone", "somebody", "mortal", "soul"],
        "stuff": False,
        "color_rgb": [150, 5, 61],
    }
    assert ClassTable.from_mapping(decoded) == ade20k


def test_class_table_rejects_inconsistent_data():
    row = SemanticClass(id=0, name="a", synonyms=("a",), stuff=False, color_rgb=(1, 2, 3))
    with pytest.raises(ValueError, match="in order"):
        ClassTable("x", 255, (SemanticClass(1, "a", ("a",), False, (1, 2, 3)),))
    with pytest.raises(ValueError, match="unique"):
        ClassTable("x", 255, (row, SemanticClass(1, " A ", ("a",), False, (1, 2, 3))))
    with pytest.raises(ValueError, match="unlabeled_id"):
        ClassTable("x", 0, (row,))
    with pytest.raises(ValueError, match="color_rgb"):
        ClassTable("x", 255, (SemanticClass(0, "a", ("a",), False, (1, 2, 256)),))


def test_load_class_table_names_the_bad_file(tmp_path):
    bad = tmp_path / "classes.yaml"
    bad.write_text("dataset: x\nunlabeled_id: 255\nclasses:\n  - {id: 0, name: a}\n")
    with pytest.raises(ValueError, match="classes.yaml"):
        load_class_table(bad)


def test_ids_for_names_matches_case_insensitively_and_keeps_order(ade20k):
    assert ade20k.ids_for_names(["Sky", " ceiling ", "traffic  light", "sky"]) == (2, 5, 136)
    assert ade20k.ids_for_names([]) == ()


def test_ids_for_names_reports_every_unknown_name_with_hints(ade20k):
    with pytest.raises(UnknownClassError) as error:
        ade20k.ids_for_names(["sky", "skyy", "ground", "banana"])
    message = str(error.value)
    assert "'skyy': did you mean 'sky'" in message
    assert "'ground': did you mean 'earth' or 'land'" in message  # synonyms of two classes
    assert "'banana': no similar class" in message


def test_name_of(ade20k):
    assert ade20k.name_of(12) == "person"
    assert ade20k.name_of(255) == "unlabeled"
    with pytest.raises(ValueError):
        ade20k.name_of(150)


# --- scores -> ids --------------------------------------------------------------------------------


def test_labels_at_the_logits_resolution_are_the_argmax():
    ids = np.array([[0, 3, 3, 1], [2, 2, 0, 1], [4, 0, 4, 4]])
    logits = one_hot_logits(ids, 5, margin=1.0) + np.float32(0.25)
    labels = labels_from_logits(logits, (3, 4))
    assert labels.dtype == np.uint8 and labels.shape == (3, 4)
    np.testing.assert_array_equal(labels, ids)


def test_ties_go_to_the_lower_id():
    np.testing.assert_array_equal(labels_from_scores(np.zeros((3, 1, 2), np.float32)), [[0, 0]])


def test_labels_are_upsampled_to_the_input_resolution_without_interpolating_ids():
    # 4 x 6 logits, quadrants of classes 5 / 9 (top) and 1 / 0 (bottom), to a non-square 8 x 12 image.
    low = np.array([[5] * 3 + [9] * 3] * 2 + [[1] * 3 + [0] * 3] * 2)
    labels = labels_from_logits(one_hot_logits(low, 10), (8, 12))
    expected = np.array([[5] * 6 + [9] * 6] * 4 + [[1] * 6 + [0] * 6] * 4)
    np.testing.assert_array_equal(labels, expected)


def test_an_id_between_two_regions_never_appears():
    # Interpolating ids 0 and 2 would produce 1 along the edge; resampling scores cannot.
    low = np.array([[0, 0, 2, 2]] * 3)
    labels = labels_from_logits(one_hot_logits(low, 3), (7, 11))
    assert set(np.unique(labels)) == {0, 2}
    assert (labels[:, :5] == 0).all() and (labels[:, 6:] == 2).all()


def test_class_probabilities_are_softmax_then_bicubic():
    logits = two_class_logits(np.full((3, 5), 0.8))
    probabilities = class_probabilities(logits, (6, 10))
    assert probabilities.shape == (2, 6, 10) and probabilities.dtype == np.float32
    np.testing.assert_allclose(probabilities[1], 0.8, atol=1e-6)  # bicubic keeps constants exactly
    np.testing.assert_allclose(probabilities.sum(axis=0), 1.0, atol=1e-6)


@pytest.mark.parametrize(
    "scores",
    [np.zeros((2, 3), np.float32), np.zeros((2, 2, 2), np.int64), np.full((2, 2, 2), np.nan, np.float32)],
)
def test_bad_scores_raise(scores):
    with pytest.raises(ValueError):
        labels_from_scores(scores)


def test_resize_labels_is_pixel_centre_nearest():
    labels = np.array([[1, 2, 3], [4, 5, 6]], dtype=np.uint8)
    np.testing.assert_array_equal(
        resize_labels(labels, (4, 6)),
        [[1, 1, 2, 2, 3, 3], [1, 1, 2, 2, 3, 3], [4, 4, 5, 5, 6, 6], [4, 4, 5, 5, 6, 6]],
    )
    # downsampling 4 -> 2 columns picks the pixels whose areas hold the output centres: 1 and 3
    np.testing.assert_array_equal(resize_labels(np.array([[0, 1, 2, 3]]), (1, 2)), [[1, 3]])
    np.testing.assert_array_equal(resize_labels(np.array([[0], [1], [2], [3]]), (2, 1)), [[1], [3]])
    np.testing.assert_array_equal(resize_labels(np.array([[7, 8, 9]], np.uint16), (2, 2)), [[7, 9], [7, 9]])


# --- palette and overlay ------------------------------------------------------------------------


def test_colorize_gives_palette_colours_in_bgr_and_black_for_unlabelled(ade20k):
    labels = np.array([[0, 2], [12, 255]], dtype=np.uint8)
    colored = colorize_labels(labels, ade20k)
    assert colored.dtype == np.uint8 and colored.shape == (2, 2, 3)
    np.testing.assert_array_equal(colored[0, 0], [120, 120, 120])  # wall
    np.testing.assert_array_equal(colored[0, 1], [230, 230, 6])  # sky (RGB 6, 230, 230)
    np.testing.assert_array_equal(colored[1, 0], [61, 5, 150])  # person (RGB 150, 5, 61)
    np.testing.assert_array_equal(colored[1, 1], [0, 0, 0])


def test_colorize_rejects_ids_outside_mono8(ade20k):
    with pytest.raises(ValueError):
        colorize_labels(np.array([[256]], dtype=np.uint16), ade20k)


def test_overlay_blends_with_alpha():
    image = np.array([[[0, 100, 200], [10, 20, 30]]], dtype=np.uint8)
    colored = np.array([[[200, 0, 40], [10, 20, 30]]], dtype=np.uint8)
    # 0.75 * image + 0.25 * colored: 0*.75+200*.25 = 50; 100*.75 = 75; 200*.75+40*.25 = 160
    np.testing.assert_array_equal(blend_overlay(image, colored, 0.25), [[[50, 75, 160], [10, 20, 30]]])
    # 0.7 * 100 + 0.3 * 0 = 70; 0.7 * 0 + 0.3 * 200 = 60; 0.7 * 200 + 0.3 * 40 = 152
    np.testing.assert_array_equal(blend_overlay(image, colored, 0.3)[0, 0], [60, 70, 152])
    np.testing.assert_array_equal(blend_overlay(image, colored, 0.0), image)
    np.testing.assert_array_equal(blend_overlay(image, colored, 1.0), colored)
    with pytest.raises(ValueError):
        blend_overlay(image, colored, 1.5)
    with pytest.raises(ValueError):
        blend_overlay(image, colored[:, :1], 0.5)


# --- test-time augmentation ---------------------------------------------------------------------


class LeftRightModel:
    """Class 1 has probability 0.8 on the left half of whatever image it sees and 0.3 on the right.

    It answers at the requested network shape, so the results also pass through the resampling.
    """

    def __init__(self):
        self.calls = []

    def __call__(self, image, network_shape):
        self.calls.append((image.copy(), network_shape))
        height, width = network_shape
        left = np.arange(width) < width // 2
        if image[0, 0, 0] != image[0, -1, 0]:  # the test images are brighter on the left
            left = left == (image[0, 0, 0] > image[0, -1, 0])
        p = np.where(left, 0.8, 0.3)
        return two_class_logits(np.broadcast_to(p, (height, width)))


def gradient_image(height, width):
    return np.broadcast_to(np.linspace(250, 10, width).astype(np.uint8)[None, :, None], (height, width, 3)).copy()


def test_no_augmentation_is_one_plain_run():
    model = LeftRightModel()
    image = gradient_image(4, 6)
    probabilities = predict_class_probabilities(image, model, base_shape_hw=(4, 6), multiple=2)
    assert len(model.calls) == 1 and model.calls[0][1] == (4, 6)
    np.testing.assert_array_equal(model.calls[0][0], image)
    np.testing.assert_allclose(probabilities[1], np.broadcast_to([0.8] * 3 + [0.3] * 3, (4, 6)), atol=1e-6)
    np.testing.assert_array_equal(labels_from_scores(probabilities), [[1, 1, 1, 0, 0, 0]] * 4)


def test_flip_augmentation_runs_on_the_mirror_image_and_mirrors_back_before_averaging():
    model = LeftRightModel()
    image = gradient_image(4, 6)
    probabilities = predict_class_probabilities(
        image, model, base_shape_hw=(4, 6), augmentation=TestTimeAugmentation(flip=True), multiple=2
    )
    assert len(model.calls) == 2
    np.testing.assert_array_equal(model.calls[1][0], image[:, ::-1])
    # the model sees the bright side on the right in the mirrored run and says 0.8 there, which is
    # the left of the original again: mirrored back, both runs agree
    np.testing.assert_allclose(probabilities[1], np.broadcast_to([0.8] * 3 + [0.3] * 3, (4, 6)), atol=1e-6)


def test_flip_averages_a_position_biased_model():
    model = LeftRightModel()
    image = np.zeros((4, 6, 3), np.uint8)  # no content: only the position within the input matters
    probabilities = predict_class_probabilities(
        image, model, base_shape_hw=(4, 6), augmentation=TestTimeAugmentation(flip=True), multiple=2
    )
    # every pixel is once on the left (0.8) and once on the right (0.3) of what the model sees
    np.testing.assert_allclose(probabilities[1], 0.55, atol=1e-6)
    np.testing.assert_array_equal(labels_from_scores(probabilities), np.ones((4, 6)))


def test_multi_scale_runs_at_scaled_network_sizes_and_averages_probabilities():
    probability_by_width = {64: 0.9, 128: 0.1, 192: 0.35}  # class-1 probability the model gives per size
    seen = []

    def model(image, network_shape):
        seen.append(network_shape)
        return two_class_logits(np.full((3, 5), probability_by_width[network_shape[1]]))

    image = np.zeros((5, 7, 3), np.uint8)
    augmentation = TestTimeAugmentation(scales=(0.5, 1.0, 1.5))
    probabilities = predict_class_probabilities(image, model, base_shape_hw=(64, 128), augmentation=augmentation)
    assert seen == [(32, 64), (64, 128), (96, 192)]
    assert probabilities.shape == (2, 5, 7)
    np.testing.assert_allclose(probabilities[1], (0.9 + 0.1 + 0.35) / 3, atol=1e-6)
    assert augmentation.runs == 3 and TestTimeAugmentation((0.5, 1.0), flip=True).runs == 4
    # sides snap to the nearest multiple of the stride, never below one multiple
    assert TestTimeAugmentation((0.75, 0.05)).network_shapes((480, 640), 32) == [(352, 480), (32, 32)]


def test_augmentation_rejects_bad_scales_and_mismatched_models():
    with pytest.raises(ValueError):
        TestTimeAugmentation(scales=())
    with pytest.raises(ValueError):
        TestTimeAugmentation(scales=(1.0, -0.5))
    with pytest.raises(ValueError):
        TestTimeAugmentation(scales=(math.nan,))
    classes_per_run = iter([2, 3])
    with pytest.raises(ValueError, match="classes"):
        predict_class_probabilities(
            np.zeros((2, 2, 3), np.uint8),
            lambda image, shape: np.zeros((next(classes_per_run), 2, 2), np.float32),
            base_shape_hw=(2, 2),
            augmentation=TestTimeAugmentation(flip=True),
        )


# --- metrics ------------------------------------------------------------------------------------


def test_confusion_matrix_counts_and_skips_the_ignore_index():
    target = np.array([[0, 0, 1, 1], [2, 2, 255, 255]], dtype=np.uint8)
    predicted = np.array([[0, 1, 1, 1], [2, 0, 3, 1]], dtype=np.uint8)
    confusion = confusion_matrix(predicted, target, num_classes=4)
    expected = np.zeros((4, 4), np.int64)
    expected[0, 0] = 1
    expected[0, 1] = 1
    expected[1, 1] = 2
    expected[2, 2] = 1
    expected[2, 0] = 1
    np.testing.assert_array_equal(confusion, expected)


def test_pixel_accuracy_and_miou_match_hand_computed_values():
    target = np.array([[0, 0, 1, 1], [2, 2, 255, 255]], dtype=np.uint8)
    predicted = np.array([[0, 1, 1, 1], [2, 0, 3, 1]], dtype=np.uint8)
    confusion = confusion_matrix(predicted, target, num_classes=5)
    # 6 counted pixels, 4 right
    assert pixel_accuracy(confusion) == pytest.approx(4 / 6)
    # class 0: I=1, U = 2 (GT) + 2 (pred) - 1 = 3;  class 1: I=2, U = 2 + 3 - 2 = 3;
    # class 2: I=1, U = 2 + 1 - 1 = 2;  class 3: only under the ignored pixel -> absent;
    # class 4: nowhere -> absent. Both absent classes are left out of the mean.
    np.testing.assert_allclose(class_iou(confusion), [1 / 3, 2 / 3, 1 / 2, np.nan, np.nan])
    assert mean_iou(confusion) == pytest.approx((1 / 3 + 2 / 3 + 1 / 2) / 3)


def test_a_class_predicted_but_not_in_the_ground_truth_counts_as_zero():
    target = np.array([0, 0, 0, 1])
    predicted = np.array([0, 0, 2, 1])
    confusion = confusion_matrix(predicted, target, num_classes=3)
    np.testing.assert_allclose(class_iou(confusion), [2 / 3, 1.0, 0.0])
    assert mean_iou(confusion) == pytest.approx((2 / 3 + 1.0 + 0.0) / 3)
    assert pixel_accuracy(confusion) == pytest.approx(3 / 4)


def test_metrics_over_a_data_set_sum_the_confusion_matrices():
    first = confusion_matrix(np.array([0, 0]), np.array([0, 1]), num_classes=2)
    second = confusion_matrix(np.array([1, 1]), np.array([1, 1]), num_classes=2)
    # totals: class 0 I=1 U=2; class 1 I=2 U=3
    assert mean_iou(first + second) == pytest.approx((1 / 2 + 2 / 3) / 2)


def test_metrics_reject_bad_ids_and_empty_input():
    with pytest.raises(ValueError, match="ground-truth"):
        confusion_matrix(np.array([0]), np.array([7]), num_classes=3)
    with pytest.raises(ValueError, match="predicted"):
        confusion_matrix(np.array([3]), np.array([0]), num_classes=3)
    with pytest.raises(ValueError, match="shape"):
        confusion_matrix(np.array([0, 1]), np.array([0]), num_classes=3)
    empty = confusion_matrix(np.array([0]), np.array([255]), num_classes=3)
    with pytest.raises(ValueError):
        pixel_accuracy(empty)
    with pytest.raises(ValueError):
        mean_iou(empty)


def test_ade20k_annotations_map_to_zero_based_ids(ade20k):
    annotation = np.array([[0, 1, 150]], dtype=np.uint8)
    np.testing.assert_array_equal(labels_from_ade20k_annotation(annotation, ade20k), [[255, 0, 149]])
    with pytest.raises(ValueError):
        labels_from_ade20k_annotation(np.array([[151]], dtype=np.uint8), ade20k)


def test_ids_from_many_classes_match_the_official_formula_computed_at_once():
    import torch
    import torch.nn.functional as F

    from dpt_ros.segmentation.classes import CLASS_CHUNK, labels_from_network_output

    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 150, 9, 13, generator=generator) * 3  # many more classes than one chunk
    assert logits.shape[1] > 2 * CLASS_CHUNK
    # official DPT (run_segmentation.py): bicubic on the logits, then argmax
    official = F.interpolate(logits, size=(20, 31), mode="bicubic", align_corners=False).argmax(1)
    assert torch.equal(labels_from_network_output(logits, (20, 31)), official.to(torch.uint8))
    # a tie between classes in different chunks goes to the lower id
    tied = torch.zeros(1, 2 * CLASS_CHUNK, 3, 3)
    tied[:, [3, CLASS_CHUNK + 3]] = 5.0
    assert (labels_from_network_output(tied, (6, 6)) == 3).all()
