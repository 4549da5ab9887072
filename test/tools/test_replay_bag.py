"""dpt-ros-replay with real rclpy: messages go out unchanged, with the bag's pacing, and can be recorded back."""

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from dpt_ros.bags.rosbag_io import bag_topics, iterate_messages, open_bag
from dpt_ros.tools.make_sample_bag import sample_config, write_sample_bag
from support.environment import subprocess_env

N_FRAMES = 4


pytestmark = pytest.mark.ros


def _messages(bag: Path, topic: str) -> list:
    reader = open_bag(bag)
    try:
        return [message for _, _, message in iterate_messages(reader, [topic])]
    finally:
        reader.close()


@pytest.mark.timing
@pytest.mark.parametrize("fmt", ["mcap", "ros1"])
def test_replay_publishes_every_message_unchanged_at_the_recorded_pace(tmp_path, fmt):
    source = write_sample_bag(tmp_path / ("in.bag" if fmt == "ros1" else "in"), fmt,
                              sample_config(frames=N_FRAMES, width=64, height=48)).path
    recording = tmp_path / "out"
    rate = 0.5  # 0.1 s frame period -> 0.2 s apart
    start = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "dpt_ros.tools.replay_bag", str(source), "--rate", str(rate), "--record",
         str(recording), "--record-topics", "/cam/image", "/lidar/points", "--linger", "1",
         "--remap", "/camera/image_raw:=/cam/image"],
        env=subprocess_env(), capture_output=True, text=True, timeout=60)
    elapsed = time.monotonic() - start
    assert result.returncode == 0, result.stderr
    assert f"/camera/image_raw {N_FRAMES}" in result.stdout
    assert "not publishing /tf, /tf_static" in result.stderr or "/tf_static 1" in result.stdout

    counts = {t.name: t.count for t in bag_topics(open_bag(recording))}
    assert counts == {"/cam/image": N_FRAMES, "/lidar/points": N_FRAMES}
    for sent_topic, topic in (("/camera/image_raw", "/cam/image"), ("/lidar/points", "/lidar/points")):
        for sent, received in zip(_messages(source, sent_topic), _messages(recording, topic)):
            assert (sent.header.stamp.sec, sent.header.stamp.nanosec) == (received.header.stamp.sec,
                                                                        received.header.stamp.nanosec)
            assert np.array_equal(sent.data, received.data)
    # receive times keep the bag's spacing, stretched by 1 / rate
    reader = open_bag(recording)
    stamps = [t for _, t, _ in iterate_messages(reader, ["/cam/image"])]
    reader.close()
    # Messages go out on an absolute schedule; a busy CPU can only delay single deliveries, which lengthens
    # one gap and shortens the next. So the typical (median) gap is the schedule's, and the run can never
    # be faster than the schedule.
    gaps = np.diff(stamps) / 1e9
    assert np.median(gaps) == pytest.approx(0.1 / rate, abs=0.08), gaps
    assert elapsed >= (N_FRAMES - 1) * 0.1 / rate


def test_replay_reports_a_missing_subscriber_and_a_missing_bag(tmp_path):
    source = write_sample_bag(tmp_path / "in", "mcap", sample_config(frames=1, width=32, height=24)).path
    result = subprocess.run(
        [sys.executable, "-m", "dpt_ros.tools.replay_bag", str(source), "--wait-for-subscriber", "/nobody",
         "--wait-timeout", "0.5", "--record", str(tmp_path / "rec"), "--record-topics", "/depth"],
        env=subprocess_env(), capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "nobody subscribed to /nobody" in result.stderr
    assert "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == [source]  # no recording, not even a partial one, is left behind
    result = subprocess.run([sys.executable, "-m", "dpt_ros.tools.replay_bag", str(tmp_path / "nothing")],
                            env=subprocess_env(), capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "no bag at" in result.stderr


def test_start_offset_skips_the_beginning_of_the_bag(tmp_path):
    config = sample_config(frames=N_FRAMES, width=32, height=24)
    source = write_sample_bag(tmp_path / "in", "mcap", config).path
    recording = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, "-m", "dpt_ros.tools.replay_bag", str(source), "--rate", "2", "--start-offset", "0.15",
         "--record", str(recording), "--record-topics", "/camera/image_raw", "--linger", "1"],
        env=subprocess_env(), capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    stamps = [(m.header.stamp.sec * 1_000_000_000 + m.header.stamp.nanosec - config.start_time_ns) / 1e9
              for m in _messages(recording, "/camera/image_raw")]
    assert stamps == pytest.approx([0.2, 0.3])  # frames 0 and 1 (at 0.0 and 0.1 s) were before the offset
