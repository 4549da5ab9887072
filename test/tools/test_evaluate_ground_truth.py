"""dpt-ros-eval against dense ground truth: bag ground-truth topics, LiDAR density sweeps, model comparison,
seeded random weights and KITTI raw drives (the real frame in ../shared/realdata)."""

import json
import os
from pathlib import Path

import numpy as np
import pytest

import dpt_ros.app.depth_setup as depth_setup
from dpt_ros.bags.frames import select_topics
from dpt_ros.bags.rosbag_io import BagError, bag_topics, open_bag
from dpt_ros.eval.holdout import HoldoutConfig
from dpt_ros.sim.drive import render_sequence
from dpt_ros.tools.evaluate_bag import EvaluationOptions, ModelUnderTest, evaluate_bag, evaluate_models, main
from dpt_ros.tools.make_sample_bag import GROUND_TRUTH_TOPIC, write_sample_bag
from support.environment import REAL_DATA
from support.exact_scene import TruthPredictor, exact_config

GT_ONLY = EvaluationOptions(holdout=HoldoutConfig(fraction=0.0), progress=False, n_examples=1)
TOPICS = {"ground_truth": GROUND_TRUTH_TOPIC}
TINY_ARCHITECTURE = ('{"embed_dim": 32, "depth": 4, "num_heads": 2, "taps": [0, 1, 2, 3], '
                     '"reassemble_channels": [8, 8, 16, 16], "features": 16}')


