"""ImageLibraryRoleProvider in-process against requests-mock: check, diff, create/adopt, read, update, delete.

Exact request sequences are asserted; Keystone's token (with a catalog holding resmgr and the region's
image-cluster endpoints) is mocked like any other endpoint.
"""

from __future__ import annotations

import pickle
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests_mock
from keystone_fake import token_body
from pulumi.output import Unknown

from imagelib_ha.client.errors import HostNotFound, HostRegionMismatch, MountPathMismatch, RoleFailed
from imagelib_ha.providers.common import PROVIDER_VERSION
from imagelib_ha.providers.role import ImageLibraryRoleProvider, match_host_endpoint

AUTH_URL = "http://keystone.test/v3"
RESMGR = "http://mgmt.test/resmgr"
PASSWORD = "s3cret-Pa55"
EP1, EP2 = "https://10.0.0.11:9494", "https://10.0.0.12:9494"
CLOUD = {"auth_url": AUTH_URL, "region": "RegionOne", "username": "admin", "password": PASSWORD,
         "project_name": "admin", "project_domain_name": "Default", "user_domain_name": "Default"}


def endpoint(url: str, region: str = "RegionOne") -> dict[str, Any]:
    return {"id": url, "interface": "public", "region_id": region, "region": region, "url": url}


TOKEN = token_body([
    {"type": "resmgr", "id": "s1", "endpoints": [endpoint(RESMGR)]},
    {"type": "image-cluster", "id": "s2", "endpoints": [endpoint(EP1), endpoint(EP2)]},
])


def record(host_id: str, hostname: str, *, roles: tuple[str, ...] = (), status: str | None = None,
           glance: str | None = None, message: str = "", ip: str = "10.0.0.11",
           region: str | None = None) -> dict[str, Any]:
    rec: dict[str, Any] = {
        "id": host_id, "info": {"hostname": hostname}, "roles": list(roles), "message": message,
        "extensions": {"ip_address": {"data": [ip]}},
    }
    if status:
        rec["role_status"] = status
    if glance:
        rec["roles_status_details"] = {"pf9-glance-role": glance}
    if region:
        rec["region"] = region
    return rec


H1_BARE = record("h1", "node-1")
H2_BARE = record("h2", "node-2", ip="10.0.0.12")
H1_APPLIED = record("h1", "node-1", roles=("pf9-glance-role",), status="ok", glance="applied")


@pytest.fixture
def m() -> Any:
    with requests_mock.Mocker() as mocker:
        mocker.post(f"{AUTH_URL}/auth/tokens", json=TOKEN, status_code=201, headers={"X-Subject-Token": "t"})
        yield mocker


def calls(m: Any) -> list[tuple[str, str]]:
    out = []
    for r in m.request_history:
        parts = urlsplit(r.url)
        out.append((r.method, parts.path + (f"?{parts.query}" if parts.query else "")))
    return out


def inputs(**changes: Any) -> dict[str, Any]:
    base = {"cloud": dict(CLOUD), "host": "node-1", "expected_region": "RegionOne", "poll_interval": 0.001,
            "failed_grace": 0.05, "converge_timeout": 5, "conflict_timeout": 1}
    base.update(changes)
    return ImageLibraryRoleProvider().check({}, base).inputs


TOKEN_CALL = ("POST", "/v3/auth/tokens")
HOSTS = ("GET", "/resmgr/v1/hosts")
PUT_H1 = ("PUT", "/resmgr/v2/hosts/h1/roles/image-library")
DELETE_H1 = ("DELETE", "/resmgr/v2/hosts/h1/roles/image-library")
GET_H1 = ("GET", "/resmgr/v1/hosts/h1")
SETTINGS_H1 = ("GET", "/resmgr/v2/hosts/h1?role_settings=true")


# --- check -------------------------------------------------------------------------------------------


def test_check_fills_defaults_and_keeps_only_inputs() -> None:
    result = ImageLibraryRoleProvider().check({}, {"cloud": CLOUD, "host": "node-1", "host_id": None,
                                                   "adopted": None})
    assert result.failures == []
    assert result.inputs == {
        "cloud": CLOUD, "provider_version": PROVIDER_VERSION, "host": "node-1", "expected_region": None,
        "expected_mount_path": None, "converge_timeout": 1800, "failed_grace": 120, "conflict_timeout": 600,
        "poll_interval": 5,
    }


