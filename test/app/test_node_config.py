"""The depth node's parameter table: defaults, validation, the shipped YAML file."""


import pytest
import yaml

from dpt_ros.app.node_config import DepthNodeConfig, parameter_specs
from support.environment import REPO_ROOT


def yaml_parameters() -> dict:
    return yaml.safe_load((REPO_ROOT / "config" / "depth.yaml").read_text())["/**"]["ros__parameters"]


def test_every_field_is_a_described_parameter() -> None:
    specs = parameter_specs()
    assert [s.name for s in specs] == list(DepthNodeConfig.__dataclass_fields__)
    for spec in specs:
        assert len(spec.description) > 20, spec.name
        assert (spec.low is None) == (spec.high is None), spec.name


def test_demo_yaml_is_a_valid_overlay() -> None:
    demo = yaml.safe_load((REPO_ROOT / "config" / "depth_demo.yaml").read_text())["/**"]["ros__parameters"]
    config = DepthNodeConfig.from_mapping({**yaml_parameters(), **demo})
    assert config.allow_random_weights and config.parsed_architecture_overrides()["embed_dim"] == 64


def test_shipped_yaml_names_every_parameter_and_equals_the_defaults() -> None:
    values = yaml_parameters()
    assert set(values) == {s.name for s in parameter_specs()}
    assert DepthNodeConfig.from_mapping(values) == DepthNodeConfig()


@pytest.mark.parametrize(
    "changes, reason",
    [
        ({"model": "dpt_large_ade20k"}, "not a depth preset"),
        ({"model": "nope"}, "not a depth preset"),
        ({"precision": "fp8"}, "not one of"),
        ({"device": "gpu"}, "device"),
        ({"cloud_stride": 0}, "outside"),
        ({"max_range": -1.0}, "outside"),
        ({"output_scale": 2.0}, "outside"),
        ({"input_size": [100, 64]}, "multiples of 32"),
        ({"input_size": [64]}, "must be like"),
        ({"colored_range": [2.0, 1.0]}, "low < high"),
        ({"architecture_overrides": '{"depth": 2}'}, "allow_random_weights"),
        ({"architecture_overrides": "{oops", "allow_random_weights": True}, "JSON"),
        ({"cloud_rgb": 1}, "must be like"),
        ({"cuda_graphs": True, "device": "cpu"}, "cuda_graphs needs a CUDA device"),
        ({"cameras": ["front", "front"]}, "twice"),
        ({"cameras": ["front camera"]}, "not a relative ROS name"),
        ({"cameras": ["/front"]}, "not a relative ROS name"),
        ({"cameras": [f"cam{i}" for i in range(9)]}, "must be like"),
        ({"cameras": ["front", "left"], "lidar_alignment": True}, "single camera only"),
        ({"batch_wait": 2.0}, "outside"),
        ({"prompt_source": "sonar"}, "not one of"),
        ({"prompt_to_camera": [1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]}, "must be like"),
        ({"prompt_to_camera": [1.0] * 16}, "prompt_to_camera"),
        ({"prompt_min_fraction": 1.5}, "outside"),
        ({"not_a_parameter": 1}, "unknown"),
    ],
)
def test_invalid_values_are_rejected_with_a_reason(changes, reason) -> None:
    with pytest.raises(ValueError, match=reason):
        DepthNodeConfig.from_mapping(changes)
    if "not_a_parameter" not in changes:
        with pytest.raises(ValueError, match=reason):
            DepthNodeConfig().with_changes(changes)


def test_cameras_are_relative_names() -> None:
    config = DepthNodeConfig.from_mapping({"cameras": ["front", "rig/left_2"]})
    assert config.cameras == ("front", "rig/left_2") and DepthNodeConfig().cameras == ()


def test_values_from_ros_are_coerced_and_output_options_follow() -> None:
    config = DepthNodeConfig.from_mapping(
        {"max_range": 20, "input_size": [96, 64], "colored_range": [0.5, 4], "cloud_stride": 2,
         "architecture_overrides": '{"taps": [0, 1, 2, 3]}', "allow_random_weights": True}
    )
    assert config.max_range == 20.0 and config.input_size == (96, 64)
    assert config.parsed_architecture_overrides() == {"taps": (0, 1, 2, 3)}
    options = config.output_options()
    assert (options.max_range, options.cloud_stride, options.colored_range) == (20.0, 2, (0.5, 4.0))
    assert DepthNodeConfig().output_options().colored_range is None


def test_docs_list_every_parameter() -> None:
    """Each parameter is documented: the node's own in docs/depth_node.md, LiDAR ones in docs/lidar_alignment.md,
    depth-prompt ones in docs/prompt_depth.md."""
    node_docs = (REPO_ROOT / "docs" / "depth_node.md").read_text()
    lidar_docs = (REPO_ROOT / "docs" / "lidar_alignment.md").read_text()
    prompt_docs = (REPO_ROOT / "docs" / "prompt_depth.md").read_text()
    missing = [
        spec.name for spec in parameter_specs()
        if f"| `{spec.name}` |" not in node_docs and f"`{spec.name}`" not in lidar_docs
        and f"| `{spec.name}` |" not in prompt_docs
    ]
    assert not missing, f"undocumented parameters: {missing}"


def test_prompt_parameters_build_the_prompt_settings() -> None:
    config = DepthNodeConfig.from_mapping(
        {"prompt_densify": "nearest", "prompt_long_side": 128, "prompt_min_span": 0.2, "lidar_min_range": 1,
         "prompt_to_camera": [0.1, 0, 0, 0, 0, 0, 1]}
    )
    settings = config.prompt_settings()
    assert (settings.method, settings.long_side, settings.min_span_m, settings.min_range) == ("nearest", 128, 0.2, 1.0)
    assert config.prompt_extrinsic()[0, 3] == 0.1 and DepthNodeConfig().prompt_extrinsic() is None
