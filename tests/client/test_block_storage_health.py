"""The health check reads the Cinder store's volume type from Cinder itself (requests-mock).

A type edited out of band (multiattach removed), a type that is gone, and a Cinder API that does not
answer each fail the check with a reason; a multiattach type passes. Cinder is reached through the
catalog's ``volumev3`` entry, as the lab and older regions register it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests
import requests_mock
from keystone_fake import token_body

from imagelib_ha.client.health import ExpectedStore, HealthChecker, RoleHost
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
