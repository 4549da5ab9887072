"""Raw/compressed image decoding and depth encodings against hand-built buffers."""

import struct
import subprocess
import sys

import cv2
import numpy as np
import pytest

from dpt_ros import errors as input_errors
from dpt_ros.errors import InputError
from dpt_ros.pipeline.image_codec import (
    DEFAULT_MAX_IMAGE_PIXELS,
    CompressedHeader,
    decode_compressed_image,
    decode_raw_image,
    depth_to_16uc1_mm,
    depth_to_32fc1,
    read_compressed_header,
)
from support.environment import subprocess_env
from support.image_bomb import png_bomb

RGB = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255]], [[10, 20, 30], [40, 50, 60], [70, 80, 90]]], np.uint8)


def _buffer(pixels: np.ndarray, padding: int = 0) -> tuple[bytes, int]:
    rows = pixels.reshape(pixels.shape[0], -1)
    padded = np.concatenate([rows, np.full((rows.shape[0], padding), 77, np.uint8)], axis=1)
    return padded.tobytes(), padded.shape[1]


@pytest.mark.parametrize(
    "encoding, pixels",
    [
        ("rgb8", RGB),
        ("bgr8", RGB[..., ::-1]),
        ("rgba8", np.dstack([RGB, np.full(RGB.shape[:2], 9, np.uint8)])),
        ("bgra8", np.dstack([RGB[..., ::-1], np.full(RGB.shape[:2], 9, np.uint8)])),
    ],
)
@pytest.mark.parametrize("padding", [0, 5])
def test_colour_encodings_decode_to_the_same_rgb(encoding: str, pixels: np.ndarray, padding: int) -> None:
    data, step = _buffer(pixels, padding)
    rgb = decode_raw_image(data, 3, 2, encoding, step)
    assert rgb.dtype == np.uint8 and rgb.flags.c_contiguous
    np.testing.assert_array_equal(rgb, RGB)


def test_mono8_repeats_grey_in_every_channel() -> None:
    grey = np.array([[0, 128, 255], [1, 2, 3]], np.uint8)
    data, step = _buffer(grey, padding=3)
    np.testing.assert_array_equal(decode_raw_image(data, 3, 2, "mono8", step), np.repeat(grey[..., None], 3, axis=2))


@pytest.mark.parametrize(
    "width, height, encoding, step, length, kind",
    [
        (3, 2, "yuv422", 6, 12, input_errors.UNKNOWN_ENCODING),
        (3, 2, "16UC1", 6, 12, input_errors.UNKNOWN_ENCODING),
        (3, 2, "rgb8", 9, 17, input_errors.DATA_LENGTH_MISMATCH),
        (3, 2, "rgb8", 9, 19, input_errors.DATA_LENGTH_MISMATCH),
        (3, 2, "rgb8", 8, 16, input_errors.DATA_LENGTH_MISMATCH),  # step shorter than a row
        (0, 2, "rgb8", 0, 0, input_errors.ZERO_SIZE),
        (3, 0, "rgb8", 9, 0, input_errors.ZERO_SIZE),
    ],
)
def test_bad_raw_images_raise_input_error(width, height, encoding, step, length, kind) -> None:
    with pytest.raises(InputError) as raised:
        decode_raw_image(bytes(length), width, height, encoding, step)
    assert raised.value.kind == kind
    assert str(raised.value)


def test_jpeg_and_png_decode_to_rgb() -> None:
    image = np.zeros((32, 48, 3), np.uint8)
    image[:, :16] = (255, 0, 0)  # flat colour blocks survive JPEG nearly exactly
    image[:, 32:] = (0, 0, 255)
    ok, png = cv2.imencode(".png", image[..., ::-1])
    np.testing.assert_array_equal(decode_compressed_image(png.tobytes(), "png"), image)
    ok, jpeg = cv2.imencode(".jpg", image[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 95])
    decoded = decode_compressed_image(jpeg.tobytes(), "bgr8; jpeg compressed bgr8")
    assert decoded.shape == image.shape
    assert np.abs(decoded[4:-4, 4:12].astype(int) - (255, 0, 0)).max() < 12
    assert np.abs(decoded[4:-4, 36:44].astype(int) - (0, 0, 255)).max() < 12


