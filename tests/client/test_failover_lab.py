"""Failover-aware image creation against the lab: hosts frozen or killed during an upload.

Figures are printed (run with ``-s``); the assertions are behavioural bounds only: the image completes
on another host within the read timeout plus the upload time, and exactly one image carries the key.
"""

from __future__ import annotations

import dataclasses
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from labkit import granted_region_roles, region_hosts, session_of, wait_serving

from imagelib_ha.client.failover import create_image
from imagelib_ha.client.failover_report import FailoverResult
from imagelib_ha.client.glance import GlanceHost, Timeouts
from imagelib_ha.client.host_health import HostHealthBook
from imagelib_ha.client.image_key import KEY_PROPERTY, OWNER_PROPERTY, attempt_image_id, make_key
from imagelib_ha.client.image_source import ImageSource, file_sha256
from imagelib_ha.client.image_spec import ImageSpec
from lab.api import Lab

pytestmark = pytest.mark.lab

READ_TIMEOUT = 5.0
IMAGE_MB = 200


@pytest.fixture(scope="module")
def roles(lab: Lab) -> Iterator[dict[str, Any]]:
    yield from granted_region_roles(lab)


@pytest.fixture(scope="module")
def big_image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("failover") / "big.raw"
    block = os.urandom(1024 * 1024)
    with path.open("wb") as handle:
        for i in range(IMAGE_MB):
            handle.write(block[i:] + block[:i])  # no two MiB alike, cheap to make
    return path


class Upload:
    """create_image in a background thread, so a test can break hosts while it runs."""

    def __init__(self, status: dict[str, Any], path: Path, tag: str) -> None:
        self.session = session_of(status)
        identity = f"test/failover-lab/{tag}-{time.time_ns()}"
        self.key = make_key(identity, file_sha256(str(path)), "raw", "bare")
        self.owner = f"failover-lab-{tag}"
        self.spec = ImageSpec(key=self.key, name=f"failover-{tag}", disk_format="raw",
                              container_format="bare", owner=self.owner)
        self.path = path
        self.endpoints = [h["endpoint"] for h in region_hosts(status)]
        self.result: FailoverResult | None = None
        self.error: BaseException | None = None
        self.finished_at = 0.0
        self.started_at = 0.0
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            source = ImageSource(str(self.path), expected_sha256=file_sha256(str(self.path)))
            self.result = create_image(self.session, self.spec, source, self.endpoints,
                                       book=HostHealthBook(), timeouts=Timeouts(connect=3, read=READ_TIMEOUT))
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            self.error = exc
        self.finished_at = time.monotonic()

    def start(self) -> Upload:
        self.started_at = time.monotonic()
        self.thread.start()
        return self

    def wait_until_saving(self, through: str) -> None:
        """Until the first attempt's record is ``saving``: data is flowing to the first host."""
        host = GlanceHost(self.session, through)
        first = attempt_image_id(self.key, 0)
        deadline = time.monotonic() + 30
        while True:
            record = host.get_image(first)
            if record is not None and record["status"] == "saving":
                return
            assert self.thread.is_alive() and time.monotonic() < deadline, "the upload never started"
            time.sleep(0.05)

    def join(self) -> FailoverResult:
        self.thread.join(timeout=300)
        if self.error is not None:
            raise self.error
        assert self.result is not None
        return self.result

    def images_with_key(self, through: str) -> list[dict[str, Any]]:
        return GlanceHost(self.session, through).find_by_property(KEY_PROPERTY, self.key)

    def cleanup(self, through: str) -> None:
        host = GlanceHost(self.session, through)
        for image in self.images_with_key(through):
            host.delete_image(image["id"])


def healthy_upload_seconds(status: dict[str, Any], path: Path) -> float:
    upload = Upload(status, path, "baseline").start()
    try:
        upload.join()
        return upload.finished_at - upload.started_at
    finally:
        upload.cleanup(region_hosts(status)[0]["endpoint"])


def during_upload(lab: Lab, status: dict[str, Any], path: Path, tag: str,
                  fault: Callable[[str], None]) -> tuple[Upload, FailoverResult, float]:
    first, second = region_hosts(status)[:2]
    upload = Upload(status, path, tag).start()
    upload.wait_until_saving(second["endpoint"])
    time.sleep(0.3)
    fault(first["name"])
    faulted_at = time.monotonic()
    result = upload.join()
    return upload, result, upload.finished_at - faulted_at


