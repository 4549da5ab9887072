"""Parameter tools against the nodes, through rclpy's real parameter services (what `ros2 param dump/describe/set`
and rqt_reconfigure send): list, describe, get every declared name at once, set valid / invalid / read-only.

The nodes run in this process with stand-in engines (no network is needed to serve parameters); the client
is a separate rclpy context, so every request crosses DDS.
"""

import threading
import time
from typing import Any

import pytest
import rclpy
from rcl_interfaces.msg import ParameterType
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter, parameter_value_to_python
from rclpy.parameter_client import AsyncParameterClient

from dpt_ros.app.node_config import parameter_specs
from dpt_ros.ros.depth_node import DepthNode
from dpt_ros.ros.params import parameter_type
from dpt_ros.ros.segmentation_node import SegmentationNode
from support.depth_node_harness import DISCOVERY_TIMEOUT_S, RosPeer
from support.fake_engines import fake_engine_factory

pytestmark = pytest.mark.ros


def result_of(future: Any, timeout_s: float = DISCOVERY_TIMEOUT_S) -> Any:
    """The future's result; the peer's executor thread completes it."""
    deadline = time.monotonic() + timeout_s
    while not future.done():
        assert time.monotonic() < deadline, "no answer from the node's parameter service"
        time.sleep(0.01)
    return future.result()


@pytest.fixture(params=[DepthNode, SegmentationNode], ids=["depth_node", "segmentation_node"])
def served(request):
    """(node type, a parameter client of that node): the node spins in its own context and thread."""
    node_type = request.param
    namespace = f"/params_{node_type.KIND.name}"
    context = rclpy.Context()
    rclpy.init(context=context)
    node = node_type(engine_factory=fake_engine_factory(), context=context, namespace=namespace)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    peer = RosPeer()
    client = AsyncParameterClient(peer.node, f"{namespace}/{node_type.KIND.name}")
    assert client.wait_for_services(DISCOVERY_TIMEOUT_S)
    yield node_type, client
    peer.close()
    node.close()
    executor.shutdown()
    node.destroy_node()
    rclpy.shutdown(context=context)
    spinner.join(timeout=10)


def test_list_describe_and_get_every_parameter_at_once(served):
    node_type, client = served
    specs = {spec.name: spec for spec in parameter_specs(node_type.KIND.config_type)}
    listed = set(result_of(client.list_parameters()).result.names)
    assert set(specs) <= listed

    names = sorted(listed)
    values = result_of(client.get_parameters(names)).values
    assert len(values) == len(names)  # one uninitialised parameter would empty the whole answer
    by_name = dict(zip(names, values))
    assert all(by_name[name].type != ParameterType.PARAMETER_NOT_SET for name in specs)
    assert by_name["cameras"].type == ParameterType.PARAMETER_STRING_ARRAY and list(by_name["cameras"].string_array_value) == []

    descriptors = {d.name: d for d in result_of(client.describe_parameters(sorted(specs))).descriptors}
    for name, spec in specs.items():
        described = descriptors[name]
        assert described.description == spec.description and described.description
        assert described.type == parameter_type(spec).value
        assert described.read_only == spec.read_only, name
        if spec.low is not None:
            ranges = described.integer_range or described.floating_point_range
            assert (ranges[0].from_value, ranges[0].to_value) == (spec.low, spec.high), name
        if spec.choices:
            assert all(choice in described.additional_constraints for choice in spec.choices)


def test_set_valid_invalid_and_read_only(served):
    _, client = served

    def set_one(name: str, value: Any) -> Any:
        (result,) = result_of(client.set_parameters([Parameter(name, value=value)])).results
        return result

    def value_of(name: str) -> Any:
        (value,) = result_of(client.get_parameters([name])).values
        return parameter_value_to_python(value)

    assert set_one("output_scale", 0.5).successful
    assert value_of("output_scale") == 0.5

    outside = set_one("output_scale", 2.0)  # the descriptor's range
    assert not outside.successful and "range" in outside.reason
    inverted = set_one("colored_range", [5.0, 1.0])  # the config's own check
    assert not inverted.successful and "low < high" in inverted.reason
    wrong_type = set_one("cloud_stride", "two")
    assert not wrong_type.successful and wrong_type.reason
    assert value_of("output_scale") == 0.5 and list(value_of("colored_range")) == [0.0, 0.0]
    assert value_of("cloud_stride") == 1

    read_only = set_one("device", "cuda")
    assert not read_only.successful and "read-only" in read_only.reason.lower()
    assert value_of("device") == "auto"