@pytest.mark.parametrize(
    "data, image_format, kind",
    [
        (b"", "jpeg", input_errors.ZERO_SIZE),
        (b"\xff\xd8\xff\xe0garbage-not-a-jpeg\xff\xd9", "jpeg", input_errors.CORRUPT_COMPRESSED),
        (b"\x89PNG\r\n\x1a\nbroken", "png", input_errors.CORRUPT_COMPRESSED),
        (b"abc", "16UC1; compressedDepth png", input_errors.UNKNOWN_ENCODING),
        (b"abc", "tiff", input_errors.UNKNOWN_ENCODING),
    ],
)
def test_bad_compressed_images_raise_input_error(data, image_format, kind) -> None:
    with pytest.raises(InputError) as raised:
        decode_compressed_image(data, image_format)
    assert raised.value.kind == kind


def test_truncated_jpeg_is_rejected_not_grey_filled() -> None:
    ok, jpeg = cv2.imencode(".jpg", np.full((64, 64, 3), 200, np.uint8))
    with pytest.raises(InputError) as raised:
        decode_compressed_image(jpeg.tobytes()[: len(jpeg) // 2], "jpeg")
    assert raised.value.kind == input_errors.CORRUPT_COMPRESSED


def test_depth_encodings() -> None:
    depth = np.array([[0.0, 1.2344, np.nan], [-1.0, 65.535, 70.0], [np.inf, 0.0004, 0.0006]], np.float32)
    pixels = depth_to_32fc1(depth)
    assert pixels.dtype == np.dtype("<f4") and pixels.flags.c_contiguous
    np.testing.assert_array_equal(pixels, depth)
    millimetres = depth_to_16uc1_mm(depth)
    assert millimetres.dtype == np.dtype("<u2")
    np.testing.assert_array_equal(millimetres, [[0, 1234, 0], [0, 65535, 0], [0, 0, 1]])


def _encoded(extension: str, width: int = 40, height: int = 24, params: tuple[int, ...] = ()) -> bytes:
    image = np.zeros((height, width, 3), np.uint8)
    image[:, : width // 2] = (0, 0, 255)  # BGR red on the left half
    ok, data = cv2.imencode(extension, image, list(params))
    assert ok
    return data.tobytes()


@pytest.mark.parametrize("extension, label, found", [(".png", "jpeg", "png"), (".jpg", "png", "jpeg"),
                                                     (".png", "rgb8", "png"), (".jpg", "", "jpeg")])  # fmt: skip
def test_the_magic_bytes_choose_the_decoder_not_the_label(extension, label, found) -> None:
    data = _encoded(extension)
    assert read_compressed_header(data) == CompressedHeader(found, 40, 24)
    rgb = decode_compressed_image(data, label)
    assert rgb.shape == (24, 40, 3) and np.abs(rgb[12, 5].astype(int) - (255, 0, 0)).max() < 12


@pytest.mark.parametrize("extension, name", [(".webp", "WebP"), (".tiff", "TIFF"), (".bmp", "BMP")])
def test_other_formats_are_refused_and_named_even_when_labelled_png(extension, name) -> None:
    with pytest.raises(InputError) as raised:
        decode_compressed_image(_encoded(extension), "png")
    assert raised.value.kind == input_errors.UNKNOWN_ENCODING and f"is {name} data, not JPEG or PNG" in str(raised.value)


@pytest.mark.parametrize("width, height", [(1, 1), (641, 479), (3000, 7)])
@pytest.mark.parametrize("params", [(), (cv2.IMWRITE_JPEG_PROGRESSIVE, 1), (cv2.IMWRITE_JPEG_OPTIMIZE, 1)])
def test_jpeg_header_size_matches_the_decoded_size(width, height, params) -> None:
    data = _encoded(".jpg", width, height, params)
    exif = b"\xff\xe1" + struct.pack(">H", 2 + 1000) + b"Exif\x00\x00" + bytes(994)  # an APP1 segment before SOF
    icc = b"\xff\xe2" + struct.pack(">H", 65535) + bytes(65533)  # a large APP2 (ICC profile) segment, twice
    for jpeg in (data, data[:2] + exif + data[2:], data[:2] + icc + icc + exif + data[2:]):
        assert read_compressed_header(jpeg) == CompressedHeader("jpeg", width, height)
        assert decode_compressed_image(jpeg, "jpeg").shape == (height, width, 3)


def test_images_above_max_pixels_are_refused_from_the_header_alone() -> None:
    data = _encoded(".png", 40, 24)
    assert decode_compressed_image(data, "png", max_pixels=40 * 24).shape == (24, 40, 3)  # at the limit: decoded
    for compressed in (data, _encoded(".jpg", 40, 24)):
        with pytest.raises(InputError) as raised:
            decode_compressed_image(compressed, "png", max_pixels=40 * 24 - 1)
        assert raised.value.kind == input_errors.IMAGE_TOO_LARGE and "40x24 = 960 pixels" in str(raised.value)
    # a JPEG header claiming 65535 x 65535 (4.3 gigapixels) followed by nothing decodable
    sof = b"\xff\xc0" + struct.pack(">HBHHB", 11, 8, 65535, 65535, 1) + b"\x01\x11\x00"
    with pytest.raises(InputError) as raised:
        decode_compressed_image(b"\xff\xd8" + sof + b"\xff\xd9", "jpeg")
    assert raised.value.kind == input_errors.IMAGE_TOO_LARGE
    # raw images: width x height is checked before the buffer is looked at or converted
    with pytest.raises(InputError) as raised:
        decode_raw_image(b"", 12000, 12000, "bgr8", 36000)
    assert raised.value.kind == input_errors.IMAGE_TOO_LARGE
    assert DEFAULT_MAX_IMAGE_PIXELS == 7680 * 4320


@pytest.mark.parametrize("data", [b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR\x00", b"\xff\xd8\xff\xe0\x00\x10JFIF"])
def test_headers_cut_short_are_corrupt(data) -> None:
    with pytest.raises(InputError) as raised:
        read_compressed_header(data)
    assert raised.value.kind == input_errors.CORRUPT_COMPRESSED


BOMB_CHILD = """
import resource, sys, time
from dpt_ros.errors import InputError
from dpt_ros.pipeline.image_codec import decode_compressed_image
data = open(sys.argv[1], "rb").read()
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    decode_compressed_image(data, "png")
    outcome = "decoded"
except InputError as error:
    outcome = error.kind
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(outcome, before, after)
"""


def test_a_12000x12000_png_bomb_is_refused_without_the_memory_jump(tmp_path) -> None:
    """Peak RSS of a fresh process across the decode call: the 432 MB image is never allocated."""
    bomb = png_bomb(12000, 12000)
    assert len(bomb) < 600_000
    path = tmp_path / "bomb.png"
    path.write_bytes(bomb)
    result = subprocess.run([sys.executable, "-c", BOMB_CHILD, str(path)], capture_output=True, text=True,
                            env=subprocess_env(), timeout=120, check=True)  # fmt: skip
    outcome, before_kib, after_kib = result.stdout.split()
    assert outcome == input_errors.IMAGE_TOO_LARGE
    # the header read copies 64 KiB; anything near the image (432 MB) or one of its rows' worth of pages would show
    assert int(after_kib) - int(before_kib) < 8 * 1024, (before_kib, after_kib)