def test_check_reports_each_bad_input_without_echoing_secrets() -> None:
    bad_cloud = {"auth_url": "", "region": "RegionOne", "username": "admin", "password": ""}
    result = ImageLibraryRoleProvider().check({}, {
        "cloud": bad_cloud, "host": " ", "expected_mount_path": "relative/path", "converge_timeout": 0,
        "failed_grace": -1, "poll_interval": "5",
    })
    props = sorted(f.property for f in result.failures)
    assert props == ["cloud", "cloud", "converge_timeout", "expected_mount_path", "failed_grace", "host",
                     "poll_interval"]
    text = " ".join(f.reason for f in result.failures)
    assert "pcd-imagelib-ha:cloud.authUrl" in text and "cloud.password" in text


def test_check_never_echoes_a_password() -> None:
    cloud = {**CLOUD, "auth_url": 42}
    result = ImageLibraryRoleProvider().check({}, {"cloud": cloud, "host": "x"})
    assert result.failures and all(PASSWORD not in f.reason for f in result.failures)


def test_unknowns_at_preview_pass_check() -> None:
    result = ImageLibraryRoleProvider().check({}, {
        "cloud": Unknown(), "host": Unknown(), "expected_region": Unknown(), "expected_mount_path": Unknown(),
        "converge_timeout": Unknown(),
    })
    assert result.failures == []


# --- diff --------------------------------------------------------------------------------------------


def stored(**changes: Any) -> dict[str, Any]:
    outs = {**inputs(), "host_id": "h1", "hostname": "node-1", "region": "RegionOne", "role_status": "ok",
            "glance_role_state": "applied", "adopted": False, "endpoint": EP1, "__provider": "old-blob"}
    outs.update(changes)
    return outs


def test_diff_of_unchanged_inputs_is_no_change_even_with_a_new_provider_blob() -> None:
    news = {**inputs(), "__provider": "new-blob"}
    result = ImageLibraryRoleProvider().diff("h1", stored(), news)
    assert result.changes is False and result.replaces == []


def test_diff_another_host_replaces_create_before_delete() -> None:
    result = ImageLibraryRoleProvider().diff("h1", stored(), inputs(host="node-2"))
    assert (result.changes, result.replaces, result.delete_before_replace) == (True, ["host"], False)


@pytest.mark.parametrize("spelling", ["h1", "node-1"])
def test_diff_same_host_respelled_updates_in_place(spelling: str) -> None:
    result = ImageLibraryRoleProvider().diff("h1", stored(host="node-1"), inputs(host=spelling))
    assert result.replaces == []


def test_diff_other_inputs_update_in_place() -> None:
    news = inputs(converge_timeout=60, provider_version="2")
    result = ImageLibraryRoleProvider().diff("h1", stored(), news)
    assert result.changes is True and result.replaces == []
    assert "converge_timeout" not in result.stables and "host" in result.stables


def test_diff_unknown_host_at_preview_is_a_replace() -> None:
    result = ImageLibraryRoleProvider().diff("h1", stored(), {**inputs(), "host": Unknown()})
    assert result.replaces == ["host"]


# --- create ------------------------------------------------------------------------------------------


def test_create_assigns_waits_and_finds_its_endpoint(m: Any) -> None:
    m.get(f"{RESMGR}/v1/hosts", json=[H1_BARE, H2_BARE])
    m.put(f"{RESMGR}/v2/hosts/h1/roles/image-library", [{"status_code": 409}, {"status_code": 200}])
    m.get(f"{RESMGR}/v1/hosts/h1", [
        {"json": record("h1", "node-1", roles=("pf9-glance-role",), status="converging", glance="pre-auth")},
        {"json": H1_APPLIED},
    ])
    m.get(f"{RESMGR}/v2/hosts/h1?role_settings=true",
          json={**H1_APPLIED, "role_settings": {"pf9-glance-role": {"endpoint_address": EP1 + "/"}}})
    result = ImageLibraryRoleProvider().create(inputs())
    assert calls(m) == [TOKEN_CALL, HOSTS, PUT_H1, PUT_H1, GET_H1, GET_H1, TOKEN_CALL, SETTINGS_H1]
    assert result.id == "h1"
    outs = result.outs
    assert {k: outs[k] for k in ("host_id", "hostname", "region", "role_status", "glance_role_state",
                                 "adopted", "endpoint")} == {
        "host_id": "h1", "hostname": "node-1", "region": "RegionOne", "role_status": "ok",
        "glance_role_state": "applied", "adopted": False, "endpoint": EP1}
    assert outs["host"] == "node-1" and outs["cloud"] == CLOUD  # inputs are returned too


