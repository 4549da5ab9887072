"""ROS parameters <-> DepthNodeConfig, driven by the config's own parameter table (parameter_specs)."""

import copy
from collections.abc import Callable
from typing import Any

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, SetParametersResult
from rclpy.exceptions import InvalidParameterTypeException, InvalidParameterValueException
from rclpy.node import Node
from rclpy.parameter import Parameter

from dpt_ros.app.node_config import DepthNodeConfig, ParameterSpec, parameter_specs

_PARAMETER_TYPES = {
    bool: Parameter.Type.BOOL,
    int: Parameter.Type.INTEGER,
    float: Parameter.Type.DOUBLE,
    str: Parameter.Type.STRING,
}
_ARRAY_TYPES = {int: Parameter.Type.INTEGER_ARRAY, float: Parameter.Type.DOUBLE_ARRAY, str: Parameter.Type.STRING_ARRAY}


def parameter_type(spec: ParameterSpec) -> Parameter.Type:
    """The ROS parameter type of a spec, from its default's Python type."""
    if isinstance(spec.default, tuple):
        return _ARRAY_TYPES[spec.item_type]
    return _PARAMETER_TYPES[type(spec.default)]


def descriptor(spec: ParameterSpec, read_only: bool = True) -> ParameterDescriptor:
    """Description, type, range and read-only flag as `ros2 param describe` shows them.

    read_only=False leaves out the read-only flag of parameters that cannot change at runtime (a managed
    node accepts them while unconfigured and refuses them itself once configured).
    """
    result = ParameterDescriptor(
        name=spec.name,
        type=parameter_type(spec).value,
        description=spec.description,
        read_only=spec.read_only and read_only,
        additional_constraints=f"one of {list(spec.choices)}" if spec.choices else "",
    )
    if isinstance(spec.default, int) and spec.low is not None:
        result.integer_range = [IntegerRange(from_value=int(spec.low), to_value=int(spec.high), step=1)]
    elif spec.low is not None:
        result.floating_point_range = [FloatingPointRange(from_value=spec.low, to_value=spec.high, step=0.0)]
    return result


def declare_config(
    node: Node, config_type: type[DepthNodeConfig] = DepthNodeConfig, read_only: bool = True
) -> DepthNodeConfig:
    """Declare every parameter of `config_type` with a typed value and its descriptor (values from the params
    file / overrides) and return the validated config. Raises ValueError with the reason when a value is
    invalid. read_only: see `descriptor`.
    """
    values = {spec.name: _declare(node, spec, descriptor(spec, read_only)) for spec in parameter_specs(config_type)}
    return config_type.from_mapping(values)


def _declare(node: Node, spec: ParameterSpec, full_descriptor: ParameterDescriptor) -> Any:
    """Declare one parameter with a typed value; returns its value. Raises ValueError for a value of the wrong type.

    rclpy cannot tell the type of an empty list (it guesses a byte array), and a parameter declared by type
    alone stays uninitialised, which makes rclpy's GetParameters service answer nothing at all for any
    request naming it. So an array with an empty default is declared by type, writable, then given its full
    descriptor together with a typed value: the override's, or an empty array.
    """
    try:
        if not (isinstance(spec.default, tuple) and not spec.default):
            default = list(spec.default) if isinstance(spec.default, tuple) else spec.default
            return node.declare_parameter(spec.name, default, full_descriptor).value
        kind = parameter_type(spec)
        writable = copy.copy(full_descriptor)
        writable.read_only = False
        value = node.declare_parameter(spec.name, kind, writable).value  # the override's, or None
        if value is None:
            node.set_parameters([Parameter(spec.name, kind, [])])
        node.set_descriptor(spec.name, full_descriptor)
        return node.get_parameter(spec.name).value
    except (InvalidParameterTypeException, InvalidParameterValueException) as error:
        raise ValueError(f"parameter {spec.name}: {error}") from None


def watch_config(
    node: Node,
    get: Callable[[], DepthNodeConfig],
    apply: Callable[[DepthNodeConfig], None],
    frozen: Callable[[], bool] = lambda: False,
) -> None:
    """Validate parameter changes against the whole config; apply accepted ones, refuse with a reason.

    Read-only parameters are refused by rclpy itself before this runs. While `frozen()` (a configured managed
    node) parameters that cannot change at runtime are refused here, with the way to change them.
    """
    specs = {spec.name: spec for spec in parameter_specs(type(get()))}

    def on_set(parameters: list[Parameter]) -> SetParametersResult:
        fixed = [p.name for p in parameters if p.name in specs and specs[p.name].read_only]
        if fixed and frozen():
            return SetParametersResult(
                successful=False,
                reason=f"{', '.join(fixed)} cannot change while the node is configured: clean it up "
                "(lifecycle cleanup), set it, then configure again",
            )
        try:
            new_config = get().with_changes({p.name: p.value for p in parameters})
        except (ValueError, TypeError) as error:
            return SetParametersResult(successful=False, reason=str(error))
        apply(new_config)
        return SetParametersResult(successful=True)

    node.add_on_set_parameters_callback(on_set)
