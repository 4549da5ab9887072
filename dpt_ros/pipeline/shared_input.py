"""One preprocessing per frame for several networks (depth + segmentation in one perception node).

The first network to ask for a frame's input prepares it (resize, normalise, upload); the others
reuse that tensor. This needs every network to want the same input size on the same device, which
`SharedNetworkInput` checks once at start-up.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np
import torch


class NetworkStages(Protocol):
    """The stages of dpt_ros.InferenceEngine used here."""

    device: torch.device

    def network_size(self, height: int, width: int) -> tuple[int, int]: ...

    def prepare_batch(self, images: Sequence[np.ndarray]) -> torch.Tensor: ...

    def forward(self, batch: torch.Tensor) -> torch.Tensor: ...

    def resize_to_image(self, out: torch.Tensor, height: int, width: int) -> torch.Tensor: ...

    def to_host(self, role: str, tensor: torch.Tensor, copy: bool = True) -> np.ndarray: ...


class SharedNetworkInput:
    """Prepares each frame's network input once, with `engines[0]`, for all `engines`.

    Raises ValueError at construction when the engines would not see the same input (different
    device, or a different network size for a probe image of `probe_shape_hw`).
    """

    def __init__(self, engines: Sequence[NetworkStages], probe_shape_hw: tuple[int, int] = (480, 640)) -> None:
        if not engines:
            raise ValueError("sharing an input needs at least one engine")
        sizes = {(str(engine.device), engine.network_size(*probe_shape_hw)) for engine in engines}
        if len(sizes) > 1:
            raise ValueError(
                "networks that share one preprocessing need the same device and input size, got "
                + ", ".join(f"{size[1][1]}x{size[1][0]} on {size[0]}" for size in sorted(sizes))
            )
        self._preparer = engines[0]
        self._frame: np.ndarray | None = None  # held so that `is` cannot match a recycled object
        self._batch: torch.Tensor | None = None
        self.preparations = 0

    def prepare(self, rgb: np.ndarray) -> torch.Tensor:
        """The (1, 3, h, w) network input of this frame (the same tensor for the same image object)."""
        if rgb is not self._frame:
            self._batch = self._preparer.prepare_batch([rgb])
            self._frame = rgb
            self.preparations += 1
        assert self._batch is not None
        return self._batch


class SharedInputBackend:
    """`infer(rgb)` like InferenceEngine.infer, but on the input a SharedNetworkInput prepared.

    Lets the depth pipeline (which calls `infer` / `infer_batch`) run on the frame's shared input.
    """

    def __init__(self, engine: NetworkStages, shared_input: SharedNetworkInput) -> None:
        self.engine = engine
        self.shared_input = shared_input

    @torch.inference_mode()
    def infer(self, rgb: np.ndarray) -> np.ndarray:
        """(H, W, 3) uint8 RGB -> the network output at (H, W) on the host, as InferenceEngine.infer."""
        out = self.engine.forward(self.shared_input.prepare(rgb))
        return self.engine.to_host("output", self.engine.resize_to_image(out, *rgb.shape[:2]))[0]

    def infer_batch(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        """One `infer` per image (the shared input holds one frame at a time), so the depth pipeline's
        process_batch runs here too; a perception node has one camera, so its batches hold one image."""
        return [self.infer(rgb) for rgb in images]
