"""KITTI depth data: split files, file decoding with clear errors, the dataset, its collate and sampler.

Split lines are `rgb_path gt_path focal` (paths relative to image_root and depth_root; gt "None" = no
ground truth). Training samples are KB-cropped and augmented (dpt_train.transforms); evaluation samples
are the KB-cropped image plus the full-size ground truth, so metrics use the standard crops of the full
image. Augmentation randomness is a pure function of (seed, epoch, sample index): identical whatever the
number of ranks or workers, and across a resume.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset, DistributedSampler

from dpt_ros.model.presets import DPT_MEAN_STD
from dpt_train.config import DataConfig
from dpt_train.kitti_raw import load_camera_calibration, read_velodyne, velodyne_depth, velodyne_path_for_image
from dpt_train.transforms import AugmentConfig, augment_pair, crop, kb_crop_offset

LOG = logging.getLogger(__name__)
MeanStd = tuple[tuple[float, float, float], tuple[float, float, float]]
BadSamplePolicy = Literal["raise", "skip"]
DepthSource = Literal["png", "velodyne"]
KITTI_DEPTH_SCALE = 256.0  # uint16 PNG value / 256 = metres


class BadSampleError(RuntimeError):
    """A file listed in a split is missing, unreadable, or of the wrong type or size."""

    def __init__(self, path: str | Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = str(path)


@dataclass(frozen=True)
class SplitEntry:
    """One split line. depth is None for "None" lines; line is 1-based, for error messages."""

    rgb: str
    depth: str | None
    focal: float
    line: int


def read_split(path: str | Path) -> list[SplitEntry]:
    """Parse a split file; blank lines are ignored, malformed lines raise naming file and line."""
    entries = []
    for number, text in enumerate(Path(path).read_text().splitlines(), start=1):
        fields = text.split()
        if not fields:
            continue
        if len(fields) != 3:
            raise ValueError(f"{path}:{number}: expected 'rgb_path gt_path focal', got {text!r}")
        try:
            focal = float(fields[2])
        except ValueError:
            raise ValueError(f"{path}:{number}: focal {fields[2]!r} is not a number") from None
        entries.append(SplitEntry(fields[0], None if fields[1] == "None" else fields[1], focal, number))
    return entries


def read_rgb(path: str | Path) -> np.ndarray:
    """Decode an 8-bit colour PNG/JPEG. Returns (H, W, 3) uint8 RGB; BadSampleError if unreadable."""
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise BadSampleError(path, "cannot be decoded as an image (missing, truncated or corrupt)")
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] not in (3, 4):
        raise BadSampleError(path, f"expected an 8-bit colour image, got dtype {image.dtype} shape {image.shape}")
    return cv2.cvtColor(image, cv2.COLOR_BGRA2RGB if image.shape[2] == 4 else cv2.COLOR_BGR2RGB)


def read_depth_png(path: str | Path, expected_shape: tuple[int, int]) -> np.ndarray:
    """Decode a KITTI depth PNG. Returns (H, W) float32 metres (value / 256), 0 = invalid.

    Raises BadSampleError unless the file is a single-channel uint16 PNG of expected_shape (H, W).
    """
    depth = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if depth is None:
        raise BadSampleError(path, "cannot be decoded as a PNG (missing, truncated or corrupt)")
    if depth.dtype != np.uint16 or depth.ndim != 2:
        raise BadSampleError(path, f"expected a single-channel uint16 depth PNG, got dtype {depth.dtype} "
                                   f"shape {depth.shape}")
    if depth.shape != tuple(expected_shape):
        raise BadSampleError(path, f"depth size {depth.shape} differs from its image size {tuple(expected_shape)}")
    return depth.astype(np.float32) / KITTI_DEPTH_SCALE


def normalize_image(image: np.ndarray, mean_std: MeanStd = DPT_MEAN_STD) -> torch.Tensor:
    """(H, W, 3) uint8 RGB -> (3, H, W) float32 normalised per channel on [0, 1] by the preset's (mean, std):
    DPT's mean = std = 0.5 by default, ImageNet's for Depth Anything V2.

    The same arithmetic as `dpt_ros.preprocess` (which also resizes; training crops are already
    network-sized), so a model sees identical numbers in training and in the node.
    """
    mean, std = (np.asarray(values, dtype=np.float64) for values in mean_std)
    normalized = ((image / 255.0 - mean) / std).astype(np.float32)  # float64 arithmetic, as preprocess
    return torch.from_numpy(np.ascontiguousarray(normalized.transpose(2, 0, 1)))


class KittiDepthDataset(Dataset):
    """KITTI (or KITTI-format) depth samples from one split file.

    train=True: KB crop + augmentation -> {"image": (3, h, w) float32, "depth": (h, w) float32 metres}.
    train=False: {"image": KB-cropped (3, kb_height, kb_width), "rgb": the same crop as (h, w, 3) uint8,
        "depth": full-size (H, W) metres, "crop_top", "crop_left": where the crop sits in the full frame}.
    Both also give "focal" (pixels), "index" and "skipped" (bad files replaced to produce this sample).
    depth_source "png": the annotated depth PNGs of the split; lines without ground truth ("None") are
    dropped (counted in `without_depth`). "velodyne": sparse depth projected from the raw Velodyne scan of
    each image with the date folder's calibration (dpt_train.kitti_raw); the split's gt column is ignored.
    Missing files raise at construction, or with on_bad_sample="skip" are dropped and counted in
    `missing`; files that fail to decode raise BadSampleError at load time, or are replaced by the next
    good sample and counted.
    """

    def __init__(
        self,
        split_file: str | Path,
        image_root: str | Path,
        depth_root: str | Path,
        train: bool,
        augment: AugmentConfig = AugmentConfig(),
        seed: int = 0,
        on_bad_sample: BadSamplePolicy = "raise",
        depth_source: DepthSource = "png",
        mean_std: MeanStd = DPT_MEAN_STD,
    ) -> None:
        if on_bad_sample not in ("raise", "skip"):
            raise ValueError(f"on_bad_sample must be 'raise' or 'skip', got {on_bad_sample!r}")
        if depth_source not in ("png", "velodyne"):
            raise ValueError(f"depth_source must be 'png' or 'velodyne', got {depth_source!r}")
        self.image_root, self.depth_root = Path(image_root), Path(depth_root)
        self.train, self.augment, self.seed, self.on_bad_sample = train, augment, seed, on_bad_sample
        self.depth_source, self.mean_std = depth_source, mean_std
        self.epoch = 0
        entries = read_split(split_file)
        with_depth = [entry for entry in entries if entry.depth is not None or depth_source == "velodyne"]
        self.without_depth = len(entries) - len(with_depth)
        if self.without_depth:
            LOG.info("%s: %d of %d lines have no ground truth ('None') and are not used",
                     split_file, self.without_depth, len(entries))
        self.entries = []
        missing = []
        for entry in with_depth:
            absent = [p for p in self._files(entry) if not p.is_file()]
            if absent:
                missing.append(f"{split_file}:{entry.line}: {absent[0]} does not exist")
            else:
                self.entries.append(entry)
        self.missing = len(missing)
        if missing and on_bad_sample == "raise":
            raise FileNotFoundError(f"{len(missing)} file(s) listed in the split are missing, e.g.\n"
                                    + "\n".join(missing[:5]))
        for message in missing:
            LOG.warning("skipping: %s", message)
        if not self.entries:
            raise ValueError(f"{split_file}: no usable sample with ground truth")

    def __len__(self) -> int:
        return len(self.entries)

    def _files(self, entry: SplitEntry) -> list[Path]:
        """Files a sample needs: image and depth PNG, or image, Velodyne scan and calibration."""
        image = self.image_root / entry.rgb
        if self.depth_source == "png":
            return [image, self.depth_root / entry.depth]
        scan = velodyne_path_for_image(image)  # checks the raw layout <date>/<drive>/image_02/data/
        date_dir = image.parents[3]
        return [image, scan, date_dir / "calib_cam_to_cam.txt", date_dir / "calib_velo_to_cam.txt"]

    def _read_depth(self, entry: SplitEntry, image_shape: tuple[int, int]) -> np.ndarray:
        if self.depth_source == "png":
            return read_depth_png(self.depth_root / entry.depth, image_shape)
        image = self.image_root / entry.rgb
        scan = velodyne_path_for_image(image)
        try:
            calibration = load_camera_calibration(image.parents[3])
            return velodyne_depth(read_velodyne(scan), calibration, image_shape)
        except (OSError, ValueError) as error:  # CalibrationError is a ValueError
            raise BadSampleError(scan, str(error)) from None

    def set_epoch(self, epoch: int) -> None:
        """Select the augmentation randomness of this epoch (call before creating the DataLoader iterator)."""
        self.epoch = epoch

    def __getitem__(self, index: int) -> dict:
        skipped = 0
        for attempt in range(len(self.entries)):
            candidate = (index + attempt) % len(self.entries)
            try:
                sample = self._load(candidate)
            except BadSampleError as error:
                if self.on_bad_sample == "raise":
                    raise
                LOG.warning("skipping bad sample: %s", error)
                skipped += 1
                continue
            sample["skipped"] = skipped
            return sample
        raise BadSampleError(self.image_root, "every sample of the split failed to load")

    def _load(self, index: int) -> dict:
        entry = self.entries[index]
        image = read_rgb(self.image_root / entry.rgb)
        depth = self._read_depth(entry, image.shape[:2])
        top, left = 0, 0
        if self.augment.kb_crop:
            top, left = kb_crop_offset(*depth.shape, self.augment.kb_height, self.augment.kb_width)
            height, width = self.augment.kb_height, self.augment.kb_width
            image = crop(image, top, left, height, width)
            if self.train:
                depth = crop(depth, top, left, height, width)
        sample = {"focal": float(entry.focal), "index": index}
        if self.train:
            rng = np.random.default_rng([self.seed, self.epoch, index])
            image, depth = augment_pair(image, depth, self.augment, rng)
        else:
            sample.update(crop_top=top, crop_left=left, rgb=torch.from_numpy(np.ascontiguousarray(image)))
        sample.update(image=normalize_image(image, self.mean_std), depth=torch.from_numpy(np.ascontiguousarray(depth)))
        return sample


def collate_samples(samples: list[dict]) -> dict:
    """Stack tensors and numbers of equally shaped samples; "skipped" is summed over the batch."""
    batch = {}
    for key in samples[0]:
        values = [sample[key] for sample in samples]
        if key == "skipped":
            batch[key] = sum(values)
        elif isinstance(values[0], torch.Tensor):
            batch[key] = torch.stack(values)
        else:
            batch[key] = torch.tensor(values)
    return batch


def dataset_from_config(
    data: DataConfig, split: Literal["train", "val"], train: bool, seed: int = 0, mean_std: MeanStd = DPT_MEAN_STD
) -> KittiDepthDataset:
    """The train or val split of a DataConfig, as a training (augmented) or evaluation dataset whose images
    are normalised by `mean_std` (the trained preset's)."""
    split_file, depth_source = (
        (data.train_split, data.depth_source) if split == "train" else (data.val_split, data.val_depth_source)
    )
    return KittiDepthDataset(split_file, data.image_root, data.depth_root, train, data.augment, seed,
                             data.on_bad_sample, depth_source, mean_std)


class ResumableDistributedSampler(DistributedSampler):
    """DistributedSampler (shuffled per epoch from seed + epoch) that can start part-way into an epoch.

    With drop_last=True every rank sees the same number of samples, and the union of the ranks' k-th
    batches of size b equals the k-th batch of size world * b of a single process: DDP and single-process
    runs consume the same samples per step.
    """

    def __init__(self, dataset: Dataset, num_replicas: int, rank: int, seed: int) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed, drop_last=True)
        self.start = 0

    def set_start(self, start: int) -> None:
        """Skip the first `start` indices of this rank in the current epoch (resuming mid-epoch)."""
        self.start = start

    def __iter__(self) -> Iterator[int]:
        return iter(list(super().__iter__())[self.start :])

    def __len__(self) -> int:
        return super().__len__() - self.start


class ShardSampler(torch.utils.data.Sampler):
    """Evaluation sharding without padding: rank r takes indices r, r + world, ... (no duplicates)."""

    def __init__(self, length: int, num_replicas: int, rank: int) -> None:
        self.indices = list(range(rank, length, num_replicas))

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)
