"""The README's demo end to end: sample bag -> real depth node -> replay/record -> offline check -> report.

Runs the real `dpt-ros-demo` (default settings) in a subprocess, the way a user's first command does, and
checks it finishes within the 3-minute budget with a report of real numbers and a live/offline match.
"""

import json
import re
import subprocess
import sys
import time
from pathlib import Path

from support.environment import REPO_ROOT, subprocess_env

DEMO_BUDGET_S = 180.0


def test_demo_runs_end_to_end_within_budget(tmp_path):
    env = subprocess_env()  # conftest: localhost discovery, random domain
    env["FASTDDS_DEFAULT_PROFILES_FILE"] = str(REPO_ROOT / "config" / "fastdds_shm.xml")
    output = tmp_path / "demo_output"
    start = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "dpt_ros.tools.demo", "--output", str(output),
                             "--models", str(tmp_path / "no_models")],
                            env=env, capture_output=True, text=True, timeout=DEMO_BUDGET_S + 30, cwd=tmp_path)
    elapsed = time.monotonic() - start
    log = (output / "depth_node.log").read_text() if (output / "depth_node.log").exists() else ""
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}\n--- node log ---\n{log}"
    assert elapsed < DEMO_BUDGET_S, f"demo took {elapsed:.0f} s"
    assert "RANDOM weights" in result.stdout  # says so when models/ has no weights

    # the node answered (nearly) every replayed image — a load spike on a shared CPU may make it drop one —
    # and the offline core path reproduces its output on the frames before any drop
    answered = re.search(r"the node answered with (\d+) metric and (\d+) relative", result.stdout)
    assert answered and int(answered.group(1)) + int(answered.group(2)) >= 15, result.stdout
    match = re.search(r"(\d+) frames compared, max \|difference\| ([0-9.e+-]+) .*, (\d+) pixels valid in only one",
                      result.stdout)
    assert match, result.stdout
    assert int(match.group(1)) >= 1
    assert float(match.group(2)) < 1e-4  # where both published a value, the values agree
    if int(answered.group(1)) + int(answered.group(2)) == 20:
        # Every frame answered and recorded: the two paths saw the same sequence, so they also agree on
        # which pixels (and frames) are metric. With a frame missed under load, the live temporal filter
        # and LiDAR pairing can legitimately diverge from the offline run; the strict, load-independent
        # version of this check is test_live_replay.py.
        assert int(match.group(3)) == 0

    report = Path(re.search(r"report: (\S+)", result.stdout).group(1))
    if not report.is_absolute():
        report = tmp_path / report
    text = report.read_text()
    assert "LiDAR only: nearest neighbour" in text
    metrics = json.loads((report.parent / "metrics.json").read_text())
    assert metrics["frames"]["scored"] == metrics["frames"]["total"] == 20
    lidar_only = metrics["methods"]["lidar_only"]["metrics"]
    assert 0.0 < lidar_only["abs_rel"] < 0.2 and metrics["methods"]["lidar_only"]["points_scored"] > 5000
    # random weights with the demo's open inlier gate: the LiDAR fit still turns the noise into metres,
    # which score far worse than the LiDAR alone: the report shows what the alignment is doing
    assert int(answered.group(1)) >= 10, result.stdout
    node = metrics["methods"]["node"]
    assert node["points_scored"] > 1000 and node["metrics"]["abs_rel"] > lidar_only["abs_rel"]
    assert metrics["temporal"]["static_pairs"] >= 2  # the sample drive stands still for a few frames
    for name in ("error_vs_range.png", "per_frame_abs_rel.png", "scale_shift.png", "per_frame.csv"):
        assert (report.parent / name).stat().st_size > 0
