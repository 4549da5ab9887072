"""Segmentation metrics: confusion matrix, pixel accuracy, per-class IoU, mIoU (dataset-level, as ADE20K reports)."""

import numpy as np

from dpt_ros.segmentation.classes import MAX_LABEL_ID


def confusion_matrix(
    predicted: np.ndarray, target: np.ndarray, num_classes: int, ignore_index: int | None = MAX_LABEL_ID
) -> np.ndarray:
    """Pixel counts: entry [t, p] = pixels of ground-truth class t predicted as class p.

    predicted, target: same-shape integer id images. Pixels whose target is `ignore_index` are skipped.
    Every other target id, and the prediction at every counted pixel, must be in 0..num_classes-1
    (ValueError otherwise). Returns num_classes x num_classes int64; sum matrices over a data set and
    compute the metrics once on the total (the standard dataset-level mIoU).
    """
    if predicted.shape != target.shape:
        raise ValueError(f"prediction {predicted.shape} and ground truth {target.shape} differ in shape")
    if not (np.issubdtype(predicted.dtype, np.integer) and np.issubdtype(target.dtype, np.integer)):
        raise ValueError(f"ids must be integers, got {predicted.dtype} and {target.dtype}")
    counted = np.ones(target.shape, dtype=bool) if ignore_index is None else target != ignore_index
    target_ids = target[counted].astype(np.int64)
    predicted_ids = predicted[counted].astype(np.int64)
    for what, ids in (("ground-truth", target_ids), ("predicted", predicted_ids)):
        outside = (ids < 0) | (ids >= num_classes)
        if outside.any():
            raise ValueError(
                f"{int(outside.sum())} counted {what} ids are outside 0..{num_classes - 1} "
                f"(e.g. {int(ids[outside][0])}); ignore_index is {ignore_index}"
            )
    counts = np.bincount(target_ids * num_classes + predicted_ids, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes)


def pixel_accuracy(confusion: np.ndarray) -> float:
    """Fraction of counted pixels whose predicted id equals the ground truth. ValueError if none counted."""
    total = int(confusion.sum())
    if total == 0:
        raise ValueError("pixel accuracy of an empty confusion matrix (no labelled pixels)")
    return float(np.trace(confusion)) / total


def class_iou(confusion: np.ndarray) -> np.ndarray:
    """Per-class intersection over union, K floats; NaN for classes absent from both GT and prediction."""
    intersection = np.diag(confusion).astype(np.float64)
    union = confusion.sum(axis=0) + confusion.sum(axis=1) - intersection
    iou = np.full(confusion.shape[0], np.nan)
    present = union > 0
    iou[present] = intersection[present] / union[present]
    return iou


def mean_iou(confusion: np.ndarray) -> float:
    """Mean IoU over the classes present in the ground truth or the prediction (absent ones excluded).

    A class predicted but not in the ground truth counts with IoU 0. ValueError if no class is present.
    """
    iou = class_iou(confusion)
    if np.isnan(iou).all():
        raise ValueError("mean IoU of an empty confusion matrix (no labelled pixels)")
    return float(np.nanmean(iou))
