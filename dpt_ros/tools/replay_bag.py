"""`dpt-ros-replay BAG`: publish a bag into a running ROS 2 graph with its original timing, with rclpy.

A stand-in for `ros2 bag play` where rosbag2 is not installed (e.g. ROS 2 from PyPI): reads rosbag2 (mcap,
sqlite3) and ROS 1 bags with `rosbags`, publishes the serialised messages unchanged (header stamps included)
at their recorded pace × ``--rate``, optionally looping or starting part-way in, and can record topics of the
graph (e.g. the depth node's outputs) into a new bag while it plays. /tf_static is published latched.

Only message packages from a fixed list of standard ROS 2 interfaces are ever imported (a bag's type
names are data, not code to import); topics of other packages, or of a listed one not installed here
(e.g. tf2_msgs without a ROS install), are listed and skipped, and a bag left with nothing to publish is
an error. Before the first message, replay waits (--match-timeout) until its publishers have matched
every subscription the graph shows on their topics and its recorder has matched the publishers of every
recorded topic, and says which did not. Ctrl-C or SIGTERM stops playing and closes the recording cleanly,
keeping everything received (exit 0).
"""

from __future__ import annotations

import argparse
import importlib
import re
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dpt_ros.bags.rosbag_io import STORAGE_FORMATS, TYPESTORE, BagError, BagWriter, bag_topics, open_bag
from dpt_ros.tools import cli

# The message packages replay may import: the standard interfaces a camera/LiDAR bag carries.
KNOWN_MESSAGE_PACKAGES = frozenset({
    "builtin_interfaces", "diagnostic_msgs", "geometry_msgs", "nav_msgs", "rosgraph_msgs", "sensor_msgs",
    "shape_msgs", "std_msgs", "stereo_msgs", "tf2_msgs", "trajectory_msgs", "vision_msgs", "visualization_msgs",
})  # fmt: skip
MATCH_POLL_S = 0.02
# DDS reports a match on each side separately, and only ours can be observed: a best-effort subscriber
# (the nodes' sensor_data input) drops samples from a writer it has not matched yet, and nothing is
# retransmitted. After our side has matched, the other side's discovery of us runs on the same exchange;
# this grace covers its lag (measured: single-frame replays into a just-matched node lost the frame in 2 of
# 20 runs without it).
MATCH_GRACE_S = 0.5
_MESSAGE_TYPE = re.compile(r"^(?P<package>[a-z][a-z0-9_]*)/msg/(?P<name>[A-Z][A-Za-z0-9]*)$")


def message_class(msgtype: str) -> Any | None:
    """The rclpy message class of 'pkg/msg/Name' for a package in KNOWN_MESSAGE_PACKAGES, or None when the
    package is not in that list, not installed, or has no such message. Nothing else is ever imported."""
    match = _MESSAGE_TYPE.match(msgtype)
    if match is None or match["package"] not in KNOWN_MESSAGE_PACKAGES:
        return None
    try:
        module = importlib.import_module(f"{match['package']}.msg")
    except ImportError:
        return None
    candidate = getattr(module, match["name"], None)
    return candidate if isinstance(candidate, type) and hasattr(candidate, "_TYPE_SUPPORT") else None


@dataclass
class ReplayOptions:
    rate: float = 1.0  # playback speed factor
    start_offset: float = 0.0  # seconds into the bag to start at
    loop: bool = False
    topics: list[str] | None = None  # None: every topic whose type is importable
    remap: dict[str, str] = field(default_factory=dict)  # bag topic -> topic to publish on
    wait_for_subscriber: str | None = None  # topic that must have a subscriber before playing
    wait_timeout: float = 30.0
    record: Path | None = None
    record_topics: list[str] = field(default_factory=list)
    record_format: str = "mcap"
    linger: float = 2.0  # seconds to keep recording after the last message
    match_timeout: float = 30.0  # seconds to wait for publisher/subscription matches before playing


