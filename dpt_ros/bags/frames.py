"""Picks a bag's camera / camera_info / LiDAR topics, pairs each image with its LiDAR scan, and decodes the
messages into the arrays the depth node works on (with the node's own decoders).

Pairing follows the node: an image takes the scan whose header stamp is nearest to its own, if within
``max_lidar_dt``; the newest camera_info received up to the image is used (or, for images recorded before
the first camera_info, the first one that follows). Images that cannot be paired are
reported with the reason, never silently dropped.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from dpt_ros.alignment.lidar_depth import LensModel
from dpt_ros.app.node_config import DepthNodeConfig
from dpt_ros.bags.rosbag_io import (
    CAMERA_INFO,
    IMAGE,
    POINT_CLOUD,
    TF_MESSAGE,
    BagError,
    TopicInfo,
    bag_topics,
    describe_topics,
    iterate_messages,
    reading_warning,
    stamp_to_ns,
)
from dpt_ros.bags.transforms import TransformLookupError, TransformTree
from dpt_ros.errors import InputError
from dpt_ros.geometry.camera import PinholeIntrinsics, intrinsics_from_matrices, require_resolution
from dpt_ros.geometry.cloud_fields import POINT_FIELD_DTYPES, xyz_from_cloud_buffer
from dpt_ros.pipeline.image_codec import DEPTH_ENCODINGS, decode_compressed_image, decode_depth_image, decode_raw_image
from dpt_ros.pipeline.scan_buffer import NearestStampBuffer

COMPRESSED_IMAGE = "sensor_msgs/msg/CompressedImage"
_IMAGE_TYPES = (IMAGE, COMPRESSED_IMAGE)
# images waiting for their scan / ground truth; beyond this, a missing ground truth no longer holds them back
_PENDING_LIMIT = 64
# single-channel encodings of depth (REP 118) and other non-camera images: never auto-detected as the camera
NON_CAMERA_ENCODINGS = frozenset({"32FC1", "16UC1", "16SC1", "64FC1"})
# ground truth is paired with the image of the same header stamp (up to this, seconds: clock rounding)
GROUND_TRUTH_STAMP_TOLERANCE = 1e-6


@dataclass(frozen=True)
class TopicSelection:
    """The topics read (for a KITTI drive: the folders); ground_truth None when there is none."""

    image: str
    camera_info: str
    lidar: str
    ground_truth: str | None = None


def _namespace(topic: str) -> str:
    return topic.rsplit("/", 1)[0]


def _pick(kind: str, option: str, topics: list[TopicInfo], types: tuple[str, ...], requested: str | None,
          near: str | None, everything: list[TopicInfo]) -> str:
    """One topic of the given types: the requested one, the only one, or the only one next to ``near``."""
    listing = f"The bag has:\n{describe_topics(everything)}"
    if requested is not None:
        match = [t for t in topics if t.name == requested]
        if not match:
            raise BagError(f"{kind} topic {requested} is not in the bag. {listing}")
        if match[0].msgtype not in types:
            raise BagError(f"{requested} is {match[0].msgtype}, not {' or '.join(types)}. {listing}")
        return requested
    candidates = [t for t in topics if t.msgtype in types and t.count > 0 and t.encoding not in NON_CAMERA_ENCODINGS]
    if near is not None and len(candidates) > 1:
        beside = [t for t in candidates if _namespace(t.name) == _namespace(near)]
        candidates = beside if len(beside) == 1 else candidates
    if not candidates:
        raise BagError(f"no {kind} messages ({' or '.join(types)}) in the bag. {listing}")
    if len(candidates) > 1:
        names = ", ".join(t.name for t in candidates)
        raise BagError(f"several {kind} topics ({names}); choose one with {option}. {listing}")
    return candidates[0].name


def select_topics(topics: list[TopicInfo], image: str | None = None, camera_info: str | None = None,
                  lidar: str | None = None, ground_truth: str | None = None) -> TopicSelection:
    """Topics to evaluate: given ones are checked, others auto-detected by type when unambiguous (depth
    images are never the camera). ground_truth: a 32FC1 (metres) or 16UC1 (millimetres) Image topic, or None."""
    if not any(t.count for t in topics):
        raise BagError(f"the bag holds no messages. The bag has:\n{describe_topics(topics)}")
    image_topic = _pick("image", "--image-topic", topics, _IMAGE_TYPES, image, None, topics)
    info_topic = _pick("camera_info", "--camera-info-topic", topics, (CAMERA_INFO,), camera_info, image_topic, topics)
    lidar_topic = _pick("LiDAR", "--lidar-topic", topics, (POINT_CLOUD,), lidar, None, topics)
    if ground_truth is not None:
        _pick("ground-truth depth", "--gt-topic", topics, (IMAGE,), ground_truth, None, topics)
        encoding = next(t.encoding for t in topics if t.name == ground_truth)
        if encoding not in DEPTH_ENCODINGS:
            raise BagError(f"ground-truth topic {ground_truth} has encoding {encoding!r}; it must be a depth image "
                           f"({' or '.join(sorted(DEPTH_ENCODINGS))}). The bag has:\n{describe_topics(topics)}")
    return TopicSelection(image_topic, info_topic, lidar_topic, ground_truth)


def read_transform_tree(reader: Any) -> TransformTree:
    """Every /tf_static and /tf transform of the bag (TF messages are small; read once, up front)."""
    tree = TransformTree()
    tf_topics = [name for name, info in reader.topics.items() if info.msgtype == TF_MESSAGE]
    for topic, _, message in iterate_messages(reader, tf_topics):
        tree.add_message(message, is_static=topic.endswith("tf_static"))
    return tree


@dataclass(frozen=True)
class PairedFrame:
    """An image with the camera_info and LiDAR scan that belong to it (messages as read by rosbags)."""

    index: int  # position of the image in the image topic
    stamp_ns: int  # image header stamp
    image: Any
    camera_info: Any
    cloud: Any
    lidar_offset_ns: int  # cloud stamp − image stamp
    ground_truth: Any = None  # the ground-truth depth Image of the same stamp, when a topic for it was chosen


@dataclass(frozen=True)
class SkippedFrame:
    index: int
    stamp_ns: int
    reason: str


def paired_frames(reader: Any, selection: TopicSelection, max_lidar_dt: float = 0.1,
                  ) -> Iterator[PairedFrame | SkippedFrame]:
    """Images of the bag in order, each paired with its camera_info, nearest LiDAR scan and (with a
    ground-truth topic) the ground-truth image of the same stamp, or skipped."""
    max_dt_ns = round(max_lidar_dt * 1e9)
    latest_info: Any = None
    scans: NearestStampBuffer[tuple[int, Any]] = NearestStampBuffer(capacity=64)  # the node's pairing buffer
    ground_truths: NearestStampBuffer[Any] = NearestStampBuffer(capacity=_PENDING_LIMIT)
    newest_scan_ns: int | None = None
    newest_truth_ns: int | None = None
    pending: deque[tuple[int, int, Any, Any]] = deque()  # (index, stamp, image, camera_info)
    n_images = 0

    def resolve(entry: tuple[int, int, Any, Any]) -> PairedFrame | SkippedFrame:
        index, stamp, image, info = entry
        info = info if info is not None else latest_info  # calibration is constant: a later one serves too
        if info is None:
            return SkippedFrame(index, stamp, "no camera_info received by the time this image was settled")
        if not len(scans):
            return SkippedFrame(index, stamp, "no LiDAR scan received yet")
        nearest = scans.nearest(stamp / 1e9, max_lidar_dt)
        if nearest is None:
            return SkippedFrame(index, stamp, f"no LiDAR scan within max_lidar_dt ({max_lidar_dt:g} s)")
        scan_stamp, cloud = nearest[1]
        truth = ground_truths.nearest(stamp / 1e9, GROUND_TRUTH_STAMP_TOLERANCE)
        return PairedFrame(index, stamp, image, info, cloud, scan_stamp - stamp, truth[1] if truth else None)

    def truth_settled(stamp: int) -> bool:
        """Its ground truth has come (or cannot come any more: a later one arrived, or too many wait)."""
        return (selection.ground_truth is None or len(pending) > _PENDING_LIMIT
                or (newest_truth_ns is not None and newest_truth_ns >= stamp))

    topics = [selection.image, selection.camera_info, selection.lidar] + (
        [selection.ground_truth] if selection.ground_truth else [])
    for topic, _, message in iterate_messages(reader, topics):
        if topic == selection.camera_info:
            latest_info = message
            continue
        stamp = stamp_to_ns(message.header)
        if topic == selection.image:
            pending.append((n_images, stamp, message, latest_info))
            n_images += 1
        elif topic == selection.ground_truth:
            ground_truths.add(stamp / 1e9, message)
            newest_truth_ns = stamp if newest_truth_ns is None else max(newest_truth_ns, stamp)
        else:
            scans.add(stamp / 1e9, (stamp, message))
            newest_scan_ns = stamp if newest_scan_ns is None else max(newest_scan_ns, stamp)
        # an image is settled once a scan at least max_dt newer has arrived: later scans can only be farther
        while (pending and newest_scan_ns is not None and newest_scan_ns >= pending[0][1] + max_dt_ns
               and truth_settled(pending[0][1])):
            yield resolve(pending.popleft())
    while pending:
        yield resolve(pending.popleft())


@dataclass
class FrameInputs:
    """One frame's arrays, from a bag or a KITTI drive."""

    rgb: np.ndarray
    intrinsics: PinholeIntrinsics
    lens: LensModel
    xyz: np.ndarray  # (N, 3) LiDAR frame
    ring: np.ndarray | None
    T_cam_lidar: np.ndarray
    extrinsic_source: str  # "tf" (the bag's) or "parameter" (--extrinsic), as the node reports it
    frame_id: str = ""  # the camera's frame, for outputs
    ground_truth: np.ndarray | None = None  # (H, W) float32 metres, NaN where invalid; None without
    n_beams: int | None = None  # the LiDAR's beam count when the source knows it (KITTI: 64)


