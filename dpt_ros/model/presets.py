"""Named presets for the released DPT models, as data.

A preset binds an architecture to what the released weights need around it: the network input size
and resize rule, what the output means (relative inverse depth, metric depth, class logits), how the
metric models turn their head output into metres, and where the official weights file comes from.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Final, Literal

from dpt_ros.model.architecture import DPTArchitecture

OutputKind = Literal["relative_inverse_depth", "metric_depth", "segmentation_logits"]
# The output kinds by name, so that no other module spells them as string literals.
RELATIVE_INVERSE_DEPTH: Final[OutputKind] = "relative_inverse_depth"
METRIC_DEPTH: Final[OutputKind] = "metric_depth"
SEGMENTATION_LOGITS: Final[OutputKind] = "segmentation_logits"

RELEASE_URL = "https://github.com/isl-org/DPT/releases/download/1_0/"


@dataclass(frozen=True)
class MetricConversion:
    """The official metric models output inverse depth x; metres = 1 / max(scale * x + shift, floor)."""

    scale: float
    shift: float
    floor: float = 1e-8


@dataclass(frozen=True)
class Preset:
    """A released DPT model: architecture, preprocessing, output meaning and weights file.

    input_size: (width, height) the official scripts resize to with the "minimal" keep-aspect rule,
        snapping both sides to multiples of 32.
    sha256_prefix: the official file names end in the first 8 hex digits of the file's SHA-256
        (the torch.hub convention); `dpt-ros-weights verify` checks a file against it.
    hf_repo: the Hugging Face `transformers` checkpoint of the same weights, where one exists.
    needs_prompt: the network takes a metric depth prompt with the image (Prompt Depth Anything).
    """

    name: str
    architecture: DPTArchitecture
    input_size: tuple[int, int]
    output_kind: OutputKind
    weights_file: str
    sha256_prefix: str
    metric: MetricConversion | None = None
    hf_repo: str | None = None
    description: str = ""
    needs_prompt: bool = False

    @property
    def url(self) -> str:
        return RELEASE_URL + self.weights_file

    @property
    def is_metric(self) -> bool:
        return self.output_kind == METRIC_DEPTH

    @property
    def is_segmentation(self) -> bool:
        return self.output_kind == SEGMENTATION_LOGITS

    def with_architecture(self, **overrides: Any) -> "Preset":
        """This preset with architecture fields replaced, e.g. a reduced real architecture for tests."""
        return dataclasses.replace(self, architecture=dataclasses.replace(self.architecture, **overrides))


VIT_BASE = DPTArchitecture(
    backbone="vit", embed_dim=768, depth=12, num_heads=12,
    taps=(2, 5, 8, 11), reassemble_channels=(96, 192, 384, 768),
)
VIT_LARGE = DPTArchitecture(
    backbone="vit", embed_dim=1024, depth=24, num_heads=16,
    taps=(5, 11, 17, 23), reassemble_channels=(256, 512, 1024, 1024),
)
VIT_HYBRID = DPTArchitecture(
    backbone="vit_hybrid", embed_dim=768, depth=12, num_heads=12,
    taps=(8, 11), reassemble_channels=(256, 512, 768, 768),
)

ARCHITECTURES: dict[str, DPTArchitecture] = {
    "dpt_base": VIT_BASE,
    "dpt_hybrid": VIT_HYBRID,
    "dpt_large": VIT_LARGE,
}

_SEGMENTATION = {"head": "segmentation", "num_classes": 150}

PRESETS: dict[str, Preset] = {
    preset.name: preset
    for preset in (
        Preset(
            name="dpt_large_midas",
            architecture=VIT_LARGE,
            input_size=(384, 384),
            output_kind=RELATIVE_INVERSE_DEPTH,
            weights_file="dpt_large-midas-2f21e586.pt",
            sha256_prefix="2f21e586",
            hf_repo="Intel/dpt-large",
            description="DPT-Large, MIX 6 (MiDaS v3) relative inverse depth",
        ),
        Preset(
            name="dpt_hybrid_midas",
            architecture=VIT_HYBRID,
            input_size=(384, 384),
            output_kind=RELATIVE_INVERSE_DEPTH,
            weights_file="dpt_hybrid-midas-501f0c75.pt",
            sha256_prefix="501f0c75",
            hf_repo="Intel/dpt-hybrid-midas",
            description="DPT-Hybrid, MIX 6 (MiDaS v3) relative inverse depth",
        ),
        Preset(
            name="dpt_hybrid_kitti",
            architecture=VIT_HYBRID,
            input_size=(1216, 352),
            output_kind=METRIC_DEPTH,
            weights_file="dpt_hybrid_kitti-cb926ef4.pt",
            sha256_prefix="cb926ef4",
            metric=MetricConversion(scale=6.016e-5, shift=0.00579),
            description="DPT-Hybrid fine-tuned on KITTI (Eigen split), metres",
        ),
        Preset(
            name="dpt_hybrid_nyu",
            architecture=VIT_HYBRID,
            input_size=(640, 480),
            output_kind=METRIC_DEPTH,
            weights_file="dpt_hybrid_nyu-2ce69ec7.pt",
            sha256_prefix="2ce69ec7",
            metric=MetricConversion(scale=0.000305, shift=0.1378),
            description="DPT-Hybrid fine-tuned on NYUv2, metres",
        ),
        Preset(
            name="dpt_large_ade20k",
            architecture=dataclasses.replace(VIT_LARGE, **_SEGMENTATION),
            input_size=(480, 480),
            output_kind=SEGMENTATION_LOGITS,
            weights_file="dpt_large-ade20k-b12dca68.pt",
            sha256_prefix="b12dca68",
            hf_repo="Intel/dpt-large-ade",
            description="DPT-Large, ADE20K semantic segmentation (150 classes)",
        ),
        Preset(
            name="dpt_hybrid_ade20k",
            architecture=dataclasses.replace(VIT_HYBRID, **_SEGMENTATION),
            input_size=(480, 480),
            output_kind=SEGMENTATION_LOGITS,
            weights_file="dpt_hybrid-ade20k-53898607.pt",
            sha256_prefix="53898607",
            description="DPT-Hybrid, ADE20K semantic segmentation (150 classes)",
        ),
    )
}


def get_preset(name: str | Preset) -> Preset:
    """The preset called `name` (a `Preset` passes through); a clear error lists the known names."""
    if isinstance(name, Preset):
        return name
    try:
        return PRESETS[name]
    except KeyError:
        raise KeyError(f"unknown DPT preset {name!r}; known presets: {', '.join(sorted(PRESETS))}") from None