class _Recorder:
    """Raw subscriptions whose serialised messages go straight into a bag (no deserialisation)."""

    def __init__(self, node: Any, path: Path, storage: str, topics: list[str]) -> None:
        self._node, self._topics = node, topics
        self._writer = BagWriter(path, storage, overwrite=True)
        self._lock = threading.Lock()
        self._subscriptions: dict[str, Any] = {}
        self.counts: dict[str, int] = dict.fromkeys(topics, 0)
        self._writer.__enter__()

    def subscribe_available(self) -> None:
        """Subscribe to the recorded topics that have appeared in the graph (outputs can appear late)."""
        from rclpy.qos import qos_profile_sensor_data

        types = dict(self._node.get_topic_names_and_types())
        for topic in self._topics:
            if topic in self._subscriptions or topic not in types:
                continue
            msgtype = types[topic][0]
            msg_class = message_class(msgtype)
            if msg_class is None or msgtype not in TYPESTORE.types:
                self._node.get_logger().warning(f"cannot record {topic}: type {msgtype} unknown here")
                self._subscriptions[topic] = None
                continue
            with self._lock:  # the executor thread writes other topics meanwhile
                self._writer.add_topic(topic, msgtype)
            self._subscriptions[topic] = self._node.create_subscription(
                msg_class, topic, lambda raw, t=topic: self._on_message(t, raw), qos_profile_sensor_data, raw=True)

    def unmatched(self) -> list[str]:
        """What keeps the recorder from receiving: topics not in the graph yet, publishers not matched yet."""
        waiting = []
        for topic in self._topics:
            subscription = self._subscriptions.get(topic)
            publishers = self._node.count_publishers(topic)
            if topic not in self._subscriptions:
                waiting.append(f"recorded topic {topic} has no publisher yet")
            elif subscription is not None and subscription.get_publisher_count() < publishers:
                waiting.append(f"recorder on {topic} matched {subscription.get_publisher_count()} of {publishers} "
                               "publishers")  # fmt: skip
        return waiting

    def _on_message(self, topic: str, raw: bytes) -> None:
        with self._lock:
            self._writer.write_serialized(topic, time.time_ns(), raw)
            self.counts[topic] += 1

    def close(self, keep: bool) -> None:
        """Finish the bag; ``keep`` False (the replay failed) discards it rather than leave a partial one."""
        for subscription in self._subscriptions.values():
            if subscription is not None:
                self._node.destroy_subscription(subscription)  # no callback may write after the close
        with self._lock:
            failure = None if keep else RuntimeError("replay failed")
            self._writer.__exit__(type(failure) if failure else None, failure, None)


def _is_latched(connection: Any) -> bool:
    """Whether a bag connection was recorded latched (/tf_static, a ROS 1 latch, a transient-local QoS)."""
    ext = connection.ext
    if getattr(ext, "latching", 0):
        return True
    profiles = getattr(ext, "offered_qos_profiles", None) or []
    return connection.topic.endswith("tf_static") or any(q.durability.name == "TRANSIENT_LOCAL" for q in profiles)


