"""Image buffers <-> numpy arrays, validated: what cv_bridge would do, without ROS.

Decoding takes the raw fields of a sensor_msgs/Image or CompressedImage (bytes, sizes, encoding
string) and returns a contiguous RGB uint8 array; anything that does not add up raises `InputError`.
Encoding turns depth maps into the pixel buffers of REP 118 depth images.
"""

from typing import Final

import cv2
import numpy as np

from dpt_ros.errors import (
    CORRUPT_COMPRESSED,
    DATA_LENGTH_MISMATCH,
    UNKNOWN_ENCODING,
    ZERO_SIZE,
    InputError,
)

# encoding -> (channels, OpenCV conversion to RGB or None when already RGB)
RAW_ENCODINGS: Final[dict[str, tuple[int, int | None]]] = {
    "rgb8": (3, None),
    "bgr8": (3, cv2.COLOR_BGR2RGB),
    "rgba8": (4, cv2.COLOR_RGBA2RGB),
    "bgra8": (4, cv2.COLOR_BGRA2RGB),
    "mono8": (1, cv2.COLOR_GRAY2RGB),
}

# Largest depth a 16UC1 millimetre image can hold; deeper pixels become 0 (= invalid) rather than wrap.
MAX_MILLIMETRES: Final[int] = np.iinfo(np.uint16).max

_JPEG_END_OF_IMAGE: Final[bytes] = b"\xff\xd9"


def decode_raw_image(data: bytes | memoryview, width: int, height: int, encoding: str, step: int) -> np.ndarray:
    """Raw image buffer -> (height, width, 3) uint8 RGB, a new contiguous array.

    `data` is the message's byte buffer of `step * height` bytes (rows may be padded: step >= width *
    channels). Raises InputError for an unsupported encoding, a zero-size image or a buffer whose
    length does not match step x height.
    """
    if width <= 0 or height <= 0:
        raise InputError(ZERO_SIZE, f"image is {width}x{height} pixels; nothing to process")
    if encoding not in RAW_ENCODINGS:
        raise InputError(
            UNKNOWN_ENCODING, f"image encoding {encoding!r} is not supported; use one of {sorted(RAW_ENCODINGS)}"
        )
    channels, to_rgb = RAW_ENCODINGS[encoding]
    row_bytes = width * channels
    if step < row_bytes:
        raise InputError(
            DATA_LENGTH_MISMATCH, f"step {step} is smaller than width {width} x {channels} bytes for {encoding}"
        )
    buffer = np.frombuffer(data, dtype=np.uint8)
    if buffer.size != step * height:
        raise InputError(
            DATA_LENGTH_MISMATCH,
            f"image data has {buffer.size} bytes but step {step} x height {height} = {step * height}",
        )
    pixels = buffer.reshape(height, step)[:, :row_bytes].reshape(height, width, channels)
    if to_rgb is None:
        return np.ascontiguousarray(pixels)
    return cv2.cvtColor(np.ascontiguousarray(pixels), to_rgb)


def decode_compressed_image(data: bytes | memoryview, image_format: str) -> np.ndarray:
    """JPEG or PNG bytes of a CompressedImage -> (H, W, 3) uint8 RGB.

    `image_format` is the message's `format` field ("jpeg", "png", or image_transport's
    "bgr8; jpeg compressed bgr8"). Raises InputError for empty data, another format (e.g.
    compressedDepth) or bytes OpenCV cannot decode, including a JPEG cut short in transit (which
    OpenCV would otherwise return as a silently grey-filled image).
    """
    buffer = np.frombuffer(data, dtype=np.uint8)
    if buffer.size == 0:
        raise InputError(ZERO_SIZE, "compressed image has no data")
    fmt = image_format.lower()
    is_jpeg = "jpeg" in fmt or "jpg" in fmt
    if "compresseddepth" in fmt or not (is_jpeg or "png" in fmt):
        raise InputError(UNKNOWN_ENCODING, f"compressed format {image_format!r} is not supported; use jpeg or png")
    if is_jpeg and not bytes(buffer[-2:]) == _JPEG_END_OF_IMAGE:
        raise InputError(CORRUPT_COMPRESSED, f"JPEG of {buffer.size} bytes has no end-of-image marker (truncated)")
    bgr = cv2.imdecode(buffer, cv2.IMREAD_COLOR)
    if bgr is None or bgr.size == 0:
        raise InputError(CORRUPT_COMPRESSED, f"OpenCV could not decode {buffer.size} bytes as {image_format!r}")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def depth_to_32fc1(depth: np.ndarray) -> np.ndarray:
    """(H, W) depth -> contiguous little-endian float32 pixels of a 32FC1 image (NaN kept as NaN)."""
    return np.ascontiguousarray(depth, dtype="<f4")


def depth_to_16uc1_mm(depth_m: np.ndarray) -> np.ndarray:
    """(H, W) depth in metres -> little-endian uint16 millimetres, 0 where invalid.

    Invalid means NaN/Inf, <= 0, or deeper than 65.535 m (not representable; never wrapped or clipped).
    """
    millimetres = np.rint(np.asarray(depth_m, dtype=np.float32) * np.float32(1000.0))
    valid = np.isfinite(millimetres) & (millimetres > 0) & (millimetres <= MAX_MILLIMETRES)
    return np.where(valid, millimetres, 0).astype("<u2")


# REP 118 depth image encodings (prompt depth, ground truth) -> (pixel dtype, units per metre).
DEPTH_ENCODINGS: Final[dict[str, tuple[str, float]]] = {"16UC1": ("u2", 1000.0), "32FC1": ("f4", 1.0)}


def decode_depth_image(
    data: bytes | memoryview, width: int, height: int, encoding: str, step: int, is_bigendian: bool = False
) -> np.ndarray:
    """Raw depth image buffer -> (height, width) float32 metres, NaN where invalid (a new array).

    16UC1 is millimetres with 0 = no data; 32FC1 is metres with NaN/inf (and, defensively, <= 0) = no
    data (REP 118). Rows may be padded (step >= width x bytes per pixel). Raises InputError for another
    encoding, a zero-size image or a buffer whose length does not match step x height.
    """
    if width <= 0 or height <= 0:
        raise InputError(ZERO_SIZE, f"depth image is {width}x{height} pixels; nothing to process")
    if encoding not in DEPTH_ENCODINGS:
        raise InputError(
            UNKNOWN_ENCODING, f"depth encoding {encoding!r} is not supported; use one of {sorted(DEPTH_ENCODINGS)}"
        )
    kind, units_per_metre = DEPTH_ENCODINGS[encoding]
    dtype = np.dtype((">" if is_bigendian else "<") + kind)
    row_bytes = width * dtype.itemsize
    if step < row_bytes:
        raise InputError(DATA_LENGTH_MISMATCH, f"step {step} is smaller than width {width} x {dtype.itemsize} bytes")
    buffer = np.frombuffer(data, dtype=np.uint8)
    if buffer.size != step * height:
        raise InputError(
            DATA_LENGTH_MISMATCH,
            f"depth image data has {buffer.size} bytes but step {step} x height {height} = {step * height}",
        )
    raw = np.ascontiguousarray(buffer.reshape(height, step)[:, :row_bytes]).view(dtype)
    depth = raw.astype(np.float32) / np.float32(units_per_metre)  # division: 1500 mm is exactly 1.5 m
    with np.errstate(invalid="ignore"):
        depth[~(np.isfinite(depth) & (depth > 0))] = np.nan
    return depth
