"""PointCloud2 buffer parsing for odd layouts, built independently with numpy structured dtypes."""

import array
from types import SimpleNamespace

import numpy as np
import pytest

from dpt_ros import xyz_from_cloud_buffer

FLOAT32, FLOAT64, UINT16, UINT8 = 7, 8, 4, 2
DATATYPE_CODE = {"f4": FLOAT32, "f8": FLOAT64, "u2": UINT16, "u1": UINT8}


def make_cloud(layout, xyz, point_step, byte_order="<", width=None, height=1, row_padding=0):
    """Serialise xyz (N, 3) with `layout` = [(name, numpy code, offset)], extra fields filled with noise.

    Returns (data bytes, fields tuples, row_step, width)."""
    count = xyz.shape[0]
    width = width or count
    dtype = np.dtype(
        {
            "names": [name for name, _, _ in layout],
            "formats": [byte_order + code for _, code, _ in layout],
            "offsets": [offset for _, _, offset in layout],
            "itemsize": point_step,
        }
    )
    points = np.zeros(count, dtype=dtype)
    rng = np.random.default_rng(0)
    for name, _code, _ in layout:
        if name in "xyz":
            points[name] = xyz[:, "xyz".index(name)]
        else:
            points[name] = rng.integers(0, 200, count)
    rows = points.reshape(height, width)
    row_bytes = [row.tobytes() + b"\xab" * row_padding for row in rows]
    fields = [(name, offset, DATATYPE_CODE[code], 1) for name, code, offset in layout]
    return b"".join(row_bytes), fields, width * point_step + row_padding, width


XYZ = np.array([[1.5, -2.25, 3.0], [np.nan, 0.0, 1.0], [-7.0, 8.5, 1e-3], [100.0, 0.5, -0.25]])


@pytest.mark.parametrize(
    "layout, point_step",
    [
        ([("x", "f4", 0), ("y", "f4", 4), ("z", "f4", 8)], 12),  # packed
        ([("x", "f4", 0), ("y", "f4", 4), ("z", "f4", 8), ("intensity", "f4", 16)], 32),  # Velodyne-like padding
        ([("intensity", "f4", 0), ("z", "f4", 4), ("ring", "u2", 8), ("y", "f4", 12), ("x", "f4", 16)], 24),
        ([("t", "f8", 0), ("x", "f8", 8), ("y", "f8", 16), ("z", "f8", 24), ("ring", "u1", 32)], 40),  # float64
    ],
)
@pytest.mark.parametrize("byte_order", ["<", ">"])
def test_xyz_is_read_from_any_layout_and_byte_order(layout, point_step, byte_order):
    data, fields, row_step, width = make_cloud(layout, XYZ, point_step, byte_order)
    xyz = xyz_from_cloud_buffer(data, fields, point_step, row_step, width, 1, is_bigendian=byte_order == ">")
    assert xyz.dtype == np.float32 and xyz.shape == (4, 3)
    np.testing.assert_array_equal(xyz, XYZ.astype(np.float32))


def test_organised_cloud_with_row_padding_is_read_row_major():
    grid = np.arange(2 * 3 * 3, dtype=np.float64).reshape(6, 3)
    layout = [("x", "f4", 0), ("y", "f4", 4), ("z", "f4", 8), ("ring", "u2", 12)]
    data, fields, row_step, width = make_cloud(layout, grid, 16, width=3, height=2, row_padding=5)
    assert row_step == 53
    xyz = xyz_from_cloud_buffer(data, fields, 16, row_step, width, 2, is_bigendian=False)
    np.testing.assert_array_equal(xyz, grid.astype(np.float32))


def test_point_field_messages_and_rclpy_array_data_are_accepted():
    layout = [("x", "f4", 4), ("y", "f4", 8), ("z", "f4", 12)]
    data, fields, row_step, width = make_cloud(layout, XYZ, 16)
    point_fields = [SimpleNamespace(name=n, offset=o, datatype=d, count=c) for n, o, d, c in fields]
    xyz = xyz_from_cloud_buffer(array.array("B", data), point_fields, 16, row_step, width, 1, False)
    np.testing.assert_array_equal(xyz, XYZ.astype(np.float32))
    as_numpy = xyz_from_cloud_buffer(np.frombuffer(data, np.uint8), point_fields, 16, row_step, width, 1, False)
    np.testing.assert_array_equal(as_numpy, xyz)


def test_empty_cloud_gives_no_points():
    assert xyz_from_cloud_buffer(b"", [("x", 0, 7, 1)], 12, 0, 0, 1, False).shape == (0, 3)


@pytest.mark.parametrize(
    "fields, data_length, message",
    [
        ([("x", 0, FLOAT32, 1), ("y", 4, FLOAT32, 1)], 24, "no 'z' field"),
        ([("x", 0, UINT16, 1), ("y", 4, FLOAT32, 1), ("z", 8, FLOAT32, 1)], 24, "float32/float64"),
        ([("x", 0, FLOAT32, 1), ("y", 4, FLOAT32, 1), ("z", 10, FLOAT32, 1)], 24, "does not fit"),
        ([("x", 0, FLOAT32, 1), ("y", 4, FLOAT32, 1), ("z", 8, FLOAT32, 3)], 24, "float32/float64"),
        ([("x", 0, FLOAT32, 1), ("y", 4, FLOAT32, 1), ("z", 8, FLOAT32, 1)], 23, "layout needs 24"),
    ],
)
def test_malformed_clouds_raise_clear_errors(fields, data_length, message):
    with pytest.raises(ValueError, match=message):
        xyz_from_cloud_buffer(bytes(data_length), fields, 12, 24, 2, 1, False)
    with pytest.raises(ValueError, match="row_step"):
        xyz_from_cloud_buffer(bytes(24), fields, 12, 20, 2, 1, False)
