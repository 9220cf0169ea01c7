"""Web-download drills: the host pulls a pinned URL from the lab's image server, and fails over.

Each drill ends with exactly one active image carrying its key, holding the pinned bytes, and no other
record of the key on any host (``records_of_key`` looks up every attempt id, killed ones too).
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from drillkit import (
    delete_key,
    endpoints,
    host,
    records_of_key,
    serves,
    session_of,
    unique_key,
    wait_until,
    write_image,
)

from imagelib_ha.client.failover import FailoverError, HostHealthBook, ImageSpec
from imagelib_ha.client.glance import GlanceHost, Timeouts
from imagelib_ha.client.image_source import ImageSource
from imagelib_ha.client.web_download import ImportPolicy, create_image_by_method
from lab.api import Lab
from lab.image_source import Fault, ImageSourceServer, source_port
from lab.settings import free_port

pytestmark = pytest.mark.lab

DrillLab = tuple[Lab, dict[str, Any]]
FAST = Timeouts(connect=2.0, read=5.0)
SIZE = 12 * 1024 * 1024


@pytest.fixture
def served(drill_lab: DrillLab, tmp_path: Path) -> Iterator[tuple[ImageSourceServer, Path, str]]:
    """The lab's image server over a fresh random image: (server, file, its sha256)."""
    _lab, status = drill_lab
    image = write_image(tmp_path / "web.raw", SIZE)
    digest = hashlib.sha256(image.read_bytes()).hexdigest()
    with ImageSourceServer(tmp_path, source_port(Path(status["state_dir"]))) as server:
        yield server, image, digest


def spec(key: str) -> ImageSpec:
    return ImageSpec(key=key, name="drill-web", disk_format="raw", container_format="bare")


def sha512_of(path: Path) -> str:
    return hashlib.sha512(path.read_bytes()).hexdigest()


def only_record(session: Any, status: dict[str, Any], key: str) -> dict[str, Any]:
    """The key's single record, seen alike through every serving host."""
    found = [records_of_key(session, ep, key) for ep in endpoints(status)]
    assert all(len(r) == 1 for r in found), found
    assert len({r[0]["id"] for r in found}) == 1, found
    return found[0][0]


def test_web_download_sends_no_bytes_and_verifies_the_pin(drill_lab: DrillLab, served: Any) -> None:
    _lab, status = drill_lab
    server, image, digest = served
    session = session_of(status)
    key = unique_key("web")
    lines: list[str] = []
    try:
        result = create_image_by_method(
            session, spec(key), ImageSource(server.url(image.name), expected_sha256=digest),
            endpoints(status), policy=ImportPolicy("web-download", timeout=60, poll_interval=0.2),
            book=HostHealthBook(), timeouts=FAST, progress=lines.append)
        assert (result.status, result.size, result.os_hash_value) == ("active", SIZE, sha512_of(image))
        outcomes = [a.outcome for a in result.attempts]
        assert outcomes == ["importing", "imported", "created"], result.attempts
        # The host pulled the bytes once; the client's only data transfer was the verifying read-back.
        assert server.served == {image.name: SIZE}
        assert not any("upload" in line for line in lines), lines
        assert any("read-back attempt 0" in line for line in lines), lines
        assert only_record(session, status, key)["id"] == result.image_id
    finally:
        delete_key(session, endpoints(status)[0], key)


