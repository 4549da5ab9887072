"""Reading and writing ROS bags without a ROS runtime, with the `rosbags` library.

Message construction from numpy arrays, one writer for rosbag2 (mcap or sqlite3) and ROS 1 bags, and opening
any of them for reading with errors turned into one clear :class:`BagError`. Never imports rclpy.
"""

from __future__ import annotations

import os
import shutil
import struct
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime
from rosbags.typesys import Stores, get_types_from_msg, get_typestore

# Kilted is this package's ROS distribution; its message definitions are those the node sees on the wire.
TYPESTORE = get_typestore(Stores.ROS2_KILTED)
ROS1_TYPESTORE = get_typestore(Stores.ROS1_NOETIC)
# rosbags' Noetic store lacks tf2_msgs; its ROS 1 definition is one line
ROS1_TYPESTORE.register(get_types_from_msg("geometry_msgs/TransformStamped[] transforms", "tf2_msgs/msg/TFMessage"))

IMAGE = "sensor_msgs/msg/Image"
CAMERA_INFO = "sensor_msgs/msg/CameraInfo"
POINT_CLOUD = "sensor_msgs/msg/PointCloud2"
TF_MESSAGE = "tf2_msgs/msg/TFMessage"

STORAGE_FORMATS = ("mcap", "sqlite3", "ros1")

_NEVER = QosTime(2147483647, 4294967295)
# what `ros2 bag record` stores for /tf_static, so players republish it latched
LATCHED_QOS = Qos(QosHistory.KEEP_LAST, 1, QosReliability.RELIABLE, QosDurability.TRANSIENT_LOCAL, _NEVER, _NEVER,
                  QosLiveliness.AUTOMATIC, _NEVER, avoid_ros_namespace_conventions=False)


class BagError(RuntimeError):
    """A bag that cannot be read or written as asked; the message says what is wrong and what to do."""


# ----------------------------------------------------------------------------------------------------------------
# Messages from arrays
# ----------------------------------------------------------------------------------------------------------------


def _type(name: str) -> Any:
    return TYPESTORE.types[name]


