"""Fault drills on real lab hosts: death mid-upload, a frozen host, every host down, a drained host."""

from __future__ import annotations

import hashlib
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from drillkit import (
    delete_key,
    endpoints,
    host,
    records_of_key,
    session_of,
    store_files,
    unique_key,
    wait_until,
    write_image,
)

from imagelib_ha.client.failover import (
    FailoverError,
    HostHealthBook,
    ImageSource,
    ImageSpec,
    attempt_image_id,
    create_image,
)
from imagelib_ha.client.glance import GlanceHost, Timeouts
from imagelib_ha.client.health import ExpectedStore, HealthChecker, RoleHost
from lab.api import Lab

pytestmark = pytest.mark.lab

DrillLab = tuple[Lab, dict[str, Any]]
FAST = Timeouts(connect=2.0, read=3.0)


def spec(key: str) -> ImageSpec:
    return ImageSpec(key=key, name="drill-image", disk_format="raw", container_format="bare")


def sha512_of(path: Path) -> str:
    digest = hashlib.sha512()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def role_hosts(status: dict[str, Any]) -> list[RoleHost]:
    return [RoleHost(h["id"], h["hostname"], h["endpoint"]) for h in status["hosts"] if h["endpoint"]]


def test_host_dies_mid_upload_image_ends_active_once_and_the_partial_file_is_reported(
    drill_lab: DrillLab, tmp_path: Path
) -> None:
    lab, status = drill_lab
    session = session_of(status)
    first, second = host(status, "lab-host-1"), host(status, "lab-host-2")
    size = 200 * 1000 * 1000
    image = write_image(tmp_path / "drill-200MB.raw", size)
    key = unique_key("mid-upload")
    doomed_id = attempt_image_id(key, 0)
    shared = Path(status["shared_dir"])
    uploading = threading.Event()
    killed: list[int] = []

    def kill_when_under_way() -> None:
        # Kill once a quarter of the image has reached the shared store through the first host.
        uploading.wait(timeout=120)
        wait_until(lambda: (shared / doomed_id).exists() and (shared / doomed_id).stat().st_size >= size // 4,
                   timeout=120, what="the upload to get under way", interval=0.01)
        killed.append((shared / doomed_id).stat().st_size)
        lab.kill("lab-host-1")

    def progress(message: str) -> None:
        if message.startswith(first["endpoint"]) and "uploading" in message:
            uploading.set()

    killer = threading.Thread(target=kill_when_under_way)
    killer.start()
    try:
        result = create_image(session, spec(key), ImageSource(str(image)), endpoints(status),
                              book=HostHealthBook(), timeouts=Timeouts(connect=3, read=30), progress=progress)
    finally:
        uploading.set()
        killer.join()
    try:
        assert killed, "the first host was never killed: the upload did not start there"
        assert (result.status, result.size, result.adopted) == ("active", size, False)
        assert result.host != first["endpoint"] and result.image_id != doomed_id
        assert result.os_hash_value == sha512_of(image)
        first_attempts = [a for a in result.attempts if a.host == first["endpoint"]]
        assert [a.outcome for a in first_attempts] == ["connection-lost"], result.attempts

        records = records_of_key(session, second["endpoint"], key)
        assert [(r["id"], r["status"]) for r in records] == [(result.image_id, "active")]

        # The dead host's partial file, reported by image id and path; every other file is an image's.
        assert [(o.image_id, o.path) for o in result.orphans] == [
            (doomed_id, f"{status['store_path']}/{doomed_id}")]
        partial = shared / doomed_id
        assert partial.exists() and killed[0] <= partial.stat().st_size < size
        print(f"partial file left by the dead host: image {doomed_id}, {partial}")
        glance = GlanceHost(session, second["endpoint"])
        for name in store_files(status) - {doomed_id}:
            record = glance.get_image(name)
            assert record is not None and record["status"] == "active", (name, record)
    finally:
        delete_key(session, second["endpoint"], key)
        (shared / doomed_id).unlink(missing_ok=True)
    assert records_of_key(session, second["endpoint"], key) == []