def test_host_dies_mid_import_then_the_next_host_imports_once(drill_lab: DrillLab, served: Any) -> None:
    lab, status = drill_lab
    server, image, digest = served
    session = session_of(status)
    first = host(status, "lab-host-1")
    key = unique_key("web-host-dies")
    server.rate = 2 * 1024 * 1024  # 6 s for the image: time to kill the importing host
    killed: list[int] = []

    def kill_once_under_way() -> None:
        wait_until(lambda: server.served.get(image.name, 0) >= 1024 * 1024, timeout=60,
                   what="the first host's download to get under way", interval=0.02)
        killed.append(server.served[image.name])
        server.rate = None
        lab.kill("lab-host-1")

    killer = threading.Thread(target=kill_once_under_way)
    killer.start()
    try:
        result = create_image_by_method(
            session, spec(key), ImageSource(server.url(image.name), expected_sha256=digest),
            [first["endpoint"], *[e for e in endpoints(status) if e != first["endpoint"]]],
            policy=ImportPolicy("web-download", timeout=60, poll_interval=0.2),
            book=HostHealthBook(), timeouts=FAST)
    finally:
        killer.join()
    try:
        assert killed, "the first host was never killed"
        assert result.host != first["endpoint"]
        assert (result.status, result.os_hash_value) == ("active", sha512_of(image))
        on_first = [a.outcome for a in result.attempts if a.host == first["endpoint"]]
        # Refused, or the pooled connection reset: either way the poll, not a timeout, noticed.
        assert on_first[0] == "importing" and on_first[1:] in (["refused"], ["connection-lost"]), \
            result.attempts
        # The dead host's ``importing`` record was deleted by the next host before it started anew.
        assert "deleted-leftover" in [a.outcome for a in result.attempts if a.host == result.host]
        survivors = [e for e in endpoints(status) if e != first["endpoint"]]
        for endpoint in survivors:
            assert [(r["id"], r["status"]) for r in records_of_key(session, endpoint, key)] == [
                (result.image_id, "active")]
    finally:
        lab.restart("lab-host-1")
        delete_key(session, endpoints(status)[1], key)


def test_host_frozen_mid_import_costs_a_read_timeout_and_stays_without_a_second_image(
    drill_lab: DrillLab, served: Any
) -> None:
    lab, status = drill_lab
    server, image, digest = served
    session = session_of(status)
    first = host(status, "lab-host-1")
    key = unique_key("web-host-frozen")
    server.rate = 2 * 1024 * 1024
    frozen: list[int] = []

    def freeze_once_under_way() -> None:
        wait_until(lambda: server.served.get(image.name, 0) >= 1024 * 1024, timeout=60,
                   what="the first host's download to get under way", interval=0.02)
        frozen.append(server.served[image.name])
        server.rate = None
        lab.freeze("lab-host-1")

    freezer = threading.Thread(target=freeze_once_under_way)
    freezer.start()
    try:
        result = create_image_by_method(
            session, spec(key), ImageSource(server.url(image.name), expected_sha256=digest),
            [first["endpoint"], *[e for e in endpoints(status) if e != first["endpoint"]]],
            policy=ImportPolicy("web-download", timeout=60, poll_interval=0.2),
            book=HostHealthBook(), timeouts=FAST)
    finally:
        freezer.join()
        lab.thaw("lab-host-1")
    try:
        assert frozen, "the first host was never frozen"
        assert result.host != first["endpoint"] and result.os_hash_value == sha512_of(image)
        assert [a.outcome for a in result.attempts if a.host == first["endpoint"]] == [
            "importing", "read-timeout"], result.attempts
        # Thawed, the first host finishes or abandons its import of a deleted record: still one image.
        wait_until(lambda: serves(session_of(status), first["endpoint"]), timeout=30,
                   what="the thawed host to serve")
        time.sleep(3)
        after = session_of(status)
        for endpoint in endpoints(status):
            assert [(r["id"], r["status"]) for r in records_of_key(after, endpoint, key)] == [
                (result.image_id, "active")], endpoint
    finally:
        delete_key(session, endpoints(status)[1], key)


def test_source_stalls_costs_the_import_bound_then_the_next_host_imports(
    drill_lab: DrillLab, served: Any
) -> None:
    _lab, status = drill_lab
    server, image, digest = served
    session = session_of(status)
    key = unique_key("web-stall")
    server.fault = Fault(times=1, stall_after=2 * 1024 * 1024)
    try:
        started = time.monotonic()
        result = create_image_by_method(
            session, spec(key), ImageSource(server.url(image.name), expected_sha256=digest),
            endpoints(status), policy=ImportPolicy("web-download", timeout=4, poll_interval=0.2),
            book=HostHealthBook(), timeouts=FAST)
        elapsed = time.monotonic() - started
        # The stalled host costs its 4 s bound; the next host's 12 MiB import and read-back a few more.
        assert elapsed < 4 + 15, f"{elapsed:.1f} s: the stalled import was not given up at its bound"
        stalled = endpoints(status)[0]
        assert result.host != stalled and result.status == "active"
        assert result.os_hash_value == sha512_of(image)
        on_stalled = [a.outcome for a in result.attempts if a.host == stalled]
        assert on_stalled == ["importing", "deleted-leftover", "import-stalled"], result.attempts
        assert [a.outcome for a in result.attempts if a.host == result.host][-3:] == [
            "importing", "imported", "created"]
        server.release.set()  # the stalled host's download ends; its deleted record must stay deleted
        wait_until(lambda: all(len(records_of_key(session, e, key)) == 1 for e in endpoints(status)),
                   timeout=20, what="one record of the key everywhere")
        assert only_record(session, status, key)["id"] == result.image_id
    finally:
        delete_key(session, endpoints(status)[0], key)


