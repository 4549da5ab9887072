"""Pictures people look at: TensorBoard image panels and the PNG of the training curves."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # training machines have no display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def colorize(values: np.ndarray, vmin: float, vmax: float, cmap: str = "magma") -> np.ndarray:
    """(H, W) float -> (H, W, 3) uint8 through a matplotlib colormap; NaN pixels are black."""
    normalized = np.clip((values - vmin) / max(vmax - vmin, 1e-12), 0.0, 1.0)
    rgb = matplotlib.colormaps[cmap](np.nan_to_num(normalized))[..., :3]
    rgb[~np.isfinite(values)] = 0.0
    return (rgb * 255.0 + 0.5).astype(np.uint8)


def prediction_panel(rgb: np.ndarray, prediction: np.ndarray, gt: np.ndarray, max_depth: float) -> np.ndarray:
    """input | prediction | ground truth | relative error, side by side.

    rgb: (h, w, 3) uint8; prediction, gt: (h, w) metres, gt 0 = invalid. The error tile shows
    |pred - gt| / gt on valid pixels, 0 (black) to 0.5 (bright). Returns (h, 4w, 3) uint8 RGB.
    """
    valid = gt > 0
    gt_shown = np.where(valid, gt, np.nan)
    error = np.where(valid, np.abs(prediction - gt) / np.where(valid, gt, 1.0), np.nan)
    return np.concatenate(
        [rgb, colorize(prediction, 0.0, max_depth), colorize(gt_shown, 0.0, max_depth),
         colorize(error, 0.0, 0.5, "inferno")],
        axis=1,
    )


def read_log(path: str | Path) -> dict[int, dict]:
    """JSON-lines log -> {step: record}; a step logged twice (a run resumed from an older checkpoint)
    keeps its last record, which is the one on the resumed trajectory."""
    records: dict[int, dict] = {}
    for line in Path(path).read_text().splitlines():
        if line.strip():
            record = json.loads(line)
            records[record["step"]] = record
    return dict(sorted(records.items()))


def plot_training_curves(train_log: str | Path, val_log: str | Path, png_path: str | Path) -> None:
    """Training loss and validation AbsRel / delta1 against step, saved as a PNG."""
    figure, (loss_axis, val_axis) = plt.subplots(1, 2, figsize=(11, 4))
    train = read_log(train_log) if Path(train_log).is_file() else {}
    loss_axis.plot(list(train), [r["loss"] for r in train.values()], lw=1)
    loss_axis.set(xlabel="step", ylabel="training loss", title="training loss")
    loss_axis.grid(alpha=0.3)
    val = read_log(val_log) if Path(val_log).is_file() else {}
    if val:
        steps = list(val)
        val_axis.plot(steps, [r["abs_rel"] for r in val.values()], "o-", label="AbsRel")
        val_axis.plot(steps, [r["delta1"] for r in val.values()], "s-", label="δ<1.25")
        val_axis.legend()
    val_axis.set(xlabel="step", title="validation")
    val_axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(png_path, dpi=100)
    plt.close(figure)
