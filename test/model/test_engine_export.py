"""Inference engine (batching, device-side preprocessing, back-projection) and ONNX export."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dpt_ros import InferenceEngine, build_model, preprocess
from dpt_ros.model.engine import resolve_device
from dpt_ros.model.presets import get_preset
from dpt_ros.tools.export import export_onnx, max_relative_difference

SMALL = dict(embed_dim=64, depth=4, num_heads=2, taps=(0, 1, 2, 3), reassemble_channels=(16, 32, 64, 64), features=32)


def _informative(model: torch.nn.Module) -> torch.nn.Module:
    """Random weights can leave the depth head's final ReLU all-zero; a positive bias keeps it informative."""
    if model.arch.head == "depth":
        with torch.no_grad():
            model.scratch.output_conv[4].bias.fill_(1.0)
    return model


def _engine(preset_name: str, **kwargs) -> InferenceEngine:
    torch.manual_seed(0)
    engine = InferenceEngine(get_preset(preset_name).with_architecture(**SMALL, backbone="vit"),
                             allow_random_weights=True, **kwargs)
    _informative(engine.model)
    return engine


def _images(count: int, hw=(60, 80), seed=0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, size=(*hw, 3), dtype=np.uint8) for _ in range(count)]


def test_engine_forward_equals_plain_model_fp32():
    engine = _engine("dpt_hybrid_midas")
    batch = preprocess(_images(1)[0], engine.preset)
    with torch.no_grad():
        expected = engine.model(batch)
    got = engine.forward(batch)
    assert float(expected.std()) > 0
    assert torch.allclose(got, expected, atol=1e-5, rtol=0)


def test_batch_of_n_equals_n_single_calls():
    engine = _engine("dpt_hybrid_midas")
    images = _images(3)
    batched = engine.infer_batch(images)
    for image, out in zip(images, batched):
        assert np.allclose(out, engine.infer(image), atol=1e-5)


def test_batch_rejects_mixed_sizes_and_empty_batches():
    engine = _engine("dpt_hybrid_midas")
    with pytest.raises(ValueError, match="one size"):
        engine.infer_batch(_images(1, (60, 80)) + _images(1, (64, 80)))
    with pytest.raises(ValueError, match="at least one"):
        engine.infer_batch([])


def test_device_side_preprocessing_agrees_with_opencv_reference():
    """The GPU path resizes with torch's bicubic; on the CPU it can be compared with OpenCV's."""
    image = _images(1, (120, 200))[0]
    host = _engine("dpt_hybrid_midas").prepare_batch([image])
    device_style = _engine("dpt_hybrid_midas", preprocess_on_device=True).prepare_batch([image])
    assert host.shape == device_style.shape == (1, 3, 224, 384)
    difference = (host - device_style).abs()
    assert float(difference.mean()) < 2e-3 and float(difference.max()) < 0.1


def test_bad_device_and_precision_are_clear_errors():
    with pytest.raises(ValueError, match="unsupported device"):
        resolve_device("tpu")
    with pytest.raises(ValueError, match="precision"):
        _engine("dpt_hybrid_midas", precision="int8")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            resolve_device("cuda:0")


@pytest.mark.parametrize("preset_name", ["dpt_hybrid_midas", "dpt_hybrid_ade20k"])
def test_onnx_export_matches_torch_at_two_resolutions(preset_name, tmp_path):
    torch.manual_seed(0)
    model = _informative(build_model(get_preset(preset_name).with_architecture(**SMALL, backbone="vit")))
    path = export_onnx(model, tmp_path / "model.onnx", sample_hw=(64, 96))
    differences = max_relative_difference(model, path, [(64, 96), (128, 64)])
    assert set(differences) == {(64, 96), (128, 64)}
    assert all(d <= 1e-4 for d in differences.values()), differences


def test_benchmark_smoke_run_reports_every_section(tmp_path):
    """CI-size run of dpt-ros-bench on the CPU: no timing asserts, only that every number is produced."""
    import json

    from dpt_ros.tools.bench import STAGES, main

    overrides = json.dumps({**SMALL, "backbone": "vit", "taps": list(SMALL["taps"]),
                            "reassemble_channels": list(SMALL["reassemble_channels"])})
    out = tmp_path / "bench.json"
    code = main(["--device", "cpu", "--size", "60x80", "--iterations", "2", "--warmup", "1", "--precision", "bf16",
                 "--cameras", "2", "--compare-hf", "--architecture-overrides", overrides, "--json", str(out)])
    assert code == 0
    result = json.loads(out.read_text())
    assert set(STAGES) | {"total"} <= set(result["stages"])
    assert result["frames_with_cloud"] == result["frames_timed"] == 2  # the relative preset's LiDAR fit held
    assert result["network_input"] == [288, 384] and result["random_weights"] is True
    assert 0 <= result["median_relative_difference_vs_fp32"] < 0.1
    assert result["cameras"]["count"] == 2 and result["compare_hf"]["transformers_forward_median_ms"] > 0
