"""Region health validation against requests-mock hosts that keep image data in a shared or own store."""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
import requests_mock
from keystone_fake import token_body

from imagelib_ha.client.health import (
    CANARY_PROPERTY,
    ExpectedStore,
    HealthChecker,
    HealthError,
    RoleHost,
    match_catalog,
)
from imagelib_ha.client.session import CloudAccess, make_session

AUTH_URL = "http://keystone.test/v3"
DATA_DIR = "/var/opt/imagelibrary/data"
PASSWORD = "s3cret-Pa55"


def url(i: int) -> str:
    return f"http://h{i}.test:9494"


def token(endpoints: list[str]) -> dict[str, Any]:
    return token_body([
        {"type": "image", "name": "glance", "id": "s1", "endpoints": [
            {"id": "pub", "interface": "public", "region_id": "RegionOne", "region": "RegionOne",
             "url": "https://pcd.test/glance"}]},
        {"type": "image-cluster", "name": "glance-cluster", "id": "s2", "endpoints": [
            {"id": f"e{n}", "interface": "public", "region_id": "RegionOne", "region": "RegionOne",
             "url": ep} for n, ep in enumerate(endpoints)]},
    ])


class FakeRegion:
    """Image records in one database; image data in one shared store, or one store per host."""

    def __init__(self, m: requests_mock.Mocker, hosts: int, *, shared: bool = True) -> None:
        self.m = m
        self.records: dict[str, dict[str, Any]] = {}
        self.shared: dict[str, bytes] = {}
        self.local: dict[str, dict[str, bytes]] = {url(i): {} for i in range(1, hosts + 1)}
        self.is_shared = shared
        self.endpoints = [url(i) for i in range(1, hosts + 1)]
        m.post(f"{AUTH_URL}/auth/tokens", json=token(self.endpoints), headers={"X-Subject-Token": "t"},
               status_code=201)
        for ep in self.endpoints:
            self.serve(ep)

    def store(self, ep: str) -> dict[str, bytes]:
        return self.shared if self.is_shared else self.local[ep]

    def serve(self, ep: str, *, data_dir: str = DATA_DIR, delay: float = 0.0) -> None:
        def healthcheck(request: Any, context: Any) -> str:
            time.sleep(delay)
            return "OK"

        self.m.get(f"{ep}/healthcheck", text=healthcheck)
        self.m.get(f"{ep}/v2/", status_code=401)
        self.m.get(f"{ep}/v2/info/stores/detail", json={"stores": [
            {"id": "file", "default": "true", "type": "file", "properties": {"data_dir": data_dir}}]})
        self.m.get(re.compile(re.escape(ep) + r"/v2/images(\?.*)?$"), json=self.list_images)
        self.m.post(f"{ep}/v2/images", json=self.create, status_code=201)
        one = re.escape(ep) + r"/v2/images/([0-9a-f-]+)"
        self.m.get(re.compile(one + "$"), json=self.get)
        self.m.delete(re.compile(one + "$"), text=self.delete)
        self.m.put(re.compile(one + "/file$"), text=lambda r, c: self.upload(ep, r, c))
        self.m.get(re.compile(one + "/file$"), content=lambda r, c: self.download(ep, r, c))

    @staticmethod
    def image_id(request: Any) -> str:
        return str(re.search(r"/v2/images/([0-9a-f-]+)", request.path).group(1))  # type: ignore[union-attr]

    def list_images(self, request: Any, context: Any) -> dict[str, Any]:
        wanted = {k: v[0] for k, v in request.qs.items() if k not in ("limit", "os_hidden", "visibility")}
        found = [r for r in self.records.values()
                 if all(str(r.get(k)).lower() == v.lower() for k, v in wanted.items())]
        return {"images": found}

    def create(self, request: Any, context: Any) -> dict[str, Any]:
        body = request.json()
        record = {**body, "status": "queued", "created_at": "2026-11-25T15:00:00Z"}
        self.records[body["id"]] = record
        return record

    def get(self, request: Any, context: Any) -> dict[str, Any] | None:
        record = self.records.get(self.image_id(request))
        if record is None:
            context.status_code = 404
        return record

    def delete(self, request: Any, context: Any) -> str:
        image_id = self.image_id(request)
        context.status_code = 204 if self.records.pop(image_id, None) else 404
        return ""

    def upload(self, ep: str, request: Any, context: Any) -> str:
        data = b"".join(request.body)
        image_id = self.image_id(request)
        self.store(ep)[image_id] = data
        self.records[image_id].update(status="active", size=len(data), os_hash_algo="sha512",
                                      os_hash_value=hashlib.sha512(data).hexdigest())
        context.status_code = 204
        return ""

    def download(self, ep: str, request: Any, context: Any) -> bytes:
        data = self.store(ep).get(self.image_id(request))
        if data is None:
            context.status_code = 204
            return b""
        if "Range" in request.headers:
            context.status_code = 206
            return data[:1]
        return data


