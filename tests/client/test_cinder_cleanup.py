"""A host killed mid-upload with the Cinder store leaves a volume; the failover run removes it through
Cinder (requests-mock), detaching only where the writing host is down, or reports what it left."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import requests_mock
from keystone_fake import token_body
from test_failover import (
    AUTH_URL,
    ID0,
    ID1,
    REFUSED,
    A,
    B,
    active,
    consume_upload,
    list_uri,
    record,
    session,
    spec,
)

from imagelib_ha.client.block_storage import BlockStorage
from imagelib_ha.client.cinder_cleanup import AttemptVolumes
from imagelib_ha.client.failover import FailoverError, create_image
from imagelib_ha.client.glance import GlanceHost, Timeouts
from imagelib_ha.client.host_health import HostHealthBook
from imagelib_ha.client.image_source import ImageSource

CINDER = "http://cinder.test:8776/v3/p1"
CINDER_STORE = {"stores": [{"id": "cinder", "type": "cinder", "default": "true",
                            "properties": {"volume_type": "image_library"}}]}
RESET = requests.exceptions.ConnectionError("('Connection aborted.', ConnectionResetError(104))")


class FakeVolumes:
    """Volumes and attachments as Cinder keeps them; every mutation journaled in order."""

    def __init__(self, m: requests_mock.Mocker) -> None:
        self.volumes: dict[str, dict[str, Any]] = {}
        self.attachments: dict[str, dict[str, Any]] = {}
        self.journal: list[str] = []
        m.get(re.compile(re.escape(CINDER) + r"/volumes/([^/]+)$"), json=self.show)
        m.get(f"{CINDER}/volumes/detail", json=self.list_volumes)  # after the pattern: requests-mock
        # tries the latest registration first
        m.delete(re.compile(re.escape(CINDER) + r"/volumes/([^/]+)$"), json=self.delete)
        m.get(f"{CINDER}/attachments", json=self.list_attachments)
        m.delete(re.compile(re.escape(CINDER) + r"/attachments/([^/]+)$"), json=self.detach)

    def add(self, image_id: str, *, status: str, attached_to: str | None = None) -> str:
        volume_id = f"vol-{len(self.volumes) + 1}"
        self.volumes[volume_id] = {"id": volume_id, "name": f"image-{image_id}", "status": status,
                                   "metadata": {"glance_image_id": image_id, "image_size": "100"},
                                   "attachments": []}
        if attached_to:
            attachment_id = f"att-{volume_id}"
            self.attachments[attachment_id] = {"id": attachment_id, "volume_id": volume_id,
                                               "status": "attached"}
            self.volumes[volume_id]["attachments"].append({"attachment_id": attachment_id,
                                                           "host_name": attached_to})
        return volume_id

    @staticmethod
    def _id(request: Any) -> str:
        return str(request.path.rsplit("/", 1)[1])

    def list_volumes(self, request: Any, context: Any) -> dict[str, Any]:
        assert request.qs["all_tenants"] == ["1"]
        name = request.qs["name"][0]
        return {"volumes": [v for v in self.volumes.values() if v["name"].lower() == name]}

    def show(self, request: Any, context: Any) -> dict[str, Any]:
        volume = self.volumes.get(self._id(request))
        if volume is None:
            context.status_code = 404
            return {"itemNotFound": {"message": "not found"}}
        return {"volume": volume}

    def delete(self, request: Any, context: Any) -> dict[str, Any]:
        volume = self.volumes[self._id(request)]
        if volume["status"] not in ("available", "error"):
            context.status_code = 400
            return {"badRequest": {"message": f"status must be available or error, not {volume['status']}"}}
        self.journal.append(f"delete volume {volume['id']}")
        del self.volumes[volume["id"]]
        context.status_code = 202
        return {}

    def list_attachments(self, request: Any, context: Any) -> dict[str, Any]:
        assert request.headers["OpenStack-API-Version"] == "volume 3.27"
        wanted = request.qs["volume_id"][0]
        return {"attachments": [a for a in self.attachments.values() if a["volume_id"] == wanted]}

    def detach(self, request: Any, context: Any) -> dict[str, Any]:
        attachment = self.attachments.pop(self._id(request))
        volume = self.volumes[attachment["volume_id"]]
        volume["attachments"] = [a for a in volume["attachments"] if a["attachment_id"] != attachment["id"]]
        if not volume["attachments"]:
            volume["status"] = "available"
        self.journal.append(f"delete attachment {attachment['id']}")
        context.status_code = 200
        return {}


@pytest.fixture
def mock() -> Iterator[requests_mock.Mocker]:
    catalog = [{"type": "volumev3", "id": "s3", "endpoints": [
        {"id": "c1", "interface": "public", "region_id": "RegionOne", "url": CINDER}]}]
    with requests_mock.Mocker() as m:
        m.post(f"{AUTH_URL}/auth/tokens", json=token_body(catalog), headers={"X-Subject-Token": "t"},
               status_code=201)
        yield m


@pytest.fixture
def image_file(tmp_path: Path) -> Path:
    path = tmp_path / "disk.raw"
    path.write_bytes(bytes(range(256)) * 400)
    return path


def volumes(timeout: float = 2.0) -> AttemptVolumes:
    return AttemptVolumes(BlockStorage(session(), region="RegionOne", timeout=timeout), settle_timeout=0,
                          sleep=lambda _s: None)


def kill_a_mid_upload_then_b_serves(mock: requests_mock.Mocker, image_file: Path) -> None:
    """Host A dies while writing attempt 0 (its volume attached to A); B then serves attempt 1."""
    data = image_file.read_bytes()
    mock.get(list_uri(A), json={"images": []})
    mock.get(f"{A}/v2/images/{ID0}", status_code=404)
    mock.post(f"{A}/v2/images", status_code=201, json=record(ID0, "queued"))
    mock.put(f"{A}/v2/images/{ID0}/file", exc=RESET)
    mock.get(f"{A}/healthcheck", exc=REFUSED)  # A is gone for good
    mock.get(f"{B}/v2/images/{ID0}", json=record(ID0, "saving"))
    mock.get(f"{B}/v2/info/stores/detail", json=CINDER_STORE)
    mock.delete(f"{B}/v2/images/{ID0}", status_code=204)
    mock.get(f"{B}/v2/images/{ID1}", [{"status_code": 404}, {"json": active(ID1, data)}])
    mock.post(f"{B}/v2/images", status_code=201, json=record(ID1, "queued"))
    mock.put(f"{B}/v2/images/{ID1}/file", text=consume_upload)


def test_a_host_killed_mid_upload_leaves_one_image_and_no_volume_or_attachment(
    mock: requests_mock.Mocker, image_file: Path
) -> None:
    cinder = FakeVolumes(mock)
    leaked = cinder.add(ID0, status="in-use", attached_to="lab-host-1")
    kill_a_mid_upload_then_b_serves(mock, image_file)

    result = create_image(session(), spec(), ImageSource(str(image_file)), [A, B], book=HostHealthBook(),
                          volumes=volumes())

    assert (result.image_id, result.host) == (ID1, B)
    assert cinder.volumes == {} and cinder.attachments == {}
    assert cinder.journal == [f"delete attachment att-{leaked}", f"delete volume {leaked}"]
    # The record goes first (Glance, through B), then the volume: the attempt is abandoned for good.
    ordered = [(r.method, r.url) for r in mock.request_history if r.method == "DELETE"]
    assert ordered[0] == ("DELETE", f"{B}/v2/images/{ID0}")
    assert [(a.outcome, a.reason) for a in result.attempts if a.outcome.startswith("volume")] == [
        ("volume-removed", f"Cinder volume {leaked} of the attempt")]
    assert result.orphans == []


def test_a_leftover_volume_whose_writer_still_serves_is_left_and_reported(mock: requests_mock.Mocker) -> None:
    cinder = FakeVolumes(mock)
    held = cinder.add(ID0, status="in-use", attached_to="lab-host-1")
    mock.get(f"{A}/healthcheck", text="OK")
    mock.get(f"{A}/v2/", status_code=401)
    mock.get(f"{A}/v2/images", json={"images": []})

    outcome = volumes().remove(ID0, writer=GlanceHost(session(), A, timeouts=Timeouts(1, 1)))

    assert outcome.removed == [] and cinder.journal == []
    assert outcome.left == [(held, (
        "still attached (1 attachment(s): lab-host-1) while the host that wrote it may be serving: not "
        "forced. Delete the attachments once that host is down (openstack volume attachment delete), then "
        "the volume"))]


def test_a_detached_leftover_of_an_earlier_run_is_deleted_and_a_stuck_one_reported(
    mock: requests_mock.Mocker,
) -> None:
    cinder = FakeVolumes(mock)
    free = cinder.add(ID0, status="available")
    stuck = cinder.add(ID0, status="creating")
    cinder.add(ID1, status="available")  # another attempt's volume: not this cleanup's

    outcome = volumes().remove(ID0, writer=None)

    assert outcome.removed == [free]
    assert outcome.left == [(stuck, "status 'creating' after 0s: Cinder deletes no volume in that state")]
    assert sorted(cinder.volumes) == sorted([stuck, "vol-3"])


def test_a_frozen_cinder_api_leaves_the_volume_reported_and_the_image_still_made(
    mock: requests_mock.Mocker, image_file: Path
) -> None:
    mock.get(f"{CINDER}/volumes/detail", exc=requests.exceptions.ReadTimeout("read timed out"))
    kill_a_mid_upload_then_b_serves(mock, image_file)

    result = create_image(session(), spec(), ImageSource(str(image_file)), [A, B], book=HostHealthBook(),
                          volumes=volumes())

    assert (result.image_id, result.host) == (ID1, B)
    (left,) = [a for a in result.attempts if a.outcome == "volume-left"]
    assert left.reason.startswith(f"Cinder volume ?: cannot list the volumes of image {ID0}: Block Storage")
    assert "no answer within 2s" in left.reason
    assert [json.loads(json.dumps(o.__dict__)) for o in result.orphans] == [
        {"image_id": ID0, "path": "cinder volume ?"}]


def test_a_file_store_host_is_never_asked_about_volumes(mock: requests_mock.Mocker, image_file: Path) -> None:
    cinder = FakeVolumes(mock)
    cinder.add(ID0, status="available")
    kill_a_mid_upload_then_b_serves(mock, image_file)
    mock.get(f"{B}/v2/info/stores/detail", json={"stores": [
        {"id": "file", "type": "file", "default": "true", "properties": {"data_dir": "/data"}}]})

    result = create_image(session(), spec(), ImageSource(str(image_file)), [A, B], book=HostHealthBook(),
                          volumes=volumes())

    assert result.image_id == ID1
    assert not [r for r in mock.request_history if r.url.startswith(CINDER)]
    assert [(o.image_id, o.path) for o in result.orphans] == [(ID0, f"/data/{ID0}")]


def test_uploads_stalled_by_a_frozen_cinder_leave_no_record_behind(
    mock: requests_mock.Mocker, image_file: Path
) -> None:
    """Every host's upload hangs on Cinder (read timeout); the hosts still answer everything else, so
    the run deletes every record it made through them before it reports the failure."""
    records: dict[str, dict[str, Any]] = {}

    def create(request: Any, context: Any) -> dict[str, Any]:
        made = record(request.json()["id"], "queued")
        records[made["id"]] = made
        return made

    def get(request: Any, context: Any) -> dict[str, Any] | None:
        found = records.get(request.path.rsplit("/", 1)[1])
        context.status_code = 200 if found else 404
        return found

    def stall(request: Any, context: Any) -> str:
        records[request.path.split("/")[-2]]["status"] = "saving"  # Glance took the upload, Cinder hangs
        raise requests.exceptions.ReadTimeout("read timed out")

    def delete(request: Any, context: Any) -> str:
        context.status_code = 204 if records.pop(request.path.rsplit("/", 1)[1], None) else 404
        return ""

    for host in (A, B):
        one = re.escape(host) + r"/v2/images/([0-9a-f-]+)"
        mock.get(list_uri(host), json={"images": []})
        mock.post(f"{host}/v2/images", status_code=201, json=create)
        mock.get(re.compile(one + "$"), json=get)
        mock.put(re.compile(one + "/file$"), text=stall)
        mock.delete(re.compile(one + "$"), text=delete)
        mock.get(f"{host}/v2/info/stores/detail", json=CINDER_STORE)

    with pytest.raises(FailoverError) as caught:
        create_image(session(), spec(), ImageSource(str(image_file)), [A, B], book=HostHealthBook(),
                     timeouts=Timeouts(1, 1))

    assert records == {}
    assert "could not be deleted" not in str(caught.value)
