"""One URL image made in a process of its own, by web-download or by upload, measured from inside.

``python -m bench.web_download_child web-download|upload ENDPOINT URL SHA256 NAME`` reads the token
from ``BENCH_TOKEN`` and prints one JSON line: elapsed seconds, CPU seconds (user + system) of the
span, the CPU spent up to the host's import finishing (the rest is the verifying read-back), the bytes
this process sent and received on sockets (counted at ``socket.send``/``sendall``/``recv_into``, so
every request counts, API calls included), image id and status.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
import uuid
from typing import Any

from keystoneauth1 import session as ks_session
from keystoneauth1 import token_endpoint

COUNTS = {"sent": 0, "received": 0}


def _count_socket_bytes() -> None:
    """Wrap the socket methods http.client and urllib3 use, so every byte on any socket is counted."""
    send, sendall, recv_into = socket.socket.send, socket.socket.sendall, socket.socket.recv_into

    def counted_send(self: socket.socket, data: Any, *args: Any) -> int:
        n = send(self, data, *args)
        COUNTS["sent"] += n
        return n

    def counted_sendall(self: socket.socket, data: Any, *args: Any) -> None:
        sendall(self, data, *args)
        COUNTS["sent"] += memoryview(data).nbytes

    def counted_recv_into(self: socket.socket, buffer: Any, *args: Any) -> int:
        n = recv_into(self, buffer, *args)
        COUNTS["received"] += n
        return n

    socket.socket.send = counted_send  # type: ignore[method-assign,assignment]
    socket.socket.sendall = counted_sendall  # type: ignore[method-assign,assignment]
    socket.socket.recv_into = counted_recv_into  # type: ignore[method-assign,assignment]


def main(argv: list[str]) -> int:
    method, endpoint, url, sha256, name = argv
    _count_socket_bytes()
    from imagelib_ha.client.failover import HostHealthBook, ImageSource, ImageSpec
    from imagelib_ha.client.web_download import ImportPolicy, create_image_by_method

    session = ks_session.Session(auth=token_endpoint.Token(endpoint, os.environ["BENCH_TOKEN"]))
    spec = ImageSpec(key=f"bench/{name}:{uuid.uuid4().hex[:16]}", name=name, disk_format="raw",
                     container_format="bare")
    marks: dict[str, float] = {}

    def progress(line: str) -> None:
        # The note "<host>: imported (<id>): ..." comes once, when the host's import is done.
        if ": imported (" in line:
            marks.setdefault("imported", time.process_time())

    started, cpu_started = time.monotonic(), time.process_time()
    result = create_image_by_method(session, spec, ImageSource(url, expected_sha256=sha256), [endpoint],
                                    policy=ImportPolicy(method, timeout=3600, poll_interval=0.5),
                                    book=HostHealthBook(), progress=progress)
    elapsed, cpu = time.monotonic() - started, time.process_time() - cpu_started
    imported = marks.get("imported", time.process_time()) - cpu_started
    print(json.dumps({"elapsed": elapsed, "cpu": cpu, "cpu_until_imported": imported,
                      "sent": COUNTS["sent"], "received": COUNTS["received"], "image_id": result.image_id,
                      "status": result.status, "size": result.size,
                      "outcomes": [a.outcome for a in result.attempts]}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