@pytest.fixture(scope="module")
def truth_bags(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("gt_bags")
    config = exact_config()
    return {
        "32FC1": write_sample_bag(root / "gt32", "mcap", config, ground_truth="32FC1").path,
        "16UC1": write_sample_bag(root / "gt16", "sqlite3", config, ground_truth="16UC1").path,
        "no_ring": write_sample_bag(root / "no_ring", "mcap", config, ground_truth="32FC1", ring_field=False).path,
    }


@pytest.mark.parametrize("encoding", ["32FC1", "16UC1"])
def test_a_perfect_predictor_scores_zero_on_dense_ground_truth(truth_bags, encoding, tmp_path):
    report, summary = evaluate_bag(truth_bags[encoding], TruthPredictor(exact_config()), "relative_inverse_depth",
                                   tmp_path / "run", GT_ONLY, TOPICS)
    assert summary["ground_truth"]["frames"] == 4 and summary["topics"]["ground_truth"] == GROUND_TRUTH_TOPIC
    methods = summary["methods"]
    assert "published" not in methods  # a relative model has no metres of its own
    for method in ("node", "least_squares", "median_scaling"):
        truth = methods[method]["ground_truth"]
        # 16UC1 rounds the truth to the millimetre: |error| <= 0.5 mm, relative <= 0.5 mm / 6 m
        assert truth["metrics"]["abs_rel"] < (1e-6 if encoding == "32FC1" else 1e-4), method
        assert truth["metrics"]["delta1"] == 1.0 and truth["coverage"] == 1.0
        assert methods[method]["points_scored"] == 0  # nothing held out: ground truth only
    # every valid pixel of the rendered depth counts (16UC1 cannot hold the 70 m backdrop: 0 = invalid there)
    depth = next(iter(render_sequence(exact_config()))).camera.depth
    cap = 80.0 if encoding == "32FC1" else 65.535
    assert methods["node"]["ground_truth"]["pixels_scored"] == 4 * int((np.nan_to_num(depth) < cap).sum())
    for baseline in ("lidar_only", "ip_basic"):  # interpolation across board edges costs the LiDAR-only methods
        assert 0.0 < methods[baseline]["ground_truth"]["metrics"]["abs_rel"] < 0.5
    text = report.read_text()
    assert "## Error on dense ground truth" in text and "LiDAR only: IP-Basic morphological fill" in text
    assert "## Held-out error" not in text


def test_depth_topics_are_not_camera_candidates(truth_bags):
    reader = open_bag(truth_bags["32FC1"])
    topics = bag_topics(reader)
    reader.close()
    assert {t.name: t.encoding for t in topics if t.encoding} == {"/camera/image_raw": "rgb8",
                                                                   GROUND_TRUTH_TOPIC: "32FC1"}
    assert select_topics(topics).image == "/camera/image_raw"
    with pytest.raises(BagError, match="must be a depth image"):
        select_topics(topics, ground_truth="/camera/image_raw")


def _spy_fitting_rings(monkeypatch, elevations: np.ndarray) -> list[set[int]]:
    """The beams (nearest simulated beam elevation) of the points each aligner is given, per call."""
    seen = []

    class SpyAligner(depth_setup.LidarAligner):
        def align(self, prediction, stamp, lens, scan, *args):
            points = scan.points_xyz
            elevation = np.degrees(np.arcsin(points[:, 2] / np.linalg.norm(points, axis=1)))
            seen.append(set(np.abs(elevation[:, None] - elevations[None, :]).argmin(axis=1).tolist()))
            return super().align(prediction, stamp, lens, scan, *args)

    monkeypatch.setattr(depth_setup, "LidarAligner", SpyAligner)
    return seen


@pytest.mark.parametrize("bag", ["32FC1", "no_ring"])
def test_the_density_sweep_keeps_every_kth_ring_and_lidar_only_degrades(truth_bags, bag, tmp_path, monkeypatch):
    lidar = exact_config().lidar
    elevations = np.linspace(lidar.elevation_min_deg, lidar.elevation_max_deg, lidar.n_beams)
    seen = _spy_fitting_rings(monkeypatch, elevations)
    options = EvaluationOptions(holdout=HoldoutConfig(fraction=0.0), progress=False, n_examples=0,
                                beams=(32, 16, 8, 4), lidar_beams=32 if bag == "no_ring" else None)
    report, summary = evaluate_bag(truth_bags[bag], TruthPredictor(exact_config()), "relative_inverse_depth",
                                   tmp_path / "run", options, TOPICS)
    # the exact scene returns only ahead (no full sweeps, so no scan order): rings from the elevations
    assert summary["lidar"] == {"beams": [32], "rings_from": ["elevation clustering" if bag == "no_ring"
                                                              else "the cloud's ring field"]}
    # calls go frame by frame, beam counts in order; the rings in view are the kept ones, nothing else
    in_view = set().union(*seen[::4])
    for call, rings in enumerate(seen):
        k = 32 // (32, 16, 8, 4)[call % 4]
        assert rings == {r for r in in_view if r % k == 0}, (call, k)
    rows = summary["sweep"]
    assert [row["beams"] for row in rows] == [32, 16, 8, 4]
    for row in rows:  # the alignment of an exact prediction stays exact at any density
        assert row["methods"]["node"]["abs_rel"] < 1e-6 and row["alignment_success_rate"] == 1.0
    for baseline in ("lidar_only", "ip_basic"):
        errors = [row["methods"][baseline]["abs_rel"] for row in rows]
        assert errors == sorted(errors) and errors[-1] > 1.5 * errors[0], (baseline, errors)
    assert summary["headline"].startswith("At 4 beams, DPT + alignment (the node): AbsRel 0.000 vs LiDAR-only: ")
    assert "## Accuracy vs LiDAR beams" in report.read_text()
    assert (report.parent / "beams_sweep.png").stat().st_size > 0


def test_beam_counts_must_divide_the_lidars(truth_bags, tmp_path):
    options = EvaluationOptions(holdout=HoldoutConfig(fraction=0.0), progress=False, beams=(64,))
    with pytest.raises(Exception, match="cannot thin a 32-beam LiDAR to 64 beams"):
        evaluate_bag(truth_bags["32FC1"], TruthPredictor(exact_config()), "relative_inverse_depth", tmp_path / "r",
                     options, TOPICS)
    options = EvaluationOptions(holdout=HoldoutConfig(fraction=0.0), progress=False, beams=(16,))
    with pytest.raises(Exception, match="--lidar-beams"):
        evaluate_bag(truth_bags["no_ring"], TruthPredictor(exact_config()), "relative_inverse_depth", tmp_path / "r",
                     options, TOPICS)


def test_models_are_compared_on_the_same_frames_and_points(truth_bags, tmp_path):
    config = exact_config()
    models = [ModelUnderTest("exact", TruthPredictor(config), "relative_inverse_depth"),
              ModelUnderTest("wrong_left", TruthPredictor(config, corrupt_cols=40), "relative_inverse_depth")]
    report, summary = evaluate_models(truth_bags["32FC1"], models, tmp_path / "run", GT_ONLY, TOPICS)
    exact, wrong = summary["models"]
    assert (exact["model"], wrong["model"]) == ("exact", "wrong_left")
    assert exact["methods"]["node"]["abs_rel"] < 1e-6 < 0.01 < wrong["methods"]["node"]["abs_rel"]
    assert exact["alignment_success_rate"] == wrong["alignment_success_rate"] == 1.0
    assert exact["latency_ms"] > 0 and wrong["latency_ms"] > 0
    # the LiDAR-only methods do not depend on the model: identical on the same pixels
    assert exact["methods"]["lidar_only"] == wrong["methods"]["lidar_only"]
    assert "## Model comparison" in report.read_text() and (report.parent / "models.png").stat().st_size > 0


def _cli(bag: Path, run_dir: Path, seed: int, capsys) -> dict:
    code = main([str(bag), "--run-dir", str(run_dir), "--allow-random-weights", "--model", "dpt_large_midas",
                 "--no-progress", "--architecture-overrides", TINY_ARCHITECTURE, "--input-size", "160", "128",
                 "--gt-topic", GROUND_TRUTH_TOPIC, "--seed", str(seed), "--examples", "0"])
    assert code == 0, capsys.readouterr().err
    metrics = json.loads((run_dir / "metrics.json").read_text())
    del metrics["timing_ms"]  # measured milliseconds: the only thing allowed to differ
    for row in metrics["models"]:
        del row["latency_ms"]
    return metrics


def _without_timing(report: Path) -> str:
    text = report.read_text()
    return text[: text.index("## Time per frame")] + text[text.index("## Examples"):]


def test_same_seed_same_report(truth_bags, tmp_path, capsys):
    first = _cli(truth_bags["32FC1"], tmp_path / "a", 5, capsys)
    second = _cli(truth_bags["32FC1"], tmp_path / "b", 5, capsys)
    other = _cli(truth_bags["32FC1"], tmp_path / "c", 6, capsys)
    assert first == second
    assert _without_timing(tmp_path / "a" / "report.md") == _without_timing(tmp_path / "b" / "report.md")
    assert "random weights" in (tmp_path / "a" / "report.md").read_text()
    assert first["model"]["seed"] == 5
    median = [m["methods"]["median_scaling"]["ground_truth"]["metrics"] for m in (first, other)]
    assert median[0] != median[1]  # another seed is another network


KITTI_FRAME = REAL_DATA / "kitti_raw_2011_09_26_drive_0001_frame5"


def kitti_drive(root: Path) -> Path:
    """The real KITTI frame laid out as a KITTI raw drive (frame 5) with its annotated depth merged in."""
    if not KITTI_FRAME.is_dir():
        pytest.skip(f"real KITTI frame not found at {KITTI_FRAME} (../shared/realdata; DPT_ROS_REAL_DATA)")
    date = root / "2011_09_26"
    drive = date / "2011_09_26_drive_0001_sync"
    links = {date / "calib_cam_to_cam.txt": KITTI_FRAME / "raw" / "calib_cam_to_cam.txt",
             date / "calib_velo_to_cam.txt": KITTI_FRAME / "raw" / "calib_velo_to_cam.txt",
             drive / "image_02" / "data" / "0000000005.png": KITTI_FRAME / "raw" / "sync_rect" / "cam_02.png",
             drive / "velodyne_points" / "data" / "0000000005.bin": KITTI_FRAME / "raw" / "lidar_data.bin",
             drive / "proj_depth" / "groundtruth" / "image_02" / "0000000005.png":
                 KITTI_FRAME / "depth_completion" / "groundtruth_image_02.png"}
    for link, target in links.items():
        link.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(target, link)
    return drive


class ConstantPredictor:
    """A relative prediction with no information (the LiDAR-only methods do not look at it)."""

    def infer(self, rgb: np.ndarray) -> np.ndarray:
        return np.linspace(0.5, 1.0, rgb.shape[0], dtype=np.float32)[:, None].repeat(rgb.shape[1], axis=1)


def test_kitti_raw_drive_lidar_only_against_kittis_ground_truth(tmp_path):
    drive = kitti_drive(tmp_path)
    options = EvaluationOptions(holdout=HoldoutConfig(fraction=0.0), progress=False, n_examples=1,
                                beams=(64, 32, 16, 8))
    report, summary = evaluate_bag(drive, ConstantPredictor(), "relative_inverse_depth", tmp_path / "run", options)
    assert summary["ground_truth"]["frames"] == 1
    assert summary["lidar"] == {"beams": [64], "rings_from": ["scan order"]}
    truth = summary["methods"]["lidar_only"]["ground_truth"]
    # KITTI's ground truth covers ~19.5 % of the 1242×375 pixels; most are within 80 m
    assert 60_000 < truth["pixels_scored"] < 0.2 * 1242 * 375 and truth["coverage"] == 1.0
    # the annotated depth is built from 11 accumulated scans of this LiDAR: at 64 beams the nearest LiDAR pixel
    # is within a few per cent (README: median |Δz| ≈ 7 cm at coinciding pixels)
    errors = [row["methods"]["lidar_only"]["abs_rel"] for row in summary["sweep"]]
    assert errors[0] < 0.05 and errors == sorted(errors), errors
    ip_basic = [row["methods"]["ip_basic"]["abs_rel"] for row in summary["sweep"]]
    assert ip_basic[0] < errors[0]  # the classical completion beats nearest neighbour at full density
    assert (report.parent / "beams_sweep.png").stat().st_size > 0
