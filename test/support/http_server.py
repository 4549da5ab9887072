"""A loopback (127.0.0.1 only) HTTP file server in a thread, with Range support and scripted failures,
for download tests."""

from __future__ import annotations

import re
import socket
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class FileServer:
    """files: URL path -> content. cut_after: the next GET sends its headers (full Content-Length) and only
    this many body bytes, then drops the connection (once; the attribute is then cleared).
    stop_after: like cut_after, but the whole server then shuts down (the server is gone).
    ignore_range: answer every GET with the whole file (200), as servers without Range support do.
    requests: (path, Range header or None) of every request, in order."""

    files: dict[str, bytes]
    cut_after: int | None = None
    stop_after: int | None = None
    ignore_range: bool = False
    requests: list[tuple[str, str | None]] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"


def _handler(state: FileServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:  # keep test output clean
            pass

        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            range_header = self.headers.get("Range")
            state.requests.append((self.path, range_header))
            content = state.files.get(self.path)
            if content is None:
                self.send_error(404, "Not Found")
                return
            start = 0
            match = None if state.ignore_range else re.fullmatch(r"bytes=(\d+)-", range_header or "")
            if match:
                start = int(match.group(1))
                if start >= len(content):
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(content)}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(content) - 1}/{len(content)}")
            else:
                self.send_response(200)
            body = content[start:]
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Accept-Ranges", "bytes")
            self.end_headers()
            limit, stop = state.cut_after, state.stop_after
            if limit is None and stop is None:
                self.wfile.write(body)
                return
            state.cut_after = state.stop_after = None
            self.wfile.write(body[: limit if limit is not None else stop])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            if stop is not None:
                threading.Thread(target=_stop, args=(state,), daemon=True).start()

    return Handler


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        """A client that hangs up mid-body (a download test stopping early) is expected; anything else is not."""
        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            super().handle_error(request, client_address)


def _stop(state: FileServer) -> None:
    state.server.shutdown()
    state.server.server_close()


@contextmanager
def serve_files(files: dict[str, bytes]) -> Iterator[FileServer]:
    """A FileServer on an ephemeral loopback port for the duration of the block."""
    state = FileServer(files)
    state.server = _Server(("127.0.0.1", 0), _handler(state))
    thread = threading.Thread(target=state.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        state.server.shutdown()
        state.server.server_close()
        thread.join(timeout=10)


def refused_url() -> str:
    """An http URL on a loopback port where nothing listens (connections are refused)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"
