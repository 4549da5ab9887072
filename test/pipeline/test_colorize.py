"""Colour-mapped depth: range, direction, invalid pixels."""

import cv2
import numpy as np

from dpt_ros.pipeline.colorize import colorize_depth


def _turbo(index: int) -> np.ndarray:
    return cv2.applyColorMap(np.array([[index]], np.uint8), cv2.COLORMAP_TURBO)[0, 0]


def test_metric_depth_near_is_warm_and_nan_is_black() -> None:
    depth = np.array([[1.0, 3.0, 5.0, np.nan]], np.float32)
    colored = colorize_depth(depth)
    assert colored.shape == (1, 4, 3) and colored.dtype == np.uint8
    np.testing.assert_array_equal(colored[0, 0], _turbo(255))  # nearest
    np.testing.assert_array_equal(colored[0, 1], _turbo(128))  # 127.5 rounds to even -> 128
    np.testing.assert_array_equal(colored[0, 2], _turbo(0))
    np.testing.assert_array_equal(colored[0, 3], [0, 0, 0])


def test_inverse_depth_and_fixed_range_saturate() -> None:
    inverse = np.array([[0.0, 10.0, 20.0, np.inf]], np.float32)
    colored = colorize_depth(inverse, value_range=(0.0, 10.0), near_is_high=True)
    np.testing.assert_array_equal(colored[0, :3], [_turbo(0), _turbo(255), _turbo(255)])
    np.testing.assert_array_equal(colored[0, 3], [0, 0, 0])


def test_all_invalid_is_black() -> None:
    assert not colorize_depth(np.full((2, 2), np.nan, np.float32)).any()
