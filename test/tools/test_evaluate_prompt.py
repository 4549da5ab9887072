"""dpt-ros-eval with a prompt model: the fitting LiDAR points become its prompt, on the same frames, points and
ground truth as the aligned model and the LiDAR-only baselines, through the density sweep."""

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from dpt_ros.eval.holdout import HoldoutConfig
from dpt_ros.prompt.densify import valid_depth_mask
from dpt_ros.prompt.sources import prompt_from_lidar
from dpt_ros.sim.drive import render_sequence
from dpt_ros.tools import evaluate_bag as evaluate_module
from dpt_ros.tools.evaluate_bag import EvaluationOptions, ModelUnderTest, evaluate_models, main
from dpt_ros.tools.make_sample_bag import GROUND_TRUTH_TOPIC, write_sample_bag
from support.exact_scene import exact_config, truth_predictor

TOPICS = {"ground_truth": GROUND_TRUTH_TOPIC}
BEAMS = (32, 8, 2)


class PromptTruthPredictor:
    """A prompt model's stand-in: the rendered truth (metres) when it gets a prompt, a unitless 0.5 without one;
    it records every prompt it is handed."""

    def __init__(self, config) -> None:
        self.depth = {hashlib.sha1(f.camera.rgb.tobytes()).hexdigest(): f.camera.depth for f in render_sequence(config)}
        self.prompts: list[np.ndarray | None] = []

    def infer(self, rgb: np.ndarray) -> np.ndarray:
        raise AssertionError("a prompt model is always called with its prompt (or None)")

    def infer_batch(self, images, prompts=None):
        self.prompts.extend(prompts)
        return [self.depth[hashlib.sha1(rgb.tobytes()).hexdigest()].astype(np.float32) if prompt is not None
                else np.full(rgb.shape[:2], 0.5, np.float32) for rgb, prompt in zip(images, prompts)]


@pytest.fixture(scope="module")
def truth_bag(tmp_path_factory) -> Path:
    return write_sample_bag(tmp_path_factory.mktemp("prompt_bag") / "gt32", "mcap", exact_config(),
                            ground_truth="32FC1").path


def test_prompt_mode_beside_alignment_and_lidar_only_through_the_density_sweep(truth_bag, tmp_path, monkeypatch):
    built = []  # every DepthPrompt the evaluator builds from the fitting points

    def spy(*args, **kwargs):
        built.append(prompt_from_lidar(*args, **kwargs))
        return built[-1]

    monkeypatch.setattr(evaluate_module, "prompt_from_lidar", spy)
    config = exact_config()
    prompted = PromptTruthPredictor(config)
    models = [ModelUnderTest("prompt", prompted, "metric_depth", needs_prompt=True),
              ModelUnderTest("aligned", truth_predictor(config), "relative_inverse_depth")]
    options = EvaluationOptions(holdout=HoldoutConfig(fraction=0.2, seed=1), progress=False, n_examples=0,
                                beams=BEAMS)
    report, summary = evaluate_models(truth_bag, models, tmp_path / "run", options, TOPICS)

    # one prompt per frame and beam count, thinner with fewer beams; the network gets exactly the usable ones,
    # dense (densified on the prompt grid, here the 160 x 120 image itself), and None for the refused ones
    assert len(prompted.prompts) == len(built) == 4 * len(BEAMS)
    cells = [[prompt.valid_cells for prompt in built[i::len(BEAMS)]] for i in range(len(BEAMS))]
    assert min(cells[0]) > max(cells[1]) > 0 and min(cells[1]) > max(cells[2])
    for prompt, given in zip(built, prompted.prompts):
        assert (given is None) == (not prompt.usable)
        if given is not None:
            assert given is prompt.depth and given.shape == (120, 160) and valid_depth_mask(given).all()

    rows = {row["beams"]: row for row in summary["sweep"]}  # the sweep of the first model: the prompt model
    assert list(rows) == list(BEAMS)
    # 32 beams: the prompt is used, metres everywhere (the stand-in's truth): exact on held-out and ground truth
    assert rows[32]["alignment_success_rate"] == 1.0 and rows[32]["methods"]["node"]["abs_rel"] < 1e-6
    # 2 beams on this scene: too little prompt, so no metres at all (never the unitless output as metres)
    assert rows[2]["alignment_success_rate"] == 0.0 and rows[2]["methods"]["node"]["abs_rel"] is None
    for baseline in ("lidar_only", "ip_basic"):  # the same LiDAR-only baselines on the same pixels
        errors = [rows[n]["methods"][baseline]["abs_rel"] for n in BEAMS]
        assert errors == sorted(errors), (baseline, errors)
    comparison = {row["model"]: row for row in summary["models"]}
    assert set(comparison) == {"prompt", "aligned"}
    assert comparison["aligned"]["methods"]["node"]["abs_rel"] < 1e-6
    assert "lidar_only" not in comparison["prompt"]["methods"]  # LiDAR-only is shown once, below the table
    def abs_rel(beams: int, method: str) -> float | None:
        return rows[beams]["methods"].get(method, {}).get("abs_rel")

    # the prompt alone (resized to the image) for the prompt model only: blurred across the boards' edges
    assert 0.0 < abs_rel(32, "prompt_only") < 0.5 and abs_rel(2, "prompt_only") is None
    assert "prompt_only" not in comparison["aligned"]["methods"]
    # refused prompts: the unitless output is never taken for metres ("as published" gives nothing then)
    assert abs_rel(32, "published") < 1e-6 and abs_rel(2, "published") is None
    assert summary["alignment_fits"]["succeeded"] == 4  # the primary variant: 32 beams
    text = report.read_text()
    assert "prompt" in text and "aligned" in text


def test_cli_evaluates_a_reduced_random_prompt_model_beside_an_aligned_one(truth_bag, tmp_path, capsys):
    tiny = ('{"embed_dim": 32, "depth": 4, "num_heads": 2, "pretrain_grid": 4, "taps": [0, 1, 2, 3], '
            '"reassemble_channels": [8, 16, 32, 32], "features": 16, "head_hidden": 8}')
    code = main([str(truth_bag), "--run-dir", str(tmp_path / "run"), "--no-progress", "--allow-random-weights",
                 "--model", "prompt_depth_anything_vits", "--architecture-overrides", tiny, "--input-size", "56", "56",
                 "--holdout-fraction", "0", "--gt-topic", GROUND_TRUTH_TOPIC, "--beams", "32,8", "--max-frames", "2"])
    assert code == 0, capsys.readouterr().err
    summary = json.loads((tmp_path / "run" / "metrics.json").read_text())
    rows = {row["beams"]: row for row in summary["sweep"]}
    # random weights: the prompt model's metres lie within each frame's prompt range, the 6..70 m scene, so
    # every error is bounded; what is checked here is that the real engine ran with the prompts
    assert rows[32]["alignment_success_rate"] == 1.0 and rows[32]["methods"]["node"]["abs_rel"] is not None
    assert summary["methods"]["node"]["ground_truth"]["coverage"] == 1.0
    assert summary["model"]["preset"] == "prompt_depth_anything_vits" and summary["model"]["random_weights"]
