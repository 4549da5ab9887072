"""Managed (lifecycle) nodes driven through their lifecycle services by real rclpy clients.

The end-to-end test runs `depth_node --managed` as a subprocess with a reduced real network: configure fails
on a corrupt and on a missing weights file (the reason on /rosout, the process up), succeeds after the
parameters are fixed; activate answers images, deactivate stops every output, cleanup, configure and
activate again, shutdown. In-process tests with stand-in engines check shutdown from every state and
that cleanup lets the engines go.
"""

import gc
import json
import threading
import time
import weakref
from typing import Any

import pytest
import rclpy
from lifecycle_msgs.msg import State, Transition
from lifecycle_msgs.srv import ChangeState, GetState
from rcl_interfaces.msg import Log
from rclpy.executors import SingleThreadedExecutor
from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.parameter import Parameter
from rclpy.parameter_client import AsyncParameterClient
from sensor_msgs.msg import Image

from dpt_ros.model.checkpoint import WeightsError
from dpt_ros.ros.depth_node import ManagedDepthNode
from dpt_ros.ros.managed import parse_start_options
from dpt_ros.ros.segmentation_node import ManagedSegmentationNode
from support.depth_node_harness import (
    DISCOVERY_TIMEOUT_S,
    TEST_ARCHITECTURE,
    TEST_PARAMETERS,
    NodeProcess,
    RosPeer,
    header,
    pattern_image,
    publish_until,
    raw_image,
    same_stamp,
    stamp,
)
from support.fake_engines import FakeEngine

pytestmark = pytest.mark.ros

NAMESPACE = "/managed"
NODE = f"{NAMESPACE}/depth_node"


def result_of(future: Any, timeout_s: float = DISCOVERY_TIMEOUT_S) -> Any:
    deadline = time.monotonic() + timeout_s
    while not future.done():
        assert time.monotonic() < deadline, "no answer from the node"
        time.sleep(0.01)
    return future.result()


def eventually(condition, timeout_s: float = DISCOVERY_TIMEOUT_S) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


class LifecycleClient:
    """change_state / get_state of one managed node, from the peer's node."""

    def __init__(self, peer: RosPeer, node: str) -> None:
        self._change = peer.node.create_client(ChangeState, f"{node}/change_state")
        self._get = peer.node.create_client(GetState, f"{node}/get_state")
        assert self._change.wait_for_service(DISCOVERY_TIMEOUT_S) and self._get.wait_for_service(DISCOVERY_TIMEOUT_S)

    def change(self, transition: int) -> bool:
        return result_of(self._change.call_async(ChangeState.Request(transition=Transition(id=transition))), 120).success

    def state(self) -> int:
        return result_of(self._get.call_async(GetState.Request())).current_state.id


@pytest.mark.slow
def test_the_whole_lifecycle_through_its_services(tmp_path):
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"not a checkpoint" * 100)
    parameters = {name: value for name, value in TEST_PARAMETERS.items()
                  if name not in ("allow_random_weights", "architecture_overrides")}  # fmt: skip
    parameters.update(weights=str(corrupt), skip_when_unsubscribed=False)
    peer = RosPeer()
    rosout = peer.collect(Log, "/rosout")
    depth = peer.collect(Image, f"{NAMESPACE}/depth/relative")
    image_pub = peer.publisher(Image, f"{NAMESPACE}/image")
    node = NodeProcess(parameters, tmp_path, NAMESPACE, extra_args=["--managed"])
    try:
        lifecycle = LifecycleClient(peer, NODE)
        params = AsyncParameterClient(peer.node, NODE)
        assert params.wait_for_services(DISCOVERY_TIMEOUT_S)
        assert lifecycle.state() == State.PRIMARY_STATE_UNCONFIGURED

        def configure_fails_saying(reason: str) -> None:
            assert not lifecycle.change(Transition.TRANSITION_CONFIGURE)
            assert rosout.wait_for(lambda m: "configure failed" in m.msg and reason in m.msg, 10), node.output()
            assert lifecycle.state() == State.PRIMARY_STATE_UNCONFIGURED and node.process.poll() is None

        configure_fails_saying("not a readable PyTorch checkpoint")
        missing = str(tmp_path / "missing.pt")
        assert result_of(params.set_parameters([Parameter("weights", value=missing)])).results[0].successful
        configure_fails_saying("not found")

        fix = [Parameter("allow_random_weights", value=True),
               Parameter("architecture_overrides", value=json.dumps(TEST_ARCHITECTURE))]  # fmt: skip
        assert result_of(params.set_parameters_atomically(fix)).result.successful
        assert lifecycle.change(Transition.TRANSITION_CONFIGURE)
        assert lifecycle.state() == State.PRIMARY_STATE_INACTIVE
        refused = result_of(params.set_parameters([Parameter("weights", value="")])).results[0]
        assert not refused.successful and "cannot change while the node is configured" in refused.reason

        rgb = pattern_image(64, 48)

        def answers(seconds: int) -> bool:
            frame = raw_image(header(stamp(seconds)), rgb, "rgb8")
            return publish_until(lambda: image_pub.publish(frame), lambda: depth.find(same_stamp(frame.header.stamp)))

        assert lifecycle.change(Transition.TRANSITION_ACTIVATE)
        assert lifecycle.state() == State.PRIMARY_STATE_ACTIVE and answers(1), node.output()

        assert lifecycle.change(Transition.TRANSITION_DEACTIVATE)
        assert lifecycle.state() == State.PRIMARY_STATE_INACTIVE
        # the node's publishers and subscriptions leave the graph
        assert eventually(lambda: peer.node.count_publishers(f"{NAMESPACE}/depth/relative") == 0)
        assert eventually(lambda: peer.node.count_subscribers(f"{NAMESPACE}/image") == 0)
        assert not publish_until(lambda: image_pub.publish(raw_image(header(stamp(2)), rgb, "rgb8")),
                                 lambda: depth.find(same_stamp(stamp(2))), timeout_s=2.0)  # fmt: skip

        assert lifecycle.change(Transition.TRANSITION_CLEANUP)
        assert lifecycle.state() == State.PRIMARY_STATE_UNCONFIGURED
        assert lifecycle.change(Transition.TRANSITION_CONFIGURE) and lifecycle.change(Transition.TRANSITION_ACTIVATE)
        assert answers(3), node.output()

        assert lifecycle.change(Transition.TRANSITION_ACTIVE_SHUTDOWN)
        assert lifecycle.state() == State.PRIMARY_STATE_FINALIZED and node.process.poll() is None
    finally:
        code = node.stop()
        peer.close()
    assert code == 0, node.output()


