"""Organised sensor_msgs/PointCloud2 messages of x, y, z float32 points, for LiDAR tests."""

import numpy as np
from sensor_msgs.msg import PointCloud2, PointField


def xyz_cloud(at, points: np.ndarray, beams: int) -> PointCloud2:
    """(N, 3) points (N = beams x columns, NaN where a beam hit nothing) as an organised little-endian cloud."""
    columns = len(points) // beams
    fields = [PointField(name=name, offset=4 * k, datatype=PointField.FLOAT32, count=1) for k, name in enumerate("xyz")]
    return PointCloud2(header=at, height=beams, width=columns, fields=fields, is_bigendian=False, point_step=12,
                       row_step=12 * columns, data=np.ascontiguousarray(points, "<f4").tobytes(), is_dense=False)  # fmt: skip