def test_frozen_host_is_reported_and_creation_proceeds_elsewhere_once(
    drill_lab: DrillLab, tmp_path: Path
) -> None:
    lab, status = drill_lab
    session = session_of(status)
    frozen = host(status, "lab-host-1")
    key = unique_key("frozen")
    image = write_image(tmp_path / "small.raw", 2 * 1024 * 1024)
    lab.freeze("lab-host-1")
    try:
        checker = HealthChecker(session, region=status["region"],
                                expected_store=ExpectedStore("file", data_dir=status["store_path"]),
                                probe_timeout=2.0)
        started = time.monotonic()
        report = checker.probe(role_hosts(status))
        elapsed = time.monotonic() - started
        row = next(h for h in report.hosts if h.endpoint == frozen["endpoint"])
        assert (row.status, report.serving_count) == ("frozen", 2), report.table()
        assert row.latency is not None and row.latency < 2.0 + 1.0
        assert elapsed < 2.0 * 3, "probes of a frozen host must be bounded by the probe timeout"

        result = create_image(session, spec(key), ImageSource(str(image)), endpoints(status),
                              book=HostHealthBook(), timeouts=FAST)
        assert result.status == "active" and result.host != frozen["endpoint"]
        assert {a.outcome for a in result.attempts if a.host == frozen["endpoint"]} == {"read-timeout"}
    finally:
        lab.thaw("lab-host-1")
    try:
        # The thawed host works off whatever it had queued; then exactly one image still carries the key.
        wait_until(lambda: GlanceHost(session, frozen["endpoint"], timeouts=FAST).probe().status == "serving",
                   timeout=30, what="the thawed host to serve")
        time.sleep(2)
        # A fresh session: the old one may still pool a connection the host accepted while frozen and
        # reset once thawed, which is the drill's own doing, not a finding about the image.
        after = session_of(status)
        for endpoint in endpoints(status):
            records = records_of_key(after, endpoint, key)
            assert [(r["id"], r["status"]) for r in records] == [(result.image_id, "active")], endpoint
    finally:
        delete_key(session, endpoints(status)[1], key)


def test_frozen_host_costs_one_read_timeout_not_two(drill_lab: DrillLab, tmp_path: Path) -> None:
    """A host that timed out while surveying existing images is not asked again to create the image
    (before 6f8a1c3 the engine waited for the same frozen host twice: about 2x the read timeout)."""
    lab, status = drill_lab
    session = session_of(status)
    frozen = host(status, "lab-host-1")
    key = unique_key("frozen-once")
    image = write_image(tmp_path / "small.raw", 1024 * 1024)
    lab.freeze("lab-host-1")
    try:
        result = create_image(session, spec(key), ImageSource(str(image)), endpoints(status),
                              book=HostHealthBook(), timeouts=FAST)
    finally:
        lab.thaw("lab-host-1")
    try:
        timeouts = [a for a in result.attempts
                    if a.host == frozen["endpoint"] and a.outcome == "read-timeout"]
        assert len(timeouts) == 1, [(a.outcome, a.reason) for a in result.attempts]
    finally:
        delete_key(session, endpoints(status)[1], key)


def test_all_hosts_down_is_a_clear_error_and_leaves_nothing(drill_lab: DrillLab, tmp_path: Path) -> None:
    lab, status = drill_lab
    session = session_of(status)
    key = unique_key("all-down")
    image = write_image(tmp_path / "small.raw", 1024 * 1024)
    files_before = store_files(status)
    lab.kill("lab-host-1")
    lab.freeze("lab-host-2")
    lab.kill("lab-host-3")
    try:
        with pytest.raises(FailoverError) as caught:
            create_image(session, spec(key), ImageSource(str(image)), endpoints(status),
                         book=HostHealthBook(), timeouts=FAST)
    finally:
        lab.thaw("lab-host-2")
        lab.restart("lab-host-1")
        lab.restart("lab-host-3")
    text = str(caught.value)
    h1, h2, h3 = (host(status, n)["endpoint"] for n in ("lab-host-1", "lab-host-2", "lab-host-3"))
    assert f"{h1}: refused" in text and f"{h3}: refused" in text, text
    assert f"{h2}: read-timeout" in text, text
    assert status["admin"]["password"] not in text
    for endpoint in (h1, h2, h3):
        assert records_of_key(session, endpoint, key) == []
    assert store_files(status) == files_before


def test_drained_host_is_reported_drained_and_not_chosen_for_uploads(
    drill_lab: DrillLab, tmp_path: Path
) -> None:
    lab, status = drill_lab
    session = session_of(status)
    drained = host(status, "lab-host-1")
    key = unique_key("drained")
    image = write_image(tmp_path / "small.raw", 1024 * 1024)
    lab.drain("lab-host-1")
    try:
        checker = HealthChecker(session, region=status["region"],
                                expected_store=ExpectedStore("file", data_dir=status["store_path"]),
                                probe_timeout=3.0)
        report = checker.probe(role_hosts(status))
        row = next(h for h in report.hosts if h.endpoint == drained["endpoint"])
        assert row.status == "drained" and "drained" in row.reason
        assert row not in report.failing and report.ok, report.failure_message()
        assert drained["endpoint"] not in report.endpoints and len(report.endpoints) == 2

        result = create_image(session, spec(key), ImageSource(str(image)), report.endpoints,
                              book=HostHealthBook(), timeouts=FAST)
        assert result.status == "active" and result.host in report.endpoints
        assert all(a.host != drained["endpoint"] for a in result.attempts)
    finally:
        lab.undrain("lab-host-1")
        delete_key(session, endpoints(status)[1], key)
