"""image-cluster endpoint lookup: only the region's image-cluster endpoints, never the public image one."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest
import requests_mock
from keystone_fake import token_body

from imagelib_ha.client.catalog import image_cluster_endpoints
from imagelib_ha.client.session import CloudAccess, make_session

AUTH_URL = "http://keystone.test/v3"


def endpoint(url: str, region: str, interface: str = "public") -> dict[str, Any]:
    return {"id": url + interface, "interface": interface, "region_id": region, "region": region, "url": url}


CATALOG = [
    {"type": "image", "name": "glance", "id": "s1", "endpoints": [
        endpoint("https://pcd.test/glance", "RegionOne")]},
    {"type": "image-cluster", "name": "glance-cluster", "id": "s2", "endpoints": [
        endpoint("https://10.0.0.1:9494/", "RegionOne"),
        endpoint("https://10.0.0.1:9494", "RegionOne", "internal"),
        endpoint("https://10.0.0.2:9494", "RegionOne"),
        endpoint("https://10.9.0.1:9494", "RegionTwo"),
    ]},
]


@pytest.fixture
def mock() -> Iterator[requests_mock.Mocker]:
    with requests_mock.Mocker() as m:
        yield m


def session() -> Any:
    return make_session(CloudAccess(auth_url=AUTH_URL, region="RegionOne", username="admin",
                                    password="pw", project_name="admin"))


def test_only_the_regions_image_cluster_endpoints(mock: requests_mock.Mocker) -> None:
    mock.post(f"{AUTH_URL}/auth/tokens", json=token_body(CATALOG), headers={"X-Subject-Token": "t"},
              status_code=201)
    assert image_cluster_endpoints(session(), region="RegionOne") == [
        "https://10.0.0.1:9494", "https://10.0.0.2:9494"]
    assert image_cluster_endpoints(session(), region="RegionTwo") == ["https://10.9.0.1:9494"]


def test_falls_back_to_another_interface(mock: requests_mock.Mocker) -> None:
    internal_only = copy.deepcopy(CATALOG)
    internal_only[1]["endpoints"] = [endpoint("http://h1:9494", "RegionOne", "internal")]
    mock.post(f"{AUTH_URL}/auth/tokens", json=token_body(internal_only), headers={"X-Subject-Token": "t"},
              status_code=201)
    assert image_cluster_endpoints(session(), region="RegionOne") == ["http://h1:9494"]


def test_reauthenticate_sees_endpoints_added_since_the_token(mock: requests_mock.Mocker) -> None:
    before = copy.deepcopy(CATALOG)
    before[1]["endpoints"] = before[1]["endpoints"][:1]
    mock.post(f"{AUTH_URL}/auth/tokens", [
        {"json": token_body(before), "headers": {"X-Subject-Token": "t1"}, "status_code": 201},
        {"json": token_body(CATALOG), "headers": {"X-Subject-Token": "t2"}, "status_code": 201},
    ])
    sess = session()
    assert image_cluster_endpoints(sess, region="RegionOne") == ["https://10.0.0.1:9494"]
    # Cached with the token: a plain second call does not see the new host.
    assert image_cluster_endpoints(sess, region="RegionOne") == ["https://10.0.0.1:9494"]
    assert image_cluster_endpoints(sess, region="RegionOne", reauthenticate=True) == [
        "https://10.0.0.1:9494", "https://10.0.0.2:9494"]
    assert mock.call_count == 2


def test_a_region_without_image_cluster_never_falls_back_to_the_public_image_endpoint(
    mock: requests_mock.Mocker,
) -> None:
    mock.post(f"{AUTH_URL}/auth/tokens", json=token_body(CATALOG[:1]), headers={"X-Subject-Token": "t"},
              status_code=201)
    assert image_cluster_endpoints(session(), region="RegionOne") == []
