"""The one inference engine used by the ROS node, the bag evaluator, the trainer's evaluation and the
benchmarks: image in, the network's output at the image's resolution out.
"""

from __future__ import annotations

import logging
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from dpt_ros.core.model.checkpoint import WeightsError
from dpt_ros.core.model.dpt import build_model
from dpt_ros.core.model.presets import Preset, get_preset
from dpt_ros.core.preprocess import preprocess

LOG = logging.getLogger(__name__)

PRECISIONS = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def resolve_device(device: str) -> torch.device:
    """'auto' -> the first CUDA device if there is one, else CPU; 'cpu' / 'cuda:N' validated."""
    if device == "auto":
        return torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    resolved = torch.device(device)
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {device!r} requested but CUDA is not available on this machine")
        if (resolved.index or 0) >= torch.cuda.device_count():
            raise ValueError(f"device {device!r} requested but only {torch.cuda.device_count()} CUDA device(s) exist")
    elif resolved.type != "cpu":
        raise ValueError(f"unsupported device {device!r}; use 'auto', 'cpu' or 'cuda:N'")
    return resolved


def missing_weights_message(preset: Preset, path: Path | None) -> str:
    where = f"not found at {path}" if path is not None else "not given"
    return (
        f"weights for preset '{preset.name}' {where}. Download {preset.url} "
        f"(SHA-256 starts with {preset.sha256_prefix}) into models/, or pass a Hugging Face checkpoint "
        "directory; see models/README.md"
    )


class InferenceEngine:
    """A DPT preset on a device at a precision.

    infer(rgb) takes an (H, W, 3) uint8 RGB image and returns float32 at the image's resolution,
    resized back bicubically as the official scripts do:
      - (H, W) relative inverse depth (`relative_inverse_depth` presets) or metres (`metric_depth`);
      - (C, H, W) class logits for segmentation presets.
    Without weights the engine refuses to start unless `allow_random_weights` is set, in which case
    it runs with random weights and says so (`random_weights`).
    """

    def __init__(
        self,
        preset: str | Preset,
        weights: str | Path | None = None,
        device: str = "cpu",
        precision: str = "fp32",
        allow_random_weights: bool = False,
        input_size: tuple[int, int] | None = None,
    ) -> None:
        self.preset = get_preset(preset)
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        self.precision = precision
        self.device = resolve_device(device)
        self.input_size = input_size
        weights_path = Path(weights).expanduser() if weights is not None else None
        have_weights = weights_path is not None and weights_path.exists()
        if not have_weights and not allow_random_weights:
            raise WeightsError(missing_weights_message(self.preset, weights_path))
        self.random_weights = not have_weights
        if self.random_weights:
            LOG.warning(
                "RUNNING DPT '%s' WITH RANDOM WEIGHTS: outputs are meaningless (%s)",
                self.preset.name, missing_weights_message(self.preset, weights_path),
            )
        self.model = build_model(self.preset, weights_path if have_weights else None).to(self.device)

    def _autocast(self):
        if self.precision == "fp32":
            return nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=PRECISIONS[self.precision])

    @torch.inference_mode()
    def infer(self, rgb: np.ndarray) -> np.ndarray:
        """(H, W, 3) uint8 RGB -> network output at (H, W): see the class docstring."""
        batch = preprocess(rgb, self.preset, self.input_size).to(self.device)
        with self._autocast():
            out = self.model(batch)
        out = out.float()
        if out.ndim == 3:
            out = out[:, None]
        out = F.interpolate(out, size=rgb.shape[:2], mode="bicubic", align_corners=False)[0]
        if not self.preset.is_segmentation:
            out = out[0]
        return out.cpu().numpy()
