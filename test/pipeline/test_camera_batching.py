"""Multi-camera batching without ROS: newest image per camera, grouping by size, one forward pass per group."""

import threading
import time

import numpy as np
import pytest
import torch

from dpt_ros.app.depth_setup import build_depth_pipeline
from dpt_ros.app.node_config import DepthNodeConfig
from dpt_ros.geometry.camera import PinholeIntrinsics
from dpt_ros.pipeline.batching import LatestPerCamera, group_by_image_size
from dpt_ros.pipeline.depth import Frame, OutputOptions
from support.depth_node_harness import TEST_PARAMETERS, pattern_image

# --- newest image per camera ------------------------------------------------------------------------------


def test_a_newer_image_replaces_only_its_own_cameras_pending_image() -> None:
    slots: LatestPerCamera[str] = LatestPerCamera(["front", "left"])
    dropped = {"front": 0, "left": 0}
    for camera, image in [("front", "f1"), ("left", "l1"), ("front", "f2"), ("front", "f3"), ("left", "l2")]:
        if slots.put(camera, image) is not None:
            dropped[camera] += 1
    assert dropped == {"front": 2, "left": 1}
    assert slots.take_all() == {"front": "f3", "left": "l2"}
    assert slots.take_all(timeout_s=0.01) is None  # nothing left: no backlog


@pytest.mark.timing
def test_take_all_waits_briefly_for_the_other_cameras() -> None:
    slots: LatestPerCamera[str] = LatestPerCamera(["front", "left"])
    slots.put("left", "l1")  # the order of arrival does not matter: results come in camera order
    threading.Timer(0.1, lambda: slots.put("front", "f1")).start()
    started = time.monotonic()
    taken = slots.take_all(gather_s=10.0)
    assert list(taken.items()) == [("front", "f1"), ("left", "l1")]
    assert time.monotonic() - started < 5.0  # returned once every camera had an image, not after gather_s

    slots.put("front", "f2")  # left is silent: wait gather_s, then go with what is there
    started = time.monotonic()
    assert slots.take_all(gather_s=0.2) == {"front": "f2"}
    assert 0.15 <= time.monotonic() - started < 5.0


def test_close_wakes_a_waiting_worker_and_unknown_cameras_are_refused() -> None:
    slots: LatestPerCamera[int] = LatestPerCamera(["front"])
    results = []
    worker = threading.Thread(target=lambda: results.append(slots.take_all()))
    worker.start()
    slots.close()
    worker.join(timeout=5)
    assert not worker.is_alive() and results == [None]
    slots.put("front", 4)
    assert slots.take_all(timeout_s=0) is None
    with pytest.raises(ValueError, match="unknown camera"):
        slots.put("rear", 5)
    with pytest.raises(ValueError, match="distinct"):
        LatestPerCamera(["front", "front"])


# --- grouping and batched inference --------------------------------------------------------------------------


def test_cameras_are_grouped_by_image_size_in_order() -> None:
    frames = {
        "front": Frame(np.zeros((120, 160, 3), np.uint8)),
        "left": Frame(np.zeros((100, 150, 3), np.uint8)),
        "right": Frame(np.zeros((120, 160, 3), np.uint8)),
        "rear": Frame(np.zeros((160, 120, 3), np.uint8)),  # same pixel count, other size: its own group
    }
    assert group_by_image_size(frames) == [["front", "right"], ["left"], ["rear"]]
    assert group_by_image_size({}) == []


class CountingBackend:
    """Wraps the real engine and records the size of every forward pass."""

    def __init__(self, engine) -> None:
        self.engine, self.batch_sizes = engine, []

    def infer(self, rgb):
        self.batch_sizes.append(1)
        return self.engine.infer(rgb)

    def infer_batch(self, images):
        self.batch_sizes.append(len(images))
        return self.engine.infer_batch(images)


@pytest.fixture(scope="module")
def pipeline():
    torch.manual_seed(0)
    config = DepthNodeConfig.from_mapping({**TEST_PARAMETERS, "model": "dpt_hybrid_kitti"})
    depth_pipeline, engine = build_depth_pipeline(config)
    with torch.no_grad():  # random weights can leave the head's final ReLU all zero: keep depths informative
        engine.model.scratch.output_conv[4].bias.fill_(1.0)
    depth_pipeline.engine = CountingBackend(engine)
    return depth_pipeline


def _camera_frame(width: int, height: int, shift: int) -> Frame:
    rgb = np.roll(pattern_image(width, height), shift, axis=1)  # every camera sees something different
    return Frame(rgb, PinholeIntrinsics(100.0, 100.0, (width - 1) / 2, (height - 1) / 2, width, height))


def test_a_batch_of_n_equals_n_single_frames_and_mixed_sizes_run_as_separate_batches(pipeline) -> None:
    frames = {
        "front": _camera_frame(160, 120, 0),
        "left": _camera_frame(150, 100, 7),
        "right": _camera_frame(160, 120, 40),
        "rear": _camera_frame(160, 120, 90),
    }
    options = OutputOptions(max_range=1e4)
    pipeline.engine.batch_sizes.clear()
    batched = {}
    for cameras in group_by_image_size(frames):
        outputs = pipeline.process_batch(
            [frames[c] for c in cameras], options, want_cloud=[True] * len(cameras), want_colored=[False] * len(cameras)
        )
        batched.update(zip(cameras, outputs))
    assert pipeline.engine.batch_sizes == [3, 1]  # front + right + rear in one forward pass, left alone

    for camera, frame in frames.items():
        single = pipeline.process(frame, options, want_cloud=True)
        depth = batched[camera].depth.values
        assert depth.shape == frame.rgb.shape[:2] and np.isfinite(depth).mean() > 0.5, camera
        # 1e-5 relative: these random "metres" are ~170, where float32 values are 1.5e-5 apart
        np.testing.assert_allclose(depth, single.depth.values, rtol=1e-5, atol=1e-5, equal_nan=True, err_msg=camera)
        assert batched[camera].cloud.data.shape == single.cloud.data.shape, camera
        assert batched[camera].camera == frame.camera and "inference" in batched[camera].timings_ms
    assert not np.allclose(batched["front"].depth.values, batched["right"].depth.values, equal_nan=True)


def test_output_wishes_are_per_frame_and_must_match_the_frames(pipeline) -> None:
    frames = [_camera_frame(64, 48, 0), _camera_frame(64, 48, 5)]
    first, second = pipeline.process_batch(frames, OutputOptions(), want_cloud=[True, False],
                                           want_colored=[False, True])  # fmt: skip
    assert first.cloud is not None and first.colored is None
    assert second.cloud is None and second.colored.shape == (48, 64, 3)
    with pytest.raises(ValueError, match="flags"):
        pipeline.process_batch(frames, OutputOptions(), want_cloud=[True], want_colored=[False, False])
