"""dpt-ros-eval against dense ground truth: bag ground-truth topics, LiDAR density sweeps, model comparison,
seeded random weights and KITTI raw drives (the real frame in ../shared/realdata)."""

import dataclasses
import json
import os
from pathlib import Path

import numpy as np
import pytest

import dpt_ros.app.depth_setup as depth_setup
from dpt_ros.bags.frames import select_topics
from dpt_ros.bags.rosbag_io import CAMERA_INFO, IMAGE, POINT_CLOUD, BagError, TopicInfo, bag_topics, open_bag
from dpt_ros.eval.holdout import HoldoutConfig
from dpt_ros.sim.drive import render_sequence
from dpt_ros.sim.scene import Plane, Scene, Surface
from dpt_ros.tools.evaluate_bag import (
    EvaluationError,
    EvaluationOptions,
    ModelUnderTest,
    evaluate_bag,
    evaluate_models,
    main,
)
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


def test_lidar_only_baselines_are_exact_on_a_fronto_parallel_wall(tmp_path):
    """One wall facing the camera 20 m away: every pixel's depth is 20 m, so any LiDAR densification of it is
    exact, at every beam count."""
    config = dataclasses.replace(exact_config(), n_frames=2,
                                 scene=Scene((Plane((-1.0, 0.0, 0.0), -20.0, Surface((0.6, 0.6, 0.5), 2.0)),)))
    bag = write_sample_bag(tmp_path / "wall", "mcap", config, ground_truth="32FC1").path
    options = EvaluationOptions(holdout=HoldoutConfig(fraction=0.0), progress=False, n_examples=0,
                                beams=(32, 8, 2))
    _, summary = evaluate_bag(bag, TruthPredictor(config), "relative_inverse_depth", tmp_path / "run", options,
                              TOPICS)
    for row in summary["sweep"]:
        for baseline in ("lidar_only", "ip_basic"):
            assert row["methods"][baseline]["abs_rel"] < 1e-6 and row["methods"][baseline]["delta1"] == 1.0
    truth = summary["methods"]["ip_basic"]["ground_truth"]
    assert truth["coverage"] == 1.0 and truth["pixels_scored"] == 2 * 160 * 120


def test_depth_topics_are_not_camera_candidates(truth_bags):
    reader = open_bag(truth_bags["32FC1"])
    topics = bag_topics(reader)
    reader.close()
    assert {t.name: t.encoding for t in topics if t.encoding} == {"/camera/image_raw": "rgb8",
                                                                   GROUND_TRUTH_TOPIC: "32FC1"}
    assert select_topics(topics).image == "/camera/image_raw"
    with pytest.raises(BagError, match="must be a depth image"):
        select_topics(topics, ground_truth="/camera/image_raw")
    # KITTI depth-completion style: a camera, its ground truth and the projected LiDAR as 32FC1 images
    kitti_like = [TopicInfo("/image", IMAGE, 5, "bgr8"), TopicInfo("/depth_gt", IMAGE, 5, "32FC1"),
                  TopicInfo("/velodyne_raw", IMAGE, 5, "32FC1"), TopicInfo("/camera_info", CAMERA_INFO, 5),
                  TopicInfo("/points", POINT_CLOUD, 5)]
    assert select_topics(kitti_like).image == "/image"
    assert select_topics(kitti_like, ground_truth="/depth_gt").ground_truth == "/depth_gt"


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
    with pytest.raises(EvaluationError, match="cannot thin a 32-beam LiDAR to 64 beams"):
        evaluate_bag(truth_bags["32FC1"], TruthPredictor(exact_config()), "relative_inverse_depth", tmp_path / "r",
                     options, TOPICS)
    options = EvaluationOptions(holdout=HoldoutConfig(fraction=0.0), progress=False, beams=(16,))
    with pytest.raises(EvaluationError, match="--lidar-beams"):
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
    # the LiDAR-only methods do not depend on the model: shown once, below the table
    assert set(exact["methods"]) == {"node", "least_squares", "median_scaling"}
    text = report.read_text()
    assert "## Model comparison" in text and "Without a network, on the same pixels: LiDAR only: nearest" in text
    assert (report.parent / "models.png").stat().st_size > 0


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
    """The real KITTI frame laid out as a KITTI raw drive (frame 5, with its annotated depth merged in; frame 6
    a copy without)."""
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
    # frame 6: the same image and scan again, without annotated depth (like KITTI's first frames)
    links[drive / "image_02" / "data" / "0000000006.png"] = links[drive / "image_02" / "data" / "0000000005.png"]
    links[drive / "velodyne_points" / "data" / "0000000006.bin"] = KITTI_FRAME / "raw" / "lidar_data.bin"
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
    options = EvaluationOptions(holdout=HoldoutConfig(fraction=0.0), progress=False, n_examples=2,
                                beams=(64, 32, 16, 8))
    report, summary = evaluate_bag(drive, ConstantPredictor(), "relative_inverse_depth", tmp_path / "run", options)
    assert summary["frames"]["scored"] == 2 and summary["ground_truth"]["frames"] == 1
    assert (report.parent / "example_0000.png").exists() and (report.parent / "example_0001.png").exists()
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


