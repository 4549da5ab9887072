"""Named presets for the released DPT and Depth Anything V2 models, as data.

A preset binds an architecture to what the released weights need around it: the network input size,
resize rule, size multiple and normalisation, how outputs go back to the image size, what the output
means (relative inverse depth, metric depth, class logits), how DPT's metric models turn their head output
into metres, and where the official weights file comes from under which licence.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

from dpt_ros.model.architecture import Architecture, DepthAnythingV2Architecture, DPTArchitecture

OutputKind = Literal["relative_inverse_depth", "metric_depth", "segmentation_logits"]
# How the keep-aspect resize picks its scale (the reference `Resize`'s resize_method):
#   "minimal":     the target ratio closer to 1, sides rounded to the multiple (DPT);
#   "lower_bound": the larger ratio, so both sides reach the target; a side that rounds below it is
#                  rounded up instead (Depth Anything V2).
ResizeMethod = Literal["minimal", "lower_bound"]
# How outputs go back to the image size: "bicubic" (DPT's scripts, align_corners=False) or "bilinear"
# with align_corners=True (Depth Anything V2's `infer_image`).
OutputResize = Literal["bicubic", "bilinear_align_corners"]
# The output kinds by name, so that no other module spells them as string literals.
RELATIVE_INVERSE_DEPTH: Final[OutputKind] = "relative_inverse_depth"
METRIC_DEPTH: Final[OutputKind] = "metric_depth"
SEGMENTATION_LOGITS: Final[OutputKind] = "segmentation_logits"

RELEASE_URL = "https://github.com/isl-org/DPT/releases/download/1_0/"
# Where a preset's released weights file is looked for when none is configured (under the working directory).
DEFAULT_WEIGHTS_DIR = Path("models")
HF_DOWNLOAD_URL = "https://huggingface.co/{repo}/resolve/main/{file}"
DPT_MEAN_STD = ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
IMAGENET_MEAN_STD = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


@dataclass(frozen=True)
class MetricConversion:
    """The official metric models output inverse depth x; metres = 1 / max(scale * x + shift, floor)."""

    scale: float
    shift: float
    floor: float = 1e-8


@dataclass(frozen=True)
class Preset:
    """A released DPT model: architecture, preprocessing, output meaning and weights file.

    input_size: (width, height) target of the keep-aspect `resize_method`; both sides are then snapped to
        multiples of `architecture.stride` (32 for DPT, 14 for Depth Anything V2).
    mean_std: per-channel (mean, std) applied to RGB in [0, 1].
    sha256_prefix: DPT's official file names end in the first 8 hex digits of the file's SHA-256 (the
        torch.hub convention); `dpt-ros-weights verify` / `download` check a file against it. "" where the
        publisher gives no hash (the file is then checked by loading it).
    sha256: the file's full SHA-256 where it has been recorded ("" = only the prefix, if any, is known);
        checked instead of the prefix when set.
    metric: DPT's inverse-depth -> metres constants; Depth Anything V2's metric heads output metres
        themselves (`architecture.max_depth`).
    weights_url: where the official file is published, when not under DPT's RELEASE_URL.
    hf_repo: the Hugging Face `transformers` checkpoint of the same weights, where one exists.
    licence: SPDX identifier of the weights' licence; non_commercial says it forbids commercial use.
    needs_prompt: the network takes a metric depth prompt with the image (Prompt Depth Anything).
    """

    name: str
    architecture: Architecture
    input_size: tuple[int, int]
    output_kind: OutputKind
    weights_file: str
    sha256_prefix: str = ""
    metric: MetricConversion | None = None
    resize_method: ResizeMethod = "minimal"
    mean_std: tuple[tuple[float, float, float], tuple[float, float, float]] = DPT_MEAN_STD
    output_resize: OutputResize = "bicubic"
    hf_repo: str | None = None
    licence: str = "MIT"
    non_commercial: bool = False
    description: str = ""
    sha256: str = ""
    weights_url: str = ""
    needs_prompt: bool = False

    @property
    def url(self) -> str:
        return self.weights_url or RELEASE_URL + self.weights_file

    @property
    def licence_notice(self) -> str | None:
        """A one-line warning for weights whose licence forbids commercial use; None otherwise."""
        if not self.non_commercial:
            return None
        return (
            f"model {self.name}: the weights ({self.weights_file}) are licensed {self.licence}, "
            "non-commercial use only; see models/README.md"
        )

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

# Depth Anything V2 (DINOv2 encoders; the original's `model_configs` and `intermediate_layer_idx`).
DAV2_VITS = DepthAnythingV2Architecture(
    embed_dim=384, depth=12, num_heads=6, taps=(2, 5, 8, 11), reassemble_channels=(48, 96, 192, 384), features=64,
)
DAV2_VITB = DepthAnythingV2Architecture(
    embed_dim=768, depth=12, num_heads=12, taps=(2, 5, 8, 11), reassemble_channels=(96, 192, 384, 768), features=128,
)
DAV2_VITL = DepthAnythingV2Architecture(
    embed_dim=1024, depth=24, num_heads=16, taps=(4, 11, 17, 23), reassemble_channels=(256, 512, 1024, 1024),
    features=256,
)

ARCHITECTURES: dict[str, Architecture] = {
    "dpt_base": VIT_BASE,
    "dpt_hybrid": VIT_HYBRID,
    "dpt_large": VIT_LARGE,
    "depth_anything_v2_vits": DAV2_VITS,
    "depth_anything_v2_vitb": DAV2_VITB,
    "depth_anything_v2_vitl": DAV2_VITL,
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


# Depth Anything V2: 518 x 518 "lower_bound" input in multiples of 14, ImageNet normalisation, outputs
# back to the image bilinearly (align_corners=True); ViT-S weights Apache-2.0, ViT-B/L CC-BY-NC-4.0.
_DAV2_SIZES = {
    "vits": ("Small", DAV2_VITS, "Apache-2.0"),
    "vitb": ("Base", DAV2_VITB, "CC-BY-NC-4.0"),
    "vitl": ("Large", DAV2_VITL, "CC-BY-NC-4.0"),
}
# (preset infix, Hugging Face repo infix of the .pth, of the transformers port, max depth in metres, what)
_DAV2_KINDS = (
    ("", "", "", None, "relative inverse depth (affine-invariant)"),
    ("metric_hypersim_", "Metric-Hypersim-", "Metric-Indoor-", 20.0, "metric depth, indoor (Hypersim), metres"),
    ("metric_vkitti_", "Metric-VKITTI-", "Metric-Outdoor-", 80.0, "metric depth, outdoor (Virtual KITTI 2), metres"),
)


def _dav2_preset(size: str, kind: tuple[str, str, str, float | None, str]) -> Preset:
    size_name, arch, licence = _DAV2_SIZES[size]
    infix, repo_infix, hf_infix, max_depth, what = kind
    name = f"depth_anything_v2_{infix}{size}"
    return Preset(
        name=name,
        architecture=dataclasses.replace(arch, max_depth=max_depth),
        input_size=(518, 518),
        output_kind=RELATIVE_INVERSE_DEPTH if max_depth is None else METRIC_DEPTH,
        weights_file=f"{name}.pth",
        resize_method="lower_bound",
        mean_std=IMAGENET_MEAN_STD,
        output_resize="bilinear_align_corners",
        weights_url=HF_DOWNLOAD_URL.format(
            repo=f"depth-anything/Depth-Anything-V2-{repo_infix}{size_name}", file=f"{name}.pth"
        ),
        hf_repo=f"depth-anything/Depth-Anything-V2-{hf_infix}{size_name}-hf",
        licence=licence,
        non_commercial=licence.startswith("CC-BY-NC"),
        description=f"Depth Anything V2 ViT-{size[-1].upper()}, {what}",
    )


PRESETS.update(
    (preset.name, preset) for preset in (_dav2_preset(size, kind) for kind in _DAV2_KINDS for size in _DAV2_SIZES)
)


# Prompt Depth Anything (DepthAnything/PromptDA): Depth Anything V2 S / L with a prompt unit in each fusion block
# and a Sigmoid head whose output is a fraction of the prompt's range (max_depth 1); the image is normalised
# inside the network (buffers `_mean`, `_std`), so the preprocessing hands it RGB in [0, 1]. Input: the
# "minimal" keep-aspect rule to 756 in multiples of 14, as `transformers`' conversion of the released models
# (1008 x 756 for 4:3 images, the original demo's size). The released file is a Lightning checkpoint named
# model.ckpt in each Hugging Face repository; save it as <preset>.ckpt. Licences as the Depth Anything V2
# weights each is fine-tuned from (ViT-S Apache-2.0, ViT-L CC-BY-NC-4.0): check the model card.
_PROMPT_SIZES = {"vits": (DAV2_VITS, "Apache-2.0", "Small"), "vitl": (DAV2_VITL, "CC-BY-NC-4.0", "Large")}


def _prompt_preset(size: str) -> Preset:
    arch, licence, size_name = _PROMPT_SIZES[size]
    name = f"prompt_depth_anything_{size}"
    return Preset(
        name=name,
        architecture=dataclasses.replace(arch, max_depth=1.0),
        input_size=(756, 756),
        output_kind=METRIC_DEPTH,
        weights_file=f"{name}.ckpt",
        mean_std=((0.0, 0.0, 0.0), (1.0, 1.0, 1.0)),
        output_resize="bilinear_align_corners",
        weights_url=HF_DOWNLOAD_URL.format(repo=f"depth-anything/prompt-depth-anything-{size}", file="model.ckpt"),
        hf_repo=f"depth-anything/prompt-depth-anything-{size}-hf",
        licence=licence,
        non_commercial=licence.startswith("CC-BY-NC"),
        description=f"Prompt Depth Anything ViT-{size[-1].upper()} ({size_name}), metres from a metric depth prompt",
        needs_prompt=True,
    )


PRESETS.update((preset.name, preset) for preset in (_prompt_preset(size) for size in _PROMPT_SIZES))


def get_preset(name: str | Preset) -> Preset:
    """The preset called `name` (a `Preset` passes through); a clear error lists the known names."""
    if isinstance(name, Preset):
        return name
    try:
        return PRESETS[name]
    except KeyError:
        raise KeyError(f"unknown DPT preset {name!r}; known presets: {', '.join(sorted(PRESETS))}") from None


def default_weights_path(preset: Preset, models_dir: str | Path = DEFAULT_WEIGHTS_DIR) -> Path:
    """models_dir/<the preset's released weights file>."""
    return Path(models_dir) / preset.weights_file


def resolve_weights_path(configured: str | Path | None, preset: Preset) -> Path:
    """The configured weights path, or the preset's default one when none (or "") is configured."""
    return Path(configured) if configured else default_weights_path(preset)