@pytest.fixture
def mock() -> Iterator[requests_mock.Mocker]:
    with requests_mock.Mocker() as m:
        yield m


def checker(**kwargs: Any) -> HealthChecker:
    session = make_session(CloudAccess(auth_url=AUTH_URL, region="RegionOne", username="admin",
                                       password=PASSWORD, project_name="admin"))
    return HealthChecker(session, region="RegionOne", expected_store=ExpectedStore("file", DATA_DIR),
                         **kwargs)


def role_hosts(n: int) -> list[RoleHost]:
    return [RoleHost(f"id-{i}", f"host-{i}", url(i)) for i in range(1, n + 1)]


def test_three_serving_hosts_on_shared_storage_pass_and_leave_nothing(mock: requests_mock.Mocker) -> None:
    region = FakeRegion(mock, 3)
    report = checker().validate(role_hosts(3), deadline=0)
    assert [(h.host_id, h.status) for h in report.hosts] == [("id-1", "serving"), ("id-2", "serving"),
                                                             ("id-3", "serving")]
    assert report.endpoints == [url(1), url(2), url(3)]
    assert report.canary == "written through host-1, read back identically through 2 other host(s)"
    # The canary was written once, read through the two others, and deleted: nothing is left.
    posts = [r for r in mock.request_history if r.method == "POST" and r.netloc.startswith("h")]
    assert len(posts) == 1 and posts[0].json()[CANARY_PROPERTY] == "true"
    canary_id = posts[0].json()["id"]
    reads = sorted(r.netloc for r in mock.request_history
                   if r.method == "GET" and r.path == f"/v2/images/{canary_id}/file")
    assert reads == ["h2.test:9494", "h3.test:9494"]
    assert region.records == {}
    assert report.hosts[0].as_output() == {
        "host_id": "id-1", "hostname": "host-1", "endpoint": url(1), "status": "serving", "reason": "serving"}


def test_local_storage_fails_the_canary_naming_the_hosts_that_cannot_read(mock: requests_mock.Mocker) -> None:
    region = FakeRegion(mock, 3, shared=False)
    with pytest.raises(HealthError) as err:
        checker().validate(role_hosts(3), deadline=0)
    message = str(err.value)
    assert "host-2 (http://h2.test:9494): no-shared-data: cannot read data written through host-1" in message
    assert "host-3 (http://h3.test:9494): no-shared-data" in message
    assert "HTTP 204 with 0 of 65536 bytes" in message
    assert "host-1 (" not in message
    assert region.records == {}  # the canary is deleted even when the check fails


def test_a_killed_host_is_reported_down_and_fails_the_default_minimum(mock: requests_mock.Mocker) -> None:
    FakeRegion(mock, 3)
    refused = requests.exceptions.ConnectionError("[Errno 111] Connection refused")
    mock.get(f"{url(2)}/healthcheck", exc=refused)
    with pytest.raises(HealthError) as err:
        checker().validate(role_hosts(3), deadline=0)
    assert "host-2 (http://h2.test:9494): down: connection refused" in str(err.value)
    assert err.value.report.serving_count == 2
    assert PASSWORD not in str(err.value)


def test_a_down_host_is_tolerated_when_min_healthy_allows(mock: requests_mock.Mocker) -> None:
    FakeRegion(mock, 3)
    mock.get(f"{url(3)}/healthcheck", exc=requests.exceptions.ReadTimeout("timed out"))
    report = checker().validate(role_hosts(3), min_healthy=2, deadline=0)
    assert [h.status for h in report.hosts] == ["serving", "serving", "frozen"]
    assert report.endpoints == [url(1), url(2)]


def test_a_host_mounted_elsewhere_is_misconfigured_even_when_min_healthy_allows(
    mock: requests_mock.Mocker,
) -> None:
    region = FakeRegion(mock, 3)
    region.serve(url(3), data_dir="/var/lib/glance/images")
    with pytest.raises(HealthError) as err:
        checker().validate(role_hosts(3), min_healthy=1, deadline=0)
    assert ("host-3 (http://h3.test:9494): misconfigured: file store data_dir is '/var/lib/glance/images', "
            f"expected '{DATA_DIR}'") in str(err.value)


def test_drained_host_is_reported_not_failed_and_never_listed_for_uploads(mock: requests_mock.Mocker) -> None:
    FakeRegion(mock, 3)
    mock.get(f"{url(1)}/healthcheck", status_code=503, text="DISABLED BY FILE")
    report = checker().validate(role_hosts(3), deadline=0)
    assert [h.status for h in report.hosts] == ["drained", "serving", "serving"]
    assert report.serving_count == 2
    assert report.endpoints == [url(2), url(3)]
    # The drained host is not used for the canary either.
    assert not [r for r in mock.request_history if r.netloc == "h1.test:9494" and r.method != "GET"]


