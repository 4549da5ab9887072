"""Every CLI with Depth Anything V2 presets, on a reduced random DA-V2 (the real network, tiny width and
depth): dpt-ros-depth-image, dpt-ros-export (dynamic sizes in multiples of 14), dpt-ros-bench,
dpt-ros-weights and dpt-ros-eval."""

from __future__ import annotations

import dataclasses
import json

import cv2
import numpy as np
import pytest
import torch

from dpt_ros.geometry.camera import PinholeIntrinsics
from dpt_ros.model.dpt import build_network
from dpt_ros.model.presets import PRESETS
from dpt_ros.sim.drive import SequenceConfig
from dpt_ros.tools import bench, depth_image, evaluate_bag, export, weights
from dpt_ros.tools.make_sample_bag import write_sample_bag

TINY = {"embed_dim": 32, "depth": 4, "num_heads": 2, "taps": [0, 1, 2, 3],
        "reassemble_channels": [8, 16, 32, 32], "features": 16, "pretrain_grid": 4}
TINY_JSON = json.dumps(TINY)


@pytest.mark.parametrize("preset, metric", [("depth_anything_v2_vits", False),
                                            ("depth_anything_v2_metric_hypersim_vitl", True)])
def test_depth_image_writes_a_png_per_input(tmp_path, preset, metric):
    image = tmp_path / "scene.png"
    cv2.imwrite(str(image), np.random.default_rng(0).integers(0, 256, (40, 58, 3), dtype=np.uint8))
    code = depth_image.main([str(image), "--out", str(tmp_path / "out"), "--device", "cpu", "--allow-random-weights",
                             "--preset", preset, "--weights", str(tmp_path / "none.pth"),
                             "--architecture-overrides", TINY_JSON])
    assert code == 0
    depth = cv2.imread(str(tmp_path / "out" / "scene_depth.png"), cv2.IMREAD_UNCHANGED)
    assert depth.dtype == np.uint16 and depth.shape == (40, 58)
    if metric:  # metres x 256 below the 20 m Hypersim head's maximum
        assert 0 < depth.min() and depth.max() < 20 * 256


def test_export_cli_checks_dynamic_sizes_in_multiples_of_14(tmp_path, capsys):
    out = tmp_path / "dav2.onnx"
    code = export.main(["--preset", "depth_anything_v2_metric_vkitti_vits", "--allow-random-weights", "--out", str(out),
                        "--architecture-overrides", TINY_JSON, "--check-sizes", "56x56,70x98,112x84"])
    printed = capsys.readouterr().out
    assert code == 0 and out.is_file()
    for size in ("56x56", "70x98", "112x84"):  # the pretraining grid (no position-embedding resize) and two others
        assert f"{size}: max relative difference" in printed
    assert export.default_sizes(14) == [(168, 168), (168, 224)]


def test_bench_smoke_run(tmp_path):
    out = tmp_path / "bench.json"
    code = bench.main(["--preset", "depth_anything_v2_vits", "--device", "cpu", "--size", "60x80", "--iterations", "2",
                       "--warmup", "1", "--architecture-overrides", TINY_JSON, "--json", str(out)])
    assert code == 0
    result = json.loads(out.read_text())
    assert result["network_input"] == [518, 686]  # lower_bound to 518 in multiples of 14
    assert result["random_weights"] is True and result["stages"]["total"]["median_ms"] > 0


def test_bench_compare_hf_is_a_clear_error_for_dav2(capsys):
    assert bench.main(["--preset", "depth_anything_v2_vits", "--compare-hf"]) == 2
    assert "DPT presets only" in capsys.readouterr().err


def test_weights_list_and_verify_by_loading(tmp_path, monkeypatch, capsys):
    assert weights.main(["list", "--models-dir", str(tmp_path)]) == 0
    listed = capsys.readouterr().out
    for name in ("depth_anything_v2_vits", "depth_anything_v2_metric_vkitti_vitl"):
        assert PRESETS[name].url in listed
    assert "CC-BY-NC-4.0" in listed and "Apache-2.0" in listed
    # No published hash: verify loads the file into its (here reduced) network.
    preset = PRESETS["depth_anything_v2_vits"].with_architecture(**{k: tuple(v) if isinstance(v, list) else v
                                                                    for k, v in TINY.items()})
    monkeypatch.setitem(PRESETS, preset.name, preset)
    torch.save(build_network(preset).state_dict(), tmp_path / preset.weights_file)
    assert weights.main(["verify", preset.name, "--models-dir", str(tmp_path)]) == 0
    assert "OK" in capsys.readouterr().out
    (tmp_path / preset.weights_file).write_bytes(b"not a checkpoint")
    assert weights.main(["verify", preset.name, "--models-dir", str(tmp_path)]) == 1
    assert "BAD FILE" in capsys.readouterr().out


@pytest.mark.parametrize("model", ["depth_anything_v2_vitb", "depth_anything_v2_metric_vkitti_vits"])
def test_eval_cli_scores_a_bag(tmp_path, capsys, model):
    config = dataclasses.replace(SequenceConfig(), n_frames=2, camera=PinholeIntrinsics(width=160, height=120, fx=125.0,
                                                                                  fy=125.0, cx=79.5, cy=59.5))
    bag = write_sample_bag(tmp_path / "drive", "mcap", config).path
    code = evaluate_bag.main([str(bag), "--run-dir", str(tmp_path / "run"), "--model", model, "--allow-random-weights",
                              "--architecture-overrides", TINY_JSON, "--input-size", "84", "56", "--no-progress"])
    assert code == 0, capsys.readouterr().err
    assert (tmp_path / "run" / "report.md").is_file() and (tmp_path / "run" / "per_frame.csv").is_file()
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert model in json.dumps(metrics)
