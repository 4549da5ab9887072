"""Prompt Depth Anything against `transformers`' PromptDepthAnythingForDepthEstimation on shared seeded random
weights, the released key layouts, and the prompt normalisation's edge cases.

Tolerance: both sides run float32 with the same operations in a different order (fused vs separate q/k/v
projections, SDPA vs explicit attention); measured differences are <= 5e-7 of the prompt range, the bound
1e-5 of it (~100 float32 ulp) leaves room for other BLAS builds without hiding a wrong operation, which
moves outputs by 1e-2 or more.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from dpt_ros.model.architecture import PositionEmbeddingResize
from dpt_ros.model.checkpoint import hf_to_official, load_weights, official_to_hf
from dpt_ros.model.dpt import build_model
from dpt_ros.model.presets import get_preset
from dpt_ros.model.prompt_depth_anything import PromptDepthAnything, normalise_prompt

transformers = pytest.importorskip("transformers")

# A reduced real architecture: 4 blocks of width 32, a 4 x 4 position-embedding grid (56 x 56 pixels).
TINY = dict(embed_dim=32, depth=4, num_heads=2, pretrain_grid=4, taps=(0, 1, 2, 3), reassemble_channels=(8, 16, 32, 32),
            features=16, head_hidden=8)
PRESET = get_preset("prompt_depth_anything_vits").with_architecture(**TINY)
# transformers' DINOv2 resizes position embeddings by target size; the original by scale factor (grid + 0.1)
# / 37. Non-square comparisons use the size rule on our side too (the difference is tested in the DA-V2 tests).
PRESET_SIZE_RULE = PRESET.with_architecture(pos_embed_resize=PositionEmbeddingResize(mode="bicubic", offset=None))
IMAGENET_MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
IMAGENET_STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


def _hf_model(seed: int):
    arch = PRESET.architecture
    backbone = transformers.Dinov2Config(
        hidden_size=arch.embed_dim, num_hidden_layers=arch.depth, num_attention_heads=arch.num_heads,
        mlp_ratio=int(arch.mlp_ratio), patch_size=arch.patch_size, image_size=arch.pretrain_grid * arch.patch_size,
        layerscale_value=1.0, layer_norm_eps=arch.layer_norm_eps, out_indices=[t + 1 for t in arch.taps],
        apply_layernorm=True, reshape_hidden_states=False,
    )
    config = transformers.PromptDepthAnythingConfig(
        backbone_config=backbone, reassemble_hidden_size=arch.embed_dim, patch_size=arch.patch_size,
        neck_hidden_sizes=list(arch.reassemble_channels), fusion_hidden_size=arch.features,
        head_hidden_size=arch.head_hidden, depth_estimation_type="metric", max_depth=1,
    )
    model = transformers.PromptDepthAnythingForDepthEstimation(config).eval()
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():  # every tensor random, the zero-initialised prompt convs included
        for name, tensor in model.state_dict().items():
            noise = torch.randn(tensor.shape, generator=generator)
            if name.endswith("lambda1") or "norm" in name and name.endswith("weight"):
                tensor.copy_(1.0 + 0.2 * noise)
            elif tensor.ndim > 1:
                tensor.copy_(noise / tensor[0].numel() ** 0.5)  # fan-in scaled
            else:
                tensor.copy_(0.1 * noise)
    return model


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """transformers' model with seeded random weights and its checkpoint folder (the Hub file layout)."""
    reference = _hf_model(seed=7)
    folder = tmp_path_factory.mktemp("prompt_hf")
    reference.save_pretrained(folder)
    return reference, folder


