"""The one exception type for bad sensor input, with a machine-readable kind for counting.

A node catches `InputError`, counts `kind` in its diagnostics and logs `str(error)` (rate-limited); it
never lets bad input from a driver stop the process.
"""

# Counter keys, one per kind of bad input; diagnostics report every key, even when it is zero.
UNKNOWN_ENCODING = "unknown_encoding"
DATA_LENGTH_MISMATCH = "data_length_mismatch"
ZERO_SIZE = "zero_size_image"
CORRUPT_COMPRESSED = "corrupt_compressed_image"
INVALID_CAMERA_INFO = "invalid_camera_info"
CAMERA_INFO_MISMATCH = "camera_info_resolution_mismatch"
OUT_OF_ORDER_STAMP = "out_of_order_stamp"
INVALID_POINT_CLOUD = "invalid_point_cloud"
IMAGE_TOO_LARGE = "image_too_large"  # more pixels than max_image_pixels (refused before decoding)
UNSUPPORTED_DISTORTION = "unsupported_distortion"  # a distortion model the back-projection cannot undo

INPUT_ERROR_KINDS = (
    UNKNOWN_ENCODING,
    DATA_LENGTH_MISMATCH,
    ZERO_SIZE,
    CORRUPT_COMPRESSED,
    INVALID_CAMERA_INFO,
    CAMERA_INFO_MISMATCH,
    OUT_OF_ORDER_STAMP,
    INVALID_POINT_CLOUD,
    IMAGE_TOO_LARGE,
    UNSUPPORTED_DISTORTION,
)


class InputError(ValueError):
    """A message that cannot be used; `kind` is one of INPUT_ERROR_KINDS, the message says why."""

    def __init__(self, kind: str, message: str) -> None:
        if kind not in INPUT_ERROR_KINDS:
            raise ValueError(f"unknown input error kind {kind!r}")
        super().__init__(message)
        self.kind = kind