def test_url_with_credentials_is_uploaded_and_never_reaches_glance(drill_lab: DrillLab, served: Any) -> None:
    _lab, status = drill_lab
    server, image, digest = served
    session = session_of(status)
    key = unique_key("web-credentials")
    server.basic_auth = ("mirror", "s3cret-drill")
    url = server.url(image.name).replace("http://", "http://mirror:s3cret-drill@")
    lines: list[str] = []
    try:
        result = create_image_by_method(
            session, spec(key), ImageSource(url, expected_sha256=digest), endpoints(status),
            policy=ImportPolicy("web-download"), book=HostHealthBook(), timeouts=FAST, progress=lines.append)
        assert (result.status, result.os_hash_value) == ("active", sha512_of(image))
        assert [a.outcome for a in result.attempts] == ["created"], result.attempts
        assert server.served == {image.name: SIZE}  # fetched once, by the client
        tasks = GlanceHost(session, result.host)._request(
            "GET", f"/v2/images/{result.image_id}/tasks", expect=(200,)).json()["tasks"]
        assert tasks == []  # no import was ever asked for: Glance never saw the URL
        assert not any("s3cret-drill" in line for line in lines)
        assert "s3cret-drill" not in str(result.record)
        assert only_record(session, status, key)["id"] == result.image_id
    finally:
        delete_key(session, endpoints(status)[0], key)


def test_auto_uploads_when_the_host_refuses_to_fetch_the_url(drill_lab: DrillLab, tmp_path: Path) -> None:
    """``auto`` on hosts that advertise web-download but filter the URL out (a port not allowed)."""
    _lab, status = drill_lab
    session = session_of(status)
    image = write_image(tmp_path / "elsewhere.raw", 2 * 1024 * 1024)
    digest = hashlib.sha256(image.read_bytes()).hexdigest()
    key = unique_key("web-auto")
    with ImageSourceServer(tmp_path, free_port(Path(status["state_dir"]))) as other:
        try:
            result = create_image_by_method(
                session, spec(key), ImageSource(other.url(image.name), expected_sha256=digest),
                endpoints(status), policy=ImportPolicy("auto"), book=HostHealthBook(), timeouts=FAST)
            assert (result.status, result.os_hash_value) == ("active", sha512_of(image))
            first = endpoints(status)[0]
            outcomes = [a.outcome for a in result.attempts]
            assert outcomes == ["deleted-leftover", "upload", "created"], result.attempts
            assert result.host == first and "refuses to fetch" in result.attempts[0].reason
            assert only_record(session, status, key)["id"] == result.image_id
        finally:
            delete_key(session, endpoints(status)[0], key)


def test_bytes_other_than_pinned_end_the_run_and_leave_nothing(drill_lab: DrillLab, served: Any) -> None:
    _lab, status = drill_lab
    server, image, _digest = served
    session = session_of(status)
    key = unique_key("web-wrong-pin")
    with pytest.raises(FailoverError, match="served other bytes than pinned"):
        create_image_by_method(
            session, spec(key), ImageSource(server.url(image.name), expected_sha256="0" * 64),
            endpoints(status), policy=ImportPolicy("web-download", timeout=60, poll_interval=0.2),
            book=HostHealthBook(), timeouts=FAST)
    for endpoint in endpoints(status):
        assert records_of_key(session, endpoint, key) == []
