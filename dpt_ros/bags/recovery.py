"""Reading what survives of a rosbag2 recording cut short by a crash or power loss.

- **mcap** without its footer or summary (or with a torn last chunk): the file is walked record by record from
  the start; every complete chunk whose checksum holds (and every complete message outside chunks) gives its
  schemas, channels and messages. A chunk that fails its checksum is skipped; reading stops at the first
  incomplete or impossible record.
- **sqlite3** whose last pages are torn ("database disk image is malformed"): from a temporary working copy
  (see ``RecoveredBag._working_copy``; it takes the recording's size on disk), the topics table and every
  ``messages`` row SQLite can still read, in row order; rows on a damaged page are skipped and the scan
  resumes after them.

``RecoveredBag`` offers the part of ``rosbags.highlevel.AnyReader`` that dpt_ros reads bags with (topics,
connections, messages, deserialize, close), plus ``warning``: how many messages were recovered and from what.
Messages come in file order (time order for a recorder that writes them as they arrive).
"""

from __future__ import annotations

import mmap
import os
import shutil
import sqlite3
import struct
import tempfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MCAP_MAGIC = b"\x89MCAP0\r\n"
_SCHEMA, _CHANNEL, _MESSAGE, _CHUNK = 0x03, 0x04, 0x05, 0x06
# opcodes MCAP defines (0x01 header ... 0x10 data end); anything else means we are reading garbage
_KNOWN_OPCODES = frozenset(range(0x01, 0x11))
# past a damaged page, row ids are probed up to this far ahead (2^24: more rows than any recording has)
_MAX_ID_PROBE = 1 << 24


@dataclass(frozen=True)
class RecoveredConnection:
    id: int
    topic: str
    msgtype: str


@dataclass(frozen=True)
class RecoveredTopic:
    msgtype: str
    msgcount: int


class RecoveryError(RuntimeError):
    """Nothing could be recovered; the message says why."""


def _string(data: bytes | memoryview, offset: int) -> tuple[str, int]:
    (length,) = struct.unpack_from("<I", data, offset)
    end = offset + 4 + length
    if end > len(data):
        raise ValueError("string past the end of its record")
    return bytes(data[offset + 4 : end]).decode(), end