def message_field(message: Any, *names: str) -> Any:
    """First attribute present: ROS 2 CameraInfo says k/d, ROS 1 says K/D."""
    for name in names:
        if hasattr(message, name):
            return getattr(message, name)
    raise AttributeError(names[0])


def cloud_column(cloud: Any, name: str) -> np.ndarray | None:
    """(N,) values of one scalar PointCloud2 field (e.g. 'ring') in point order, or None if absent."""
    for field_ in cloud.fields:
        if field_.name == name and field_.datatype in POINT_FIELD_DTYPES and field_.count == 1:
            dtype = np.dtype(POINT_FIELD_DTYPES[field_.datatype]).newbyteorder(">" if cloud.is_bigendian else "<")
            rows = np.frombuffer(np.asarray(cloud.data, dtype=np.uint8).tobytes(), dtype=np.uint8)
            rows = rows[: cloud.height * cloud.row_step].reshape(cloud.height, cloud.row_step)
            points = rows[:, : cloud.width * cloud.point_step].reshape(cloud.height * cloud.width, cloud.point_step)
            return points[:, field_.offset : field_.offset + dtype.itemsize].copy().view(dtype).ravel()
    return None


def lens_from_camera_info(info: Any, intrinsics_source: str) -> LensModel:
    """The lens the prediction is for, built as the node builds it (`LensModel.from_calibration`)."""
    return LensModel.from_calibration(
        message_field(info, "k", "K"), message_field(info, "d", "D"), message_field(info, "p", "P"),
        info.distortion_model, intrinsics_source, info.width, info.height,
    )


