"""Where a sensor -> camera transform comes from: a parameter, a shared frame_id, or TF (absent here)."""

import numpy as np
import pytest
from std_msgs.msg import Header

from dpt_ros.ros import lidar_input
from dpt_ros.ros.lidar_input import NO_EXTRINSIC, SensorTransform


def test_static_parameter_wins_and_a_shared_frame_needs_no_lookup(monkeypatch):
    monkeypatch.setattr(lidar_input, "tf_available", lambda: False)
    image = Header(frame_id="camera_optical")
    static = np.eye(4)
    static[0, 3] = 0.1
    fixed = SensorTransform(None, static, 0.05, NO_EXTRINSIC)
    assert fixed.source == lidar_input.PARAMETER and fixed.lookup(image, "anything")[0] is static
    registered = SensorTransform(None, None, 0.05, "unused", same_frame_is_identity=True)
    transform, reason = registered.lookup(image, "camera_optical")
    assert np.array_equal(transform, np.eye(4)) and reason == ""
    transform, reason = registered.lookup(image, "tof_optical")  # another frame and no TF: refused, with why
    assert transform is None and "'tof_optical' differs from the image's 'camera_optical'" in reason


def test_without_tf_a_lidar_needs_its_parameter(monkeypatch):
    monkeypatch.setattr(lidar_input, "tf_available", lambda: False)
    with pytest.raises(ValueError, match="set lidar_to_camera"):
        SensorTransform(None, None, 0.05, NO_EXTRINSIC)
