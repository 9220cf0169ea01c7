"""The health check reads the Cinder store's volume type from Cinder itself (requests-mock).

A type edited out of band (multiattach removed), a type that is gone, and a Cinder API that does not
answer each fail the check with a reason; a multiattach type passes. Cinder is reached through the
catalog's ``volumev3`` entry, as the lab and older regions register it.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import requests_mock
from keystone_fake import token_body

from imagelib_ha.client.glance import Download, HostUnavailable, ProbeResult, Timeouts
from imagelib_ha.client.health import (
    CINDER_CANARY_TIMEOUT,
    ExpectedStore,
    HealthChecker,
    HealthError,
    RoleHost,
)
from imagelib_ha.client.session import CloudAccess, make_session

AUTH_URL = "http://keystone.test/v3"
CINDER = "http://cinder.test:8776/v3/p1"
HOSTS = [f"http://h{i}.test:9494" for i in (1, 2, 3)]
TYPE = "image_library"


def catalog(*, cinder: bool = True) -> list[dict[str, Any]]:
    services: list[dict[str, Any]] = [
        {"type": "image-cluster", "name": "glance-cluster", "id": "s2", "endpoints": [
            {"id": f"e{n}", "interface": "public", "region_id": "RegionOne", "url": ep}
            for n, ep in enumerate(HOSTS)]},
    ]
    if cinder:
        services.append({"type": "volumev3", "name": "cinderv3", "id": "s3", "endpoints": [
            {"id": "c1", "interface": "public", "region_id": "RegionOne", "url": CINDER}]})
    return services


def serve_hosts(m: requests_mock.Mocker) -> None:
    for ep in HOSTS:
        m.get(f"{ep}/healthcheck", text="OK")
        m.get(f"{ep}/v2/", status_code=401)
        m.get(f"{ep}/v2/images", json={"images": []})
        m.get(f"{ep}/v2/info/stores/detail", json={"stores": [
            {"id": "cinder", "default": "true", "type": "cinder", "properties": {"volume_type": TYPE}}]})


@pytest.fixture
def m() -> Iterator[requests_mock.Mocker]:
    with requests_mock.Mocker() as mocker:
        mocker.post(f"{AUTH_URL}/auth/tokens", json=token_body(catalog()), status_code=201,
                    headers={"X-Subject-Token": "t"})
        serve_hosts(mocker)
        yield mocker


def types(extra_specs: dict[str, str], name: str = TYPE) -> dict[str, Any]:
    return {"volume_types": [
        {"id": "t0", "name": "__DEFAULT__", "extra_specs": {}},
        {"id": "t1", "name": name, "extra_specs": extra_specs, "is_public": True},
    ]}


def probe() -> Any:
    session = make_session(CloudAccess(auth_url=AUTH_URL, region="RegionOne", username="admin",
                                       password="pw", project_name="admin"))
    store = ExpectedStore("cinder", volume_type=TYPE)
    checker = HealthChecker(session, region="RegionOne", expected_store=store, probe_timeout=2.0)
    return checker.probe([RoleHost(f"id-{i}", f"host-{i}", ep) for i, ep in enumerate(HOSTS, 1)])


def test_a_multiattach_type_passes_read_from_cinder_with_a_microversion(m: requests_mock.Mocker) -> None:
    m.get(f"{CINDER}/types", json=types({"multiattach": "<is> True", "volume_backend_name": "nfs1"}))
    report = probe()
    assert report.ok, report.failure_message()
    reads = [r for r in m.request_history if r.url.startswith(CINDER)]
    assert len(reads) == 1
    assert reads[0].headers["OpenStack-API-Version"] == "volume 3.27"
    assert reads[0].qs == {"is_public": ["none"]}


@pytest.mark.parametrize(
    ("specs", "problem"),
    [
        ({"volume_backend_name": "nfs1"}, "its extra specs have no 'multiattach'"),
        ({"multiattach": "<is> False"}, "its extra spec 'multiattach' is '<is> False', not '<is> True'"),
    ],
)
def test_a_type_that_lost_multiattach_fails_the_check(
    m: requests_mock.Mocker, specs: dict[str, str], problem: str
) -> None:
    m.get(f"{CINDER}/types", json=types(specs))
    report = probe()
    assert not report.ok
    # Every host still serves: the problem is the library's, not one host's.
    assert report.serving_count == 3
    assert report.problems == [
        f"Cinder volume type '{TYPE}' is not multiattach ({problem}): a host cannot read an image while "
        "another has its volume attached. Set it back: openstack volume type set --property "
        f"multiattach='<is> True' {TYPE} (or run up, which restores the extra specs)"
    ]


def test_a_missing_type_fails_the_check(m: requests_mock.Mocker) -> None:
    m.get(f"{CINDER}/types", json=types({"multiattach": "<is> True"}, name="another"))
    report = probe()
    assert not report.ok
    assert report.problems[0].startswith(f"Cinder has no volume type '{TYPE}'")


def test_a_cinder_api_that_does_not_answer_fails_naming_the_timeout(m: requests_mock.Mocker) -> None:
    m.get(f"{CINDER}/types", exc=requests.exceptions.ReadTimeout("read timed out"))
    report = probe()
    assert not report.ok
    assert report.serving_count == 3
    (problem,) = report.problems
    assert problem.startswith(
        "cannot read the image store's volume type from Cinder: Block Storage (Cinder) reading volume type "
        f"'{TYPE}' in region 'RegionOne': no answer within 2s"
    )
    assert problem.endswith("the Cinder API is down or not responding")


def test_a_region_without_block_storage_in_the_catalog_fails_the_check(m: requests_mock.Mocker) -> None:
    m.post(f"{AUTH_URL}/auth/tokens", json=token_body(catalog(cinder=False)), status_code=201,
           headers={"X-Subject-Token": "t"})
    report = probe()
    assert not report.ok
    assert "the catalog has no block-storage (volumev3) endpoint" in report.problems[0]


class CinderStoreHosts:
    """Glance hosts on one Cinder store, as the canary meets them (no HTTP: requests-mock would serialize
    the reads). A read that overlaps another waits for the volume's attachment longer than the probe
    timeout allows, as measured on Cinder; a frozen host never answers its read."""

    def __init__(self, frozen: str | None = None) -> None:
        self.records: dict[str, dict[str, Any]] = {}
        self.data: dict[str, bytes] = {}
        self.active = 0
        self.overlapped = 0
        self.frozen = frozen
        self.lock = threading.Lock()
        self.timeouts: list[tuple[str, Timeouts]] = []

    def host(self, endpoint: str) -> Any:
        return _Host(self, endpoint)


class _Host:
    def __init__(self, store: CinderStoreHosts, endpoint: str) -> None:
        self.store, self.endpoint = store, endpoint

    def probe(self, *, timeout: float | None = None) -> ProbeResult:
        return ProbeResult(self.endpoint, "serving", "serving", 0.01)

    def stores_detail(self) -> list[dict[str, Any]]:
        return [{"id": "cinder", "default": "true", "type": "cinder", "properties": {"volume_type": TYPE}}]

    def find_by_property(self, key: str, value: str) -> list[dict[str, Any]]:
        return []

    def create_image(self, *, image_id: str, body: dict[str, Any]) -> dict[str, Any]:
        self.store.records[image_id] = {**body, "id": image_id, "status": "queued"}
        return self.store.records[image_id]

    def upload(self, image_id: str, body: Any) -> None:
        data = b"".join(body)
        self.store.data[image_id] = data
        self.store.records[image_id].update(status="active", os_hash_value=hashlib.sha512(data).hexdigest())

    def get_image(self, image_id: str) -> dict[str, Any] | None:
        return self.store.records.get(image_id)

    def delete_image(self, image_id: str) -> None:
        self.store.records.pop(image_id, None)

    def download_sha512(self, image_id: str) -> Download:
        store = self.store
        if self.endpoint == store.frozen:
            raise HostUnavailable(self.endpoint, "read-timeout", "no answer within the read timeout")
        with store.lock:
            store.active += 1
            overlapping = store.active > 1
            store.overlapped += overlapping
        try:
            time.sleep(0.1)
            if overlapping:
                raise HostUnavailable(self.endpoint, "read-timeout", "waiting for the volume's attachment")
            data = store.data[image_id]
            return Download(status=200, size=len(data), sha512=hashlib.sha512(data).hexdigest())
        finally:
            with store.lock:
                store.active -= 1


class Checker(HealthChecker):
    def __init__(self, hosts: CinderStoreHosts, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.hosts = hosts

    def host(self, endpoint: str, timeouts: Timeouts | None = None) -> Any:
        self.hosts.timeouts.append((endpoint, timeouts or self.timeouts))
        return self.hosts.host(endpoint)


def validate(hosts: CinderStoreHosts) -> Any:
    session = make_session(CloudAccess(auth_url=AUTH_URL, region="RegionOne", username="admin",
                                       password="pw", project_name="admin"))
    store = ExpectedStore("cinder", volume_type=TYPE)
    checker = Checker(hosts, session=session, region="RegionOne", expected_store=store, probe_timeout=2.0)
    roles = [RoleHost(f"id-{i}", f"host-{i}", ep) for i, ep in enumerate(HOSTS, 1)]
    try:
        return checker.validate(roles, deadline=0)
    except HealthError as exc:
        return exc.report


def test_the_cinder_canary_reads_one_host_at_a_time_so_a_healthy_library_passes(
    m: requests_mock.Mocker,
) -> None:
    m.get(f"{CINDER}/types", json=types({"multiattach": "<is> True"}))
    hosts = CinderStoreHosts()
    report = validate(hosts)
    assert report.ok, report.failure_message()
    assert hosts.overlapped == 0
    assert report.canary == "written through host-1, read back identically through 2 other host(s)"
    # Probes keep the probe timeout; every canary request gets the Cinder canary's bound.
    reads = {t.read for _, t in hosts.timeouts}
    assert reads == {2.0, CINDER_CANARY_TIMEOUT} and CINDER_CANARY_TIMEOUT == 30.0


def test_the_cinder_canary_still_catches_a_host_that_freezes_before_its_read(
    m: requests_mock.Mocker,
) -> None:
    m.get(f"{CINDER}/types", json=types({"multiattach": "<is> True"}))
    report = validate(CinderStoreHosts(frozen=HOSTS[2]))
    assert not report.ok
    rows = {h.hostname: (h.status, h.reason) for h in report.hosts}
    assert rows["host-1"][0] == rows["host-2"][0] == "serving"
    assert rows["host-3"] == ("error", "cannot read the canary image: "
                                       f"{HOSTS[2]}: no answer within the read timeout")
