"""Loading weights: the official released DPT `.pt` / Depth Anything V2 `.pth` files and Hugging Face
`transformers` checkpoints (`DPTForDepthEstimation`, `DepthAnythingForDepthEstimation`, ...).

Our modules carry the official state-dict key names, so an official file loads as is (minus timm's
unused 1000-class head). `transformers` checkpoints are renamed to official keys by one table of key
templates per network that works in both directions (see `hf_to_official` / `official_to_hf`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from dpt_ros.model.download import download_hint
from dpt_ros.model.presets import IMAGENET_MEAN_STD, PRESETS

if TYPE_CHECKING:
    from dpt_ros.model.presets import Preset

HF_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")

# Keys in the official files that the official forward never uses (timm's ImageNet classifier).
UNUSED_OFFICIAL_PREFIXES = ("pretrained.model.head.",)


class WeightsError(RuntimeError):
    """A weights file is missing, unreadable, or does not fit the preset's network. The message is for users."""


def missing_weights_message(preset: Preset, path: Path | None) -> str:
    """What is wrong with `path` as `preset`'s weights (None: no file given) and how to get the right file.

    The one place that tells users where weights come from: the engine's error and warning and the nodes'
    start-up errors all end with it.
    """
    if path is None:
        problem = "not given"
    elif not Path(path).exists():
        problem = f"not found at {path}"
    else:
        problem = f"at {path} cannot be used"
    return (
        f"weights for preset '{preset.name}' {problem}. To get them, {download_hint(preset)}, "
        f"(licence {preset.licence}), or pass a Hugging Face checkpoint directory; see models/README.md"
    )


# Placeholders in the key templates below and how an index maps official <- HF:
#   {i}, {j}: same number on both sides; {r}: reassemble level, HF 0..3 -> official 1..4;
#   {f}: fusion block, HF runs coarse-to-fine 0..3 -> official refinenet 4..1.
_INDEX_TO_OFFICIAL: dict[str, Callable[[int], int]] = {
    "i": lambda n: n, "j": lambda n: n, "r": lambda n: n + 1, "f": lambda n: 4 - n,
}
_INDEX_TO_HF: dict[str, Callable[[int], int]] = {
    "i": lambda n: n, "j": lambda n: n, "r": lambda n: n - 1, "f": lambda n: 4 - n,
}

_COMMON_TEMPLATES: tuple[tuple[str, str], ...] = (
    ("dpt.embeddings.cls_token", "pretrained.model.cls_token"),
    ("dpt.embeddings.position_embeddings", "pretrained.model.pos_embed"),
    ("dpt.encoder.layer.{i}.attention.attention.qkv.", "pretrained.model.blocks.{i}.attn.qkv."),
    ("dpt.encoder.layer.{i}.attention.output.dense.", "pretrained.model.blocks.{i}.attn.proj."),
    ("dpt.encoder.layer.{i}.intermediate.dense.", "pretrained.model.blocks.{i}.mlp.fc1."),
    ("dpt.encoder.layer.{i}.output.dense.", "pretrained.model.blocks.{i}.mlp.fc2."),
    ("dpt.encoder.layer.{i}.layernorm_before.", "pretrained.model.blocks.{i}.norm1."),
    ("dpt.encoder.layer.{i}.layernorm_after.", "pretrained.model.blocks.{i}.norm2."),
    ("dpt.layernorm.", "pretrained.model.norm."),
    ("neck.reassemble_stage.readout_projects.{r}.0.", "pretrained.act_postprocess{r}.0.project.0."),
    ("neck.reassemble_stage.layers.{r}.projection.", "pretrained.act_postprocess{r}.3."),
    ("neck.reassemble_stage.layers.{r}.resize.", "pretrained.act_postprocess{r}.4."),
    ("neck.convs.{r}.", "scratch.layer{r}_rn."),
    ("neck.fusion_stage.layers.{f}.projection.", "scratch.refinenet{f}.out_conv."),
    ("neck.fusion_stage.layers.{f}.residual_layer{i}.convolution{j}.", "scratch.refinenet{f}.resConfUnit{i}.conv{j}."),
    ("neck.fusion_stage.layers.{f}.residual_layer{i}.batch_norm{j}.", "scratch.refinenet{f}.resConfUnit{i}.bn{j}."),
    ("head.head.", "scratch.output_conv."),
    ("auxiliary_head.head.", "auxlayer."),
)
_VIT_TEMPLATES: tuple[tuple[str, str], ...] = (
    ("dpt.embeddings.patch_embeddings.projection.", "pretrained.model.patch_embed.proj."),
)
_HYBRID_TEMPLATES: tuple[tuple[str, str], ...] = (
    ("dpt.embeddings.projection.", "pretrained.model.patch_embed.proj."),
    ("dpt.embeddings.backbone.bit.embedder.convolution.", "pretrained.model.patch_embed.backbone.stem.conv."),
    ("dpt.embeddings.backbone.bit.embedder.norm.", "pretrained.model.patch_embed.backbone.stem.norm."),
    (
        "dpt.embeddings.backbone.bit.encoder.stages.{i}.layers.{j}.",
        "pretrained.model.patch_embed.backbone.stages.{i}.blocks.{j}.",
    ),
)


