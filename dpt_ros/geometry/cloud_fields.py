"""Read x, y, z out of a raw `sensor_msgs/PointCloud2` buffer without ROS: any field order and offsets,
padding inside and after points, extra fields (intensity, ring, time, ...), organised clouds and either
byte order. Zero-copy view through numpy strides, one copy into the (N, 3) float32 result.
"""

from __future__ import annotations

import array
from collections.abc import Sequence
from typing import Any

import numpy as np

# sensor_msgs/PointField datatype constants -> numpy scalar type.
POINT_FIELD_DTYPES = {
    1: np.int8,
    2: np.uint8,
    3: np.int16,
    4: np.uint16,
    5: np.int32,
    6: np.uint32,
    7: np.float32,
    8: np.float64,
}
_XYZ_DATATYPES = {7, 8}  # float32, float64


def _field_tuple(field: Any) -> tuple[str, int, int, int]:
    """(name, offset, datatype, count) from a tuple or a PointField-like object."""
    if hasattr(field, "name"):
        return str(field.name), int(field.offset), int(field.datatype), int(field.count)
    name, offset, datatype, count = field
    return str(name), int(offset), int(datatype), int(count)


def xyz_from_cloud_buffer(
    data: bytes | bytearray | memoryview | array.array | np.ndarray,
    fields: Sequence[Any],
    point_step: int,
    row_step: int,
    width: int,
    height: int,
    is_bigendian: bool,
) -> np.ndarray:
    """(height * width, 3) float32 x, y, z of every point in row-major order (NaN/inf points are kept).

    data:       the message's `data` (bytes, array.array('B') as rclpy gives it, or a uint8 numpy array).
    fields:     the message's `fields`: PointField messages or (name, offset, datatype, count) tuples;
                x, y and z must each be float32 (7) or float64 (8) with count 1; other fields are ignored.
    point_step: bytes from one point to the next within a row; row_step: bytes from one row to the next
                (may exceed width * point_step when rows are padded).
    Raises ValueError for missing/unsupported xyz fields or a buffer too short for the declared layout.
    """
    point_step, row_step, width, height = int(point_step), int(row_step), int(width), int(height)
    if width < 0 or height < 0 or point_step <= 0:
        raise ValueError(f"invalid cloud layout: width={width} height={height} point_step={point_step}")
    if width * height == 0:
        return np.empty((0, 3), dtype=np.float32)
    if row_step < width * point_step:
        raise ValueError(f"row_step {row_step} < width {width} * point_step {point_step}")

    by_name = {}
    for field in fields:
        name, offset, datatype, count = _field_tuple(field)
        by_name.setdefault(name, (offset, datatype, count))
    byte_order = ">" if is_bigendian else "<"
    names, formats, offsets = [], [], []
    for axis in ("x", "y", "z"):
        if axis not in by_name:
            raise ValueError(f"cloud has no {axis!r} field (fields: {sorted(by_name)})")
        offset, datatype, count = by_name[axis]
        if datatype not in _XYZ_DATATYPES or count != 1:
            raise ValueError(f"field {axis!r} must be one float32/float64 value, got datatype {datatype} x{count}")
        scalar = np.dtype(POINT_FIELD_DTYPES[datatype]).newbyteorder(byte_order)
        if offset < 0 or offset + scalar.itemsize > point_step:
            raise ValueError(f"field {axis!r} at offset {offset} does not fit in point_step {point_step}")
        names.append(axis)
        formats.append(scalar)
        offsets.append(offset)
    point_dtype = np.dtype({"names": names, "formats": formats, "offsets": offsets, "itemsize": point_step})

    buffer = np.frombuffer(data, dtype=np.uint8) if not isinstance(data, np.ndarray) else data.view(np.uint8).ravel()
    needed = (height - 1) * row_step + width * point_step
    if buffer.size < needed:
        raise ValueError(f"cloud data has {buffer.size} bytes, layout needs {needed}")
    points = np.ndarray(shape=(height, width), dtype=point_dtype, buffer=buffer, strides=(row_step, point_step))
    xyz = np.empty((height * width, 3), dtype=np.float32)
    for column, axis in enumerate(names):
        xyz[:, column] = points[axis].ravel()
    return xyz
