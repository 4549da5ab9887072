"""launch/segmentation.launch.py, launch/perception.launch.py and their params files, checked without
`launch` installed: parse the launch files, validate the YAML against the node's parameter table."""

import ast

import pytest
import yaml

from dpt_ros.app.node_config import parameter_specs
from dpt_ros.app.segmentation_config import SegmentationNodeConfig
from dpt_ros.ros.managed import parse_start_options
from support.environment import REPO_ROOT

LAUNCH_DIR = REPO_ROOT / "launch"
ALLOWED_IMPORTS = ("launch", "launch_ros", "ament_index_python", "os")
DECLARED = {spec.name for spec in parameter_specs(SegmentationNodeConfig)}


def _tree(name: str) -> ast.Module:
    path = LAUNCH_DIR / name
    return ast.parse(path.read_text(), filename=str(path))


def _assigned(tree: ast.Module, name: str) -> ast.expr:
    return next(
        node.value for node in ast.walk(tree)
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == name
    )


def _calls(tree: ast.Module, function: str) -> list[ast.Call]:
    return [n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", None) == function]


def _keyword(call: ast.Call, name: str) -> ast.expr:
    return next(k.value for k in call.keywords if k.arg == name)


@pytest.mark.parametrize("name", ["segmentation.launch.py", "perception.launch.py"])
def test_only_public_launch_api_is_imported(name: str) -> None:
    for node in ast.walk(_tree(name)):
        if isinstance(node, ast.ImportFrom):
            assert node.module.split(".")[0] in ALLOWED_IMPORTS, node.module
            assert not any(part.startswith("_") for part in node.module.split(".")), node.module
        elif isinstance(node, ast.Import):
            assert all(alias.name.split(".")[0] in ALLOWED_IMPORTS for alias in node.names)


def test_segmentation_launch_starts_the_segmentation_node_with_real_parameter_names() -> None:
    tree = _tree("segmentation.launch.py")
    overridable = set(ast.literal_eval(_assigned(tree, "PARAMETER_ARGUMENTS")))
    assert overridable == {"model", "weights", "segmentation_model", "segmentation_weights", "image_transport"}
    assert overridable <= DECLARED
    (call,) = _calls(tree, "Node")
    assert ast.literal_eval(_keyword(call, "executable")) == "segmentation_node"
    remapped = {ast.literal_eval(pair.elts[0]) for pair in _keyword(call, "remappings").elts}
    assert remapped == {"image", "image/compressed", "camera_info"}


def test_perception_launch_includes_segmentation_launch_with_the_perception_params() -> None:
    source = (LAUNCH_DIR / "perception.launch.py").read_text()
    tree = _tree("perception.launch.py")
    assert len(_calls(tree, "IncludeLaunchDescription")) == 1
    assert '"segmentation.launch.py"' in source and '"perception.yaml"' in source


@pytest.mark.parametrize("name, has_depth", [("segmentation.yaml", False), ("perception.yaml", True)])
def test_params_files_are_valid_node_configurations(name: str, has_depth: bool) -> None:
    values = yaml.safe_load((REPO_ROOT / "config" / name).read_text())["/**"]["ros__parameters"]
    assert set(values) <= DECLARED
    config = SegmentationNodeConfig.from_mapping(values)
    assert bool(config.model) == has_depth
    if has_depth:
        assert config.output_options().cloud_dropped_labels == (2, 5)  # sky, ceiling


def test_console_script_is_registered() -> None:
    assert '"segmentation_node = dpt_ros.ros.segmentation_node:main"' in (REPO_ROOT / "setup.py").read_text()


def test_docs_list_every_segmentation_parameter() -> None:
    docs = (REPO_ROOT / "docs" / "segmentation.md").read_text()
    added = DECLARED - {spec.name for spec in parameter_specs()} | {"model"}
    assert added == {
        "model", "segmentation_model", "segmentation_weights", "class_table", "publish_semantic_colored",
        "publish_semantic_overlay", "overlay_alpha", "ignore_classes",
    }
    assert all(f"`{name}`" in docs for name in added)


def test_managed_and_autostart_arguments_reach_the_node_as_flags_it_understands() -> None:
    tree = _tree("segmentation.launch.py")
    declared = {key.value for key in _assigned(tree, "LAUNCH_ARGUMENTS").keys if key is not None}  # None: **spread
    assert {"managed", "autostart"} <= declared
    (call,) = _calls(tree, "Node")
    assert isinstance(_keyword(call, "arguments"), ast.Call)
    (function,) = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "_start_arguments"]
    namespace: dict = {}
    exec(compile(ast.Module([function], type_ignores=[]), "segmentation.launch.py", "exec"), namespace)
    flags = namespace["_start_arguments"]
    assert flags("false", "true") == []
    options = parse_start_options(["segmentation_node", *flags("true", "true"), "--ros-args"])
    assert options.managed and options.autostart