def test_whole_beams_are_held_out_of_a_cloud_without_ring_field(truth_bags, tmp_path, monkeypatch):
    """--holdout-every-kth-beam works on recovered rings too: the aligner never sees beams 0, 4, 8, ..."""
    lidar = exact_config().lidar
    seen = _spy_fitting_rings(monkeypatch, np.linspace(lidar.elevation_min_deg, lidar.elevation_max_deg,
                                                       lidar.n_beams))
    options = EvaluationOptions(holdout=HoldoutConfig(fraction=0.0, every_kth_beam=4), progress=False, n_examples=0,
                                lidar_beams=32)
    _, summary = evaluate_bag(truth_bags["no_ring"], TruthPredictor(exact_config()), "relative_inverse_depth",
                              tmp_path / "run", options, TOPICS)
    assert all(rings and not any(r % 4 == 0 for r in rings) for rings in seen)
    assert summary["methods"]["node"]["points_scored"] > 100


def test_cli_user_errors_of_the_new_options_are_one_line_and_exit_2(truth_bags, tmp_path, capsys):
    common = [str(truth_bags["32FC1"]), "--run-dir", str(tmp_path / "run"), "--allow-random-weights", "--model",
              "dpt_large_midas", "--no-progress", "--architecture-overrides", TINY_ARCHITECTURE, "--input-size",
              "160", "128"]
    for extra, message in ((["--beams", "64"], "cannot thin a 32-beam LiDAR to 64 beams"),
                           (["--gt-topic", "/camera/image_raw"], "must be a depth image"),
                           (["--gt-dir", str(tmp_path)], "--gt-dir is for KITTI drives")):
        assert main(common + extra) == 2
        err = capsys.readouterr().err
        assert message in err and err.startswith("dpt-ros-eval: ") and "Traceback" not in err, err


def test_ground_truth_is_paired_by_stamp_even_when_recorded_late(tmp_path):
    """Ground truth recorded 0.35 s after its image (a slow depth source) still pairs by header stamp; an image
    whose ground truth never came gets none and is not held back for ever."""
    from dpt_ros.bags.frames import paired_frames
    from dpt_ros.bags.rosbag_io import BagWriter, make_camera_info, make_image, make_point_cloud

    second = 1_000_000_000
    stamps = [second + i * second // 10 for i in range(6)]
    with BagWriter(tmp_path / "late", "mcap") as bag:
        for topic, msgtype in (("/cam/image", IMAGE), ("/cam/info", CAMERA_INFO), ("/points", POINT_CLOUD),
                               ("/gt", IMAGE)):
            bag.add_topic(topic, msgtype)
        K = np.array([[50.0, 0, 8], [0, 50, 6], [0, 0, 1]])
        points = {"x": np.ones(3, np.float32), "y": np.zeros(3, np.float32), "z": np.zeros(3, np.float32)}
        events = []
        for i, stamp in enumerate(stamps):
            events += [(stamp, "/cam/info", make_camera_info(K, 16, 12, stamp, "cam")),
                       (stamp, "/points", make_point_cloud(points, stamp, "lidar")),
                       (stamp + 1, "/cam/image", make_image(np.zeros((12, 16, 3), np.uint8), "rgb8", stamp, "cam"))]
            if i != 2:  # frame 2's ground truth is lost
                depth = np.full((12, 16), 1.0 + i, np.float32)
                events.append((stamp + 350_000_000, "/gt", make_image(depth, "32FC1", stamp, "cam")))
        for received, topic, message in sorted(events, key=lambda event: event[0]):
            bag.write(topic, received, message)
    reader = open_bag(tmp_path / "late")
    selection = select_topics(bag_topics(reader), ground_truth="/gt")
    assert selection.image == "/cam/image"
    pairs = list(paired_frames(reader, selection))
    reader.close()
    assert [p.index for p in pairs] == list(range(6))
    for pair in pairs:
        if pair.index == 2:
            assert pair.ground_truth is None
        else:
            values = np.frombuffer(bytes(pair.ground_truth.data), "<f4")
            assert np.all(values == 1.0 + pair.index)
