"""Synthetic KITTI generator + loader: layout, crops, masks, focal, augmentation alignment, bad data."""

import shutil

import cv2
import numpy as np
import pytest
import torch

from dpt_train.data import (
    BadSampleError,
    KittiDepthDataset,
    ResumableDistributedSampler,
    collate_samples,
    read_split,
)
from dpt_train.synthetic_kitti import SyntheticKittiSpec, lidar_mask, render_frame, write_synthetic_kitti
from dpt_train.transforms import AugmentConfig, photometric_jitter, rotate_pair

SPEC = SyntheticKittiSpec(height=80, width=160, drives=3, frames_per_drive=7, lidar_rows=20,
                          lidar_points_per_row=60)
NO_AUGMENT = AugmentConfig(kb_height=64, kb_width=128, crop_height=32, crop_width=64, rotation_degrees=0.0,
                           flip_probability=0.0, photometric_probability=0.0)


@pytest.fixture(scope="module")
def dataset_paths(tmp_path_factory):
    return write_synthetic_kitti(tmp_path_factory.mktemp("kitti"), SPEC)


def _dataset(paths, split="test", train=False, augment=NO_AUGMENT, **kwargs):
    return KittiDepthDataset(paths[split], paths["image_root"], paths["depth_root"], train, augment, **kwargs)


def test_generator_layout_and_split_files(dataset_paths):
    test_lines = read_split(dataset_paths["test"])
    assert len(test_lines) == 7 and sum(e.depth is None for e in test_lines) == 5  # frames 0..4: no GT
    assert test_lines[5].rgb == "2011_09_26/2011_09_26_drive_0003_sync/image_02/data/0000000005.png"
    assert test_lines[5].depth == "2011_09_26_drive_0003_sync/proj_depth/groundtruth/image_02/0000000005.png"
    assert len(read_split(dataset_paths["train"])) == 4  # drives 1 and 2, frames 5 and 6
    gt = cv2.imread(str(dataset_paths["depth_root"] / test_lines[5].depth), cv2.IMREAD_UNCHANGED)
    assert gt.dtype == np.uint16 and gt.shape == (80, 160)


def test_eval_sample_crop_mask_and_focal(dataset_paths):
    dataset = _dataset(dataset_paths)
    assert len(dataset) == 2 and dataset.without_depth == 5
    sample = dataset[0]
    rgb, depth = render_frame(SPEC, 3, 5)
    assert (sample["crop_top"], sample["crop_left"]) == (16, 16)  # bottom-anchored, centred 64x128
    expected_image = torch.from_numpy(rgb[16:80, 16:144].transpose(2, 0, 1)).float() / 127.5 - 1.0
    torch.testing.assert_close(sample["image"], expected_image)
    mask = lidar_mask(SPEC, 3, 5, depth)
    assert mask.sum() > 100
    assert torch.equal(sample["depth"] > 0, torch.from_numpy(mask))  # full-size GT, zeros exactly off-mask
    np.testing.assert_allclose(sample["depth"].numpy()[mask], depth[mask], atol=0.5 / 256)
    assert sample["focal"] == pytest.approx(SPEC.focal, abs=1e-4)


def _locate(patch: np.ndarray, image: np.ndarray) -> tuple[int, int]:
    scores = cv2.matchTemplate(image, patch, cv2.TM_SQDIFF)
    assert scores.min() == 0.0
    top, left = np.unravel_index(np.argmin(scores), scores.shape)
    return int(top), int(left)


@pytest.mark.parametrize("flip", [0.0, 1.0])
def test_train_crop_and_flip_keep_image_and_depth_aligned(dataset_paths, flip):
    augment = AugmentConfig(**{**NO_AUGMENT.__dict__, "flip_probability": flip})
    dataset = _dataset(dataset_paths, "train", train=True, augment=augment)
    sample = dataset[1]
    drive, frame = 1, 6  # train order: drive 1 frames 5, 6, drive 2 frames 5, 6
    rgb, depth = render_frame(SPEC, drive, frame)
    gt = cv2.imread(str(dataset_paths["depth_root"] / dataset.entries[1].depth), cv2.IMREAD_UNCHANGED) / 256.0
    image = ((sample["image"].numpy().transpose(1, 2, 0) + 1.0) * 127.5).round().astype(np.uint8)
    assert image.shape == (32, 64, 3) and sample["depth"].shape == (32, 64)
    if flip:
        image, got_depth = image[:, ::-1], sample["depth"].numpy()[:, ::-1]
    else:
        got_depth = sample["depth"].numpy()
    top, left = _locate(np.ascontiguousarray(image), rgb[16:, 16:144])
    np.testing.assert_array_equal(got_depth, gt[16 + top : 16 + top + 32, 16 + left : 16 + left + 64])


