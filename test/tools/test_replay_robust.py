"""dpt-ros-replay as a robot's bag player: only known message packages, nothing-to-publish is an error,
Ctrl-C/SIGTERM keep the recording, and single-frame replays into the depth node are always recorded."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from rosbags.rosbag2 import Writer
from rosbags.typesys import Stores, get_types_from_msg, get_typestore

from dpt_ros.bags.rosbag_io import bag_topics, open_bag
from dpt_ros.tools.make_sample_bag import sample_config, write_sample_bag
from dpt_ros.tools.replay_bag import message_class
from support.depth_node_harness import TEST_PARAMETERS, NodeProcess
from support.environment import subprocess_env

pytestmark = pytest.mark.ros

REPLAY = [sys.executable, "-m", "dpt_ros.tools.replay_bag"]


def _counts(bag: Path) -> dict[str, int]:
    reader = open_bag(bag)
    try:
        return {topic.name: topic.count for topic in bag_topics(reader)}
    finally:
        reader.close()


def test_message_class_imports_only_known_message_packages():
    assert message_class("sensor_msgs/msg/Image").__name__ == "Image"
    for msgtype in ("this/msg/Foo", "os/msg/path", "sensor_msgs/msg/__class__", "sensor_msgs/srv/SetCameraInfo",
                    "sensor_msgs/msg/Image/extra", "sensor_msgs/msg/NoSuchMessage"):  # fmt: skip
        assert message_class(msgtype) is None, msgtype
    assert "this" not in sys.modules


def test_a_bag_of_unknown_packages_is_a_clear_error_and_imports_nothing(tmp_path):
    """A crafted type 'evil_pkg/msg/Foo' whose package exists on the path must not be imported."""
    package = tmp_path / "site" / "evil_pkg" / "msg"
    package.mkdir(parents=True)
    (package.parent / "__init__.py").write_text("")
    marker = tmp_path / "imported"
    (package / "__init__.py").write_text(f"open({str(marker)!r}, 'w').close()\nclass Foo: pass\n")
    store = get_typestore(Stores.ROS2_KILTED)
    store.register(get_types_from_msg("int32 x", "evil_pkg/msg/Foo"))
    bag = tmp_path / "crafted"
    with Writer(bag, version=9) as writer:
        connection = writer.add_connection("/foo", "evil_pkg/msg/Foo", typestore=store)
        message = store.types["evil_pkg/msg/Foo"](x=1)
        writer.write(connection, 1, store.serialize_cdr(message, "evil_pkg/msg/Foo"))
    env = subprocess_env()
    env["PYTHONPATH"] = f"{tmp_path / 'site'}:{env['PYTHONPATH']}"
    result = subprocess.run([*REPLAY, str(bag)], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip() == ("dpt-ros-replay: nothing to publish: no topic has a known, installed message "
                                     "type: /foo (evil_pkg/msg/Foo)")  # fmt: skip
    assert not marker.exists()


@pytest.mark.ros
@pytest.mark.parametrize("signal_number", [signal.SIGINT, signal.SIGTERM])
def test_interrupting_a_looped_recording_keeps_what_was_recorded(tmp_path, signal_number):
    source = write_sample_bag(tmp_path / "in", "mcap", sample_config(frames=3, width=32, height=24)).path
    recording = tmp_path / "out"
    process = subprocess.Popen(
        [*REPLAY, str(source), "--loop", "--rate", "4", "--topics", "/camera/image_raw", "--record", str(recording),
         "--record-topics", "/camera/image_raw"],
        env=subprocess_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    deadline = time.monotonic() + 60
    while not list(tmp_path.glob(".out.*.partial")):  # the recorder opened its bag: matching is next
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()
        time.sleep(0.05)
    time.sleep(2.0)  # at rate 4 the 0.3 s bag loops ~25 times in 2 s
    process.send_signal(signal_number)
    stdout, stderr = process.communicate(timeout=30)
    assert process.returncode == 0, stderr
    assert "Traceback" not in stderr and "interrupted: stopped playing" in stderr
    assert "published: /camera/image_raw " in stdout
    recorded = _counts(recording)["/camera/image_raw"]
    assert recorded >= 3  # more than one loop was recorded (matching takes the rest of the 2 s at most)
    assert not list(tmp_path.glob(".out.*.partial"))


@pytest.mark.ros
@pytest.mark.slow
def test_single_frame_replays_into_the_node_are_always_recorded(tmp_path):
    """skip_when_unsubscribed (the default) drops images nobody would see: replay must wait until its
    recorder has matched the node's output before it plays the one frame. DPT_ROS_REPLAY_RUNS runs (default
    5; the issue's measurement is 20), every one recorded."""
    runs = int(os.environ.get("DPT_ROS_REPLAY_RUNS", "5"))
    source = write_sample_bag(tmp_path / "in", "mcap", sample_config(frames=1, width=64, height=48)).path
    node = NodeProcess({**TEST_PARAMETERS, "skip_when_unsubscribed": True}, tmp_path, "/single")
    recorded = []
    try:
        for run in range(runs):
            recording = tmp_path / f"out{run}"
            result = subprocess.run(
                [*REPLAY, str(source), "--topics", "/camera/image_raw", "/camera/camera_info", "--remap",
                 "/camera/image_raw:=/single/image", "/camera/camera_info:=/single/camera_info",
                 "--wait-for-subscriber", "/single/image", "--record", str(recording), "--record-topics",
                 "/single/depth/relative", "--linger", "3"],
                env=subprocess_env(), capture_output=True, text=True, timeout=120)  # fmt: skip
            assert result.returncode == 0, result.stderr + node.output()
            recorded.append(_counts(recording).get("/single/depth/relative", 0))
    finally:
        assert node.stop() == 0, node.output()
    assert recorded == [1] * runs, node.output()


@pytest.mark.ros
def test_unmatched_recording_is_an_error_naming_what_did_not_match(tmp_path):
    source = write_sample_bag(tmp_path / "in", "mcap", sample_config(frames=1, width=32, height=24)).path
    result = subprocess.run(
        [*REPLAY, str(source), "--topics", "/camera/image_raw", "--record", str(tmp_path / "out"), "--record-topics",
         "/nobody/publishes/this", "--match-timeout", "1"],
        env=subprocess_env(), capture_output=True, text=True, timeout=60)  # fmt: skip
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "not matched within 1 s" in result.stderr
    assert "recorded topic /nobody/publishes/this has no publisher yet" in result.stderr
    assert "no subscription on any played topic (/camera/image_raw)" in result.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.ros
def test_an_incompatible_subscription_does_not_hold_the_replay_back(tmp_path):
    """A transient-local subscriber (e.g. a latched-topic tool) never matches a volatile publisher: the
    replay must not wait for it, and it plays."""
    import rclpy
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image

    source = write_sample_bag(tmp_path / "in", "mcap", sample_config(frames=1, width=32, height=24)).path
    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node("latched_listener", context=context)
    qos = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
    node.create_subscription(Image, "/camera/image_raw", lambda _: None, qos)
    try:
        result = subprocess.run([*REPLAY, str(source), "--topics", "/camera/image_raw", "--match-timeout", "5"],
                                env=subprocess_env(), capture_output=True, text=True, timeout=60)  # fmt: skip
    finally:
        node.destroy_node()
        rclpy.shutdown(context=context)
    assert result.returncode == 0, result.stderr
    assert "published: /camera/image_raw 1" in result.stdout
