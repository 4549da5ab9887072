"""16UC1 millimetre and 32FC1 metre depth images -> float32 metres with NaN for no data."""

import numpy as np
import pytest

from dpt_ros.errors import DATA_LENGTH_MISMATCH, UNKNOWN_ENCODING, ZERO_SIZE, InputError
from dpt_ros.pipeline.image_codec import decode_depth_image


def test_16uc1_is_millimetres_and_zero_is_no_data():
    mm = np.array([[0, 1, 1500], [65535, 250, 0]], dtype="<u2")
    depth = decode_depth_image(mm.tobytes(), 3, 2, "16UC1", 6)
    assert depth.dtype == np.float32
    np.testing.assert_array_equal(depth, np.array([[np.nan, 0.001, 1.5], [65.535, 0.25, np.nan]], np.float32))


def test_32fc1_is_metres_and_padded_big_endian_rows():
    metres = np.array([[1.25, np.nan, -1.0], [np.inf, 0.0, 7.5]], dtype=">f4")
    padded = np.zeros((2, 16), dtype=np.uint8)
    padded[:, :12] = metres.view(np.uint8).reshape(2, 12)
    depth = decode_depth_image(padded.tobytes(), 3, 2, "32FC1", 16, is_bigendian=True)
    np.testing.assert_array_equal(depth, np.array([[1.25, np.nan, np.nan], [np.nan, np.nan, 7.5]], np.float32))


@pytest.mark.parametrize(
    ("args", "kind"),
    [
        ((b"\0" * 12, 3, 2, "rgb8", 6), UNKNOWN_ENCODING),
        ((b"\0" * 10, 3, 2, "16UC1", 6), DATA_LENGTH_MISMATCH),
        ((b"\0" * 12, 3, 2, "16UC1", 4), DATA_LENGTH_MISMATCH),
        ((b"", 0, 2, "32FC1", 0), ZERO_SIZE),
    ],
)
def test_bad_depth_images_raise_input_errors(args, kind):
    with pytest.raises(InputError) as error:
        decode_depth_image(*args)
    assert error.value.kind == kind