def make_header(stamp_ns: int, frame_id: str) -> Any:
    time = _type("builtin_interfaces/msg/Time")(sec=stamp_ns // 1_000_000_000, nanosec=stamp_ns % 1_000_000_000)
    return _type("std_msgs/msg/Header")(stamp=time, frame_id=frame_id)


def stamp_to_ns(header: Any) -> int:
    """Header stamp as integer nanoseconds (works for ROS 1 and ROS 2 headers as read by rosbags)."""
    return int(header.stamp.sec) * 1_000_000_000 + int(header.stamp.nanosec)


_IMAGE_ENCODINGS = {"rgb8": (np.uint8, 3), "mono8": (np.uint8, 1), "32FC1": (np.float32, 1), "16UC1": (np.uint16, 1)}


def make_image(array: np.ndarray, encoding: str, stamp_ns: int, frame_id: str) -> Any:
    """sensor_msgs/Image from an (H, W, 3) uint8 rgb8 array or an (H, W) 32FC1/16UC1/mono8 array."""
    dtype, channels = _IMAGE_ENCODINGS[encoding]
    array = np.ascontiguousarray(array, dtype=np.dtype(dtype).newbyteorder("<"))
    if array.ndim != (3 if channels > 1 else 2):
        raise ValueError(f"{encoding} needs {'(H, W, 3)' if channels > 1 else '(H, W)'} data, got {array.shape}")
    height, width = array.shape[:2]
    return _type(IMAGE)(
        header=make_header(stamp_ns, frame_id), height=height, width=width, encoding=encoding, is_bigendian=0,
        step=width * channels * array.itemsize, data=array.view(np.uint8).reshape(-1),
    )


def make_camera_info(K: np.ndarray, width: int, height: int, stamp_ns: int, frame_id: str) -> Any:
    """Undistorted pinhole CameraInfo (plumb_bob with zero D, identity R, P = [K | 0])."""
    projection = np.zeros((3, 4))
    projection[:, :3] = K
    roi = _type("sensor_msgs/msg/RegionOfInterest")(x_offset=0, y_offset=0, height=0, width=0, do_rectify=False)
    return _type(CAMERA_INFO)(
        header=make_header(stamp_ns, frame_id), height=height, width=width, distortion_model="plumb_bob",
        d=np.zeros(5), k=np.asarray(K, dtype=float).reshape(-1), r=np.eye(3).reshape(-1),
        p=projection.reshape(-1), binning_x=0, binning_y=0, roi=roi,
    )


# numpy dtype -> sensor_msgs/PointField datatype
_POINT_FIELD_TYPES = {np.dtype("float32"): 7, np.dtype("float64"): 8, np.dtype("uint16"): 4, np.dtype("uint8"): 2,
                      np.dtype("int32"): 5, np.dtype("uint32"): 6}


def make_point_cloud(fields: dict[str, np.ndarray], stamp_ns: int, frame_id: str) -> Any:
    """Unorganised little-endian PointCloud2 from equally long columns, each keeping its dtype (float32 x, y, z,
    intensity; uint16 ring; ...), packed in order with each field at its natural alignment like real drivers."""
    point_field = _type("sensor_msgs/msg/PointField")
    columns = {name: np.asarray(column) for name, column in fields.items()}
    offsets, offset = {}, 0
    for name, column in columns.items():
        if column.dtype not in _POINT_FIELD_TYPES:
            raise ValueError(f"PointField {name!r}: unsupported dtype {column.dtype}")
        offset = -(-offset // column.dtype.itemsize) * column.dtype.itemsize  # align up
        offsets[name], offset = offset, offset + column.dtype.itemsize
    point_step = -(-offset // 4) * 4
    layout = np.dtype({"names": list(columns), "offsets": list(offsets.values()), "itemsize": point_step,
                       "formats": [column.dtype.newbyteorder("<") for column in columns.values()]})
    n_points = len(next(iter(columns.values()))) if columns else 0
    packed = np.zeros(n_points, dtype=layout)
    for name, column in columns.items():
        packed[name] = column
    finite = all(np.isfinite(c).all() for c in columns.values() if c.dtype.kind == "f")
    return _type(POINT_CLOUD)(
        header=make_header(stamp_ns, frame_id), height=1, width=n_points,
        fields=[point_field(name=name, offset=offsets[name], datatype=_POINT_FIELD_TYPES[column.dtype], count=1)
                for name, column in columns.items()],
        is_bigendian=False, point_step=point_step, row_step=point_step * n_points,
        data=packed.view(np.uint8).reshape(-1), is_dense=finite,
    )


def make_packed_cloud(cloud: Any, stamp_ns: int, frame_id: str) -> Any:
    """PointCloud2 from an already packed cloud (dpt_ros.geometry.pointcloud.PackedCloud: data, sizes, fields)."""
    point_field = _type("sensor_msgs/msg/PointField")
    return _type(POINT_CLOUD)(
        header=make_header(stamp_ns, frame_id), height=cloud.height, width=cloud.width,
        fields=[point_field(name=f.name, offset=f.offset, datatype=f.datatype, count=f.count) for f in cloud.fields],
        is_bigendian=False, point_step=cloud.point_step, row_step=cloud.row_step,
        data=np.asarray(cloud.data, dtype=np.uint8).reshape(-1), is_dense=bool(cloud.is_dense),
    )


def rotation_to_quaternion(rotation: np.ndarray) -> tuple[float, float, float, float]:
    """(x, y, z, w) unit quaternion of a 3×3 rotation matrix (Shepperd's method, numerically stable)."""
    m = np.asarray(rotation, dtype=float)
    trace = np.trace(m)
    if trace > 0.0:
        s = 2.0 * np.sqrt(1.0 + trace)
        q = ((m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s, 0.25 * s)
    else:
        i = int(np.argmax(np.diag(m)))
        j, k = (i + 1) % 3, (i + 2) % 3
        s = 2.0 * np.sqrt(1.0 + m[i, i] - m[j, j] - m[k, k])
        q_vec = np.zeros(3)
        q_vec[i] = 0.25 * s
        q_vec[j] = (m[j, i] + m[i, j]) / s
        q_vec[k] = (m[k, i] + m[i, k]) / s
        q = (*q_vec, (m[k, j] - m[j, k]) / s)
    q_array = np.asarray(q) / np.linalg.norm(q)
    return tuple(float(value) for value in q_array)  # type: ignore[return-value]


def make_tf_message(transforms: list[tuple[str, str, np.ndarray]], stamp_ns: int) -> Any:
    """tf2_msgs/TFMessage from (parent, child, T_parent_child) triples (T maps child coordinates into parent)."""
    vector3, quaternion = _type("geometry_msgs/msg/Vector3"), _type("geometry_msgs/msg/Quaternion")
    stamped = []
    for parent, child, transform in transforms:
        x, y, z = (float(v) for v in transform[:3, 3])
        qx, qy, qz, qw = rotation_to_quaternion(transform[:3, :3])
        stamped.append(_type("geometry_msgs/msg/TransformStamped")(
            header=make_header(stamp_ns, parent), child_frame_id=child,
            transform=_type("geometry_msgs/msg/Transform")(translation=vector3(x=x, y=y, z=z),
                                                           rotation=quaternion(x=qx, y=qy, z=qz, w=qw)),
        ))
    return _type(TF_MESSAGE)(transforms=stamped)


# ----------------------------------------------------------------------------------------------------------------
# Writing
# ----------------------------------------------------------------------------------------------------------------


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()


class BagWriter:
    """Writes a rosbag2 (``mcap``/``sqlite3``, a directory) or a ROS 1 bag (``ros1``, a file) atomically: into a
    temporary sibling first, renamed onto ``path`` only when closed without error.

    Usage: ``with BagWriter(path, "mcap") as bag: bag.add_topic(...); bag.write(...)``.
    """

    def __init__(self, path: Path | str, storage: str, overwrite: bool = False) -> None:
        if storage not in STORAGE_FORMATS:
            raise BagError(f"unknown bag format {storage!r}; choose one of {', '.join(STORAGE_FORMATS)}")
        self.path, self.storage, self.overwrite = Path(path), storage, overwrite
        if self.path.exists() and not overwrite:
            raise BagError(f"{self.path} already exists (pass overwrite to replace it)")
        self._temporary = self.path.with_name(f".{self.path.name}.{uuid.uuid4().hex[:8]}.partial")
        self._connections: dict[str, Any] = {}
        self._writer: Any = None

    def __enter__(self) -> "BagWriter":
        if self.storage == "ros1":
            from rosbags.rosbag1 import Writer as Ros1Writer

            self._writer = Ros1Writer(self._temporary)
        else:
            from rosbags.rosbag2 import StoragePlugin, Writer

            plugin = StoragePlugin.MCAP if self.storage == "mcap" else StoragePlugin.SQLITE3
            self._writer = Writer(self._temporary, version=9, storage_plugin=plugin)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._writer.open()
        return self

    def add_topic(self, topic: str, msgtype: str, latched: bool = False) -> None:
        if self.storage == "ros1":
            self._connections[topic] = self._writer.add_connection(
                topic, msgtype, typestore=ROS1_TYPESTORE, latching=1 if latched else None)
        else:
            self._connections[topic] = self._writer.add_connection(
                topic, msgtype, typestore=TYPESTORE, offered_qos_profiles=[LATCHED_QOS] if latched else ())

    def write(self, topic: str, stamp_ns: int, message: Any) -> None:
        """Record ``message`` (a ROS 2 message object from this module) at receive time ``stamp_ns``."""
        connection = self._connections[topic]
        data = TYPESTORE.serialize_cdr(message, connection.msgtype)
        if self.storage == "ros1":
            data = TYPESTORE.cdr_to_ros1(data, connection.msgtype)
        self._writer.write(connection, int(stamp_ns), data)

    def write_serialized(self, topic: str, stamp_ns: int, cdr: bytes) -> None:
        """Record an already CDR-serialised message (e.g. from a raw rclpy subscription); rosbag2 only."""
        if self.storage == "ros1":
            raise BagError("raw CDR messages can only be recorded into rosbag2 (mcap/sqlite3) bags")
        self._writer.write(self._connections[topic], int(stamp_ns), cdr)

    def __exit__(self, exc_type: Any, exc: Any, traceback: Any) -> None:
        self._writer.close()
        if exc_type is not None:
            _remove(self._temporary)
            return
        if self.overwrite:
            _remove(self.path)
        os.replace(self._temporary, self.path)


# ----------------------------------------------------------------------------------------------------------------
# Reading
# ----------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TopicInfo:
    """encoding: the first message's ``encoding`` for sensor_msgs/Image topics (rgb8, 32FC1, ...), else ""."""

    name: str
    msgtype: str
    count: int
    encoding: str = ""


def _first_encoding(reader: Any, topic: str) -> str:
    for _, _, message in iterate_messages(reader, [topic]):
        return str(message.encoding)
    return ""


def bag_topics(reader: Any) -> list[TopicInfo]:
    """Topics of an open reader, sorted by name (Image topics with their encoding: one message read each)."""
    return sorted((TopicInfo(name, info.msgtype or "?", info.msgcount,
                             _first_encoding(reader, name) if info.msgtype == IMAGE and info.msgcount else "")
                   for name, info in reader.topics.items()), key=lambda topic: topic.name)


def describe_topics(topics: list[TopicInfo]) -> str:
    return "\n".join(f"  {t.name}  [{t.msgtype}{', ' + t.encoding if t.encoding else ''}]  {t.count} messages"
                     for t in topics) or "  (no topics)"


def open_bag(path: Path | str) -> Any:
    """An open ``rosbags.highlevel.AnyReader`` for a rosbag2 directory (mcap/sqlite3), a lone ``.mcap``/``.db3``
    file inside one, or a ROS 1 ``.bag`` file. A rosbag2 recording cut short (an mcap without footer, a sqlite3
    file with torn pages, a missing metadata.yaml) gives a ``dpt_ros.bags.recovery.RecoveredBag`` of what
    survives (``reading_warning`` says how much). Every other failure becomes a :class:`BagError` naming the path."""
    from rosbags.highlevel import AnyReader

    path = Path(path)
    if not path.exists():
        raise BagError(f"no bag at {path}")
    if path.is_file() and path.suffix in (".mcap", ".db3") and (path.parent / "metadata.yaml").exists():
        path = path.parent
    if path.is_file() and path.suffix != ".bag":
        raise BagError(f"{path} is not a bag: give a rosbag2 directory (with metadata.yaml) or a ROS 1 .bag file")
    reader = AnyReader([path], default_typestore=TYPESTORE)
    try:
        reader.open()
    except Exception as error:  # rosbags raises several unrelated types for damaged files
        recovered = _recover(path)
        if recovered is None:
            raise BagError(f"cannot read bag {path}: {error}") from None
        return recovered
    return reader


def _recover(path: Path) -> Any:
    """What survives of a rosbag2 directory with one damaged mcap or sqlite3 file (``dpt_ros.bags.recovery``),
    or None when it is not such a bag or nothing survives."""
    from dpt_ros.bags.recovery import RecoveredBag, RecoveryError

    storage = sorted(path.glob("*.mcap")) + sorted(path.glob("*.db3")) if path.is_dir() else []
    if len(storage) != 1:
        return None
    try:
        return RecoveredBag(storage[0], TYPESTORE)
    except (RecoveryError, OSError, ValueError, struct.error):
        return None


def reading_warning(reader: Any) -> str | None:
    """Why a bag was only partly read (a recovered, damaged recording), or None for an intact one."""
    return getattr(reader, "warning", None)


def iterate_messages(reader: Any, topics: list[str]) -> Iterator[tuple[str, int, Any]]:
    """(topic, receive time ns, deserialised message) in time order; damage mid-bag becomes a BagError."""
    connections = [c for c in reader.connections if c.topic in topics]
    try:
        for connection, timestamp, raw in reader.messages(connections=connections):
            yield connection.topic, timestamp, reader.deserialize(raw, connection.msgtype)
    except BagError:
        raise
    except Exception as error:
        raise BagError(f"bag is damaged or truncated: {type(error).__name__}: {error}") from None
