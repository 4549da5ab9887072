"""CameraInfo matrices: validation and rescaling, checked by re-projecting scene points."""

import numpy as np
import pytest

from dpt_ros import errors as input_errors
from dpt_ros.errors import InputError
from dpt_ros.geometry.camera import (
    PinholeIntrinsics,
    intrinsics_from_matrices,
    require_resolution,
    scale_camera_matrices,
    scale_intrinsics,
)

K = np.array([500.0, 0, 319.5, 0, 510.0, 239.5, 0, 0, 1])
P = np.array([480.0, 0, 321.0, -48.0, 0, 490.0, 241.0, 0, 0, 0, 1, 0])


def test_k_or_p_by_source() -> None:
    assert intrinsics_from_matrices(K, P, 640, 480, "K") == PinholeIntrinsics(500, 510, 319.5, 239.5, 640, 480)
    assert intrinsics_from_matrices(K, P, 640, 480, "P") == PinholeIntrinsics(480, 490, 321, 241, 640, 480)


@pytest.mark.parametrize("k", [np.zeros(9), np.array([0.0, 0, 1, 0, 500, 1, 0, 0, 1]), np.r_[K[:8], np.nan]])
def test_unusable_k_is_rejected(k) -> None:
    with pytest.raises(InputError) as raised:
        intrinsics_from_matrices(k, P, 640, 480, "K")
    assert raised.value.kind == input_errors.INVALID_CAMERA_INFO


def test_resolution_mismatch() -> None:
    intrinsics = intrinsics_from_matrices(K, P, 640, 480)
    require_resolution(intrinsics, 640, 480)
    with pytest.raises(InputError) as raised:
        require_resolution(intrinsics, 320, 240)
    assert raised.value.kind == input_errors.CAMERA_INFO_MISMATCH


def test_scaling_keeps_scene_points_on_the_same_pixel_centres() -> None:
    # A scene point seen at pixel centre (u, v) at 640x480 is at ((u + .5) s - .5, ...) after resizing.
    new_k, new_p = scale_camera_matrices(K, P, (640, 480), (320, 120))
    point = np.array([0.3, -0.2, 2.0])
    for old, new in ((K.reshape(3, 3), new_k.reshape(3, 3)), (P.reshape(3, 4)[:, :3], new_p.reshape(3, 4)[:, :3])):
        u, v, w = old @ point
        u2, v2, w2 = new @ point
        assert u2 / w2 == pytest.approx((u / w + 0.5) * 0.5 - 0.5)
        assert v2 / w2 == pytest.approx((v / w + 0.5) * 0.25 - 0.5)
    assert new_p[3] == pytest.approx(-24.0)  # Tx = -fx * baseline scales with fx
    np.testing.assert_array_equal(new_k[6:], [0, 0, 1])
    assert scale_intrinsics(PinholeIntrinsics(500, 510, 319.5, 239.5, 640, 480), 320, 120) == PinholeIntrinsics(
        250, 127.5, 159.5, 59.5, 320, 120
    )
