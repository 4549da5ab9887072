"""Live replay through the real depth node gives the same depth as the offline evaluator's core path.

The node runs in this process (real rclpy/DDS, its real pipeline and LiDAR alignment) with the network
replaced by an oracle that returns an affine distortion of the scene's exact inverse depth, so the node must
find metres from the LiDAR. `dpt-ros-replay` (a subprocess) plays the sample bag into it and records
'depth'; the offline path (`reproduce_node_depth`) runs on the same bag with the same oracle and settings.
"""

import subprocess
import sys

import numpy as np
import pytest
from rclpy.parameter import Parameter

from dpt_ros.app.node_config import DepthNodeConfig
from dpt_ros.ros.depth_node import DepthNode
from dpt_ros.sim.drive import render_sequence
from dpt_ros.tools.demo import compare_live_and_offline, recorded_depth
from dpt_ros.tools.evaluate_bag import EvaluationOptions, reproduce_node_depth
from dpt_ros.tools.make_sample_bag import sample_config, write_sample_bag
from support.environment import subprocess_env
from support.fake_engines import FakeEngine, content_key, lookup_by_content
from support.ros_runtime import SpinningContext

pytestmark = pytest.mark.ros

NAMESPACE = "/live_replay"
N_FRAMES = 6
CONFIG = sample_config(frames=N_FRAMES, width=160, height=120)
SCALE, SHIFT = 2.0, 0.05  # the oracle predicts SCALE / z + SHIFT


def oracle() -> FakeEngine:
    """Stands in for the network in the node and offline: exact relative inverse depth SCALE / z + SHIFT per image."""
    depth_by_image = {content_key(f.camera.rgb): f.camera.depth for f in render_sequence(CONFIG)}
    return FakeEngine("dpt_hybrid_midas", lookup_by_content(depth_by_image, lambda z: (SCALE / z + SHIFT).astype(np.float32)))


def node_parameters() -> dict:
    return {"model": "dpt_hybrid_midas", "device": "cpu", "lidar_alignment": True, "publish_cloud": False,
            "skip_when_unsubscribed": False,
            "lidar_to_camera": [float(v) for v in CONFIG.rig.T_optical_lidar.reshape(-1)]}


@pytest.fixture()
def running_node():
    engine = oracle()
    runtime = SpinningContext()
    node = runtime.add(DepthNode(engine_factory=lambda preset, **_: engine, context=runtime.context,
                                 namespace=NAMESPACE,
                                 parameter_overrides=[Parameter(k, value=v) for k, v in node_parameters().items()]))
    yield node
    node.close()
    runtime.close()


@pytest.mark.timing  # the node must answer every frame replayed 0.4 s apart (a slower answer drops the next)
def test_live_node_depth_equals_offline_core_path(tmp_path, running_node):
    bag = write_sample_bag(tmp_path / "bag", "mcap", CONFIG).path
    recording = tmp_path / "recorded"
    env = subprocess_env()  # conftest: localhost discovery, random domain, SHM profile
    remaps = [f"/camera/image_raw:={NAMESPACE}/image", f"/camera/camera_info:={NAMESPACE}/camera_info",
              f"/lidar/points:={NAMESPACE}/lidar/points"]
    result = subprocess.run(
        [sys.executable, "-m", "dpt_ros.tools.replay_bag", str(bag), "--rate", "0.25", "--remap", *remaps,
         "--wait-for-subscriber", f"{NAMESPACE}/image", "--record", str(recording),
         "--record-topics", f"{NAMESPACE}/depth", f"{NAMESPACE}/depth/relative", "--linger", "2"],
        env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr

    live = recorded_depth(recording, namespace=NAMESPACE)
    config = DepthNodeConfig.from_mapping(node_parameters())
    offline = reproduce_node_depth(bag, oracle(), "relative_inverse_depth",
                                   EvaluationOptions(node_config=config, progress=False))
    assert len(offline) == N_FRAMES
    comparison = compare_live_and_offline(live, offline)
    assert comparison.n_live == N_FRAMES and comparison.n_compared == N_FRAMES
    assert comparison.kinds == ("/depth",)  # metres on every frame: the alignment held throughout
    assert comparison.mismatched_validity == 0
    assert comparison.max_abs_difference < 1e-4  # metres; float32 rounding only
    # and the depth is right: the oracle is exact, so only LiDAR noise and pixel rounding move the fit
    truth = next(iter(render_sequence(CONFIG))).camera.depth
    first = live[min(live)][1]
    assert np.nanmedian(np.abs(first - truth) / truth) < 0.01
