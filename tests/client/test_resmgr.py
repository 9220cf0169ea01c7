"""resmgr client against requests-mock: endpoint from the catalog, host shapes, role writes, blueprint.

Each test registers ordered responses per URI and asserts the exact request sequence, including the
single Keystone token request (the catalog comes with the token; nothing else is looked up).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import pytest
import requests_mock
from keystone_fake import token_body as keystone_token

from imagelib_ha.client.errors import (
    BlueprintNotFound,
    HostAmbiguous,
    HostNotFound,
    ResmgrEndpointNotFound,
    ResmgrRequestFailed,
    RoleUpdateConflict,
)
from imagelib_ha.client.resmgr import ResmgrClient, ResmgrHost
from imagelib_ha.client.session import CloudAccess, make_session

AUTH_URL = "http://keystone.test/v3"
RESMGR = "http://mgmt.test/resmgr"
RESMGR_R2 = "http://mgmt-r2.test/resmgr"
PASSWORD = "s3cret-Pa55"  # asserted never to leak into a message


def token_body() -> dict[str, Any]:
    """A Keystone v3 token response whose catalog has resmgr in two regions."""

    def endpoints(url: str, region: str) -> list[dict[str, Any]]:
        return [
            {"id": f"{region}-{i}", "interface": i, "region": region, "region_id": region, "url": url}
            for i in ("public", "internal", "admin")
        ]

    return keystone_token([
        {
            "type": "resmgr",
            "name": "resmgr",
            "id": "svc-resmgr",
            "endpoints": endpoints(RESMGR, "RegionOne") + endpoints(RESMGR_R2, "RegionTwo"),
        }
    ], issued_at="2020-01-01T00:00:00.000000Z", roles=[{"id": "r1", "name": "admin"}])


@pytest.fixture
def m() -> Any:
    with requests_mock.Mocker() as mocker:
        mocker.post(
            f"{AUTH_URL}/auth/tokens", json=token_body(), status_code=201, headers={"X-Subject-Token": "tok"}
        )
        yield mocker


def client(region: str = "RegionOne") -> ResmgrClient:
    access = CloudAccess(auth_url=AUTH_URL, region=region, username="admin", password=PASSWORD,
                         project_name="admin")
    return ResmgrClient(make_session(access), region=region)


def calls(m: Any) -> list[tuple[str, str]]:
    # r.path is lower-cased by requests-mock: take the path from the URL to keep its case.
    return [(r.method, urlsplit(r.url).path) for r in m.request_history]


V1_HOST = {
    "id": "h1",
    "info": {"hostname": "node-1", "responding": True, "os_family": "Linux"},
    "roles": ["pf9-glance-role", "pf9-ostackhost-neutron"],
    "role_status": "ok",
    "roles_status_details": {"pf9-glance-role": "applied"},
    "extensions": {"ip_address": {"data": ["10.0.0.11"], "status": "ok"}},
    "message": "",
}
V2_HOST = {
    "id": "h2",
    "info": {"hostname": "node-2"},
    "roles": ["image-library"],
    "role_status": "converging",
    "roles_status_details": {"pf9-glance-role": "auth-converging"},
    "hostconfig_id": "hc1",
}
BARE_HOST = {"id": "h3", "info": {"hostname": "node-3"}, "roles": []}


def test_endpoint_comes_from_the_catalog_of_the_configured_region(m: Any) -> None:
    m.get(f"{RESMGR_R2}/v1/hosts", json=[BARE_HOST])
    hosts = client("RegionTwo").list_hosts()
    assert [h.id for h in hosts] == ["h3"]
    assert calls(m) == [("POST", "/v3/auth/tokens"), ("GET", "/resmgr/v1/hosts")]
    assert m.request_history[1].hostname == "mgmt-r2.test"
    assert m.request_history[1].headers["X-Auth-Token"] == "tok"


def test_region_without_resmgr_is_a_clear_error(m: Any) -> None:
    with pytest.raises(ResmgrEndpointNotFound, match="region 'RegionNine'"):
        client("RegionNine").list_hosts()


def test_endpoint_override_skips_the_catalog(m: Any) -> None:
    m.get("http://override.test/resmgr/v1/hosts", json=[])
    access = CloudAccess(auth_url=AUTH_URL, region="RegionOne", username="admin", password=PASSWORD)
    c = ResmgrClient(make_session(access), region="RegionOne", endpoint_override="http://override.test/resmgr")
    assert c.list_hosts() == []
    assert calls(m)[-1] == ("GET", "/resmgr/v1/hosts")


def test_v1_and_v2_shapes_both_count_as_image_library(m: Any) -> None:
    m.get(f"{RESMGR}/v1/hosts", json=[V1_HOST, V2_HOST, BARE_HOST])
    h1, h2, h3 = client().list_hosts()
    assert (h1.hostname, h1.has_image_library, h1.glance_role_state, h1.ip_address) == (
        "node-1", True, "applied", "10.0.0.11")
    assert (h2.hostname, h2.has_image_library, h2.role_status, h2.ip_address) == (
        "node-2", True, "converging", None)
    assert (h3.has_image_library, h3.role_status, h3.glance_role_state) == (False, None, None)
    assert h2.raw["hostconfig_id"] == "hc1"


def test_get_host_treats_404_and_null_body_as_absent(m: Any) -> None:
    m.get(f"{RESMGR}/v1/hosts/gone", status_code=404, text="not found")
    m.get(f"{RESMGR}/v1/hosts/null", status_code=200, text="null")
    m.get(f"{RESMGR}/v1/hosts/h1", json=V1_HOST)
    c = client()
    assert c.get_host("gone") is None
    assert c.get_host("null") is None
    found = c.get_host("h1")
    assert isinstance(found, ResmgrHost) and found.id == "h1"


def test_get_host_server_error_is_raised_with_status(m: Any) -> None:
    m.get(f"{RESMGR}/v1/hosts/h1", status_code=500, text="boom")
    with pytest.raises(ResmgrRequestFailed, match="HTTP 500: boom") as exc:
        client().get_host("h1")
    assert PASSWORD not in str(exc.value)


def test_a_read_survives_a_transient_server_error_and_is_sent_at_most_three_times(m: Any) -> None:
    # Two status-code retries for a read; a write is never re-sent (next test).
    m.get(f"{RESMGR}/v1/hosts/h1", [{"status_code": 503, "text": "busy"}, {"json": V1_HOST}])
    assert client().get_host("h1") is not None
    assert calls(m).count(("GET", "/resmgr/v1/hosts/h1")) == 2
    m.reset_mock()
    m.get(f"{RESMGR}/v1/hosts/h1", status_code=500, text="boom")
    with pytest.raises(ResmgrRequestFailed, match="HTTP 500"):
        client().get_host("h1")
    assert calls(m).count(("GET", "/resmgr/v1/hosts/h1")) == 3


def test_a_write_is_never_re_sent_on_a_server_error(m: Any) -> None:
    m.put(f"{RESMGR}/v2/hosts/h1/roles/image-library", status_code=503, text="busy")
    with pytest.raises(ResmgrRequestFailed):
        client().assign_image_library("h1")
    assert calls(m).count(("PUT", "/resmgr/v2/hosts/h1/roles/image-library")) == 1


def test_find_host_by_id_then_hostname(m: Any) -> None:
    m.get(f"{RESMGR}/v1/hosts", json=[V1_HOST, V2_HOST])
    c = client()
    assert c.find_host("h2").hostname == "node-2"
    assert c.find_host("node-1").id == "h1"


def test_find_unknown_host_names_it_and_the_known_ones(m: Any) -> None:
    m.get(f"{RESMGR}/v1/hosts", json=[V1_HOST, V2_HOST])
    with pytest.raises(HostNotFound) as exc:
        client().find_host("node-9")
    text = str(exc.value)
    assert "'node-9'" in text and "node-1, node-2" in text and "RegionOne" in text


def test_find_ambiguous_hostname_asks_for_the_id(m: Any) -> None:
    twin = {**BARE_HOST, "id": "h4", "info": {"hostname": "node-3"}}
    m.get(f"{RESMGR}/v1/hosts", json=[BARE_HOST, twin])
    with pytest.raises(HostAmbiguous, match="h3, h4"):
        client().find_host("node-3")


@pytest.mark.parametrize("status", [200, 201, 202, 204])
def test_assign_accepts_every_success_code(m: Any, status: int) -> None:
    m.put(f"{RESMGR}/v2/hosts/h1/roles/image-library", status_code=status)
    assert client().assign_image_library("h1") == status
    assert calls(m)[-1] == ("PUT", "/resmgr/v2/hosts/h1/roles/image-library")
    assert m.request_history[-1].json() == {}


def test_assign_conflict_is_typed(m: Any) -> None:
    m.put(f"{RESMGR}/v2/hosts/h1/roles/image-library", status_code=409,
          json={"code": 409, "message": "RoleUpdateConflict: host is converging"})
    with pytest.raises(RoleUpdateConflict, match="h1: 409 RoleUpdateConflict"):
        client().assign_image_library("h1")


def test_assign_forbidden_says_admin_is_needed(m: Any) -> None:
    m.put(f"{RESMGR}/v2/hosts/h1/roles/image-library", status_code=403, text="forbidden")
    with pytest.raises(ResmgrRequestFailed, match="'admin' role"):
        client().assign_image_library("h1")


def test_remove_uses_delete_and_tolerates_404(m: Any) -> None:
    m.delete(f"{RESMGR}/v2/hosts/h1/roles/image-library", [{"status_code": 204}, {"status_code": 404}])
    c = client()
    assert c.remove_image_library("h1") == 204
    assert c.remove_image_library("h1") == 404
    assert calls(m)[1:] == [("DELETE", "/resmgr/v2/hosts/h1/roles/image-library")] * 2


def test_blueprint_read_modify_write_keeps_unknown_fields(m: Any) -> None:
    stored = {
        "name": "RegionOne",
        "networkingType": "ovn",
        "imageLibraryStorage": "/var/opt/pf9/imagelibrary/data",
        "imageLibrarySharedStorage": False,
        "storageBackends": {"nfs": {"driver": "NFS", "config": {"nfs_shares": "x"}}},
        "futureField": [1, 2, 3],
    }
    m.get(f"{RESMGR}/v2/blueprint/RegionOne", json=stored)
    m.put(f"{RESMGR}/v2/blueprint/RegionOne", status_code=200)
    change = client().set_image_library_storage(
        "RegionOne", storage="/var/opt/imagelibrary/data", shared=True
    )
    assert calls(m) == [
        ("POST", "/v3/auth/tokens"),
        ("GET", "/resmgr/v2/blueprint/RegionOne"),
        ("PUT", "/resmgr/v2/blueprint/RegionOne"),
    ]
    assert m.request_history[2].json() == {
        **stored,
        "imageLibraryStorage": "/var/opt/imagelibrary/data",
        "imageLibrarySharedStorage": True,
    }
    assert change.written
    assert change.before == {"imageLibraryStorage": "/var/opt/pf9/imagelibrary/data",
                             "imageLibrarySharedStorage": False}


def test_blueprint_already_right_is_not_rewritten(m: Any) -> None:
    m.get(f"{RESMGR}/v2/blueprint/RegionOne",
          json={"name": "RegionOne", "imageLibraryStorage": "/data", "imageLibrarySharedStorage": True})
    change = client().set_image_library_storage("RegionOne", storage="/data", shared=True)
    assert not change.written
    assert [c[0] for c in calls(m)] == ["POST", "GET"]


@pytest.mark.parametrize("response", [{"status_code": 404}, {"status_code": 200, "text": "null"}])
def test_missing_blueprint_is_a_clear_error(m: Any, response: dict[str, Any]) -> None:
    m.get(f"{RESMGR}/v2/blueprint/RegionOne", **response)
    with pytest.raises(BlueprintNotFound, match="Blueprint 'RegionOne' does not exist"):
        client().set_image_library_storage("RegionOne", storage="/data", shared=True)
    assert [c[0] for c in calls(m)] == ["POST", "GET"]


def test_v2_listing_uses_the_v2_path_and_parses_its_shape(m: Any) -> None:
    m.get(f"{RESMGR}/v2/hosts", json=[V2_HOST, {**V1_HOST, "extensions": {"region": {"data": "RegionOne"}}}])
    h2, h1 = client().list_hosts(version="v2")
    assert calls(m)[-1] == ("GET", "/resmgr/v2/hosts")
    assert (h2.has_image_library, h2.region, h1.region) == (True, None, "RegionOne")


def test_role_settings_come_from_v2_with_role_settings(m: Any) -> None:
    m.get(f"{RESMGR}/v2/hosts/h1?role_settings=true", [
        {"json": {**V2_HOST, "role_settings": {"pf9-glance-role": {"endpoint_address": "https://10.0.0.11:9494"}}}},
        {"json": V2_HOST},
        {"status_code": 404},
    ])
    c = client()
    assert c.get_glance_role_settings("h1") == {"endpoint_address": "https://10.0.0.11:9494"}
    assert c.get_glance_role_settings("h1") is None
    assert c.get_glance_role_settings("h1") is None
    assert m.request_history[-1].qs == {"role_settings": ["true"]}