class _McapFile:
    """The complete records of a possibly truncated mcap file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.schemas: dict[int, str] = {}  # schema id -> message type name
        self.channels: dict[int, tuple[str, int]] = {}  # channel id -> (topic, schema id)
        self.counts: Counter[int] = Counter()
        self.chunks = 0
        self.damage = ""
        for _ in self._messages(count_only=True):
            pass

    def _records(self, data: bytes | memoryview, offset: int, end: int) -> Iterator[tuple[int, memoryview]]:
        """(opcode, body) of each complete record in data[offset:end]; sets ``damage`` where they stop."""
        view = memoryview(data)
        while offset < end:
            if offset + 9 > end:
                self.damage = f"a record cut off at byte {offset}"
                return
            opcode = view[offset]
            (length,) = struct.unpack_from("<Q", view, offset + 1)
            if opcode not in _KNOWN_OPCODES:
                self.damage = f"an unknown record (opcode {opcode:#x}) at byte {offset}"
                return
            if offset + 9 + length > end:
                self.damage = f"a record cut off at byte {offset}"
                return
            yield opcode, view[offset + 9 : offset + 9 + length]
            offset += 9 + length

    def _inner(self, opcode: int, body: memoryview, count_only: bool) -> Iterator[tuple[int, int, bytes]]:
        """Schemas and channels are noted; messages yielded as (channel id, log time ns, data)."""
        if opcode == _SCHEMA:
            (schema_id,) = struct.unpack_from("<H", body, 0)
            self.schemas[schema_id], _ = _string(body, 2)
        elif opcode == _CHANNEL:
            channel_id, schema_id = struct.unpack_from("<HH", body, 0)
            topic, _ = _string(body, 4)
            self.channels[channel_id] = (topic, schema_id)
        elif opcode == _MESSAGE:
            channel_id, _, log_time = struct.unpack_from("<HIQ", body, 0)
            if count_only:
                self.counts[channel_id] += 1
            else:
                yield channel_id, log_time, bytes(body[22:])

    def _messages(self, count_only: bool = False) -> Iterator[tuple[int, int, bytes]]:
        from rosbags.rosbag2.errors import ReaderError
        from rosbags.rosbag2.storage_mcap import decompress

        with self.path.open("rb") as file:
            if file.read(len(MCAP_MAGIC)) != MCAP_MAGIC:
                raise RecoveryError(f"{self.path} does not start like an mcap file")
            # mapped, not read: a recording of many GB is paged in chunk by chunk, never held whole
            data = mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ)
        for opcode, body in self._records(data, len(MCAP_MAGIC), len(data)):
            if opcode != _CHUNK:
                yield from self._inner(opcode, body, count_only)
                continue
            uncompressed_size, crc = struct.unpack_from("<QI", body, 16)
            compression, offset = _string(body, 28)
            (size,) = struct.unpack_from("<Q", body, offset)
            try:
                records = decompress(bytes(body[offset + 8 : offset + 8 + size]), compression, uncompressed_size, crc)
            except (ReaderError, RuntimeError, ValueError) as error:
                self.damage = f"a damaged chunk ({error})"  # skipped; the chunks after it may be whole
                continue
            if count_only:
                self.chunks += 1
            messages = []
            for inner_opcode, inner_body in self._records(records, 0, len(records)):
                messages.extend(self._inner(inner_opcode, inner_body, count_only))
            yield from sorted(messages, key=lambda message: message[1])  # time order within the chunk


def _readable_after(connection: sqlite3.Connection, row_id: int) -> bool:
    """Whether the row following ``row_id`` (if any) can be read: its page is intact."""
    try:
        connection.execute("SELECT id FROM messages WHERE id > ? ORDER BY id LIMIT 1", (row_id,)).fetchall()
    except sqlite3.DatabaseError:
        return False
    return True


def _next_readable(connection: sqlite3.Connection, last_id: int) -> int | None:
    """The first id X past the damage that follows ``last_id`` after which rows are readable again (rows of
    one page have consecutive ids): exponential, then binary search over ids; None when nothing follows."""
    step = 1
    while not _readable_after(connection, last_id + step):
        step *= 2
        if step > _MAX_ID_PROBE:
            return None
    low, high = last_id + step // 2, last_id + step  # readable after high, not after low (or low = last_id)
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (low, middle) if _readable_after(connection, middle) else (middle, high)
    return high


class RecoveredBag:
    """A damaged rosbag2 file's surviving messages, read like an AnyReader (see the module docstring)."""

    def __init__(self, path: Path, typestore: Any) -> None:
        """path: the .mcap or .db3 file; typestore: the rosbags typestore that deserialises its messages."""
        self.path = path
        self._typestore = typestore
        if path.suffix == ".mcap":
            self._mcap: _McapFile | None = _McapFile(path)
            channels = {cid: (topic, self._mcap.schemas.get(schema, "?"))
                        for cid, (topic, schema) in self._mcap.channels.items()}
            counts = self._mcap.counts
            unit = f"{self._mcap.chunks} complete chunks"
            damage = self._mcap.damage or "its index or metadata unreadable"
        else:
            self._mcap = None
            self._copy = self._working_copy()
            try:
                channels, counts = self._sqlite_scan()
            except RecoveryError:
                self.close()
                raise
            unit = "intact rows"
            damage = "damaged database pages"
        self.connections = [RecoveredConnection(cid, topic, msgtype) for cid, (topic, msgtype) in channels.items()]
        self.topics = {c.topic: RecoveredTopic(c.msgtype, counts[c.id]) for c in self.connections}
        total = sum(counts[c.id] for c in self.connections)
        if not total:
            self.close()
            raise RecoveryError(f"no message of {path} could be recovered ({damage})")
        self.warning = (f"{path} is damaged or was cut short ({damage}); recovered {total} messages from its "
                        f"{unit}: evaluating those")

    # sqlite3 -------------------------------------------------------------------------------------------------

    def _working_copy(self) -> Path:
        """A temporary copy of the database that SQLite sizes by its length, not by its header.

        A torn file is shorter than the page count in its header, and SQLite then refuses even its schema. The
        header's size is only trusted while its "version-valid-for" number equals the change counter (SQLite
        file format, section 1.3.7), so the copy gets a different one; whole pages only. The recording itself is
        never written.
        """
        handle, name = tempfile.mkstemp(suffix=".db3", prefix="dpt_ros_recovered_")
        os.close(handle)
        copy = Path(name)
        shutil.copyfile(self.path, copy)
        with copy.open("r+b") as file:
            header = file.read(100)
            if len(header) < 100 or not header.startswith(b"SQLite format 3\0"):
                copy.unlink()
                raise RecoveryError(f"{self.path} does not start like an SQLite database")
            page_size = int.from_bytes(header[16:18], "big")
            page_size = 65536 if page_size == 1 else page_size
            file.truncate(copy.stat().st_size // page_size * page_size)
            change_counter = int.from_bytes(header[24:28], "big")
            file.seek(92)
            file.write(((change_counter + 1) % 2**32).to_bytes(4, "big"))
        return copy

    def _connect(self) -> sqlite3.Connection:
        # immutable: no journal, no locks, only read what is there
        return sqlite3.connect(f"file:{self._copy}?mode=ro&immutable=1", uri=True)

    def _sqlite_rows(self, columns: str) -> Iterator[tuple[Any, ...]]:
        """Every readable messages row (id first), in id order; rows on damaged pages are skipped."""
        connection = self._connect()
        try:
            query = f"SELECT id, {columns} FROM messages WHERE id > ? ORDER BY id"
            last_id: int | None = 0
            while last_id is not None:
                try:
                    for row in connection.execute(query, (last_id,)):
                        last_id = row[0]
                        yield row
                    return
                except sqlite3.DatabaseError:
                    pass
                # Python's cursor steps one row ahead, so the last good row before damage raised with it:
                # take the rows up to the damage one at a time (LIMIT 1 never steps past its row)
                while True:
                    try:
                        row = connection.execute(query + " LIMIT 1", (last_id,)).fetchone()
                    except sqlite3.DatabaseError:
                        break
                    if row is None:
                        return
                    last_id = row[0]
                    yield row
                last_id = _next_readable(connection, last_id)
        finally:
            connection.close()

    def _sqlite_scan(self) -> tuple[dict[int, tuple[str, str]], Counter[int]]:
        try:
            connection = self._connect()
            try:
                topics = connection.execute("SELECT id, name, type FROM topics").fetchall()
            finally:
                connection.close()
        except sqlite3.DatabaseError as error:
            raise RecoveryError(f"the topics table of {self.path} cannot be read ({error})") from None
        counts: Counter[int] = Counter(row[1] for row in self._sqlite_rows("topic_id"))
        return {tid: (name, msgtype) for tid, name, msgtype in topics}, counts

    # the AnyReader interface ---------------------------------------------------------------------------------

    def messages(self, connections: list[RecoveredConnection] | None = None,
                 ) -> Iterator[tuple[RecoveredConnection, int, bytes]]:
        """(connection, receive time ns, CDR bytes) of the recovered messages on ``connections`` (all if None)."""
        wanted = {c.id: c for c in (connections if connections is not None else self.connections)}
        if self._mcap is not None:
            for channel_id, log_time, data in self._mcap._messages():
                if channel_id in wanted:
                    yield wanted[channel_id], log_time, data
            return
        for _, topic_id, timestamp, data in self._sqlite_rows("topic_id, timestamp, data"):
            if topic_id in wanted:
                yield wanted[topic_id], timestamp, data

    def deserialize(self, raw: bytes, msgtype: str) -> Any:
        return self._typestore.deserialize_cdr(raw, msgtype)

    def close(self) -> None:
        """Removes the sqlite3 working copy (nothing else stays open between reads)."""
        copy = getattr(self, "_copy", None)
        if copy is not None:
            copy.unlink(missing_ok=True)
            self._copy = None
