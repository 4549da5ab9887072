"""Semantic segmentation outputs: class table, class scores -> class ids, palette colouring, overlays,
multi-scale / flip test-time augmentation, and the evaluation metrics (pixel accuracy, mIoU).

Id convention (the same in `semantic/labels`, the point cloud's `label` field and the metrics):
``0 .. num_classes-1`` are the classes of the class table in order (= the network's output channel),
``ClassTable.unlabeled_id`` (255) means "no class" and is never predicted. Official DPT writes
``argmax + 1`` because its palette reserves index 0 for ADE20K's "other"; we do not shift, so an id is
directly a network channel and a row of the class table (ADE20K annotation value = id + 1).

Class ids are never interpolated: scores are resampled (official DPT: the logits bicubic to the image
size, then argmax) and ids, where they must be resized, are resized by pixel-centre nearest neighbour.
Test-time augmentation averages softmax probabilities over its runs instead.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import json
import math
from collections.abc import Callable, Iterable, Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
import yaml

# Packaged class table of the DPT ADE20K models (dpt_ros/data/).
ADE20K_CLASS_TABLE = "ade20k_classes.yaml"

# Labels travel as mono8: ids 0..254 are usable classes, 255 is reserved for "unlabelled".
MAX_LABEL_ID = 255

# Classes resampled to the image size at a time when turning logits into ids (bounds the memory).
CLASS_CHUNK = 32


class UnknownClassError(ValueError):
    """A class name that is not in the class table (e.g. a typo in `ignore_classes`)."""


@dataclasses.dataclass(frozen=True)
class SemanticClass:
    """One row of a class table.

    id: label id (0-based, = network output channel). name: unique short name, what parameters such as
    `ignore_classes` match. synonyms: the dataset's full name list. stuff: True for amorphous regions
    (wall, sky, road), False for countable objects. color_rgb: palette colour, RGB order, 0..255.
    """

    id: int
    name: str
    synonyms: tuple[str, ...]
    stuff: bool
    color_rgb: tuple[int, int, int]


def _normalise_name(name: str) -> str:
    """Case- and whitespace-insensitive form of a class name ("  Traffic  Light " -> "traffic light")."""
    return " ".join(name.split()).lower()


@dataclasses.dataclass(frozen=True)
class ClassTable:
    """The classes a segmentation network predicts, their names and palette colours.

    Invariants (checked on construction): ids are 0..N-1 in order, names are unique (case-insensitive),
    colours are RGB triples in 0..255, N <= 255 and `unlabeled_id` is outside 0..N-1 and fits mono8.
    """

    dataset: str
    unlabeled_id: int
    classes: tuple[SemanticClass, ...]

    def __post_init__(self) -> None:
        if not self.classes:
            raise ValueError("class table has no classes")
        ids = [semantic_class.id for semantic_class in self.classes]
        if ids != list(range(len(self.classes))):
            raise ValueError(f"class ids must be 0..{len(self.classes) - 1} in order, got {ids}")
        if len(self.classes) > MAX_LABEL_ID:
            raise ValueError(f"{len(self.classes)} classes do not fit mono8 labels (at most {MAX_LABEL_ID})")
        if not len(self.classes) <= self.unlabeled_id <= MAX_LABEL_ID:
            raise ValueError(
                f"unlabeled_id {self.unlabeled_id} must be in {len(self.classes)}..{MAX_LABEL_ID} "
                "(outside the class ids, inside mono8)"
            )
        normalised = [_normalise_name(semantic_class.name) for semantic_class in self.classes]
        duplicates = sorted({name for name in normalised if normalised.count(name) > 1})
        if duplicates:
            raise ValueError(f"class names must be unique, duplicated: {duplicates}")
        for semantic_class in self.classes:
            color = semantic_class.color_rgb
            if len(color) != 3 or not all(isinstance(c, int) and 0 <= c <= 255 for c in color):
                raise ValueError(f"class {semantic_class.id} ({semantic_class.name}): bad color_rgb {color}")

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(semantic_class.name for semantic_class in self.classes)

    @functools.cached_property
    def _id_by_name(self) -> dict[str, int]:
        return {_normalise_name(c.name): c.id for c in self.classes}

    @functools.cached_property
    def palette_bgr_lut(self) -> np.ndarray:
        """256x3 uint8 look-up table id -> BGR colour; ids without a class (e.g. unlabelled) are black."""
        lut = np.zeros((MAX_LABEL_ID + 1, 3), dtype=np.uint8)
        lut[: self.num_classes] = np.array([c.color_rgb[::-1] for c in self.classes], dtype=np.uint8)
        lut.flags.writeable = False
        return lut

    def name_of(self, class_id: int) -> str:
        """Name of a label id; "unlabeled" for `unlabeled_id`; ValueError for anything else."""
        if class_id == self.unlabeled_id:
            return "unlabeled"
        if not 0 <= class_id < self.num_classes:
            raise ValueError(f"label id {class_id} is not a class of {self.dataset} (0..{self.num_classes - 1})")
        return self.classes[class_id].name

    def ids_for_names(self, names: Iterable[str]) -> tuple[int, ...]:
        """Label ids of class names (matched case- and whitespace-insensitively against `name`).

        Returns the ids in the order given, duplicates removed. Raises UnknownClassError naming every
        unknown name, with the classes it may have meant (synonym hits, then close spellings).
        """
        ids: list[int] = []
        unknown: list[str] = []
        for name in names:
            class_id = self._id_by_name.get(_normalise_name(name))
            if class_id is None:
                unknown.append(name)
            elif class_id not in ids:
                ids.append(class_id)
        if unknown:
            hints = "; ".join(f"{name!r}: {self._suggestions(name)}" for name in unknown)
            raise UnknownClassError(
                f"unknown class name(s) for {self.dataset}: {hints}. "
                "Class names are the `name` entries of the class table (topic semantic/classes)."
            )
        return tuple(ids)

    def _suggestions(self, name: str) -> str:
        wanted = _normalise_name(name)
        by_synonym = [c.name for c in self.classes if wanted in (_normalise_name(s) for s in c.synonyms)]
        close = difflib.get_close_matches(wanted, list(self._id_by_name), n=3, cutoff=0.7)
        candidates = list(dict.fromkeys(by_synonym + close))
        return f"did you mean {' or '.join(repr(c) for c in candidates)}?" if candidates else "no similar class"

    def to_json(self) -> str:
        """The table as compact JSON (what `semantic/classes` carries), readable without this package."""
        return json.dumps(
            {
                "dataset": self.dataset,
                "unlabeled_id": self.unlabeled_id,
                "classes": [dataclasses.asdict(c) for c in self.classes],
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> ClassTable:
        """Build from the parsed YAML data file or from `to_json` output. KeyError/ValueError on bad data."""
        classes = tuple(
            SemanticClass(
                id=int(row["id"]),
                name=str(row["name"]),
                synonyms=tuple(str(s) for s in row.get("synonyms", (row["name"],))),
                stuff=bool(row.get("stuff", False)),
                color_rgb=tuple(int(c) for c in row["color_rgb"]),
            )
            for row in data["classes"]
        )
        return cls(dataset=str(data["dataset"]), unlabeled_id=int(data["unlabeled_id"]), classes=classes)


def load_class_table(path: str | Path | None = None) -> ClassTable:
    """Load a class table YAML file; the packaged ADE20K table when `path` is None.

    Raises ValueError naming the file when it is malformed.
    """
    if path is None:
        text = resources.files("dpt_ros").joinpath("data", ADE20K_CLASS_TABLE).read_text(encoding="utf-8")
        source = f"package data {ADE20K_CLASS_TABLE}"
    else:
        text = Path(path).read_text(encoding="utf-8")
        source = str(path)
    try:
        return ClassTable.from_mapping(yaml.safe_load(text))
    except (KeyError, TypeError, ValueError, yaml.YAMLError) as error:
        raise ValueError(f"bad class table {source}: {error!r}") from error


def _check_scores(scores: np.ndarray) -> None:
    if scores.ndim != 3 or scores.shape[0] < 1:
        raise ValueError(f"class scores must be C x H x W, got shape {scores.shape}")
    if not np.issubdtype(scores.dtype, np.floating):
        raise ValueError(f"class scores must be floating point, got {scores.dtype}")
    if not np.isfinite(scores).all():
        raise ValueError("class scores contain NaN or infinity")


def resample_probabilities(logits: torch.Tensor, shape_hw: tuple[int, int] | None = None) -> torch.Tensor:
    """Softmax over classes, then bicubic resampling to `shape_hw` (what test-time augmentation averages).

    logits: N x C x h x w float tensor on any device (e.g. straight from the network on the GPU).
    shape_hw: output (height, width) in pixels; None keeps h x w. Returns N x C x H x W float32 on the
    same device. Bicubic may overshoot [0, 1] slightly near edges; only argmax and averages use it.
    """
    return resample_scores(torch.softmax(logits.float(), dim=1), shape_hw)


def resample_scores(scores: torch.Tensor, shape_hw: tuple[int, int] | None) -> torch.Tensor:
    """Bicubic (align_corners=False) resampling of N x C x h x w class scores to `shape_hw`."""
    if shape_hw is None or tuple(shape_hw) == tuple(scores.shape[2:]):
        return scores
    height, width = shape_hw
    if height < 1 or width < 1:
        raise ValueError(f"output shape must be positive, got {shape_hw}")
    return F.interpolate(scores, size=(height, width), mode="bicubic", align_corners=False)


def labels_from_network_output(logits: torch.Tensor, shape_hw: tuple[int, int] | None = None) -> torch.Tensor:
    """N x C x h x w logits (any device) -> N x H x W uint8 class ids at `shape_hw`, on the same device.

    As the official code: logits bicubic to `shape_hw`, then argmax (ties to the lower id); ids are
    never interpolated. Run it where the logits are, so only the uint8 ids cross to the host. Logits
    are resampled CLASS_CHUNK classes at a time (bicubic acts on each channel alone, so this is exact):
    all 150 at 1280 x 720 would be 550 MB more.
    """
    if logits.ndim != 4 or not 1 <= logits.shape[1] <= MAX_LABEL_ID:
        raise ValueError(f"logits must be N x C x H x W with 1 <= C <= {MAX_LABEL_ID}, got {tuple(logits.shape)}")
    if shape_hw is None or tuple(shape_hw) == tuple(logits.shape[2:]):
        return logits.argmax(dim=1).to(torch.uint8)
    logits = logits.float()
    best_score = best_id = None
    for first in range(0, logits.shape[1], CLASS_CHUNK):
        chunk = resample_scores(logits[:, first : first + CLASS_CHUNK], shape_hw)
        chunk_id = chunk.argmax(dim=1, keepdim=True)
        chunk_score = chunk.gather(1, chunk_id)[:, 0]
        if best_score is None:
            best_score, best_id = chunk_score, chunk_id[:, 0] + first
        else:
            better = chunk_score > best_score  # strict: ties keep the lower id
            best_score = torch.where(better, chunk_score, best_score)
            best_id = torch.where(better, chunk_id[:, 0] + first, best_id)
    return best_id.to(torch.uint8)


def class_probabilities(logits: np.ndarray, shape_hw: tuple[int, int] | None = None) -> np.ndarray:
    """`resample_probabilities` for one C x h x w float array: returns C x H x W float32."""
    _check_scores(logits)
    scores = torch.from_numpy(np.ascontiguousarray(logits, dtype=np.float32))
    return resample_probabilities(scores[None], shape_hw)[0].numpy()


def labels_from_scores(scores: np.ndarray) -> np.ndarray:
    """Class ids from per-class scores (logits or probabilities) at the scores' resolution.

    scores: C x H x W float, C <= 255. Returns H x W uint8 ids (argmax; ties go to the lower id).
    """
    _check_scores(scores)
    return labels_from_network_output(torch.from_numpy(np.ascontiguousarray(scores))[None])[0].numpy()


def labels_from_logits(logits: np.ndarray, shape_hw: tuple[int, int] | None = None) -> np.ndarray:
    """Class ids at the input resolution: logits bicubic to `shape_hw` (height, width), then argmax.

    logits: C x h x w float. Returns H x W uint8. Ids themselves are never interpolated.
    """
    _check_scores(logits)
    scores = torch.from_numpy(np.ascontiguousarray(logits, dtype=np.float32))
    return labels_from_network_output(scores[None], shape_hw)[0].numpy()


def resize_labels(labels: np.ndarray, shape_hw: tuple[int, int]) -> np.ndarray:
    """Resize an id image by pixel-centre nearest neighbour (never blends ids).

    labels: H x W integer ids. shape_hw: output (height, width). Output pixel (r, c) takes the input
    pixel whose area contains the output pixel's centre, i.e. floor((r + 0.5) * H / H_out).
    """
    if labels.ndim != 2 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be an H x W integer image, got {labels.shape} {labels.dtype}")
    height, width = shape_hw
    if height < 1 or width < 1:
        raise ValueError(f"output shape must be positive, got {shape_hw}")
    if (height, width) == labels.shape:
        return labels.copy()
    rows = np.minimum(((np.arange(height) + 0.5) * labels.shape[0] / height).astype(np.intp), labels.shape[0] - 1)
    cols = np.minimum(((np.arange(width) + 0.5) * labels.shape[1] / width).astype(np.intp), labels.shape[1] - 1)
    return labels[rows[:, None], cols[None, :]]


def colorize_labels(labels: np.ndarray, table: ClassTable) -> np.ndarray:
    """Palette image of an id image: H x W integer ids -> H x W x 3 uint8 BGR (ready for bgr8).

    Ids that are not classes (unlabelled 255, anything >= num_classes) are black; ids outside 0..255
    raise ValueError.
    """
    if labels.ndim != 2 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be an H x W integer image, got {labels.shape} {labels.dtype}")
    if labels.dtype != np.uint8 and labels.size and (labels.min() < 0 or labels.max() > MAX_LABEL_ID):
        raise ValueError(f"label ids must be in 0..{MAX_LABEL_ID}, got {labels.min()}..{labels.max()}")
    return table.palette_bgr_lut[labels]


def blend_overlay(image: np.ndarray, colored: np.ndarray, alpha: float) -> np.ndarray:
    """Overlay a palette image on the camera image: round((1 - alpha) * image + alpha * colored).

    image, colored: H x W x 3 uint8 in the same channel order (BGR for the ROS topics).
    alpha: weight of the palette colours in [0, 1] (0 = camera image only). Rounds half to even.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"overlay alpha must be in [0, 1], got {alpha}")
    if image.shape != colored.shape or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image {image.shape} and palette image {colored.shape} must both be H x W x 3")
    if image.dtype != np.uint8 or colored.dtype != np.uint8:
        raise ValueError(f"image and palette image must be uint8, got {image.dtype}, {colored.dtype}")
    blended = image.astype(np.float32) * np.float32(1.0 - alpha) + colored.astype(np.float32) * np.float32(alpha)
    return np.rint(blended).astype(np.uint8)