def test_create_adopts_a_role_that_already_exists(m: Any) -> None:
    m.get(f"{RESMGR}/v1/hosts", json=[H1_APPLIED])
    m.get(f"{RESMGR}/v1/hosts/h1", json=H1_APPLIED)
    m.get(f"{RESMGR}/v2/hosts/h1?role_settings=true", json=H1_APPLIED)  # no settings: match by IP
    result = ImageLibraryRoleProvider().create(inputs(host="h1"))
    assert calls(m) == [TOKEN_CALL, HOSTS, GET_H1, TOKEN_CALL, SETTINGS_H1]
    assert result.outs["adopted"] is True and result.outs["endpoint"] == EP1


def test_create_unknown_host_names_it_and_touches_nothing(m: Any) -> None:
    m.get(f"{RESMGR}/v1/hosts", json=[H1_BARE, H2_BARE])
    with pytest.raises(HostNotFound) as exc:
        ImageLibraryRoleProvider().create(inputs(host="node-9"))
    assert "'node-9'" in str(exc.value) and "node-1, node-2" in str(exc.value)
    assert calls(m) == [TOKEN_CALL, HOSTS]


def test_create_refuses_a_host_of_another_region(m: Any) -> None:
    m.get(f"{RESMGR}/v1/hosts", json=[record("h1", "node-1", region="RegionTwo")])
    expected = "in region 'RegionTwo', but is configured for region 'RegionOne'"
    with pytest.raises(HostRegionMismatch, match=expected):
        ImageLibraryRoleProvider().create(inputs())
    assert calls(m) == [TOKEN_CALL, HOSTS]


def test_create_that_fails_for_good_withdraws_its_assignment(m: Any) -> None:
    m.get(f"{RESMGR}/v1/hosts", json=[H1_BARE])
    m.put(f"{RESMGR}/v2/hosts/h1/roles/image-library", status_code=200)
    m.delete(f"{RESMGR}/v2/hosts/h1/roles/image-library", status_code=200)
    broken = record("h1", "node-1", roles=("pf9-glance-role",), status="failed", glance="auth-error",
                    message="mount /var/opt/x: no such device")
    m.get(f"{RESMGR}/v1/hosts/h1", json=broken)
    with pytest.raises(RoleFailed) as exc:
        ImageLibraryRoleProvider().create(inputs())
    text = str(exc.value)
    assert "node-1 (h1)" in text and "'failed'" in text and "no such device" in text
    assert any("withdrawn" in note for note in exc.value.__notes__)
    seq = calls(m)
    assert seq[:3] == [TOKEN_CALL, HOSTS, PUT_H1] and seq[-1] == DELETE_H1
    assert set(seq[3:-1]) == {GET_H1}


def test_create_mount_path_mismatch_is_named(m: Any) -> None:
    m.get(f"{RESMGR}/v1/hosts", json=[H1_APPLIED])
    m.get(f"{RESMGR}/v1/hosts/h1", json=H1_APPLIED)
    m.get(f"{RESMGR}/v2/hosts/h1?role_settings=true",
          json={**H1_APPLIED, "role_settings": {"pf9-glance-role": {"filesystem_store_datadir": "/srv/x"}}})
    with pytest.raises(MountPathMismatch, match=r"'/srv/x'.*'/var/opt/imagelibrary/data'"):
        ImageLibraryRoleProvider().create(inputs(expected_mount_path="/var/opt/imagelibrary/data"))
    assert DELETE_H1 not in calls(m)  # adopted: never withdrawn


# --- read / update / delete --------------------------------------------------------------------------


def test_read_reports_current_state(m: Any) -> None:
    converging = record("h1", "node-1", roles=("image-library",), status="converging",
                        glance="auth-converging")
    m.get(f"{RESMGR}/v1/hosts/h1", json=converging)
    m.get(f"{RESMGR}/v2/hosts/h1?role_settings=true", json=converging)
    result = ImageLibraryRoleProvider().read("h1", stored())
    assert result.id == "h1"
    assert (result.outs["role_status"], result.outs["glance_role_state"]) == ("converging", "auth-converging")
    assert result.outs["adopted"] is False and result.outs["host"] == "node-1"


