"""The lab's image web server: what Glance's ``web-download`` import pulls from, with faults for drills.

Glance fetches a web-download URL itself and filters it first (``[import_filtering_opts]``): by default
only ports 80 and 443 are allowed and loopback addresses are refused. The lab's hosts are configured
(:func:`import_filtering_section`) to accept exactly this server: host ``127.0.0.1`` on its one port,
which is picked once per state dir and kept in ``<state>/image-source-port``. The project's defaults
are not touched: this is lab configuration, as an operator would write for their own mirror.

:class:`ImageSourceServer` serves the files of one directory over plain HTTP with a
``Content-Length``, and can, for a number of requests, **stall** (stop sending after N bytes and hold
the connection open until released), **die** (close the connection after N bytes), be **throttled**
(bytes per second), or demand **basic auth**. It counts bytes served per path, so a test can tell who
fetched what. It runs in a thread of the caller (drills) or as ``python -m lab.image_source`` (the
benchmark, so its CPU is not the client's).
"""

from __future__ import annotations

import argparse
import base64
import threading
import time
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from lab.settings import free_port

PORT_FILE = "image-source-port"
CHUNK = 256 * 1024


def source_port(state_dir: Path) -> int:
    """The port of this state dir's image web server (claimed on first use, then fixed)."""
    path = state_dir / PORT_FILE
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        port = free_port(state_dir)
        state_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(f"{port}\n")
        return port


def import_filtering_section(state_dir: Path) -> str:
    """``glance-api.conf`` lines that let a lab host web-download from the lab's image server only.

    ``web-download`` is among Glance's default ``enabled_import_methods``; what stops it in a lab is
    the filter: loopback hosts are refused unless listed in ``allowed_hosts``, and only ports 80/443
    pass by default. These options are declared with ``bounds=True``: a list must be written in
    brackets, or the value does not parse as the list meant.
    """
    return (
        "[import_filtering_opts]\n"
        "allowed_schemes = [http]\n"
        "allowed_hosts = [127.0.0.1]\n"
        f"allowed_ports = [{source_port(state_dir)}]\n"
    )


@dataclass
class Fault:
    """What the next ``times`` requests (of any path) suffer; ``None`` fields are off."""

    times: int = 1
    stall_after: int | None = None  # stop sending after this many bytes, hold the connection
    die_after: int | None = None  # close the connection after this many bytes


class ImageSourceServer:
    """Serves ``root``'s files on 127.0.0.1:``port``, with settable faults, throttle and basic auth."""

    def __init__(self, root: Path, port: int) -> None:
        self.root = root
        self.port = port
        self.fault: Fault | None = None
        self.rate: float | None = None  # bytes per second, None: as fast as possible
        self.basic_auth: tuple[str, str] | None = None
        self.served: dict[str, int] = {}  # path -> bytes sent, over all requests
        self.requests: list[str] = []
        self.release = threading.Event()  # set: stalled responses give up (close) at once
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", port), self._handler())
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/{name}"

    def start(self) -> ImageSourceServer:
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="lab-image-source",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.release.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> ImageSourceServer:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def _take_fault(self) -> Fault | None:
        with self._lock:
            fault = self.fault
            if fault is None:
                return None
            fault.times -= 1
            if fault.times <= 0:
                self.fault = None
            return fault

    def _count(self, path: str, n: int) -> None:
        with self._lock:
            self.served[path] = self.served.get(path, 0) + n

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_args: object) -> None:  # quiet: drills print their own story
                return

            def do_GET(self) -> None:  # http.server's naming
                name = self.path.lstrip("/").split("?", 1)[0]
                server.requests.append(name)
                if server.basic_auth is not None and not self._authorized(server.basic_auth):
                    self.send_response(HTTPStatus.UNAUTHORIZED)
                    self.send_header("WWW-Authenticate", 'Basic realm="lab"')
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                path = (server.root / name).resolve()
                if server.root.resolve() not in path.parents or not path.is_file():
                    self.send_error(HTTPStatus.NOT_FOUND)
                    return
                fault = server._take_fault()
                size = path.stat().st_size
                self.send_response(HTTPStatus.OK)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(size))
                self.end_headers()
                self._send(path, name, fault)

            def _authorized(self, creds: tuple[str, str]) -> bool:
                expected = "Basic " + base64.b64encode(f"{creds[0]}:{creds[1]}".encode()).decode()
                return self.headers.get("Authorization") == expected

            def _send(self, path: Path, name: str, fault: Fault | None) -> None:
                limit = None
                if fault is not None:
                    limit = fault.stall_after if fault.stall_after is not None else fault.die_after
                sent = 0
                started = time.monotonic()
                with path.open("rb") as handle:
                    while chunk := handle.read(CHUNK if limit is None else min(CHUNK, limit - sent)):
                        try:
                            self.wfile.write(chunk)
                        except OSError:
                            return  # the reader went away (a killed host)
                        sent += len(chunk)
                        server._count(name, len(chunk))
                        if server.rate:
                            time.sleep(max(0.0, sent / server.rate - (time.monotonic() - started)))
                        if limit is not None and sent >= limit:
                            break
                if fault is not None and fault.stall_after is not None:
                    self.wfile.flush()
                    server.release.wait()  # hold the connection open, sending nothing
                if limit is not None:
                    self.close_connection = True
                    self.connection.close()

        return Handler


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m lab.image_source",
                                     description="serve a directory on the lab's image-source port")
    parser.add_argument("--state-dir", required=True, type=Path)
    parser.add_argument("--root", required=True, type=Path)
    args = parser.parse_args(argv)
    server = ImageSourceServer(args.root, source_port(args.state_dir))
    print(server.port, flush=True)  # the first line tells a parent process it listens
    try:
        server._httpd.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