# A segmentation network as test-time augmentation sees it: (RGB uint8 image H x W x 3, network input
# (height, width) in pixels) -> class logits C x h x w at any resolution. The callable resizes and
# normalises the image to that input size itself, as the model's preprocessing does.
ScoreModel = Callable[[np.ndarray, tuple[int, int]], np.ndarray]


@dataclasses.dataclass(frozen=True)
class TestTimeAugmentation:
    """Multi-scale and horizontal-flip inference, averaged as class probabilities.

    scales: network input sizes relative to the base size (the paper evaluates ADE20K at several
    scales); flip: also run on the mirrored image. The default (1.0,), no flip, is plain inference.
    """

    scales: tuple[float, ...] = (1.0,)
    flip: bool = False

    __test__ = False  # not a pytest test class despite the name

    def __post_init__(self) -> None:
        if not self.scales:
            raise ValueError("test-time augmentation needs at least one scale")
        if not all(math.isfinite(s) and s > 0 for s in self.scales):
            raise ValueError(f"test-time augmentation scales must be positive, got {self.scales}")

    @property
    def runs(self) -> int:
        """Network runs per image."""
        return len(self.scales) * (2 if self.flip else 1)

    def network_shapes(self, base_shape_hw: tuple[int, int], multiple: int) -> list[tuple[int, int]]:
        """(height, width) of the network input per scale: scale x base, each side rounded to a
        multiple of `multiple` (the network stride), at least one multiple."""
        return [
            tuple(max(multiple, multiple * round(side * scale / multiple)) for side in base_shape_hw)
            for scale in self.scales
        ]


