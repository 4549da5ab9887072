"""sensor_msgs <-> core arrays. Thin: each function unpacks message fields and calls a pure core function.

Headers are passed through unchanged (same stamp, same frame_id) so downstream TF look-ups and
synchronisers see outputs exactly where and when the camera saw the image.
"""

import array
from collections.abc import Mapping, Sequence

import numpy as np
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2, PointField
from std_msgs.msg import Header

from dpt_ros.geometry.camera import IntrinsicsSource, PinholeIntrinsics, intrinsics_from_matrices, scale_camera_matrices
from dpt_ros.geometry.pointcloud import PackedCloud
from dpt_ros.pipeline.image_codec import DEFAULT_MAX_IMAGE_PIXELS, decode_compressed_image, decode_raw_image

# numpy pixel layout -> (ROS encoding, bytes per pixel) of the images this package publishes
OUTPUT_ENCODINGS = {
    (np.dtype("<f4"), 1): "32FC1",
    (np.dtype("<u2"), 1): "16UC1",
    (np.dtype(np.uint8), 3): "bgr8",
    (np.dtype(np.uint8), 1): "mono8",  # semantic class ids
}


def stamp_ns(stamp: Time) -> int:
    """builtin_interfaces/Time -> integer nanoseconds (for ordering stamps)."""
    return stamp.sec * 1_000_000_000 + stamp.nanosec


def rgb_from_image(msg: Image, max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS) -> np.ndarray:
    """sensor_msgs/Image -> (H, W, 3) uint8 RGB; raises InputError for bad encodings or sizes."""
    return decode_raw_image(msg.data, msg.width, msg.height, msg.encoding, msg.step, max_pixels)


def rgb_from_compressed(msg: CompressedImage, max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS) -> np.ndarray:
    """sensor_msgs/CompressedImage (JPEG/PNG, by magic bytes) -> (H, W, 3) uint8 RGB; raises InputError."""
    return decode_compressed_image(msg.data, msg.format, max_pixels)


def intrinsics_from_camera_info(msg: CameraInfo, source: IntrinsicsSource) -> PinholeIntrinsics:
    """CameraInfo -> pinhole intrinsics from K or P; raises InputError when unusable (e.g. K all zeros)."""
    return intrinsics_from_matrices(msg.k, msg.p, msg.width, msg.height, source)


def camera_info_at(msg: CameraInfo, header: Header, width: int, height: int) -> CameraInfo:
    """The camera_info for a width x height resize of msg's image, stamped with `header`."""
    k, p = scale_camera_matrices(msg.k, msg.p, (msg.width, msg.height), (width, height))
    return CameraInfo(
        header=header,
        width=width,
        height=height,
        distortion_model=msg.distortion_model,
        d=msg.d,
        k=k,
        r=msg.r,
        p=p,
        binning_x=msg.binning_x,
        binning_y=msg.binning_y,
        roi=msg.roi,
    )


def image_msg(header: Header, pixels: np.ndarray) -> Image:
    """(H, W) float32 / uint16 / uint8 or (H, W, 3) uint8 BGR pixels -> sensor_msgs/Image (little-endian)."""
    channels = 1 if pixels.ndim == 2 else pixels.shape[2]
    encoding = OUTPUT_ENCODINGS[(pixels.dtype, channels)]
    height, width = pixels.shape[:2]
    return Image(
        header=header,
        height=height,
        width=width,
        encoding=encoding,
        is_bigendian=0,
        step=width * channels * pixels.dtype.itemsize,
        data=_byte_array(pixels),
    )


def point_cloud_msg(header: Header, cloud: PackedCloud) -> PointCloud2:
    """Packed cloud from dpt_ros.geometry.pointcloud -> sensor_msgs/PointCloud2 (organized, little-endian)."""
    return PointCloud2(
        header=header,
        height=cloud.height,
        width=cloud.width,
        fields=[PointField(name=f.name, offset=f.offset, datatype=f.datatype, count=f.count) for f in cloud.fields],
        is_bigendian=False,
        point_step=cloud.point_step,
        row_step=cloud.row_step,
        data=_byte_array(cloud.data),
        is_dense=cloud.is_dense,
    )


def diagnostic_status(
    name: str, hardware_id: str, level: bytes, message: str, values: Mapping[str, str]
) -> DiagnosticStatus:
    """One DiagnosticStatus; level: DiagnosticStatus.OK/WARN/ERROR."""
    return DiagnosticStatus(
        level=level,
        name=name,
        message=message,
        hardware_id=hardware_id,
        values=[KeyValue(key=key, value=value) for key, value in values.items()],
    )


def diagnostic_array(stamp: Time, statuses: Sequence[DiagnosticStatus]) -> DiagnosticArray:
    return DiagnosticArray(header=Header(stamp=stamp), status=list(statuses))


def _byte_array(pixels: np.ndarray) -> array.array:
    """One memcpy into the array.array('B') that rclpy's uint8[] fields take without per-element checks."""
    data = array.array("B")
    data.frombytes(memoryview(np.ascontiguousarray(pixels)).cast("B"))
    return data