def test_augmentation_is_a_function_of_seed_epoch_and_index(dataset_paths):
    augment = AugmentConfig(**{**NO_AUGMENT.__dict__, "rotation_degrees": 1.0, "flip_probability": 0.5,
                               "photometric_probability": 1.0})
    first = _dataset(dataset_paths, "train", train=True, augment=augment, seed=3)
    second = _dataset(dataset_paths, "train", train=True, augment=augment, seed=3)
    assert torch.equal(first[2]["image"], second[2]["image"])
    second.set_epoch(1)
    assert not torch.equal(first[2]["image"], second[2]["image"])


def test_rotation_resamples_depth_with_nearest_and_jitter_hand_value():
    rng = np.random.default_rng(0)
    depth = rng.choice([0.0, 3.0, 7.5, 20.0], size=(40, 60)).astype(np.float32)
    image = rng.integers(0, 255, (40, 60, 3), dtype=np.uint8)
    _, rotated = rotate_pair(image, depth, 1.0)
    assert set(np.unique(rotated)) <= {0.0, 3.0, 7.5, 20.0}  # no interpolated depth
    assert (rotated != depth).any()
    pixel = np.full((1, 1, 3), 64, dtype=np.uint8)
    # (64/255)^2 * 1.1 * [1, 0.5, 2] * 255 = 17.67, 8.83, 35.34
    out = photometric_jitter(pixel, 2.0, 1.1, np.array([1.0, 0.5, 2.0]))
    assert out.ravel().tolist() == [18, 9, 35]


def test_sampler_shards_union_equals_single_process_batches(dataset_paths):
    dataset = _dataset(dataset_paths, "train", train=True)
    single = list(ResumableDistributedSampler(dataset, 1, 0, seed=5))
    ranks = [list(ResumableDistributedSampler(dataset, 2, r, seed=5)) for r in range(2)]
    assert sorted(ranks[0][:1] + ranks[1][:1]) == sorted(single[:2])
    resumed = ResumableDistributedSampler(dataset, 1, 0, seed=5)
    resumed.set_start(3)
    assert list(resumed) == single[3:] and len(resumed) == 1


def _copy(dataset_paths, tmp_path):
    root = tmp_path / "copy"
    shutil.copytree(dataset_paths["image_root"].parent, root)
    return {k: root / v.relative_to(dataset_paths["image_root"].parent) for k, v in dataset_paths.items()}


def test_missing_file_raises_naming_it_or_is_skipped_and_counted(dataset_paths, tmp_path):
    paths = _copy(dataset_paths, tmp_path)
    victim = paths["image_root"] / read_split(paths["train"])[0].rgb
    victim.unlink()
    with pytest.raises(FileNotFoundError, match=str(victim)):
        _dataset(paths, "train", train=True)
    dataset = _dataset(paths, "train", train=True, on_bad_sample="skip")
    assert dataset.missing == 1 and len(dataset) == 3


@pytest.mark.parametrize("damage", ["corrupt_rgb", "uint8_depth", "wrong_size_depth", "corrupt_depth"])
def test_bad_files_raise_naming_the_file_or_are_replaced_and_counted(dataset_paths, tmp_path, damage):
    paths = _copy(dataset_paths, tmp_path)
    entry = read_split(paths["train"])[1]
    rgb_path, depth_path = paths["image_root"] / entry.rgb, paths["depth_root"] / entry.depth
    if damage == "corrupt_rgb":
        rgb_path.write_bytes(rgb_path.read_bytes()[:100])
        victim, reason = rgb_path, "cannot be decoded"
    elif damage == "corrupt_depth":
        depth_path.write_bytes(b"\x89PNG garbage")
        victim, reason = depth_path, "cannot be decoded"
    elif damage == "uint8_depth":
        cv2.imwrite(str(depth_path), np.zeros((80, 160), np.uint8))
        victim, reason = depth_path, "uint16"
    else:
        cv2.imwrite(str(depth_path), np.zeros((80, 150), np.uint16))
        victim, reason = depth_path, "differs from its image size"
    strict = _dataset(paths, "train", train=True)
    with pytest.raises(BadSampleError, match=reason) as error:
        strict[1]
    assert error.value.path == str(victim)
    lenient = _dataset(paths, "train", train=True, on_bad_sample="skip")
    batch = collate_samples([lenient[0], lenient[1]])
    assert batch["skipped"] == 1 and batch["index"].tolist() == [0, 2]  # bad sample 1 replaced by 2