@pytest.mark.parametrize("response", [{"json": H1_BARE}, {"status_code": 404}, {"text": "null"}])
def test_read_of_a_role_removed_out_of_band_is_gone(m: Any, response: dict[str, Any]) -> None:
    m.get(f"{RESMGR}/v1/hosts/h1", **response)
    result = ImageLibraryRoleProvider().read("h1", stored())
    assert result.id == "" and result.outs == {}


def test_update_reassigns_a_role_removed_out_of_band_and_returns_full_outputs(m: Any) -> None:
    m.get(f"{RESMGR}/v1/hosts", json=[H1_BARE])
    m.put(f"{RESMGR}/v2/hosts/h1/roles/image-library", status_code=204)
    m.get(f"{RESMGR}/v1/hosts/h1", json=H1_APPLIED)
    m.get(f"{RESMGR}/v2/hosts/h1?role_settings=true", json=H1_APPLIED)
    result = ImageLibraryRoleProvider().update("h1", stored(adopted=True), inputs(converge_timeout=60))
    assert calls(m) == [TOKEN_CALL, HOSTS, PUT_H1, GET_H1, TOKEN_CALL, SETTINGS_H1]
    assert set(result.outs) >= {"cloud", "host", "converge_timeout", "host_id", "adopted", "endpoint"}
    assert result.outs["converge_timeout"] == 60 and result.outs["adopted"] is False


def test_update_keeps_adopted_when_the_role_is_still_there(m: Any) -> None:
    m.get(f"{RESMGR}/v1/hosts", json=[H1_APPLIED])
    m.get(f"{RESMGR}/v1/hosts/h1", json=H1_APPLIED)
    m.get(f"{RESMGR}/v2/hosts/h1?role_settings=true", json=H1_APPLIED)
    result = ImageLibraryRoleProvider().update("h1", stored(adopted=True), inputs(provider_version="2"))
    assert PUT_H1 not in calls(m)
    assert result.outs["adopted"] is True and result.outs["provider_version"] == "2"


def test_delete_leaves_an_adopted_role_in_place(m: Any) -> None:
    ImageLibraryRoleProvider().delete("h1", stored(adopted=True))
    assert calls(m) == []


def test_delete_removes_and_waits_for_a_role_it_assigned(m: Any) -> None:
    m.get(f"{RESMGR}/v1/hosts/h1", [
        {"json": H1_APPLIED},
        {"json": record("h1", "node-1", roles=("pf9-glance-role",), status="converging",
                        glance="start-deauth")},
        {"status_code": 404},  # PCD: per-host 404 for a while after the last role is removed
    ])
    m.delete(f"{RESMGR}/v2/hosts/h1/roles/image-library", status_code=200)
    ImageLibraryRoleProvider().delete("h1", stored())
    assert calls(m) == [TOKEN_CALL, GET_H1, DELETE_H1, GET_H1, GET_H1]


def test_delete_of_a_role_already_gone_does_nothing_more(m: Any) -> None:
    m.get(f"{RESMGR}/v1/hosts/h1", status_code=404)
    ImageLibraryRoleProvider().delete("h1", stored())
    assert calls(m) == [TOKEN_CALL, GET_H1]


def test_rejected_credentials_say_so_without_the_password(m: Any) -> None:
    m.post(f"{AUTH_URL}/auth/tokens", status_code=401, json={"error": {"code": 401}})
    with pytest.raises(Exception, match="rejected the credentials") as exc:
        ImageLibraryRoleProvider().create(inputs())
    assert PASSWORD not in str(exc.value)


# --- endpoint matching, pickling ---------------------------------------------------------------------


def test_endpoint_matching_rules() -> None:
    eps = [EP1, EP2, "http://127.0.0.1:9001", "http://127.0.0.1:9002"]
    assert match_host_endpoint(eps, endpoint_address="http://127.0.0.1:9002/", ip_address=None) == eps[3]
    assert match_host_endpoint(eps, endpoint_address="10.0.0.12", ip_address=None) == EP2
    assert match_host_endpoint(eps, endpoint_address=None, ip_address="10.0.0.11") == EP1
    # every lab host is 127.0.0.1: the IP alone cannot tell them apart
    assert match_host_endpoint(eps, endpoint_address=None, ip_address="127.0.0.1") is None
    assert match_host_endpoint(eps, endpoint_address=None, ip_address=None) is None


def test_provider_holds_no_state_and_pickles() -> None:
    provider = ImageLibraryRoleProvider()
    assert vars(provider) == {}
    assert isinstance(pickle.loads(pickle.dumps(provider)), ImageLibraryRoleProvider)
