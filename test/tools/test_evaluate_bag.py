"""dpt-ros-eval on synthetic bags with exact truth: known predictors must score the known numbers.

The exact scene: a static camera with a co-located LiDAR (no parallax) facing fronto-parallel boards whose
edges fall on pixel boundaries, so every LiDAR point's pixel shows exactly that point's depth. Any error the
evaluator reports there comes from the predictor, not from discretisation.
"""

import csv
import dataclasses
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import dpt_ros.app.depth_setup as depth_setup
from dpt_ros.bags.rosbag_io import bag_topics, iterate_messages, open_bag
from dpt_ros.eval.holdout import HoldoutConfig, holdout_mask
from dpt_ros.geometry.cloud_fields import xyz_from_cloud_buffer
from dpt_ros.geometry.lidar_projection import project_lidar
from dpt_ros.sim.drive import SensorRig, SequenceConfig, render_sequence
from dpt_ros.sim.scene import (
    R_BASE_OPTICAL,
    Box,
    LidarConfig,
    PinholeCamera,
    Plane,
    Scene,
    Surface,
    make_transform,
    rotation_rpy,
)
from dpt_ros.tools import evaluate_bag as evaluate_module
from dpt_ros.tools.evaluate_bag import EvaluationOptions, evaluate_bag, main
from dpt_ros.tools.make_sample_bag import write_sample_bag
from support.environment import subprocess_env
from support.fake_engines import FakeEngine, content_key, lookup_by_content

CAMERA = PinholeCamera(width=160, height=120, fx=125.0, fy=125.0, cx=79.5, cy=59.5)
CAMERA_HEIGHT = 1.5
# (depth m, first col, last col, first row, last row): edges at half-pixel coordinates
BOARDS = ((6.0, 10, 60, 50, 110), (15.0, 70, 110, 30, 90), (30.0, 115, 150, 20, 70), (45.0, 20, 50, 10, 40))
N_FRAMES = 4
OPTIONS = EvaluationOptions(holdout=HoldoutConfig(fraction=0.25, seed=3), progress=False)


def _board(depth: float, col0: int, col1: int, row0: int, row1: int) -> Box:
    """A thin box whose front face, seen from the camera at the origin, covers exactly those pixels."""
    u0, u1 = col0 - 0.5, col1 + 0.5
    v0, v1 = row0 - 0.5, row1 + 0.5
    # optical x = −world y, optical y = −(world z − camera height), optical z = world x
    y_left, y_right = -(u0 - CAMERA.cx) / CAMERA.fx * depth, -(u1 - CAMERA.cx) / CAMERA.fx * depth
    z_top = CAMERA_HEIGHT - (v0 - CAMERA.cy) / CAMERA.fy * depth
    z_bottom = CAMERA_HEIGHT - (v1 - CAMERA.cy) / CAMERA.fy * depth
    center = (depth + 1e-5, (y_left + y_right) / 2, (z_top + z_bottom) / 2)
    half = (1e-5, (y_left - y_right) / 2, (z_top - z_bottom) / 2)  # paper-thin: no side faces in view
    return Box(center, half, Surface((0.8, 0.3, 0.2), checker_size=0.3))


def exact_config(seed: int = 0) -> SequenceConfig:
    scene = Scene((Plane((-1.0, 0.0, 0.0), -70.0, Surface((0.6, 0.6, 0.5), 2.0)),) + tuple(_board(*b) for b in BOARDS))
    optical = make_transform(R_BASE_OPTICAL, (0.0, 0.0, CAMERA_HEIGHT))
    lidar = make_transform(rotation_rpy(0.01, 0.03, 0.2), (0.0, 0.0, CAMERA_HEIGHT))  # same centre, rotated
    return SequenceConfig(
        n_frames=N_FRAMES, speed=0.0, stop_frames=None, camera=CAMERA, seed=seed, scene=scene,
        lidar=LidarConfig(range_noise_std=0.0, dropout_probability=0.1, edge_leak_probability=0.0),
        rig=SensorRig(T_base_optical=optical, T_base_lidar=lidar),
    )


