"""launch/depth.launch.py, checked without `launch` installed: parse it and compare names."""

import ast
from collections.abc import Callable

import yaml

from dpt_ros.app.node_config import parameter_specs
from dpt_ros.ros.managed import parse_start_options
from support.environment import REPO_ROOT

LAUNCH_FILE = REPO_ROOT / "launch" / "depth.launch.py"
ALLOWED_IMPORTS = ("launch", "launch_ros", "ament_index_python", "os")


def _tree() -> ast.Module:
    return ast.parse(LAUNCH_FILE.read_text(), filename=str(LAUNCH_FILE))


def _node_call(tree: ast.Module) -> ast.Call:
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", None) == "Node"]
    assert len(calls) == 1
    return calls[0]


def _keyword(call: ast.Call, name: str) -> ast.expr:
    return next(k.value for k in call.keywords if k.arg == name)


def test_only_public_launch_api_is_imported() -> None:
    for node in ast.walk(_tree()):
        if isinstance(node, ast.ImportFrom):
            assert node.module.split(".")[0] in ALLOWED_IMPORTS, node.module
            assert not any(part.startswith("_") for part in node.module.split(".")), node.module
            assert not any(alias.name.startswith("_") for alias in node.names)
        elif isinstance(node, ast.Import):
            assert all(alias.name.split(".")[0] in ALLOWED_IMPORTS for alias in node.names)


def test_every_parameter_passed_exists_in_the_node_and_the_yaml() -> None:
    tree = _tree()
    passed = {
        target.slice.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Assign)
        for target in node.targets
        if isinstance(target, ast.Subscript) and getattr(target.value, "id", None) == "overrides"
    }
    assert passed == {"model", "weights", "image_transport", "cameras"}
    declared = {spec.name for spec in parameter_specs()}
    in_yaml = set(yaml.safe_load((REPO_ROOT / "config" / "depth.yaml").read_text())["/**"]["ros__parameters"])
    assert passed <= declared and passed <= in_yaml
    # overrides is the only dict handed to the node besides the params file
    parameters = _keyword(_node_call(tree), "parameters")
    assert isinstance(parameters, ast.List) and getattr(parameters.elts[1], "id", None) == "overrides"


def test_launch_arguments_cover_namespace_topics_params_and_model() -> None:
    tree = _tree()
    arguments = next(
        node.value for node in ast.walk(tree)
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == "LAUNCH_ARGUMENTS"
    )
    names = {key.value for key in arguments.keys}
    assert {"namespace", "image_topic", "camera_info_topic", "params_file", "model"} <= names
    call = _node_call(tree)
    assert ast.literal_eval(_keyword(call, "executable")) == "depth_node"
    remapped = {ast.literal_eval(pair.elts[0]) for pair in _keyword(call, "remappings").elts}
    assert remapped == {"image", "image/compressed", "camera_info"}  # the node's input topic names


def test_console_script_is_registered() -> None:
    setup = (REPO_ROOT / "setup.py").read_text()
    assert '"depth_node = dpt_ros.ros.depth_node:main"' in setup


def start_arguments(tree: ast.Module) -> Callable[[str, str], list[str]]:
    """The launch file's own `_start_arguments` (plain Python), compiled from its source."""
    (function,) = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "_start_arguments"]
    namespace: dict = {}
    exec(compile(ast.Module([function], type_ignores=[]), str(LAUNCH_FILE), "exec"), namespace)
    return namespace["_start_arguments"]


def test_managed_and_autostart_arguments_reach_the_node_as_flags_it_understands() -> None:
    tree = _tree()
    names = {key.value for key in next(
        node.value for node in ast.walk(tree)
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == "LAUNCH_ARGUMENTS"
    ).keys}  # fmt: skip
    assert {"managed", "autostart"} <= names
    assert isinstance(_keyword(_node_call(tree), "arguments"), ast.Call)
    flags = start_arguments(tree)
    assert flags("false", "true") == []
    for autostart in (True, False):
        options = parse_start_options(["depth_node", *flags("true", str(autostart).lower()), "--ros-args"])
        assert options.managed and options.autostart is autostart