# Depth Anything V2: transformers' DINOv2 backbone + DepthAnything neck/head <-> the original repository.
_DAV2_TEMPLATES: tuple[tuple[str, str], ...] = (
    ("backbone.embeddings.cls_token", "pretrained.cls_token"),
    ("backbone.embeddings.mask_token", "pretrained.mask_token"),
    ("backbone.embeddings.position_embeddings", "pretrained.pos_embed"),
    ("backbone.embeddings.patch_embeddings.projection.", "pretrained.patch_embed.proj."),
    ("backbone.encoder.layer.{i}.attention.attention.qkv.", "pretrained.blocks.{i}.attn.qkv."),
    ("backbone.encoder.layer.{i}.attention.output.dense.", "pretrained.blocks.{i}.attn.proj."),
    ("backbone.encoder.layer.{i}.layer_scale1.lambda1", "pretrained.blocks.{i}.ls1.gamma"),
    ("backbone.encoder.layer.{i}.layer_scale2.lambda1", "pretrained.blocks.{i}.ls2.gamma"),
    ("backbone.encoder.layer.{i}.norm1.", "pretrained.blocks.{i}.norm1."),
    ("backbone.encoder.layer.{i}.norm2.", "pretrained.blocks.{i}.norm2."),
    ("backbone.encoder.layer.{i}.mlp.", "pretrained.blocks.{i}.mlp."),
    ("backbone.layernorm.", "pretrained.norm."),
    ("neck.reassemble_stage.layers.{i}.projection.", "depth_head.projects.{i}."),
    ("neck.reassemble_stage.layers.{i}.resize.", "depth_head.resize_layers.{i}."),
    ("neck.convs.{r}.", "depth_head.scratch.layer{r}_rn."),
    ("neck.fusion_stage.layers.{f}.projection.", "depth_head.scratch.refinenet{f}.out_conv."),
    (
        "neck.fusion_stage.layers.{f}.residual_layer{i}.convolution{j}.",
        "depth_head.scratch.refinenet{f}.resConfUnit{i}.conv{j}.",
    ),
    ("head.conv1.", "depth_head.scratch.output_conv1."),
    ("head.conv2.", "depth_head.scratch.output_conv2.0."),
    ("head.conv3.", "depth_head.scratch.output_conv2.2."),
)


# Prompt Depth Anything's prompt units (transformers' PromptDepthAnythingForDepthEstimation <-> the original's
# `resConfUnit_depth`, a Sequential whose convs sit at 0, 2, 4); everything else is Depth Anything V2's.
_PROMPT_TEMPLATES: tuple[tuple[str, str], ...] = tuple(
    (f"neck.fusion_stage.layers.{{f}}.prompt_depth_layer.convolution{n}.",
     f"depth_head.scratch.refinenet{{f}}.resConfUnit_depth.{index}.")
    for n, index in ((1, 0), (2, 2), (3, 4))
)  # fmt: skip
# The original normalises the image inside the prompt network with these buffers (ImageNet mean / std);
# transformers does it in its image processor, so its checkpoints lack them.
PROMPT_NORMALISATION_BUFFERS = ("_mean", "_std")


def _template_regex(template: str) -> re.Pattern[str]:
    pattern = re.escape(template)
    for name in _INDEX_TO_OFFICIAL:  # each placeholder appears at most once per template
        pattern = pattern.replace(re.escape("{" + name + "}"), f"(?P<{name}>\\d+)")
    return re.compile("^" + pattern)


