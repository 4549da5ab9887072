"""From the node configuration to the engine: every engine option the parameters name reaches it."""

import pytest

from dpt_ros.app import depth_setup
from dpt_ros.app.node_config import DepthNodeConfig
from support.fake_engines import FakeEngine


@pytest.mark.parametrize("compile_model, cuda_graphs", [(False, False), (True, False), (True, True)])
def test_compile_and_cuda_graphs_reach_the_engine(compile_model, cuda_graphs) -> None:
    config = DepthNodeConfig(model="dpt_hybrid_kitti", device="cuda", compile=compile_model, cuda_graphs=cuda_graphs)

    def on_capture(shape, captured_before):
        pass

    _, engine = depth_setup.build_depth_pipeline(config, on_graph_capture=on_capture, engine_factory=FakeEngine)
    assert engine.options["compile_model"] is compile_model and engine.options["cuda_graphs"] is cuda_graphs
    assert engine.options["on_graph_capture"] is on_capture