def test_drained_hosts_do_not_count_towards_an_explicit_minimum(mock: requests_mock.Mocker) -> None:
    FakeRegion(mock, 3)
    mock.get(f"{url(1)}/healthcheck", status_code=503, text="DISABLED BY FILE")
    with pytest.raises(HealthError, match="2 serving, 3 required"):
        checker().validate(role_hosts(3), min_healthy=3, deadline=0)


def test_catalog_must_list_exactly_the_role_hosts(mock: requests_mock.Mocker) -> None:
    FakeRegion(mock, 3)
    hosts = [*role_hosts(2), RoleHost("id-9", "host-9", "http://h9.test:9494")]
    with pytest.raises(HealthError) as err:
        checker().validate(hosts, deadline=0)
    message = str(err.value)
    assert "host-9 (http://h9.test:9494): misconfigured: its endpoint http://h9.test:9494 is missing" \
        in message
    assert "http://h3.test:9494): misconfigured: the catalog lists this image-cluster endpoint but no" \
        in message


def test_match_catalog_by_ip_when_resmgr_gives_no_endpoint() -> None:
    hosts = [RoleHost("a", "a", None, "10.0.0.1"), RoleHost("b", "b", None, "10.0.0.9")]
    matched, extra = match_catalog(hosts, ["https://10.0.0.1:9494/", "https://10.0.0.2:9494"])
    assert [h.endpoint for h in matched] == ["https://10.0.0.1:9494", None]
    assert extra == ["https://10.0.0.2:9494"]


def test_probe_only_never_writes(mock: requests_mock.Mocker) -> None:
    FakeRegion(mock, 3)
    report = checker().probe(role_hosts(3))
    assert report.ok
    assert {r.method for r in mock.request_history if r.netloc.startswith("h")} == {"GET"}


def test_audit_finds_images_a_host_cannot_read(mock: requests_mock.Mocker) -> None:
    region = FakeRegion(mock, 3, shared=False)
    image_id = "11111111-2222-4333-8444-555555555555"
    region.records[image_id] = {"id": image_id, "status": "active", "size": 3}
    for ep in (url(1), url(2)):
        region.local[ep][image_id] = b"abc"
    with pytest.raises(HealthError) as err:
        checker().validate(role_hosts(3), canary=False, audit_images=True, deadline=0)
    assert "host-3 (http://h3.test:9494): no-shared-data: has no data for 1 of 1 active images" \
        in str(err.value)


def test_validate_waits_for_a_host_to_come_up_within_the_deadline(mock: requests_mock.Mocker) -> None:
    FakeRegion(mock, 2)
    mock.get(f"{url(2)}/healthcheck", [{"exc": requests.exceptions.ConnectionError("Connection refused")},
                                       {"text": "OK"}])
    sleeps: list[float] = []
    report = checker().validate(role_hosts(2), deadline=60, interval=5, sleep=sleeps.append)
    assert report.serving_count == 2
    assert sleeps == [5]


def test_catalog_is_reread_only_when_the_token_predates_the_check(mock: requests_mock.Mocker) -> None:
    FakeRegion(mock, 2)
    issued = datetime(2026, 11, 25, 15, 0, 0, tzinfo=UTC)
    body = token([url(1), url(2)])
    body["token"]["issued_at"] = issued.strftime("%Y-%m-%dT%H:%M:%S.000000Z")
    mock.post(f"{AUTH_URL}/auth/tokens", json=body, headers={"X-Subject-Token": "t"}, status_code=201)
    session = make_session(CloudAccess(auth_url=AUTH_URL, region="RegionOne", username="admin",
                                       password=PASSWORD, project_name="admin"))
    store = ExpectedStore("file", DATA_DIR)

    def tokens() -> int:
        return sum(1 for r in mock.request_history if r.path == "/v3/auth/tokens")

    HealthChecker(session, region="RegionOne", expected_store=store,
                  catalog_fresh_after=issued - timedelta(seconds=5)).probe(role_hosts(2))
    assert tokens() == 1  # a brand-new token: its catalog is current
    HealthChecker(session, region="RegionOne", expected_store=store,
                  catalog_fresh_after=issued).probe(role_hosts(2))
    assert tokens() == 1  # issued in the same second: still current
    HealthChecker(session, region="RegionOne", expected_store=store,
                  catalog_fresh_after=issued + timedelta(seconds=5)).probe(role_hosts(2))
    assert tokens() == 2  # issued before the change being validated: re-authenticated
