"""ROS parameters <-> DepthNodeConfig, driven by the config's own parameter table (parameter_specs)."""

from collections.abc import Callable

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


def descriptor(spec: ParameterSpec) -> ParameterDescriptor:
    """Description, type, range and read-only flag as `ros2 param describe` shows them."""
    result = ParameterDescriptor(
        name=spec.name,
        type=parameter_type(spec).value,
        description=spec.description,
        read_only=spec.read_only,
        additional_constraints=f"one of {list(spec.choices)}" if spec.choices else "",
    )
    if isinstance(spec.default, int) and spec.low is not None:
        result.integer_range = [IntegerRange(from_value=int(spec.low), to_value=int(spec.high), step=1)]
    elif spec.low is not None:
        result.floating_point_range = [FloatingPointRange(from_value=spec.low, to_value=spec.high, step=0.0)]
    return result


def declare_config(node: Node, config_type: type[DepthNodeConfig] = DepthNodeConfig) -> DepthNodeConfig:
    """Declare every parameter of `config_type` (values from the params file / overrides) and return the
    validated config. Raises ValueError with the reason when a value is invalid.
    """
    values = {}
    for spec in parameter_specs(config_type):
        # rclpy cannot tell the type of an empty list (it guesses a byte array), so an empty default is
        # declared by type; its value is then None unless the params file or an override sets it.
        default = (list(spec.default) or parameter_type(spec)) if isinstance(spec.default, tuple) else spec.default
        try:
            value = node.declare_parameter(spec.name, default, descriptor(spec)).value
        except (InvalidParameterTypeException, InvalidParameterValueException) as error:
            raise ValueError(f"parameter {spec.name}: {error}") from None
        values[spec.name] = spec.default if value is None else value
    return config_type.from_mapping(values)


def watch_config(node: Node, get: Callable[[], DepthNodeConfig], apply: Callable[[DepthNodeConfig], None]) -> None:
    """Validate runtime parameter changes against the whole config; apply accepted ones, reject with a reason.

    Read-only parameters are refused by rclpy itself before this runs.
    """

    def on_set(parameters: list[Parameter]) -> SetParametersResult:
        try:
            new_config = get().with_changes({p.name: p.value for p in parameters})
        except (ValueError, TypeError) as error:
            return SetParametersResult(successful=False, reason=str(error))
        apply(new_config)
        return SetParametersResult(successful=True)

    node.add_on_set_parameters_callback(on_set)