def _rename(
    state_dict: Mapping[str, torch.Tensor],
    pairs: tuple[tuple[str, str], ...],
    index_map: dict[str, Callable[[int], int]],
) -> dict[str, torch.Tensor]:
    """Rename keys by (source template, target template) pairs; keys that match none are kept."""
    compiled = [(_template_regex(src), dst) for src, dst in pairs]
    renamed: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        new_key = key
        for regex, dst in compiled:
            match = regex.match(key)
            if match:
                indices = {name: index_map[name](int(v)) for name, v in match.groupdict().items()}
                new_key = dst.format(**indices) + key[match.end():]
                break
        renamed[new_key] = value
    return renamed


def _hf_templates(state_dict: Mapping[str, torch.Tensor]) -> tuple[tuple[str, str], ...]:
    """The (HF, official) template table for a `transformers` state dict's network."""
    if any(k.startswith("backbone.embeddings.") for k in state_dict):
        return _DAV2_TEMPLATES + _PROMPT_TEMPLATES
    hybrid = any(k.startswith("dpt.embeddings.backbone.") for k in state_dict)
    return _COMMON_TEMPLATES + (_HYBRID_TEMPLATES if hybrid else _VIT_TEMPLATES)


def _official_templates(state_dict: Mapping[str, torch.Tensor]) -> tuple[tuple[str, str], ...]:
    """The (HF, official) template table for an official state dict's network."""
    if any(k.startswith("depth_head.") for k in state_dict):
        return _DAV2_TEMPLATES + _PROMPT_TEMPLATES
    hybrid = any(k.startswith("pretrained.model.patch_embed.backbone.") for k in state_dict)
    return _COMMON_TEMPLATES + (_HYBRID_TEMPLATES if hybrid else _VIT_TEMPLATES)


_HF_QKV = re.compile(
    r"^((?:dpt|backbone)\.encoder\.layer\.\d+\.attention\.attention\.)(query|key|value)\.(weight|bias)$"
)


