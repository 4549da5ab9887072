"""Scoring a model on a KITTI-format split: shared by training-time validation and `dpt-eval`.

The network sees the KB-cropped image; its prediction is pasted into a full-frame canvas (NaN outside
the crop) and scored against the full-size ground truth with the configured crop, depth range and
alignment (dpt_ros.eval.depth_metrics), as in the published Eigen-split evaluations.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler
from tqdm import tqdm

from dpt_ros.eval.depth_metrics import EvalConfig, MetricAggregator, evaluate_image
from dpt_train.data import KittiDepthDataset, collate_samples
from dpt_train.plots import prediction_panel

LOG = logging.getLogger(__name__)


@dataclass
class EvalResult:
    """aggregate: running mean over scored images; per_image: (split line, metrics) pairs;
    panels: (h, 4w, 3) uint8 input | prediction | GT | error images of the first samples;
    unscored: images without a single valid ground-truth pixel in the crop and range."""

    aggregate: MetricAggregator = field(default_factory=MetricAggregator)
    per_image: list[tuple[int, dict[str, float]]] = field(default_factory=list)
    panels: list[np.ndarray] = field(default_factory=list)
    unscored: int = 0


def paste_prediction(prediction: np.ndarray, full_shape: tuple[int, int], top: int, left: int) -> np.ndarray:
    """Full-frame (H, W) float64 canvas holding prediction (h, w) at (top, left), NaN elsewhere."""
    canvas = np.full(full_shape, np.nan)
    canvas[top : top + prediction.shape[0], left : left + prediction.shape[1]] = prediction
    return canvas


Predictor = Callable[[dict], np.ndarray]


def model_predictor(model: torch.nn.Module, device: torch.device, autocast_dtype: torch.dtype | None) -> Predictor:
    """Predictor running `model` (N, 3, h, w) -> (N, h, w) on a batch's normalised "image"."""

    @torch.no_grad()
    def predict(batch: dict) -> np.ndarray:
        model.eval()
        with torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
            prediction = model(batch["image"].to(device))
        return prediction[0].float().cpu().numpy()

    return predict


def evaluate_dataset(
    predict: Predictor,
    dataset: KittiDepthDataset,
    config: EvalConfig,
    sampler: Sampler | None = None,
    num_workers: int = 0,
    panels: int = 0,
    progress: bool = False,
) -> EvalResult:
    """Score `predict` over an evaluation-mode dataset, one image at a time.

    predict(batch) gets a collated batch of one sample and returns the (h, w) prediction for its crop:
    metres for metric models (alignment "none"), relative inverse depth for "least_squares_inverse",
    depth up to scale for "median".
    """
    loader = DataLoader(dataset, batch_size=1, sampler=sampler, collate_fn=collate_samples, num_workers=num_workers)
    result = EvalResult()
    for batch in tqdm(loader, desc="evaluate", disable=not progress, dynamic_ncols=True):
        prediction = predict(batch)
        gt = batch["depth"][0].numpy()
        top, left = int(batch["crop_top"][0]), int(batch["crop_left"][0])
        line = dataset.entries[int(batch["index"][0])].line
        try:
            metrics = evaluate_image(paste_prediction(prediction, gt.shape, top, left), gt, config)
        except ValueError as error:
            LOG.warning("split line %d not scored: %s", line, error)
            result.unscored += 1
            continue
        result.aggregate.add(metrics)
        result.per_image.append((line, metrics))
        if len(result.panels) < panels and config.alignment == "none":
            crop_gt = gt[top : top + prediction.shape[0], left : left + prediction.shape[1]]
            result.panels.append(prediction_panel(batch["rgb"][0].numpy(), prediction, crop_gt, config.max_depth))
    return result