def decode_frame(pair: PairedFrame, tree: TransformTree, config: DepthNodeConfig) -> FrameInputs:
    """Message → arrays, with the node's own decoders; raises InputError / ValueError / TransformLookupError."""
    image = pair.image
    if hasattr(image, "format"):
        rgb = decode_compressed_image(np.asarray(image.data, dtype=np.uint8), image.format)
    else:
        rgb = decode_raw_image(np.asarray(image.data, dtype=np.uint8), image.width, image.height, image.encoding,
                               image.step)
    info = pair.camera_info
    intrinsics = intrinsics_from_matrices(message_field(info, "k", "K"), message_field(info, "p", "P"), info.width,
                                          info.height, config.intrinsics_source)
    require_resolution(intrinsics, rgb.shape[1], rgb.shape[0])
    cloud = pair.cloud
    xyz = xyz_from_cloud_buffer(np.asarray(cloud.data, dtype=np.uint8), cloud.fields, cloud.point_step,
                                cloud.row_step, cloud.width, cloud.height, cloud.is_bigendian)
    extrinsic, source = config.lidar_extrinsic(), "parameter"
    if extrinsic is None:
        extrinsic, source = tree.lookup(image.header.frame_id, cloud.header.frame_id, pair.stamp_ns), "tf"
    lens = lens_from_camera_info(info, config.intrinsics_source)
    truth = None
    if pair.ground_truth is not None:
        message = pair.ground_truth
        truth = decode_depth_image(np.asarray(message.data, dtype=np.uint8), message.width, message.height,
                                   message.encoding, message.step, bool(message.is_bigendian))
        if truth.shape != rgb.shape[:2]:
            raise ValueError(f"ground-truth depth is {truth.shape[1]}x{truth.shape[0]}, the image "
                             f"{rgb.shape[1]}x{rgb.shape[0]}")
    return FrameInputs(rgb, intrinsics, lens, xyz, cloud_column(cloud, "ring"), extrinsic, source,
                       image.header.frame_id, truth)