def predict_class_probabilities(
    image_rgb: np.ndarray,
    model: ScoreModel,
    base_shape_hw: tuple[int, int],
    augmentation: TestTimeAugmentation = TestTimeAugmentation(),
    multiple: int = 32,
) -> np.ndarray:
    """Class probabilities of an image, averaged over the augmentation's scales and flips.

    image_rgb: H x W x 3 uint8. model: see ScoreModel. base_shape_hw: the network input (height,
    width) at scale 1, i.e. what the preset's preprocessing uses for this image. multiple: the
    network stride input sides must be multiples of. Each run's logits are (mirrored back,) turned into
    probabilities (softmax) and resampled bicubically to H x W; runs are averaged, so runs at
    different scales weigh equally whatever their logit ranges.
    Returns C x H x W float32; `labels_from_scores` gives the ids.
    """
    if image_rgb.ndim != 3 or image_rgb.shape[2] != 3 or image_rgb.dtype != np.uint8:
        raise ValueError(f"image must be H x W x 3 uint8, got {image_rgb.shape} {image_rgb.dtype}")
    shape_hw = image_rgb.shape[:2]
    mirrored_image = np.ascontiguousarray(image_rgb[:, ::-1]) if augmentation.flip else None
    total: np.ndarray | None = None
    for network_shape in augmentation.network_shapes(base_shape_hw, multiple):
        for image in (image_rgb, mirrored_image) if augmentation.flip else (image_rgb,):
            logits = np.asarray(model(image, network_shape))
            if image is mirrored_image:
                logits = logits[:, :, ::-1]
            probabilities = class_probabilities(logits, shape_hw)
            if total is None:
                total = probabilities
            elif total.shape != probabilities.shape:
                raise ValueError(f"model returned {probabilities.shape[0]} classes, earlier runs {total.shape[0]}")
            else:
                total += probabilities
    assert total is not None  # scales is never empty
    return total / np.float32(augmentation.runs)


def labels_from_ade20k_annotation(annotation: np.ndarray, table: ClassTable) -> np.ndarray:
    """ADE20K annotation PNG values (0 = other, k = class k - 1) -> label ids (0 -> unlabeled_id).

    annotation: H x W integer image. Returns H x W uint8. ValueError for values above num_classes.
    """
    if annotation.ndim != 2 or not np.issubdtype(annotation.dtype, np.integer):
        raise ValueError(f"annotation must be an H x W integer image, got {annotation.shape} {annotation.dtype}")
    if annotation.size and (annotation.min() < 0 or annotation.max() > table.num_classes):
        raise ValueError(
            f"ADE20K annotation values must be in 0..{table.num_classes}, "
            f"got {annotation.min()}..{annotation.max()}"
        )
    labels = annotation.astype(np.int64) - 1
    labels[annotation == 0] = table.unlabeled_id
    return labels.astype(np.uint8)
