"""A server that closes an idle keep-alive connection just as a request goes out on it.

HTTP servers close idle pooled connections (gunicorn after 2 s): a request sent on one at that moment
gets no answer, although the server is fine. The client must not call such a Glance host (or the
Cinder API) down for a read, and must never send a write twice. A real socket server plays the race
deterministically: it answers the first request on each connection and drops the connection on the
second without a byte of answer.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from keystoneauth1 import session as ks_session
from keystoneauth1.token_endpoint import Token

from imagelib_ha.client.block_storage import BlockStorage, BlockStorageUnavailable
from imagelib_ha.client.glance import GlanceHost, HostUnavailable, Timeouts

IMAGE_ID = "3f0c2a4e-0000-4000-8000-0000000000aa"
RECORD = {"id": IMAGE_ID, "status": "active"}
TYPES = {"volume_types": [{"id": "t1", "name": "image_library", "extra_specs": {"multiattach": "<is> True"}}]}


@dataclass
class Seen:
    """What the server received: (method, connection number) for every request, answered or not."""

    requests: list[tuple[str, int]] = field(default_factory=list)
    stop_listening_after_drop: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)


class DropsSecondRequest(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as every production server
    seen: Seen
    server_ref: ThreadingHTTPServer
    connections = 0

    def setup(self) -> None:
        super().setup()
        with self.seen.lock:
            type(self).connections += 1
            self.connection_no = type(self).connections
        self.answered = 0

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        with self.seen.lock:
            self.seen.requests.append((self.command, self.connection_no))
        if self.answered:
            # The server's idle close racing the request: the connection goes without an answer.
            self.close_connection = True
            if self.seen.stop_listening_after_drop:
                # Gone for good before the connection closes: stop polling the listening socket first
                # (Linux keeps a polled socket alive, accepting, until the poll returns), then close it.
                self.server_ref.shutdown()
                self.server_ref.socket.close()
            return
        self.answered += 1
        body = json.dumps(TYPES if self.path.startswith("/types") else RECORD).encode()
        self.send_response(201 if self.command == "POST" else 200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _serve

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def served() -> Iterator[tuple[GlanceHost, Seen]]:
    seen = Seen()
    handler = type("Handler", (DropsSecondRequest,), {"seen": seen, "connections": 0})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    handler.server_ref = server
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    session = ks_session.Session(auth=Token(endpoint="http://unused.invalid", token="t0k3n"))
    host = GlanceHost(session, f"http://127.0.0.1:{server.server_address[1]}", timeouts=Timeouts(2.0, 5.0))
    try:
        yield host, seen
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_a_read_on_a_connection_the_server_dropped_is_sent_again_and_the_host_stays_up(
    served: tuple[GlanceHost, Seen],
) -> None:
    host, seen = served
    first = host.get_image(IMAGE_ID)
    second = host.get_image(IMAGE_ID)  # goes out on the pooled connection, which the server drops
    assert first == second == RECORD
    assert seen.requests == [("GET", 1), ("GET", 1), ("GET", 2)], seen.requests


def test_a_write_on_a_dropped_connection_is_never_sent_twice(served: tuple[GlanceHost, Seen]) -> None:
    host, seen = served
    host.create_image(image_id=IMAGE_ID, body={"name": "x"})
    with pytest.raises(HostUnavailable) as lost:
        host.create_image(image_id=IMAGE_ID, body={"name": "x"})
    assert lost.value.kind == "connection-lost", lost.value
    assert seen.requests == [("POST", 1), ("POST", 1)], seen.requests


def test_a_host_that_died_with_the_connection_is_still_reported_down(served: tuple[GlanceHost, Seen]) -> None:
    host, seen = served
    seen.stop_listening_after_drop = True
    host.get_image(IMAGE_ID)
    with pytest.raises(HostUnavailable) as down:
        host.get_image(IMAGE_ID)
    assert down.value.kind == "refused", down.value
    assert seen.requests == [("GET", 1), ("GET", 1)], seen.requests


def test_a_block_storage_read_on_a_dropped_connection_is_sent_again(served: tuple[GlanceHost, Seen]) -> None:
    host, seen = served
    cinder = BlockStorage(host.session, region="RegionOne", timeout=5.0)
    # The Token plugin answers every catalog lookup with its endpoint: point it at the server.
    host.session.auth.endpoint = host.endpoint  # type: ignore[union-attr]
    first = cinder.volume_type("image_library")
    assert first is not None and first == cinder.volume_type("image_library")
    assert seen.requests == [("GET", 1), ("GET", 1), ("GET", 2)], seen.requests


def test_a_block_storage_read_from_a_dead_api_still_fails(served: tuple[GlanceHost, Seen]) -> None:
    host, seen = served
    seen.stop_listening_after_drop = True
    cinder = BlockStorage(host.session, region="RegionOne", timeout=5.0)
    host.session.auth.endpoint = host.endpoint  # type: ignore[union-attr]
    cinder.volume_type("image_library")
    with pytest.raises(BlockStorageUnavailable):
        cinder.volume_type("image_library")
    assert seen.requests == [("GET", 1), ("GET", 1)], seen.requests