def truth_depth(config: SequenceConfig) -> dict[str, np.ndarray]:
    """The rendered truth of every frame, by image content."""
    return {content_key(f.camera.rgb): f.camera.depth for f in render_sequence(config)}


def truth_predictor(config: SequenceConfig, a: float = 1.0, b: float = 0.0, corrupt_cols: int = 0) -> FakeEngine:
    """Relative inverse depth a/z + b from the rendered truth; the first corrupt_cols columns 50 % too far."""

    def relative(depth: np.ndarray) -> np.ndarray:
        depth = depth.copy()
        depth[:, :corrupt_cols] *= 1.5  # a wrong region
        return (a / depth + b).astype(np.float32)

    return FakeEngine(predict=lookup_by_content(truth_depth(config), relative))


@pytest.fixture(scope="module")
def exact_bags(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("bags")
    config = exact_config()
    return {fmt: write_sample_bag(root / ("exact.bag" if fmt == "ros1" else f"exact_{fmt}"), fmt, config).path
            for fmt in ("mcap", "sqlite3", "ros1")}


def _run(bag: Path, predictor, tmp_path: Path, options: EvaluationOptions = OPTIONS):
    report, summary = evaluate_bag(bag, predictor, "relative_inverse_depth", tmp_path / "run", options)
    return report, summary


def _records(monkeypatch) -> list:
    """Capture the evaluator's per-frame records."""
    captured = []
    original = evaluate_module.summarise

    def spy(records, context):
        captured.extend(records)
        return original(records, context)

    monkeypatch.setattr(evaluate_module, "summarise", spy)
    return captured


@pytest.mark.parametrize("fmt", ["mcap", "sqlite3", "ros1"])
def test_perfect_predictor_scores_zero_in_every_bag_format(exact_bags, fmt, tmp_path):
    report, summary = _run(exact_bags[fmt], truth_predictor(exact_config()), tmp_path)
    assert summary["frames"] == {"total": N_FRAMES, "scored": N_FRAMES, "skipped": 0, "skip_reasons": {}}
    for method in ("node", "least_squares", "median_scaling"):
        metrics = summary["methods"][method]["metrics"]
        assert metrics["abs_rel"] < 1e-5 and metrics["rmse"] < 1e-3 and metrics["delta1"] == 1.0, method
        assert summary["methods"][method]["coverage"] == 1.0
    assert summary["methods"]["node"]["points_scored"] > 500
    assert 0 < summary["methods"]["lidar_only"]["metrics"]["abs_rel"] < 0.5  # interpolation across board edges
    text = report.read_text()
    assert "| DPT + robust alignment + temporal filter (the node) | 0.000 |" in text
    for name in ("metrics.json", "per_frame.csv", "error_vs_range.png", "per_frame_abs_rel.png", "scale_shift.png"):
        assert (report.parent / name).stat().st_size > 0


def test_affine_distortion_is_undone_by_alignment_and_costs_median_scaling_the_known_error(
        exact_bags, tmp_path, monkeypatch):
    a, b = 2.0, 0.05  # prediction = a / z + b
    config = exact_config()
    records = _records(monkeypatch)
    _, summary = _run(exact_bags["mcap"], truth_predictor(config, a, b), tmp_path)
    assert summary["methods"]["node"]["metrics"]["abs_rel"] < 1e-5
    assert summary["methods"]["least_squares"]["metrics"]["abs_rel"] < 1e-5
    frames = list(render_sequence(config))
    for record, frame in zip(records, frames):
        assert record.fit_scale == pytest.approx(1 / a, rel=1e-5)
        assert record.fit_shift == pytest.approx(-b / a, abs=1e-6)
        # median scaling multiplies z / (a + b z) by a + b·m (m: median fitting depth): error |b(m − z)| / (a + b z)
        scan = frame.lidar
        fitting = scan.points[~holdout_mask(len(scan.points), OPTIONS.holdout, record.index)]
        sparse = project_lidar(fitting, config.rig.T_optical_lidar, CAMERA.K, (CAMERA.width, CAMERA.height),
                               min_range=OPTIONS.node_config.lidar_min_range)
        m = float(np.nanmedian(sparse))
        z = record.held_out.depth
        expected = np.mean(np.abs(b * (m - z)) / (a + b * z))
        assert record.scores["median_scaling"].metrics["abs_rel"] == pytest.approx(expected, rel=1e-3)
        assert expected > 0.05  # the distortion really hurts median scaling


def test_corrupted_region_scores_its_share_of_the_error(exact_bags, tmp_path, monkeypatch):
    records = _records(monkeypatch)
    _, summary = _run(exact_bags["mcap"], truth_predictor(exact_config(), corrupt_cols=40), tmp_path)
    for record in records:
        in_region = record.held_out.col < 40
        assert 0.05 < in_region.mean() < 0.45
        # the robust fit follows the majority; the corrupted pixels are 50 % too far (scored after the KITTI
        # clamp to 80 m, so 70 m backdrop points count 80/70 − 1), the rest exact
        z = record.held_out.depth
        expected = np.mean(np.where(in_region, np.abs(np.minimum(1.5 * z, OPTIONS.max_depth) - z) / z, 0.0))
        assert record.scores["node"].metrics["abs_rel"] == pytest.approx(expected, rel=1e-4)
        np.testing.assert_allclose(record.predictions["node"][in_region], 1.5 * record.held_out.depth[in_region],
                                   rtol=1e-5)
    assert summary["methods"]["node"]["metrics"]["delta1"] < 1.0


def _spy_fitting_scans(monkeypatch) -> list[np.ndarray]:
    """Capture the LiDAR points the node's aligner (as its pipeline builds it) is given each frame."""
    fitting_scans = []

    class SpyAligner(depth_setup.LidarAligner):
        def align(self, prediction, stamp, lens, scan, *args):
            fitting_scans.append(scan.points_xyz.copy())
            return super().align(prediction, stamp, lens, scan, *args)

    monkeypatch.setattr(depth_setup, "LidarAligner", SpyAligner)
    return fitting_scans


def test_held_out_points_never_share_a_point_or_pixel_with_the_fitting_set(exact_bags, tmp_path, monkeypatch):
    fitting_scans = _spy_fitting_scans(monkeypatch)
    records = _records(monkeypatch)
    config = exact_config()
    _run(exact_bags["mcap"], truth_predictor(config), tmp_path)
    frames = list(render_sequence(config))
    size = (CAMERA.width, CAMERA.height)
    for record, fitting, frame in zip(records, fitting_scans, frames):
        all_points = {p.tobytes() for p in frame.lidar.points}
        fitting_set = {p.tobytes() for p in fitting}
        assert fitting_set < all_points  # a strict subset: some points were held back
        held_back = len(all_points) - len(fitting_set)
        assert held_back / len(all_points) == pytest.approx(OPTIONS.holdout.fraction, abs=0.03)
        fitting_pixels = np.isfinite(project_lidar(fitting, config.rig.T_optical_lidar, CAMERA.K, size))
        assert not fitting_pixels[record.held_out.row, record.held_out.col].any()
        assert len(record.held_out) > 100


TINY_ARCHITECTURE = ('{"embed_dim": 32, "depth": 4, "num_heads": 2, "taps": [0, 1, 2, 3], '
                     '"reassemble_channels": [8, 8, 16, 16], "features": 16}')


def _exit_code_and_message(args: list[str], capsys) -> tuple[int, str]:
    code = main(args + ["--allow-random-weights", "--model", "dpt_large_midas", "--no-progress",
                        "--architecture-overrides", TINY_ARCHITECTURE, "--input-size", "160", "128"])
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return code, captured.err


def test_cli_runs_a_real_architecture_end_to_end(exact_bags, tmp_path, capsys):
    output_bag = tmp_path / "depth_out"
    code, _ = _exit_code_and_message([str(exact_bags["sqlite3"]), "--run-dir", str(tmp_path / "cli"),
                                      "--output-bag", str(output_bag)], capsys)
    assert code == 0
    report = tmp_path / "cli" / "report.md"
    assert "random weights" in report.read_text()
    # the output bag holds the node's depth for the frames it gave metres (random weights: maybe none)
    with open(tmp_path / "cli" / "per_frame.csv", newline="") as rows:
        metric_frames = sum(float(row["node_coverage"]) > 0 for row in csv.DictReader(rows))
    reader = open_bag(output_bag)
    assert {t.name: t.count for t in bag_topics(reader)} == {"/eval/depth": metric_frames,
                                                             "/eval/camera_info": metric_frames,
                                                             "/eval/points": metric_frames}
    reader.close()


def test_output_bag_holds_the_nodes_metric_depth(exact_bags, tmp_path):
    options = dataclasses.replace(OPTIONS, output_bag=tmp_path / "out")
    _run(exact_bags["mcap"], truth_predictor(exact_config()), tmp_path, options)
    reader = open_bag(tmp_path / "out")
    messages = list(iterate_messages(reader, ["/eval/depth"]))
    clouds = list(iterate_messages(reader, ["/eval/points"]))
    reader.close()
    assert len(messages) == len(clouds) == N_FRAMES
    depth = np.frombuffer(messages[0][2].data.tobytes(), "<f4").reshape(CAMERA.height, CAMERA.width)
    truth = next(iter(render_sequence(exact_config()))).camera.depth
    np.testing.assert_allclose(depth, truth, rtol=1e-5)
    cloud = clouds[0][2]  # the node's organised cloud: z of each pixel is its depth
    xyz = xyz_from_cloud_buffer(cloud.data, cloud.fields, cloud.point_step, cloud.row_step, cloud.width,
                                cloud.height, cloud.is_bigendian)
    assert (cloud.height, cloud.width) == (CAMERA.height, CAMERA.width)
    np.testing.assert_allclose(xyz[:, 2].reshape(CAMERA.height, CAMERA.width), truth, rtol=1e-5)


def test_whole_beams_can_be_held_out(exact_bags, tmp_path, monkeypatch):
    fitting_scans = _spy_fitting_scans(monkeypatch)
    records = _records(monkeypatch)
    options = dataclasses.replace(OPTIONS, holdout=HoldoutConfig(fraction=0.0, every_kth_beam=4))
    _, summary = _run(exact_bags["mcap"], truth_predictor(exact_config()), tmp_path, options)
    assert summary["methods"]["node"]["metrics"]["abs_rel"] < 1e-5
    assert "every 4th beam" in summary["holdout"]["description"] and all(len(r.held_out) > 100 for r in records)
    # the aligner saw no point of beams 0, 4, 8, ... (beam = elevation's place among the 32 beam elevations)
    lidar = exact_config().lidar
    elevations = np.linspace(lidar.elevation_min_deg, lidar.elevation_max_deg, lidar.n_beams)
    for fitting in fitting_scans:
        elevation = np.degrees(np.arcsin(fitting[:, 2] / np.linalg.norm(fitting, axis=1)))
        beam = np.abs(elevation[:, None] - elevations[None, :]).argmin(axis=1)
        assert not np.any(beam % 4 == 0) and len(set(beam)) == 24


def test_errors_are_one_clear_message_and_exit_2(exact_bags, tmp_path, capsys):
    run = ["--run-dir", str(tmp_path / "run")]
    code, err = _exit_code_and_message([str(tmp_path / "missing")] + run, capsys)
    assert code == 2 and "no bag at" in err

    code, err = _exit_code_and_message([str(exact_bags["mcap"]), "--lidar-topic", "/velodyne_points"] + run, capsys)
    assert code == 2 and "/velodyne_points is not in the bag" in err and "/lidar/points" in err

    truncated = tmp_path / "truncated"
    truncated.mkdir()
    for item in exact_bags["mcap"].iterdir():
        data = item.read_bytes()
        (truncated / item.name).write_bytes(data[: len(data) // 3] if item.suffix == ".mcap" else data)
    code, err = _exit_code_and_message([str(truncated)] + run, capsys)
    assert code == 2 and ("damaged" in err or "cannot read" in err)

    garbage = tmp_path / "garbage.bag"
    garbage.write_bytes(b"not a bag at all" * 10)
    code, err = _exit_code_and_message([str(garbage)] + run, capsys)
    assert code == 2 and "cannot read bag" in err


def _bag_without(topic_filter, path: Path) -> Path:
    """The exact scene's bag with only the topics topic_filter keeps, written with the bag writer."""
    from dpt_ros.bags.rosbag_io import BagWriter, bag_topics, iterate_messages, open_bag

    config = dataclasses.replace(exact_config(), n_frames=2)
    source = write_sample_bag(path.with_name(path.name + "_full"), "mcap", config).path
    reader = open_bag(source)
    with BagWriter(path, "mcap") as bag:
        kept = [t for t in bag_topics(reader) if topic_filter(t.name)]
        for topic in kept:
            bag.add_topic(topic.name, topic.msgtype)
        for topic, stamp, message in iterate_messages(reader, [t.name for t in kept]):
            bag.write(topic, stamp, message)
    reader.close()
    return path


@pytest.mark.parametrize("dropped, expected", [
    ("/camera/camera_info", "no camera_info messages"),
    ("/tf_static", "no transform from 'lidar' to 'camera_optical_frame'"),
    ("everything", "the bag holds no messages"),
])
def test_missing_pieces_are_named(tmp_path, capsys, dropped, expected):
    if dropped == "everything":
        path = tmp_path / "empty"
        from dpt_ros.bags.rosbag_io import IMAGE, BagWriter

        with BagWriter(path, "mcap") as bag:
            bag.add_topic("/camera/image_raw", IMAGE)
    else:
        path = _bag_without(lambda name: name != dropped, tmp_path / "partial")
    code, err = _exit_code_and_message([str(path), "--run-dir", str(tmp_path / "run")], capsys)
    assert code == 2 and expected in err, err


def metric_truth_predictor(config: SequenceConfig) -> FakeEngine:
    """A metric preset's stand-in: metres, 10 % too far everywhere."""
    return FakeEngine(predict=lookup_by_content(truth_depth(config), lambda depth: (1.1 * depth).astype(np.float32)))


def test_metric_models_are_scored_as_published_and_refined_when_asked(exact_bags, tmp_path):
    bag, predictor = exact_bags["mcap"], metric_truth_predictor(exact_config())
    _, plain = evaluate_bag(bag, predictor, "metric_depth", tmp_path / "plain", OPTIONS)
    assert plain["methods"]["node"]["metrics"]["abs_rel"] == pytest.approx(0.1, rel=1e-4)  # the node's own metres
    assert plain["methods"]["least_squares"]["metrics"]["abs_rel"] < 1e-5  # a scale-only fit removes the 10 %
    assert plain["methods"]["median_scaling"]["metrics"]["abs_rel"] < 1e-5
    refined = dataclasses.replace(OPTIONS, node_config=OPTIONS.node_config.with_changes({"lidar_refine_metric": True}))
    _, summary = evaluate_bag(bag, predictor, "metric_depth", tmp_path / "refined", refined)
    assert summary["methods"]["node"]["metrics"]["abs_rel"] < 1e-5


def test_the_evaluator_needs_no_ros_runtime(exact_bags, tmp_path):
    """With rclpy impossible to import, dpt-ros-eval still evaluates a bag."""
    script = (
        "import sys, importlib.abc\n"
        "class Block(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path, target=None):\n"
        "        if name.split('.')[0] == 'rclpy': raise ImportError('rclpy is blocked')\n"
        "sys.meta_path.insert(0, Block())\n"
        "from dpt_ros.tools.evaluate_bag import main\n"
        f"sys.exit(main([{str(exact_bags['mcap'])!r}, '--run-dir', {str(tmp_path / 'run')!r}, '--no-progress',\n"
        f"    '--allow-random-weights', '--model', 'dpt_large_midas', '--input-size', '160', '128',\n"
        f"    '--architecture-overrides', {TINY_ARCHITECTURE!r}]))\n"
    )
    env = subprocess_env()
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "run" / "report.md").exists()
