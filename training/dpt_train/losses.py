"""Training losses: SILog for metric depth, MiDaS scale-and-shift-invariant trimmed + gradient matching.

Every loss takes (N, H, W) prediction, target and a boolean validity mask, reduces per image first and then
averages over the images that have valid pixels (so a batch split across DDP ranks averages to the same
value). All arithmetic is done in float32 with autocast disabled: the logs, square roots and medians here
produce NaNs or large errors in bf16/fp16.
"""

from __future__ import annotations

import torch

_EPS = 1e-12


def _float32(*tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
    return tuple(t.float() for t in tensors)


def _check_shapes(prediction: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> None:
    if prediction.ndim != 3 or prediction.shape != target.shape or prediction.shape != mask.shape:
        raise ValueError(
            "prediction, target and mask must all be (N, H, W); got "
            f"{tuple(prediction.shape)}, {tuple(target.shape)}, {tuple(mask.shape)}"
        )
    if mask.dtype != torch.bool:
        raise ValueError(f"mask must be bool, got {mask.dtype}")


def _mean_over_valid_images(per_image: torch.Tensor, has_pixels: torch.Tensor) -> torch.Tensor:
    """Mean of per_image over images with valid pixels; 0 (still attached to the graph) if there are none."""
    weights = has_pixels.float()
    return (per_image * weights).sum() / weights.sum().clamp_min(1.0)


def silog_loss(
    prediction: torch.Tensor,
    target: torch.Tensor,
    mask: torch.Tensor,
    variance_focus: float = 0.85,
    scale: float = 10.0,
    min_depth: float = 1e-3,
) -> torch.Tensor:
    """Scale-invariant log loss (Eigen et al.; BTS weighting), float32 even under autocast.

    prediction, target: (N, H, W) metres; mask: (N, H, W) bool of valid target pixels.
    Per image, with e = ln(prediction) - ln(target) over the mask:
        loss = scale * sqrt(mean(e^2) - variance_focus * mean(e)^2)
    Predictions below min_depth are clamped to it so the log stays finite. Returns a float32 scalar.
    """
    _check_shapes(prediction, target, mask)
    with torch.autocast(device_type=prediction.device.type, enabled=False):
        prediction, target = _float32(prediction, target)
        weights = mask.float()
        count = weights.sum(dim=(1, 2))
        safe_target = torch.where(mask, target, torch.ones_like(target))
        log_error = (torch.log(prediction.clamp_min(min_depth)) - torch.log(safe_target)) * weights
        mean_error = log_error.sum(dim=(1, 2)) / count.clamp_min(1.0)
        mean_square = (log_error**2).sum(dim=(1, 2)) / count.clamp_min(1.0)
        per_image = scale * torch.sqrt((mean_square - variance_focus * mean_error**2).clamp_min(_EPS))
        return _mean_over_valid_images(per_image, count > 0)


def normalize_median_deviation(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """MiDaS normalisation per image: (values - median) / mean(|values - median|) over the mask.

    values: (N, H, W); mask: (N, H, W) bool. The median of an even count is the lower middle value
    (torch.nanmedian). Pixels outside the mask are returned as 0. Returns (N, H, W) float32.
    """
    flat = values.flatten(1)
    flat_mask = mask.flatten(1)
    median = torch.nanmedian(torch.where(flat_mask, flat, torch.full_like(flat, float("nan"))), dim=1).values
    median = torch.nan_to_num(median)  # images without valid pixels
    centred = (flat - median[:, None]) * flat_mask
    count = flat_mask.sum(dim=1).clamp_min(1)
    deviation = (centred.abs().sum(dim=1) / count).clamp_min(1e-6)
    return (centred / deviation[:, None]).view_as(values)


def trimmed_absolute_loss(
    prediction_normalized: torch.Tensor, target_normalized: torch.Tensor, mask: torch.Tensor, keep: float = 0.8
) -> torch.Tensor:
    """Per image: sum of the smallest `keep` fraction of |prediction - target| over the mask, divided by 2M.

    Inputs: (N, H, W) normalised values (see normalize_median_deviation), mask (N, H, W) bool, M = valid
    count. floor(keep * M) residuals are kept (at least one). Returns the mean over images with pixels.
    """
    residual = (prediction_normalized - target_normalized).abs().flatten(1)
    flat_mask = mask.flatten(1)
    count = flat_mask.sum(dim=1)
    # invalid pixels sort last; keep the first floor(keep * M) entries of each image
    ordered = torch.sort(torch.where(flat_mask, residual, torch.full_like(residual, float("inf"))), dim=1).values
    kept_count = torch.floor(keep * count.float()).clamp_min(1.0)
    rank = torch.arange(ordered.shape[1], device=ordered.device)[None, :]
    kept = torch.where(rank < kept_count[:, None], ordered, torch.zeros_like(ordered))
    per_image = kept.sum(dim=1) / (2.0 * count.clamp_min(1).float())
    return _mean_over_valid_images(per_image, count > 0)


def gradient_matching_loss(
    prediction_normalized: torch.Tensor, target_normalized: torch.Tensor, mask: torch.Tensor, scales: int = 4
) -> torch.Tensor:
    """Multi-scale gradient matching of the residual R = prediction - target (MiDaS).

    At scale k the residual and mask are subsampled with stride 2^k; per image the loss is
    (sum |dR/dx| + sum |dR/dy|) / M_k over neighbour pairs that are both valid, M_k = valid pixels at that
    scale. Returns the sum over scales of the mean over images with valid pixels.
    """
    residual = prediction_normalized - target_normalized
    total = residual.new_zeros(())
    for level in range(scales):
        step = 2**level
        r = residual[:, ::step, ::step]
        m = mask[:, ::step, ::step]
        pair_x = m[:, :, 1:] & m[:, :, :-1]
        pair_y = m[:, 1:, :] & m[:, :-1, :]
        grad_x = ((r[:, :, 1:] - r[:, :, :-1]).abs() * pair_x).sum(dim=(1, 2))
        grad_y = ((r[:, 1:, :] - r[:, :-1, :]).abs() * pair_y).sum(dim=(1, 2))
        count = m.sum(dim=(1, 2))
        total = total + _mean_over_valid_images((grad_x + grad_y) / count.clamp_min(1).float(), count > 0)
    return total


def scale_shift_invariant_loss(
    prediction: torch.Tensor,
    target: torch.Tensor,
    mask: torch.Tensor,
    gradient_weight: float = 0.5,
    keep: float = 0.8,
    scales: int = 4,
) -> torch.Tensor:
    """MiDaS/DPT relative loss: trimmed scale-and-shift-invariant loss + gradient_weight * gradient matching.

    prediction, target: (N, H, W) in the same representation (inverse depth for DPT relative models);
    mask: (N, H, W) bool. Both are normalised per image by median and mean absolute deviation. Set
    gradient_weight = 0 for sparse ground truth (LiDAR), where neighbouring valid pixels are rare.
    Returns a float32 scalar.
    """
    _check_shapes(prediction, target, mask)
    with torch.autocast(device_type=prediction.device.type, enabled=False):
        prediction, target = _float32(prediction, target)
        prediction_normalized = normalize_median_deviation(prediction, mask)
        target_normalized = normalize_median_deviation(target, mask)
        loss = trimmed_absolute_loss(prediction_normalized, target_normalized, mask, keep)
        if gradient_weight > 0:
            loss = loss + gradient_weight * gradient_matching_loss(
                prediction_normalized, target_normalized, mask, scales
            )
        return loss