@pytest.fixture()
def context():
    context = rclpy.Context()
    rclpy.init(context=context)
    yield context
    rclpy.shutdown(context=context)


def predict_ones(rgb):
    import numpy as np

    return np.ones(rgb.shape[:2], np.float32)


@pytest.mark.parametrize("node_type", [ManagedDepthNode, ManagedSegmentationNode])
@pytest.mark.parametrize("reached", ["unconfigured", "inactive", "active"])
def test_shutdown_from_every_state_and_cleanup_lets_the_engines_go(context, node_type, reached):
    built: list[weakref.ref] = []

    def factory(preset, **options):
        engine = FakeEngine(preset, predict_ones, **options)
        built.append(weakref.ref(engine))
        return engine

    node = node_type(engine_factory=factory, context=context, namespace=f"/shutdown_{reached}")
    try:
        steps = {"unconfigured": [], "inactive": [node.trigger_configure],
                 "active": [node.trigger_configure, node.trigger_activate]}[reached]  # fmt: skip
        assert all(step() == TransitionCallbackReturn.SUCCESS for step in steps)
        assert node.shell.active == (reached == "active")
        if reached != "unconfigured":
            assert built and all(ref() is not None for ref in built)
        assert node.trigger_shutdown() == TransitionCallbackReturn.SUCCESS
        gc.collect()
        assert all(ref() is None for ref in built)  # nothing holds a network after shutdown / cleanup
        assert not node.shell.active
    finally:
        node.destroy_node()


def test_a_managed_node_spins_and_answers_get_state_in_process(context):
    node = ManagedDepthNode(engine_factory=lambda preset, **options: FakeEngine(preset, predict_ones, **options),
                            context=context, namespace="/in_process")  # fmt: skip
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    peer = RosPeer()
    try:
        lifecycle = LifecycleClient(peer, "/in_process/depth_node")
        assert lifecycle.change(Transition.TRANSITION_CONFIGURE)
        assert lifecycle.change(Transition.TRANSITION_CLEANUP)
        assert lifecycle.state() == State.PRIMARY_STATE_UNCONFIGURED
        assert lifecycle.change(Transition.TRANSITION_UNCONFIGURED_SHUTDOWN)
        assert lifecycle.state() == State.PRIMARY_STATE_FINALIZED
    finally:
        peer.close()
        executor.shutdown()
        node.destroy_node()
        spinner.join(timeout=10)


def test_start_options_come_from_the_non_ros_arguments():
    assert not parse_start_options(["depth_node", "--ros-args", "-p", "model:=x"]).managed
    options = parse_start_options(["depth_node", "--managed", "--autostart", "--ros-args", "-r", "__ns:=/a"])
    assert options.managed and options.autostart


def test_autostart_activates_or_leaves_the_node_unconfigured_with_the_reason(context):
    def no_weights(preset, **options):
        raise WeightsError(f"weights for preset '{preset.name}' not found: models/x.pt")

    started = ManagedDepthNode(engine_factory=lambda preset, **options: FakeEngine(preset, predict_ones, **options),
                               context=context, namespace="/autostart_ok")  # fmt: skip
    failed = ManagedDepthNode(engine_factory=no_weights, context=context, namespace="/autostart_failed")
    try:
        assert started.autostart() and started.shell.active
        assert not failed.autostart() and not failed.shell.active
        assert failed.trigger_shutdown() == TransitionCallbackReturn.SUCCESS  # unconfigured: shutdown allowed
    finally:
        started.close()
        for node in (started, failed):
            node.destroy_node()


@pytest.mark.slow
def test_segmentation_node_autostarts_from_the_command_line_and_shuts_down_through_its_service(tmp_path):
    peer = RosPeer()
    labels = peer.collect(Image, "/managed_seg/semantic/labels")
    image_pub = peer.publisher(Image, "/managed_seg/image")
    node = NodeProcess(TEST_PARAMETERS, tmp_path, "/managed_seg", module="dpt_ros.ros.segmentation_node",
                       extra_args=["--managed", "--autostart"])  # fmt: skip
    try:
        lifecycle = LifecycleClient(peer, "/managed_seg/segmentation_node")
        assert eventually(lambda: lifecycle.state() == State.PRIMARY_STATE_ACTIVE), node.output()
        frame = raw_image(header(stamp(7)), pattern_image(64, 48), "rgb8")
        assert publish_until(lambda: image_pub.publish(frame), lambda: labels.find(same_stamp(frame.header.stamp)))
        assert lifecycle.change(Transition.TRANSITION_ACTIVE_SHUTDOWN)
        assert lifecycle.state() == State.PRIMARY_STATE_FINALIZED
    finally:
        code = node.stop()
        peer.close()
    assert code == 0, node.output()