def replay(bag_path: Path, options: ReplayOptions) -> dict[str, int]:
    """Play the bag (and record, if asked); returns messages published per topic. Needs rclpy."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
    from rclpy.signals import SignalHandlerOptions

    reader = open_bag(bag_path)
    available = {t.name: t.msgtype for t in bag_topics(reader)}
    wanted = options.topics or list(available)
    missing = [t for t in wanted if t not in available]
    if missing:
        raise BagError(f"topics not in the bag: {', '.join(missing)}")
    classes = {topic: message_class(available[topic]) for topic in wanted}
    skipped = sorted(topic for topic, cls in classes.items() if cls is None)
    if len(skipped) == len(classes):
        reader.close()
        types = ", ".join(f"{topic} ({available[topic]})" for topic in skipped)
        raise BagError(f"nothing to publish: no topic has a known, installed message type: {types}")

    # Ctrl-C and SIGTERM end playing in this thread (KeyboardInterrupt), not by shutting rclpy down under it
    rclpy.init(signal_handler_options=SignalHandlerOptions.NO)
    in_main_thread = threading.current_thread() is threading.main_thread()  # only it may set signal handlers
    # Both signals explicitly: a process started in the background by a shell inherits SIGINT ignored, and a
    # looped replay would then never stop on `kill -INT` (seen under nohup).
    previous_handlers = (
        {number: signal.signal(number, _interrupt) for number in (signal.SIGINT, signal.SIGTERM)} if in_main_thread else {}
    )
    node = rclpy.create_node("dpt_ros_replay")
    log = node.get_logger()
    if skipped:
        log.warning(f"not publishing {', '.join(skipped)}: message package unknown or not installed")
    publishers = {}
    for topic, cls in classes.items():
        if cls is None:
            continue
        latched = any(_is_latched(c) for c in reader.connections if c.topic == topic)
        qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL if latched else DurabilityPolicy.VOLATILE)
        publishers[topic] = node.create_publisher(cls, options.remap.get(topic, topic), qos)

    recorder = _Recorder(node, options.record, options.record_format, options.record_topics) \
        if options.record else None
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    published = dict.fromkeys(publishers, 0)
    interrupted = False
    try:
        if options.wait_for_subscriber:
            _wait_for_subscriber(node, options.wait_for_subscriber, options.wait_timeout)
        _wait_for_matches(node, publishers, recorder, options.match_timeout)
        is_ros1 = bag_path.suffix == ".bag"
        connections = [c for c in reader.connections if c.topic in publishers]
        start_ns = reader.start_time + round(options.start_offset * 1e9)
        next_discovery = time.monotonic() + 0.5
        while True:
            wall_start = time.monotonic()
            for connection, timestamp, raw in reader.messages(connections=connections):
                if recorder is not None and time.monotonic() >= next_discovery:
                    recorder.subscribe_available()  # output topics may appear late; look twice a second
                    next_discovery = time.monotonic() + 0.5
                if timestamp < start_ns:
                    continue
                due = wall_start + (timestamp - start_ns) / 1e9 / options.rate
                delay = due - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                data = bytes(TYPESTORE.ros1_to_cdr(raw, connection.msgtype) if is_ros1 else raw)
                publishers[connection.topic].publish(data)
                published[connection.topic] += 1
            if not options.loop:
                break
        if recorder is not None:
            deadline = time.monotonic() + options.linger
            while time.monotonic() < deadline:
                recorder.subscribe_available()
                time.sleep(0.1)
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM: stop playing, keep what was recorded
        interrupted = True
    finally:
        for number, handler in previous_handlers.items():
            signal.signal(number, handler)
        executor.shutdown()
        spinner.join(timeout=5.0)  # a still-spinning thread at interpreter exit aborts the process
        if recorder is not None:
            succeeded = sys.exc_info()[0] is None
            recorder.close(keep=succeeded)
            if succeeded:
                log.info(f"recorded {options.record}: " + ", ".join(f"{t} {n}" for t, n in recorder.counts.items()))
        node.destroy_node()
        rclpy.try_shutdown()
        reader.close()
    if interrupted:
        print("interrupted: stopped playing", file=sys.stderr)
    return published


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def _wait_for_matches(node: Any, publishers: dict[str, Any], recorder: _Recorder | None, timeout: float) -> None:
    """Wait until every subscription the graph shows on a published topic is matched to its publisher, the
    recorder (if any) has matched every publisher of the recorded topics and, when recording, at least one
    publisher has a subscription (else nothing could reach the recorder); then MATCH_GRACE_S for the remote
    side of those matches. Raises BagError naming what is not matched."""
    deadline = time.monotonic() + timeout
    while True:
        waiting = []
        for publisher in publishers.values():
            seen, matched = _compatible_subscriptions(node, publisher), publisher.get_subscription_count()
            if matched < seen:
                waiting.append(f"publisher of {publisher.topic_name} matched {matched} of {seen} subscriptions")
        if recorder is not None:
            recorder.subscribe_available()
            waiting += recorder.unmatched()
            if not any(publisher.get_subscription_count() for publisher in publishers.values()):
                waiting.append(f"no subscription on any played topic ({', '.join(sorted(publishers))})")
        if not waiting:
            time.sleep(MATCH_GRACE_S)
            return
        if time.monotonic() > deadline:
            raise BagError(f"not matched within {timeout:g} s (is the node running, are topics remapped?): "
                           + "; ".join(waiting))  # fmt: skip
        time.sleep(MATCH_POLL_S)


def _compatible_subscriptions(node: Any, publisher: Any) -> int:
    """Subscriptions in the graph on the publisher's topic that can match it: a reliable publisher serves
    every reliability, but a volatile one no transient-local subscription (which then never matches)."""
    from rclpy.qos import DurabilityPolicy

    volatile = publisher.qos_profile.durability == DurabilityPolicy.VOLATILE
    return sum(1 for info in node.get_subscriptions_info_by_topic(publisher.topic_name)
               if not (volatile and info.qos_profile.durability == DurabilityPolicy.TRANSIENT_LOCAL))  # fmt: skip


def _wait_for_subscriber(node: Any, topic: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while node.count_subscribers(topic) == 0:
        if time.monotonic() > deadline:
            raise BagError(f"nobody subscribed to {topic} within {timeout:g} s; is the node running and remapped?")
        time.sleep(0.05)


def main(argv: list[str] | None = None) -> int:
    parser = cli.ArgumentParser(prog="dpt-ros-replay", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("bag", type=Path)
    parser.add_argument("--rate", type=float, default=1.0, help="playback speed factor (default 1)")
    parser.add_argument("--start-offset", type=float, default=0.0, help="seconds into the bag to start at")
    parser.add_argument("--loop", action="store_true", help="play again from the start until interrupted")
    parser.add_argument("--topics", nargs="+", help="only these topics (default: all)")
    parser.add_argument("--remap", nargs="+", default=[], metavar="FROM:=TO", help="publish bag topic FROM on TO")
    parser.add_argument("--wait-for-subscriber", metavar="TOPIC", help="wait until TOPIC has a subscriber")
    parser.add_argument("--wait-timeout", type=float, default=30.0)
    parser.add_argument("--record", type=Path, metavar="OUT", help="record --record-topics into this bag")
    parser.add_argument("--record-topics", nargs="+", default=[], metavar="TOPIC")
    parser.add_argument("--record-format", choices=[f for f in STORAGE_FORMATS if f != "ros1"], default="mcap")
    parser.add_argument("--linger", type=float, default=2.0, help="seconds to keep recording after the last message")
    parser.add_argument("--match-timeout", type=float, default=30.0,
                        help="seconds to wait for publishers and recorder to match before playing")
    args = parser.parse_args(argv)
    if args.rate <= 0 or args.start_offset < 0:
        parser.error("--rate must be > 0 and --start-offset >= 0")
    if args.record and not args.record_topics:
        parser.error("--record needs --record-topics")
    if any(":=" not in rule for rule in args.remap):
        parser.error("--remap rules look like /camera/image_raw:=/cam0/image")
    remap = dict(rule.split(":=", 1) for rule in args.remap)
    options = ReplayOptions(rate=args.rate, start_offset=args.start_offset, loop=args.loop, topics=args.topics,
                            remap=remap,
                            wait_for_subscriber=args.wait_for_subscriber, wait_timeout=args.wait_timeout,
                            record=args.record, record_topics=args.record_topics, record_format=args.record_format,
                            linger=args.linger, match_timeout=args.match_timeout)
    try:
        published = replay(args.bag, options)
    except BagError as error:
        print(f"dpt-ros-replay: {error}", file=sys.stderr)
        return 2
    print("published: " + ", ".join(f"{topic} {count}" for topic, count in published.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
