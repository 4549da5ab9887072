"""Fetch weight files over HTTP(S) or from a local mirror: resumable, verified, atomic.

Everything here is driven by data (a URL, a file name, the digest that is known), so a preset added to
`dpt_ros.model.presets` downloads without code changes. Standard library only (urllib), plus tqdm for
the progress bar.

- The bytes go to `<file>.part` next to the destination. A later run resumes it with an HTTP Range
  request (a server that ignores Range sends the whole file, which then replaces the partial one).
- The SHA-256 is computed while writing and checked against the full digest where one is recorded,
  else against the hex prefix the official file name carries. A mismatch deletes the download.
- Only a verified file is renamed (atomically, `os.replace`) to its final name: a crash, a cut connection
  or a full disk never leaves a half-written file there.
"""

from __future__ import annotations

import errno
import hashlib
import http.client
import io
import os
import shutil
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Literal

from tqdm import tqdm

from dpt_ros.model.presets import Preset

DOWNLOAD_COMMAND = "dpt-ros-weights download"
CHUNK_BYTES = 1 << 20
TIMEOUT_S = 30.0  # per connect / per read: a stalled server is reported, never waited on forever
PART_SUFFIX = ".part"
USER_AGENT = "dpt_ros-weights/1"

Verification = Literal["sha256", "prefix", "none"]


class DownloadError(RuntimeError):
    """A download that failed, as one line saying what happened and what to do."""


def download_hint(preset: Preset) -> str:
    """The command that fetches a preset's weights (and the URL and digest it checks), for the messages
    about missing or wrong weights."""
    if preset.sha256:
        digest = f"; SHA-256 {preset.sha256}"
    elif preset.sha256_prefix:
        digest = f"; SHA-256 starts with {preset.sha256_prefix}"
    else:
        digest = ""  # the publisher gives no hash: the file is checked by loading it
    return f"run `{DOWNLOAD_COMMAND} {preset.name}` (or fetch {preset.url} into models/{digest})"


@dataclass(frozen=True)
class ExpectedDigest:
    """What is known of a file's SHA-256: the full hex digest, or only its first hex digits, or nothing."""

    sha256: str = ""
    prefix: str = ""

    @classmethod
    def of_preset(cls, preset: Preset) -> ExpectedDigest:
        return cls(preset.sha256.lower(), preset.sha256_prefix.lower())

    @property
    def verification(self) -> Verification:
        return "sha256" if self.sha256 else "prefix" if self.prefix else "none"

    def mismatch(self, digest: str) -> str | None:
        """None when `digest` (64 hex) agrees with what is known, else why not."""
        if self.sha256 and digest != self.sha256:
            return f"sha256 {digest} != expected {self.sha256}"
        if not self.sha256 and self.prefix and not digest.startswith(self.prefix):
            return f"sha256 {digest} does not start with {self.prefix}"
        return None


@dataclass(frozen=True)
class DownloadResult:
    """path: the verified file; sha256: its full digest; reused: it was already there and verified
    (nothing was fetched); resumed_from: bytes of an earlier partial download kept (0 = fresh);
    fetched: bytes transferred this time; replaced: a file with the wrong digest was replaced."""

    path: Path
    sha256: str
    verification: Verification
    reused: bool = False
    resumed_from: int = 0
    fetched: int = 0
    replaced: bool = False


def part_path(destination: Path) -> Path:
    return destination.with_name(destination.name + PART_SUFFIX)


def sha256_of(path: Path, chunk_bytes: int = CHUNK_BYTES) -> str:
    """Full hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(chunk_bytes):
            digest.update(chunk)
    return digest.hexdigest()


def source_url(preset: Preset, url: str | None = None, mirror: str | Path | None = None) -> str:
    """Where to fetch a preset's file: `url` verbatim, else `<mirror>/<weights file>` (a base URL or a
    local folder), else the preset's official URL."""
    if url:
        return url
    if mirror:
        mirror = str(mirror)
        if urllib.parse.urlsplit(mirror).scheme in ("http", "https", "file"):
            return mirror.rstrip("/") + "/" + urllib.parse.quote(preset.weights_file)
        return Path(mirror).expanduser().resolve().joinpath(preset.weights_file).as_uri()
    return preset.url


def download_file(
    url: str,
    destination: str | Path,
    expected: ExpectedDigest = ExpectedDigest(),
    progress: bool = True,
    timeout_s: float = TIMEOUT_S,
) -> DownloadResult:
    """Fetch `url` (http, https or file) to `destination`, verified against `expected`.

    An existing destination whose digest agrees is kept and nothing is fetched. Raises DownloadError
    (one line) for HTTP errors (404, ...), an unreachable host, a connection lost mid-transfer (the
    `.part` file is kept for the next run to resume), a full disk (likewise) and a digest mismatch
    (the download is deleted).
    """
    destination = Path(destination)
    replaced = False
    if destination.is_file():
        digest = sha256_of(destination)
        if expected.mismatch(digest) is None:
            return DownloadResult(destination, digest, expected.verification, reused=True)
        replaced = True  # a corrupt or foreign file under the official name: fetch the right one over it
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = part_path(destination)
    offset = partial.stat().st_size if partial.exists() else 0
    response, start, total = _open(url, offset, timeout_s)  # start 0: the whole file comes, the partial one goes
    with response:
        _check_free_space(partial, total - start if total is not None else None)
        digest = hashlib.sha256()
        if start:
            with partial.open("rb") as previous:
                while chunk := previous.read(CHUNK_BYTES):
                    digest.update(chunk)
        written = _copy(response, partial, start, total, digest.update, url, progress)
    full = digest.hexdigest()
    problem = expected.mismatch(full)
    if problem:
        partial.unlink(missing_ok=True)
        raise DownloadError(f"{url}: {problem}; the download was deleted (a corrupt mirror or a changed file?)")
    os.replace(partial, destination)
    _fsync_directory(destination.parent)
    return DownloadResult(destination, full, expected.verification, resumed_from=start, fetched=written,
                          replaced=replaced)


