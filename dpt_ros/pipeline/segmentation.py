"""One camera frame through a segmentation network to everything a node publishes about it, without ROS.

    RGB -> [preprocess] -> network -> logits -> ids at the image size -> [palette image] -> [overlay]

The label image also feeds the depth pipeline's point cloud (`label` field) when depth runs too.
`augmented_class_probabilities` is the multi-scale / flip path of the evaluation tools.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import numpy as np
import torch

from dpt_ros.model.preprocess import network_input_size, to_network_input
from dpt_ros.pipeline.stats import StageClock
from dpt_ros.segmentation.classes import (
    ClassTable,
    ScoreModel,
    TestTimeAugmentation,
    blend_overlay,
    colorize_labels,
    labels_from_network_output,
    predict_class_probabilities,
)

if TYPE_CHECKING:
    from dpt_ros.model.engine import InferenceEngine


class SegmentationBackend(Protocol):
    """What the stage needs of dpt_ros.InferenceEngine with a segmentation preset."""

    def prepare_batch(self, images: Sequence[np.ndarray]) -> torch.Tensor: ...

    def forward(self, batch: torch.Tensor) -> torch.Tensor: ...


@dataclass
class SemanticOutputs:
    """Per-frame segmentation products, all at the input image's size H x W.

    labels: H x W uint8 class ids (see the class table). colored: H x W x 3 uint8 BGR palette image or
    None. overlay: H x W x 3 uint8 BGR blend of image and palette or None. timings_ms: per stage.
    """

    labels: np.ndarray
    colored: np.ndarray | None = None
    overlay: np.ndarray | None = None
    timings_ms: dict[str, float] = field(default_factory=dict)


class SegmentationStage:
    """Runs a segmentation engine on frames and builds the label, palette and overlay images.

    The class ids are computed where the logits are (bicubic to the image size, then argmax, on the
    GPU when the engine is on one), so only H x W bytes come back to the host.
    """

    def __init__(self, engine: SegmentationBackend, table: ClassTable) -> None:
        self.engine = engine
        self.table = table

    def process(
        self,
        rgb: np.ndarray,
        *,
        network_input: torch.Tensor | None = None,
        want_colored: bool = False,
        want_overlay: bool = False,
        overlay_alpha: float = 0.5,
    ) -> SemanticOutputs:
        """rgb: H x W x 3 uint8. network_input: this frame's prepared (1, 3, h, w) input when another
        network already prepared it (see SharedNetworkInput); None prepares it here. Builds the palette
        and overlay images only when wanted. ValueError when the network's class count does not match
        the class table or its logits are not finite.
        """
        clock = StageClock()
        with clock("segmentation"):
            batch = self.engine.prepare_batch([rgb]) if network_input is None else network_input
            logits = self.engine.forward(batch)
            if logits.shape[1] != self.table.num_classes:
                raise ValueError(
                    f"the segmentation network predicts {logits.shape[1]} classes but the class table "
                    f"({self.table.dataset}) has {self.table.num_classes}"
                )
            if not bool(torch.isfinite(logits).all()):  # e.g. fp16 overflow: ids would be silently wrong
                raise ValueError("the segmentation network returned NaN or infinite logits")
            labels = labels_from_network_output(logits, rgb.shape[:2])[0].cpu().numpy()
        outputs = SemanticOutputs(labels=labels, timings_ms=clock.timings_ms)
        if want_colored or want_overlay:
            with clock("semantic_images"):
                colored = colorize_labels(labels, self.table)
                outputs.colored = colored if want_colored else None
                if want_overlay:
                    outputs.overlay = blend_overlay(np.ascontiguousarray(rgb[..., ::-1]), colored, overlay_alpha)
        return outputs


def network_score_model(model: torch.nn.Module, device: str | torch.device = "cpu") -> ScoreModel:
    """A ScoreModel (for test-time augmentation) that runs a DPT segmentation network in fp32 at exactly
    the requested input size, with the official normalisation, and returns its 1/1 logits C x h x w."""

    @torch.inference_mode()
    def score(image_rgb: np.ndarray, network_shape_hw: tuple[int, int]) -> np.ndarray:
        logits = model(to_network_input(image_rgb, network_shape_hw).to(device))
        return logits[0].float().cpu().numpy()

    return score


def augmented_class_probabilities(
    engine: InferenceEngine, image_rgb: np.ndarray, augmentation: TestTimeAugmentation
) -> np.ndarray:
    """Multi-scale / flip class probabilities (C x H x W float32) of an engine's segmentation network.

    Scale 1 is the network size the engine's own preprocessing picks for this image, so the default
    `TestTimeAugmentation()` reproduces plain single-scale inference. For the evaluation tools; runs fp32.
    """
    preset = engine.preset
    if not preset.is_segmentation:
        raise ValueError(f"preset {preset.name} is not a segmentation model")
    height, width = image_rgb.shape[:2]
    base_shape_hw = network_input_size(height, width, engine.input_size or preset.input_size)
    return predict_class_probabilities(
        image_rgb,
        network_score_model(engine.model, engine.device),
        base_shape_hw,
        augmentation,
        multiple=preset.architecture.stride,
    )