@pytest.mark.parametrize(
    ("preset", "image_hw", "prompt_hw"),
    [
        (PRESET, (56, 56), (12, 16)),  # square at the pretrain grid; prompt smaller and non-square
        (PRESET_SIZE_RULE, (84, 84), (96, 64)),  # square, embeddings resized; prompt larger than the image
        (PRESET_SIZE_RULE, (70, 112), (24, 32)),  # non-square image (size rule on both sides)
    ],
)
def test_identical_to_transformers_on_seeded_random_weights(shared, preset, image_hw, prompt_hw):
    hf_model, folder = shared
    ours = build_model(preset, weights=folder)
    generator = torch.Generator().manual_seed(1)
    image = torch.rand((2, 3, *image_hw), generator=generator)
    prompt = 0.5 + 9.5 * torch.rand((2, 1, *prompt_hw), generator=generator)
    with torch.no_grad():
        expected = hf_model(pixel_values=(image - IMAGENET_MEAN) / IMAGENET_STD, prompt_depth=prompt).predicted_depth
        got = ours(image, prompt)
        other_prompt = ours(image, prompt.flip(-1))
    assert got.shape == expected.shape == (2, *image_hw)
    span = (prompt.amax(dim=(1, 2, 3)) - prompt.amin(dim=(1, 2, 3))).view(2, 1, 1)
    assert ((got - expected).abs() / span).max() <= 1e-5
    # the prompt matters (the units are not zero here) and the output lies in the prompt's range
    assert ((other_prompt - got).abs() / span).max() > 1e-3
    assert (got >= prompt.amin(dim=(1, 2, 3)).view(2, 1, 1) - 1e-5).all()
    assert (got <= prompt.amax(dim=(1, 2, 3)).view(2, 1, 1) + 1e-5).all()


