"""Image buffers <-> numpy arrays, validated: what cv_bridge would do, without ROS.

Decoding takes the raw fields of a sensor_msgs/Image or CompressedImage (bytes, sizes, encoding
string) and returns a contiguous RGB uint8 array; anything that does not add up raises `InputError`.
Image sizes are checked before any pixel is converted or decompressed (for compressed images from the
PNG/JPEG header): a 400 KB PNG can decode to 12000x12000 pixels (432 MB), so `max_pixels` bounds what a
peer on the network can make the node allocate. Compressed data is recognised by its magic bytes, not by
the message's `format` string. Encoding turns depth maps into the pixel buffers of REP 118 depth images.
"""

import struct
from dataclasses import dataclass
from typing import Final

import cv2
import numpy as np

from dpt_ros.errors import (
    CORRUPT_COMPRESSED,
    DATA_LENGTH_MISMATCH,
    IMAGE_TOO_LARGE,
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

# Default of the nodes' max_image_pixels: 8K UHD (7680x4320, 33.2 MP) and every smaller camera. A larger
# image is refused, because decoding one costs 3 bytes per pixel and more in the conversions after it.
DEFAULT_MAX_IMAGE_PIXELS: Final[int] = 7680 * 4320

_PNG_SIGNATURE: Final[bytes] = b"\x89PNG\r\n\x1a\n"
_JPEG_START: Final[bytes] = b"\xff\xd8"  # SOI; a marker must follow, else the header walk calls it corrupt
_JPEG_END_OF_IMAGE: Final[bytes] = b"\xff\xd9"
_JPEG_START_OF_SCAN: Final[int] = 0xDA
# SOF0-SOF15 except DHT (C4), JPG (C8) and DAC (CC), which share the range
_JPEG_START_OF_FRAME: Final[frozenset[int]] = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_JPEG_STANDALONE_MARKERS: Final[frozenset[int]] = frozenset([0x01, *range(0xD0, 0xD8)])  # TEM, RST0-7: no length
# (offset, bytes) parts of the signatures of formats OpenCV could decode but the nodes refuse, to name them
_OTHER_SIGNATURES: Final[tuple[tuple[tuple[tuple[int, bytes], ...], str], ...]] = (
    (((0, b"RIFF"), (8, b"WEBP")), "WebP"),
    (((0, b"II*\x00"),), "TIFF"),
    (((0, b"MM\x00*"),), "TIFF"),
    (((0, b"GIF8"),), "GIF"),
    (((0, b"BM"),), "BMP"),
    (((0, b"\x00\x00\x00\x0cjP  "),), "JPEG 2000"),
    (((4, b"ftypavif"),), "AVIF"),
    (((0, b"#?RADIANCE"),), "Radiance HDR"),
)


def decode_raw_image(
    data: bytes | memoryview, width: int, height: int, encoding: str, step: int,
    max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
) -> np.ndarray:  # fmt: skip
    """Raw image buffer -> (height, width, 3) uint8 RGB, a new contiguous array.

    `data` is the message's byte buffer of `step * height` bytes (rows may be padded: step >= width *
    channels). Raises InputError for an unsupported encoding, a zero-size image, more than `max_pixels`
    pixels or a buffer whose length does not match step x height.
    """
    if width <= 0 or height <= 0:
        raise InputError(ZERO_SIZE, f"image is {width}x{height} pixels; nothing to process")
    require_pixel_limit(width, height, max_pixels, "raw image")
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


def require_pixel_limit(width: int, height: int, max_pixels: int, what: str) -> None:
    """Raise InputError(IMAGE_TOO_LARGE) when width x height exceeds max_pixels."""
    if width * height > max_pixels:
        raise InputError(
            IMAGE_TOO_LARGE,
            f"{what} is {width}x{height} = {width * height} pixels, more than max_image_pixels={max_pixels}; "
            "refused without decoding",
        )


@dataclass(frozen=True)
class CompressedHeader:
    """What the first bytes of a compressed image say: its format ("jpeg" or "png") and size in pixels."""

    image_format: str
    width: int
    height: int


def read_compressed_header(data: bytes | memoryview) -> CompressedHeader:
    """The format and pixel size of JPEG or PNG bytes, from their headers alone (no decompression).

    Raises InputError: UNKNOWN_ENCODING for anything but JPEG or PNG (naming what it looks like),
    CORRUPT_COMPRESSED for a JPEG/PNG whose header is cut short or malformed.
    """
    data = memoryview(data).cast("B")  # walking a JPEG's segments reads a few bytes each, never copies
    if data[: len(_PNG_SIGNATURE)] == _PNG_SIGNATURE:
        return _png_header(data)
    if data[: len(_JPEG_START)] == _JPEG_START:
        return _jpeg_header(data)
    found = next((name for magic, name in _OTHER_SIGNATURES if _matches(data, magic)), None)
    what = f"{found} data" if found else f"data starting {bytes(data[:8]).hex(' ')}"
    raise InputError(UNKNOWN_ENCODING, f"compressed image is {what}, not JPEG or PNG (the only formats decoded)")


def decode_compressed_image(
    data: bytes | memoryview, image_format: str, max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS
) -> np.ndarray:
    """JPEG or PNG bytes of a CompressedImage -> (H, W, 3) uint8 RGB.

    The bytes' magic decides the decoder; `image_format` (the message's `format` field, e.g. "jpeg",
    "png" or image_transport's "bgr8; jpeg compressed bgr8") only serves to refuse compressedDepth and
    to name the label in errors. Raises InputError for empty data, another format, more than
    `max_pixels` pixels (read from the header before decoding), or bytes that do not decode, including
    a JPEG cut short in transit (which OpenCV would otherwise return as a silently grey-filled image).
    """
    buffer = np.frombuffer(data, dtype=np.uint8)
    if buffer.size == 0:
        raise InputError(ZERO_SIZE, "compressed image has no data")
    if "compresseddepth" in image_format.lower():
        raise InputError(UNKNOWN_ENCODING, f"compressed format {image_format!r} is not supported; use jpeg or png")
    head = read_compressed_header(buffer)
    found = f"{head.image_format.upper()} (labelled {image_format!r})"
    if head.width <= 0 or head.height <= 0:
        raise InputError(ZERO_SIZE, f"{found} header says {head.width}x{head.height} pixels")
    require_pixel_limit(head.width, head.height, max_pixels, found)
    if head.image_format == "jpeg" and not bytes(buffer[-2:]) == _JPEG_END_OF_IMAGE:
        raise InputError(CORRUPT_COMPRESSED, f"{found} of {buffer.size} bytes has no end-of-image marker (truncated)")
    bgr = cv2.imdecode(buffer, cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    if bgr is None or bgr.size == 0:
        raise InputError(CORRUPT_COMPRESSED, f"OpenCV could not decode {buffer.size} bytes of {found}")
    if bgr.shape[:2] != (head.height, head.width):
        raise InputError(
            CORRUPT_COMPRESSED, f"{found} header says {head.width}x{head.height} but decodes to "
                                f"{bgr.shape[1]}x{bgr.shape[0]}"
        )  # fmt: skip
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def _matches(data: memoryview, magic: tuple[tuple[int, bytes], ...]) -> bool:
    return all(data[offset : offset + len(part)] == part for offset, part in magic)


def _png_header(data: memoryview) -> CompressedHeader:
    """PNG: the 8-byte signature, then the IHDR chunk (length, b"IHDR", width, height as big-endian u32)."""
    if len(data) < 24 or data[12:16] != b"IHDR":
        raise InputError(CORRUPT_COMPRESSED, f"PNG of {len(data)} bytes has no IHDR chunk after its signature")
    width, height = struct.unpack(">II", data[16:24])
    return CompressedHeader("png", width, height)


def _jpeg_header(data: memoryview) -> CompressedHeader:
    """JPEG: walk the marker segments after SOI to the first start-of-frame (SOFn) and read its size."""
    position = 2
    while position + 4 <= len(data):
        if data[position] != 0xFF:
            break
        marker = data[position + 1]
        if marker == 0xFF:  # fill byte before a marker
            position += 1
            continue
        if marker in _JPEG_STANDALONE_MARKERS:
            position += 2
            continue
        (length,) = struct.unpack(">H", data[position + 2 : position + 4])
        if marker in _JPEG_START_OF_FRAME:
            if position + 9 > len(data):
                break
            height, width = struct.unpack(">HH", data[position + 5 : position + 9])
            return CompressedHeader("jpeg", width, height)
        if marker == _JPEG_START_OF_SCAN or length < 2:
            break
        position += 2 + length
    raise InputError(CORRUPT_COMPRESSED, "JPEG has no frame header (SOF) before its image data; cannot size it")


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
