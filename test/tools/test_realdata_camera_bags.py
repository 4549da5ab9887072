"""The real Raspberry Pi camera bags (ROS 1, one JPEG CompressedImage + plumb_bob CameraInfo each, no LiDAR)
through the tools: the bag reader's frame decode, `dpt-ros-depth-image` on the JPEG, and `dpt-ros-eval`,
which must say there is no LiDAR and exit 2."""

import dataclasses

import cv2
import numpy as np
import pytest

from dpt_ros.model.engine import InferenceEngine
from dpt_ros.model.presets import PRESETS
from dpt_ros.pipeline.image_codec import decode_compressed_image
from dpt_ros.tools import depth_image, evaluate_bag
from dpt_ros.tools.demo import DEMO_ARCHITECTURE, DEMO_INPUT_SIZE, PRESET, write_random_weights
from dpt_ros.tools.depth_image import depth_png
from support.realdata import CAMERA_BAGS, camera_bag_frame, real_data

pytestmark = real_data(*CAMERA_BAGS)
BAG_IDS = [path.stem for path in CAMERA_BAGS]
SIZES = {"aruco_images": (1280, 960), "aruco_marker": (1280, 720)}  # (width, height), the README's


@pytest.mark.parametrize("bag", CAMERA_BAGS, ids=BAG_IDS)
def test_the_real_jpeg_decodes_at_its_camera_info_size(bag):
    image, info = camera_bag_frame(bag)
    assert image.format == "jpg" and info.distortion_model == "plumb_bob" and len(info.D) == 5
    rgb = decode_compressed_image(np.asarray(image.data, dtype=np.uint8), image.format)
    assert (rgb.shape[1], rgb.shape[0]) == (info.width, info.height) == SIZES[bag.stem]
    expected = cv2.imdecode(np.asarray(image.data, dtype=np.uint8), cv2.IMREAD_COLOR)[..., ::-1]
    np.testing.assert_array_equal(rgb, expected)
    assert rgb.std() > 10  # a real picture, not a grey fill


@pytest.fixture(scope="module")
def reduced_weights(tmp_path_factory):
    """The demo's seeded reduced DPT (its head's bias raised so the output varies over the image)."""
    path = tmp_path_factory.mktemp("weights") / "reduced.pt"
    write_random_weights(path, seed=0)
    return path


@pytest.mark.parametrize("bag", CAMERA_BAGS, ids=BAG_IDS)
def test_depth_image_cli_on_the_real_jpeg_equals_the_engine_on_the_nodes_decode(bag, reduced_weights, tmp_path,
                                                                                monkeypatch, capsys):
    image, _ = camera_bag_frame(bag)
    jpeg = tmp_path / f"{bag.stem}.jpg"
    jpeg.write_bytes(np.asarray(image.data, dtype=np.uint8).tobytes())
    architecture = {k: tuple(v) if isinstance(v, list) else v for k, v in DEMO_ARCHITECTURE.items()}
    reduced = dataclasses.replace(PRESETS[PRESET].with_architecture(**architecture), input_size=DEMO_INPUT_SIZE)
    monkeypatch.setitem(PRESETS, PRESET, reduced)  # the preset's pipeline, a network that runs in a second
    out = tmp_path / "out"
    assert depth_image.main([str(jpeg), "--preset", PRESET, "--weights", str(reduced_weights), "--device", "cpu",
                             "--out", str(out)]) == 0
    assert "wrote 1 result(s)" in capsys.readouterr().out
    written = cv2.imread(str(out / f"{bag.stem}_depth.png"), cv2.IMREAD_UNCHANGED)
    assert written.dtype == np.uint16 and (written.shape[1], written.shape[0]) == SIZES[bag.stem]
    rgb = decode_compressed_image(np.asarray(image.data, dtype=np.uint8), image.format)  # the node's decoder
    expected = depth_png(InferenceEngine(reduced, reduced_weights).infer(rgb), metric=False)
    assert expected.min() == 0 and expected.max() == 65535  # relative depth spans the PNG's range
    np.testing.assert_array_equal(written, expected)


@pytest.mark.parametrize("bag", CAMERA_BAGS, ids=BAG_IDS)
def test_eval_says_there_is_no_lidar_and_exits_2(bag, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # where its default runs/ folder would go
    assert evaluate_bag.main([str(bag), "--allow-random-weights", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("dpt-ros-eval: no LiDAR messages (sensor_msgs/msg/PointCloud2) in the bag"), err
    assert "/raspicam_node/image/compressed" in err  # and says what the bag does have
    assert list(tmp_path.iterdir()) == []  # stopped before loading a model or writing anything