def test_without_a_prompt_it_is_the_unprompted_network(shared):
    hf_model, folder = shared
    ours = build_model(PRESET, weights=folder)
    image = torch.rand((1, 3, 56, 56), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected = hf_model(pixel_values=(image - IMAGENET_MEAN) / IMAGENET_STD).predicted_depth
        got = ours(image)
    assert torch.allclose(got, expected, rtol=0, atol=1e-5) and (got > 0).all() and (got < 1).all()


def test_fresh_prompt_units_start_at_zero():
    model = PromptDepthAnything(PRESET.architecture).eval()
    image = torch.rand((1, 3, 56, 56), generator=torch.Generator().manual_seed(4))
    low, high = 2.0, 6.0
    prompt = torch.linspace(low, high, 12 * 16).view(1, 1, 12, 16)
    with torch.no_grad():
        unprompted, prompted = model(image), model(image, prompt)
    # zero-initialised units add nothing: the prompted output is the unprompted one de-normalised
    assert torch.allclose(prompted, unprompted * (high - low) + low, rtol=0, atol=1e-5)


def test_normalisation_uses_min_and_max_and_survives_constant_prompts():
    prompt = torch.tensor([[[[2.0, 4.0], [3.0, 10.0]]], [[[5.0, 5.0], [5.0, 5.0]]]])
    normalised, low, high = normalise_prompt(prompt)
    assert low.flatten().tolist() == [2.0, 5.0] and high.flatten().tolist() == [10.0, 5.0]
    assert normalised[0].flatten().tolist() == [0.0, 0.25, 0.125, 1.0]
    assert normalised[1].eq(0).all() and torch.isfinite(normalised).all()  # no 0 / 0
    model = PromptDepthAnything(PRESET.architecture).eval()
    with torch.no_grad():
        constant = model(torch.rand((1, 3, 56, 56)), torch.full((1, 1, 8, 8), 3.0))
    assert torch.isfinite(constant).all() and constant.eq(3.0).all()  # that depth, never NaN
    with pytest.raises(ValueError, match="non-empty"):
        normalise_prompt(torch.zeros((1, 1, 0, 4)))


def test_released_and_transformers_layouts_round_trip_losslessly(shared):
    _, folder = shared
    hf_state = load_file(folder / "model.safetensors")  # the Hub layout (transformers 5 renames q/k/v in memory)
    official = hf_to_official(hf_state)
    ours = PromptDepthAnything(PRESET.architecture).state_dict()
    assert set(official) == set(ours)  # the original's keys: pretrained.*, depth_head.* (with the prompt units), _mean, _std
    assert sum(".resConfUnit_depth." in key for key in official) == 4 * 3 * 2  # 4 blocks x 3 convs x weight, bias
    assert torch.equal(official["_std"], ours["_std"])
    back = official_to_hf(official)
    assert set(back) == set(hf_state) and all(torch.equal(back[k], hf_state[k]) for k in hf_state)
    again = hf_to_official(back)
    assert set(again) == set(official) and all(torch.equal(again[k], official[k]) for k in official)


@pytest.mark.parametrize("prefix", ["model.", "lightning.net."])
def test_released_lightning_checkpoint_loads_strictly(shared, tmp_path, prefix):
    """model.ckpt: {"state_dict": {<the Lightning module's attribute path><original key>: tensor}, "epoch": ...}."""
    official = hf_to_official(load_file(shared[1] / "model.safetensors"))
    path = tmp_path / "model.ckpt"
    torch.save({"state_dict": {prefix + key: value for key, value in official.items()}, "epoch": 3,
                "global_step": 1000}, path)
    model = PromptDepthAnything(PRESET.architecture)
    load_weights(model, path, "prompt_depth_anything_vits")
    loaded = model.state_dict()
    assert set(loaded) == set(official) and all(torch.equal(loaded[k], official[k]) for k in official)
    # a file without the normalisation buffers gets the original's constants (ImageNet mean / std)
    torch.save({"state_dict": {prefix + k: v for k, v in official.items() if not k.startswith("_")}}, path)
    load_weights(model, path, "prompt_depth_anything_vits")
    assert torch.equal(model.state_dict()["_mean"], official["_mean"])


def test_engine_takes_one_prompt_per_image_and_never_hands_out_unprompted_metres(shared):
    from dpt_ros.model.engine import InferenceEngine

    engine = InferenceEngine(PRESET, weights=shared[1], input_size=(56, 56))
    generator = np.random.default_rng(0)
    images = [generator.integers(0, 256, (48, 64, 3), dtype=np.uint8) for _ in range(2)]
    prompt = generator.uniform(2.0, 6.0, (12, 16)).astype(np.float32)
    with pytest.raises(ValueError, match="takes a metric depth prompt"):
        engine.infer(images[0])
    prompted, unprompted = engine.infer_batch(images, prompts=[prompt, None])  # two passes in one call
    assert prompted.shape == unprompted.shape == (48, 64)
    assert 2.0 - 1e-4 <= prompted.min() and prompted.max() <= 6.0 + 1e-4  # within the prompt's range, metres
    assert 0.0 < unprompted.min() and unprompted.max() < 1.0  # unitless
    # alone or batched with an unprompted image: the same numbers (float32 summation order: 1e-5 m slack)
    np.testing.assert_allclose(prompted, engine.infer_batch(images[:1], prompts=[prompt])[0], rtol=0, atol=1e-5)
    with pytest.raises(ValueError, match="densify"):
        engine.infer_batch(images[:1], prompts=[np.where(prompt > 3, prompt, np.nan)])
    with pytest.raises(ValueError, match="takes no depth prompt"):
        InferenceEngine("dpt_hybrid_midas", allow_random_weights=True,
                        input_size=(64, 64)).infer_batch(images[:1], prompts=[prompt])


@pytest.mark.parametrize(("size", "features", "published_millions"), [("vits", 64, 25.1), ("vitl", 256, 340.0)])
def test_parameter_counts_match_the_release(size, features, published_millions):
    """Depth Anything V2 plus four prompt units (conv 1->F, F->F, F->F, 3x3 with biases); the original's README
    lists 25.1 M (Small) and 340 M (Large). Built on the meta device: no memory for 340 M weights."""
    from dpt_ros.model.dpt import build_network

    def count(name: str) -> int:
        with torch.device("meta"):
            return sum(p.numel() for p in build_network(get_preset(name)).parameters())

    prompted = count(f"prompt_depth_anything_{size}")
    unit = (9 * features + features) + 2 * (9 * features * features + features)
    assert prompted - count(f"depth_anything_v2_metric_hypersim_{size}") == 4 * unit
    assert round(prompted / 1e6, 1) == published_millions