def _open(url: str, offset: int, timeout_s: float) -> tuple[BinaryIO, int, int | None]:
    """Open `url` from byte `offset` where the source allows. Returns (stream, first byte it delivers,
    total file size or None)."""
    scheme = urllib.parse.urlsplit(url).scheme
    if scheme == "file":
        path = Path(urllib.request.url2pathname(urllib.parse.urlsplit(url).path))
        if not path.is_file():
            raise DownloadError(f"{path}: not found in the mirror")
        size = path.stat().st_size
        stream = path.open("rb")
        start = offset if offset <= size else 0
        stream.seek(start)
        return stream, start, size
    if scheme not in ("http", "https"):
        raise DownloadError(f"{url}: unsupported URL (use http://, https://, file:// or a local folder)")
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    if offset:
        request.add_header("Range", f"bytes={offset}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout_s)
    except urllib.error.HTTPError as error:
        error.close()
        if error.code == 416 and offset:
            _, size = _content_range(error.headers.get("Content-Range", "").replace("*", "0-0", 1))
            if size == offset:  # the partial file is already whole: nothing left to fetch, only to verify
                return io.BytesIO(), offset, size
            return _open(url, 0, timeout_s)  # not a prefix of this file: start over
        raise DownloadError(f"{url}: HTTP {error.code} {error.reason}") from None
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise DownloadError(
            f"{url}: cannot connect ({reason}); no network? use --mirror DIR_OR_URL or --url for an offline copy"
        ) from None
    length = response.headers.get("Content-Length")
    if response.status == 206:
        first, size = _content_range(response.headers.get("Content-Range", ""))
        if first != offset:
            response.close()
            return _open(url, 0, timeout_s)
        return response, first, size
    return response, 0, int(length) if length and length.isdigit() else None


def _content_range(header: str) -> tuple[int, int | None]:
    """'bytes 100-199/200' -> (100, 200); an unknown total ('*') -> None; unparsable -> (-1, None)."""
    try:
        unit, _, spec = header.partition(" ")
        span, _, size = spec.partition("/")
        if unit != "bytes":
            return -1, None
        return int(span.split("-")[0]), None if size == "*" else int(size)
    except ValueError:
        return -1, None


def _check_free_space(partial: Path, remaining: int | None) -> None:
    if remaining is None:
        return
    free = shutil.disk_usage(partial.parent).free
    if free < remaining:
        raise DownloadError(
            f"disk full: {partial.parent} has {free / 1e6:.0f} MB free, the download needs {remaining / 1e6:.0f} MB more"
        )


def _copy(source: BinaryIO, partial: Path, start: int, total: int | None, on_chunk: Callable[[bytes], None], url: str,
          progress: bool) -> int:
    """Append `source` to `partial` (truncated first when start is 0), passing each chunk to `on_chunk`
    (the running digest); returns the bytes written."""
    written = 0
    bar = tqdm(total=total, initial=start, unit="B", unit_scale=True, unit_divisor=1024,
               desc=partial.name.removesuffix(PART_SUFFIX), disable=not progress, leave=False)
    try:
        with bar, partial.open("ab" if start else "wb") as sink:
            while True:
                try:
                    chunk = source.read(CHUNK_BYTES)
                except (OSError, http.client.HTTPException) as error:
                    raise _connection_lost(url, partial, start + written, total, error) from None
                if not chunk:
                    break
                sink.write(chunk)
                on_chunk(chunk)
                written += len(chunk)
                bar.update(len(chunk))
            sink.flush()
            os.fsync(sink.fileno())
    except OSError as error:
        if error.errno in (errno.ENOSPC, errno.EDQUOT):
            raise DownloadError(
                f"disk full writing {partial} after {(start + written) / 1e6:.1f} MB; free some space and run the "
                "same command again to resume"
            ) from None
        raise
    if total is not None and start + written < total:
        raise _connection_lost(url, partial, start + written, total, "the server closed the connection")
    return written


def _connection_lost(url: str, partial: Path, have: int, total: int | None, reason: object) -> DownloadError:
    of = f" of {total}" if total is not None else ""
    return DownloadError(
        f"{url}: connection lost after {have}{of} bytes ({reason}); run the same command again to resume from {partial}"
    )


def _fsync_directory(directory: Path) -> None:
    """Make the rename durable (POSIX); a no-op where directories cannot be opened."""
    try:
        descriptor = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