def test_frozen_host_during_upload_image_completes_elsewhere_once(
    lab: Lab, roles: dict[str, Any], big_image: Path
) -> None:
    baseline = healthy_upload_seconds(roles, big_image)
    first, second = region_hosts(roles)[:2]
    try:
        upload, result, after_fault = during_upload(lab, roles, big_image, "freeze", lab.freeze)
    finally:
        lab.thaw(first["name"])
    try:
        print(f"\n{IMAGE_MB} MB: healthy upload {baseline:.2f} s; host frozen mid-upload: done "
              f"{after_fault:.2f} s after the freeze (read timeout {READ_TIMEOUT:.0f} s), total "
              f"{upload.finished_at - upload.started_at:.2f} s")
        assert result.host != first["endpoint"] and result.status == "active"
        assert result.size == big_image.stat().st_size
        assert [a.outcome for a in result.attempts if a.host == first["endpoint"]] == ["read-timeout"]
        assert result.orphans and result.orphans[0].image_id == attempt_image_id(upload.key, 0)
        assert after_fault < READ_TIMEOUT + 3 * baseline + 5
        # The thawed host finishes nothing: still exactly one image with the key.
        time.sleep(5)
        images = upload.images_with_key(second["endpoint"])
        assert [(i["id"], i["status"]) for i in images] == [(result.image_id, "active")]
        assert images[0][OWNER_PROPERTY] == upload.owner
        # A rerun (another resource instance: another owner) adopts it and takes it over.
        rerun_spec = dataclasses.replace(upload.spec, owner="failover-lab-rerun")
        rerun = create_image(upload.session, rerun_spec, ImageSource(str(big_image)), upload.endpoints,
                             book=HostHealthBook())
        assert (rerun.image_id, rerun.adopted) == (result.image_id, True)
        assert rerun.record[OWNER_PROPERTY] == "failover-lab-rerun"
    finally:
        upload.cleanup(second["endpoint"])


def test_killed_host_during_upload_leaves_a_reported_partial_file(
    lab: Lab, roles: dict[str, Any], big_image: Path
) -> None:
    first, second = region_hosts(roles)[:2]
    try:
        upload, result, after_fault = during_upload(lab, roles, big_image, "kill", lab.kill)
    finally:
        lab.restart(first["name"])
        wait_serving(lab.status())
    partial: Path | None = None
    try:
        print(f"\n{IMAGE_MB} MB: host killed mid-upload: done {after_fault:.2f} s after the kill")
        assert result.host != first["endpoint"]
        assert [a.outcome for a in result.attempts if a.host == first["endpoint"]] == ["connection-lost"]
        orphan = result.orphans[0]
        assert orphan.image_id == attempt_image_id(upload.key, 0)
        assert orphan.path == f"{roles['store_path']}/{orphan.image_id}"
        # The store path is what every host sees; on the real filesystem it is the shared dir.
        partial = Path(roles["shared_dir"]) / orphan.image_id
        assert partial.exists() and partial.stat().st_size < big_image.stat().st_size
        images = upload.images_with_key(second["endpoint"])
        assert [i["id"] for i in images] == [result.image_id]
    finally:
        upload.cleanup(second["endpoint"])
        if partial is not None and partial.exists():
            partial.unlink()


def test_dead_host_before_upload_costs_little(lab: Lab, roles: dict[str, Any], big_image: Path) -> None:
    baseline = healthy_upload_seconds(roles, big_image)
    first, second = region_hosts(roles)[:2]
    lab.kill(first["name"])
    try:
        upload = Upload(roles, big_image, "dead").start()
        result = upload.join()
    finally:
        lab.restart(first["name"])
        wait_serving(lab.status())
    try:
        took = upload.finished_at - upload.started_at
        print(f"\n{IMAGE_MB} MB: healthy {baseline:.2f} s; first host dead (refused): {took:.2f} s "
              f"(+{took - baseline:.2f} s)")
        assert result.host == second["endpoint"]
        assert [a.outcome for a in result.attempts if a.host == first["endpoint"]] == ["refused"]
        assert took < 2 * baseline + 3
    finally:
        upload.cleanup(second["endpoint"])
