"""The paper's relative-to-metric fine-tuning recipe (DPT, Sec. 4.2 / KITTI).

Start from a relative (MiDaS) model, robustly align its initial inverse-depth predictions to each
training sample's ground truth (1/z ~ s * x + t), average s and t over the training set, and apply them
to the predictions before the loss, here by folding them into the head's last conv so the metric preset's
own constants produce 1/(s * x + t) (see `fold_scale_shift`). Gradient matching stays off: KITTI ground
truth is sparse.
"""

from __future__ import annotations

import logging

import numpy as np
import torch
from tqdm import tqdm

from dpt_ros.alignment.fit import fit_scale_shift
from dpt_ros.model.dpt import DPT
from dpt_train.data import KittiDepthDataset
from dpt_train.model import relative_output

LOG = logging.getLogger(__name__)


class RecipeError(RuntimeError):
    """The recipe cannot start on this data (e.g. no sample could be aligned). The message is for users."""


@torch.no_grad()
def estimate_scale_shift(
    model: DPT, dataset: KittiDepthDataset, device: torch.device, samples: int = 0
) -> tuple[float, float, int]:
    """Average robust per-sample (scale, shift) of the model's raw inverse depth against 1/ground truth.

    dataset: an evaluation-mode dataset (KB-cropped image, full-size depth) over the training split.
    samples: number of evenly spaced samples to use (0 = all). Samples whose robust fit fails (too few
    points, degenerate depth range) are skipped. Returns (scale, shift, samples fitted); raises RecipeError
    when every sample's fit fails.
    """
    model.eval()
    count = len(dataset) if samples <= 0 else min(samples, len(dataset))
    indices = np.linspace(0, len(dataset) - 1, count).round().astype(int)
    scales, shifts = [], []
    with relative_output(model):
        for index in tqdm(indices, desc="aligning initial predictions", leave=False):
            sample = dataset[int(index)]
            prediction = model(sample["image"][None].to(device))[0].float().cpu().numpy()
            top, left = sample["crop_top"], sample["crop_left"]
            depth = sample["depth"].numpy()[top : top + prediction.shape[0], left : left + prediction.shape[1]]
            fit = fit_scale_shift(prediction, depth, method="robust")
            if fit.success:
                scales.append(fit.scale)
                shifts.append(fit.shift)
            else:
                LOG.warning("sample %d: no robust alignment (%s)", int(index), fit.reason)
    if not scales:
        raise RecipeError(f"the robust alignment failed on all {count} training samples tried (see the warnings "
                          "above for why); the recipe cannot estimate the metric head's scale and shift")
    return float(np.mean(scales)), float(np.mean(shifts)), len(scales)