@dataclass(frozen=True)
class BagFrames:
    selection: TopicSelection
    total: int  # images that will be yielded
    warning: str | None = None  # why the recording was only partly readable (recovered), None when intact


def decoded_frames(reader: Any, config: DepthNodeConfig, max_frames: int | None,
                   topics: dict[str, str | None] | None) -> tuple[BagFrames, Any]:
    """The bag's images in order, as (pair, inputs, decode ms) or (skipped frame, None, 0), decoded the node's
    way for its ``config`` — the one reading path of evaluation and node reproduction. A LiDAR→camera
    transform missing at the very first frame is a BagError (nothing could be scored)."""
    selection = select_topics(bag_topics(reader), **(topics or {}))
    tree = read_transform_tree(reader) if config.lidar_extrinsic() is None else TransformTree()
    n_images = reader.topics[selection.image].msgcount
    total = min(n_images, max_frames) if max_frames else n_images

    def frames() -> Any:
        decoded_any = False
        for item in paired_frames(reader, selection, config.lidar_max_dt):
            if item.index >= total:
                return
            if isinstance(item, SkippedFrame):
                yield item, None, 0.0
                continue
            start = time.perf_counter()
            try:
                inputs = decode_frame(item, tree, config)
            except TransformLookupError as error:
                if not decoded_any:
                    raise BagError(f"{error}. Pass the LiDAR→camera transform with --extrinsic "
                                          "'x y z qx qy qz qw' (or 16 values, row-major 4×4).") from None
                yield SkippedFrame(item.index, item.stamp_ns, "no transform at this time"), None, 0.0
                continue
            except (InputError, ValueError) as error:
                yield SkippedFrame(item.index, item.stamp_ns, f"bad input: {error}"), None, 0.0
                continue
            decoded_any = True
            yield item, inputs, (time.perf_counter() - start) * 1e3

    return BagFrames(selection, total, reading_warning(reader)), frames()