def hf_to_official(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """`transformers` DPT / Depth Anything state dict -> official keys (separate q/k/v become the fused qkv)."""
    fused: dict[str, torch.Tensor] = {}
    qkv_parts: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in state_dict.items():
        match = _HF_QKV.match(key)
        if match:
            qkv_parts.setdefault(f"{match[1]}qkv.{match[3]}", {})[match[2]] = value
        else:
            fused[key] = value
    for key, parts in qkv_parts.items():
        if set(parts) != {"query", "key", "value"}:
            raise WeightsError(f"checkpoint has an incomplete attention projection at {key}: only {sorted(parts)}")
        fused[key] = torch.cat([parts["query"], parts["key"], parts["value"]], dim=0)
    return _with_prompt_normalisation(_rename(fused, _hf_templates(state_dict), _INDEX_TO_OFFICIAL))


def _with_prompt_normalisation(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A prompt network's state dict with its image normalisation buffers: the ImageNet constants where the
    file has none (transformers' layout never has them); any other network's unchanged."""
    if any(".resConfUnit_depth." in key for key in state_dict):
        for name, values in zip(PROMPT_NORMALISATION_BUFFERS, IMAGENET_MEAN_STD):
            state_dict.setdefault(name, torch.tensor(values).view(1, 3, 1, 1))
    return state_dict


def official_to_hf(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Official DPT / Depth Anything V2 keys -> `transformers` keys (the inverse of `hf_to_official`)."""
    kept = {k: v for k, v in state_dict.items() if k not in PROMPT_NORMALISATION_BUFFERS}  # not in transformers
    renamed = _rename(kept, tuple((o, h) for h, o in _official_templates(state_dict)), _INDEX_TO_HF)
    split: dict[str, torch.Tensor] = {}
    for key, value in renamed.items():
        if ".attention.attention.qkv." in key:
            prefix, suffix = key.split("qkv.")
            for part, chunk in zip(("query", "key", "value"), value.chunk(3, dim=0)):
                split[f"{prefix}{part}.{suffix}"] = chunk
        else:
            split[key] = value
    return split


def _torch_load(path: Path) -> object:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # pickle, zip and weights_only errors all mean "not a usable checkpoint"
        raise WeightsError(f"{path} is not a readable PyTorch checkpoint ({type(error).__name__}: {error})") from None


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Tensors of an official `.pt`, a `transformers` directory, or a single .safetensors/.bin file."""
    if path.is_dir():
        candidates = [path / name for name in HF_WEIGHT_FILES if (path / name).is_file()]
        if not candidates:
            raise WeightsError(
                f"{path} is a directory without a Hugging Face weights file (expected one of {', '.join(HF_WEIGHT_FILES)})"
            )
        path = candidates[0]
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except (SafetensorError, OSError) as error:
            raise WeightsError(f"{path} is not a readable safetensors file ({error})") from None
    loaded = _torch_load(path)
    # Training checkpoints of the official code wrap the weights next to the optimiser state; Lightning ones
    # (Prompt Depth Anything's model.ckpt) under "state_dict".
    for wrapper in ("model", "state_dict"):
        if isinstance(loaded, dict) and isinstance(loaded.get(wrapper), dict):
            loaded = loaded[wrapper]
    if not isinstance(loaded, dict) or not all(isinstance(v, torch.Tensor) for v in loaded.values()):
        raise WeightsError(f"{path} does not contain a state dict of tensors")
    return loaded


def _without_module_prefix(state_dict: Mapping[str, torch.Tensor]) -> Mapping[str, torch.Tensor]:
    """Strip the prefix a training wrapper put before every key: DataParallel's `module.`, or the Lightning
    module's attribute path before `pretrained.` (Prompt Depth Anything's released model.ckpt, whose loader
    drops a fixed 9 characters). A prefix is stripped only when every key carries it."""
    if state_dict and all(k.startswith("module.") for k in state_dict):
        return {k[len("module."):]: v for k, v in state_dict.items()}
    anchor = next((k for k in state_dict if ".pretrained." in k), None)
    if anchor is None or any(k.startswith(_OFFICIAL_ROOTS) for k in state_dict):
        return state_dict
    prefix = anchor[: anchor.index(".pretrained.") + 1]
    if not all(k.startswith(prefix) for k in state_dict):
        return state_dict
    return {k[len(prefix):]: v for k, v in state_dict.items()}


# Top-level names of official keys (DPT, Depth Anything V2, Prompt Depth Anything).
_OFFICIAL_ROOTS = ("pretrained.", "scratch.", "auxlayer.", "depth_head.", *PROMPT_NORMALISATION_BUFFERS)


def to_official_keys(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Any supported key layout (official, `transformers`, DataParallel `module.`, Lightning) -> official keys."""
    state_dict = _without_module_prefix(state_dict)
    if any(k.startswith(("dpt.", "neck.", "backbone.embeddings.")) for k in state_dict):
        state_dict = hf_to_official(state_dict)
    return _with_prompt_normalisation({k: v for k, v in state_dict.items() if not k.startswith(UNUSED_OFFICIAL_PREFIXES)})


def _summarise(keys: list[str], limit: int = 8) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f", ... ({len(keys) - limit} more)" if len(keys) > limit else "")


def load_weights(model: nn.Module, weights: str | Path, preset_name: str) -> None:
    """Load `weights` into `model` strictly; any mismatch is a `WeightsError` naming preset, file and keys."""
    path = Path(weights).expanduser()
    if not path.exists():
        hint = f"; to get them, {download_hint(PRESETS[preset_name])}" if preset_name in PRESETS else ""
        raise WeightsError(f"weights for preset '{preset_name}' not found: {path}{hint}")
    state_dict = to_official_keys(_read_state_dict(path))
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    wrong_shape = sorted(
        f"{k} {tuple(state_dict[k].shape)} != {tuple(expected[k].shape)}"
        for k in set(expected) & set(state_dict)
        if state_dict[k].shape != expected[k].shape
    )
    if missing or unexpected or wrong_shape:
        details = []
        if missing:
            details.append(f"missing keys: {_summarise(missing)}")
        if unexpected:
            details.append(f"unexpected keys: {_summarise(unexpected)}")
        if wrong_shape:
            details.append(f"wrong shapes: {_summarise(wrong_shape)}")
        raise WeightsError(
            f"{path} does not fit preset '{preset_name}' ({len(expected)} tensors expected, "
            f"{len(state_dict)} found); " + "; ".join(details)
        )
    model.load_state_dict(state_dict, strict=True)
