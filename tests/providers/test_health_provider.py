"""ImageLibraryHealth provider without a cloud: check (inputs and HA prerequisites, numbers as the
engine sends them), diff (old state of 0.1 included), and read that only probes (requests-mock resmgr
and Glance)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests
import requests_mock
from cloud_config import configured
from keystone_fake import token_body
from pulumi.output import Unknown

from imagelib_ha.providers.health import ImageLibraryHealthProvider

AUTH_URL = "http://keystone.test/v3"
RESMGR = "http://mgmt.test/resmgr"
PASSWORD = "s3cret-Pa55"
CLOUD = {"auth_url": AUTH_URL, "region": "RegionOne", "username": "admin", "password": PASSWORD,
         "project_name": "admin"}
MOUNT = "/var/opt/imagelibrary/data"


def provider() -> ImageLibraryHealthProvider:
    """The provider as the engine hands it over: configured with the stack's cloud config."""
    return configured(ImageLibraryHealthProvider(), CLOUD)


def news(**changes: Any) -> dict[str, Any]:
    return {
        "region": "RegionOne", "role_host_ids": ["h1", "h2"],
        "hosts": [{"host": "host-1", "region": "RegionOne", "mount_path": MOUNT},
                  {"host": "host-2", "region": "RegionOne", "mount_path": MOUNT}],
        "backend": "nfs", "expected_store": {"type": "file", "data_dir": MOUNT}, **changes,
    }


def failures(**changes: Any) -> dict[str, str]:
    result = provider().check({}, news(**changes))
    return {f.property: f.reason for f in result.failures}


def test_check_fills_defaults() -> None:
    result = provider().check({}, news())
    assert result.failures == []
    inputs = result.inputs
    assert (inputs["probe_timeout"], inputs["deadline"], inputs["canary"], inputs["audit_images"]) == (
        5, 120, True, False)
    assert inputs["min_healthy"] is None
    assert "cloud" not in inputs and "provider_version" not in inputs


def test_min_healthy_as_the_double_the_engine_sends_is_accepted_and_used_as_a_whole_number() -> None:
    result = provider().check({}, news(min_healthy=2.0, probe_timeout=5.0, deadline=120.0))
    assert result.failures == []
    assert result.inputs["min_healthy"] == 2 and type(result.inputs["min_healthy"]) is int
    assert failures(min_healthy=2.5) == {"min_healthy": "must be a whole number"}
    assert "only 2 hosts hold the role" in failures(min_healthy=3.0)["min_healthy"]


def test_check_unknowns_pass_at_preview() -> None:
    assert failures(role_host_ids=[Unknown(), Unknown()], expected_store=Unknown()) == {}
    assert failures(role_host_ids=Unknown(), hosts=Unknown(), min_healthy=Unknown()) == {}


def test_check_refuses_two_regions() -> None:
    found = failures(hosts=[{"host": "host-1", "region": "RegionOne", "mount_path": MOUNT},
                            {"host": "host-2", "region": "RegionTwo", "mount_path": MOUNT}])
    assert "another region" in found["hosts"] and "'host-2' in 'RegionTwo'" in found["hosts"]


def test_check_refuses_local_storage_with_several_hosts() -> None:
    found = failures(backend="local")
    assert any("local" in reason for reason in found.values())


def test_check_refuses_differing_mount_paths() -> None:
    found = failures(hosts=[{"host": "host-1", "region": "RegionOne", "mount_path": MOUNT},
                            {"host": "host-2", "region": "RegionOne", "mount_path": "/mnt/other"}])
    assert any("/mnt/other" in reason for reason in found.values())


def test_check_names_bad_inputs_without_secrets() -> None:
    found = failures(expected_store={"type": "nfs"}, min_healthy=3, probe_timeout=0, canary="yes",
                     backend="ceph")
    assert sorted(found) == ["backend", "canary", "expected_store", "min_healthy", "probe_timeout"]
    assert "only 2 hosts hold the role" in found["min_healthy"]
    assert PASSWORD not in " ".join(found.values())


def test_a_bad_cloud_config_fails_check_on_cloud_without_the_password() -> None:
    health = configured(ImageLibraryHealthProvider(), {**CLOUD, "auth_url": "keystone.test"})
    found = {f.property: f.reason for f in health.check({}, news()).failures}
    assert list(found) == ["cloud"] and "pcd-imagelib-ha:cloud.authUrl" in found["cloud"]
    assert PASSWORD not in found["cloud"]


def test_diff_never_replaces_and_revalidate_forces_an_update() -> None:
    health = provider()
    checked = health.check({}, news()).inputs
    olds = {**checked, "report": [], "serving_count": 2, "endpoints": [], "__provider": "old"}
    assert health.diff("id", olds, {**checked, "__provider": "new"}).changes is False
    again = health.diff("id", olds, {**checked, "revalidate": "2026-11-25"})
    assert (again.changes, again.replaces) == (True, [])
    more_hosts = health.diff("id", olds, {**checked, "role_host_ids": ["h1", "h2", "h3"]})
    assert (more_hosts.changes, more_hosts.replaces) == (True, [])
    # Numbers as doubles, and hosts in another order, are the same library.
    same = health.check({}, news(probe_timeout=5.0, deadline=120.0, role_host_ids=["h2", "h1"],
                                 hosts=list(reversed(news()["hosts"])))).inputs
    assert health.diff("id", olds, same).changes is False


def test_state_of_the_earlier_release_updates_in_place_and_drops_cloud_and_provider_version(
    mock: requests_mock.Mocker,
) -> None:
    """0.1 stored the credentials (``cloud``) and ``provider_version`` with every resource."""
    health = provider()
    checked = health.check({}, news(canary=False, deadline=5)).inputs
    old = {**checked, "cloud": {**CLOUD, "password": "the-0.1-password"}, "provider_version": "1",
           "report": [], "serving_count": 2, "endpoints": []}
    diff = health.diff("imagelib-health-RegionOne", old, checked)
    assert (diff.changes, diff.replaces) == (True, [])
    outs = health.update("imagelib-health-RegionOne", old, checked).outs
    assert "cloud" not in outs and "provider_version" not in outs
    assert "the-0.1-password" not in repr(outs) and PASSWORD not in repr(outs)
    assert outs["serving_count"] == 2
    assert health.diff("imagelib-health-RegionOne", outs, checked).changes is False


TOKEN = token_body([
    {"type": "resmgr", "id": "r", "endpoints": [
        {"id": "r1", "interface": "public", "region_id": "RegionOne", "region": "RegionOne",
         "url": RESMGR}]},
    {"type": "image-cluster", "id": "s", "endpoints": [
        {"id": f"e{i}", "interface": "public", "region_id": "RegionOne", "region": "RegionOne",
         "url": f"http://h{i}.test:9494"} for i in (1, 2)]},
])


@pytest.fixture
def mock() -> Iterator[requests_mock.Mocker]:
    with requests_mock.Mocker() as m:
        m.post(f"{AUTH_URL}/auth/tokens", json=TOKEN, headers={"X-Subject-Token": "t"}, status_code=201)
        for i in (1, 2):
            m.get(f"{RESMGR}/v1/hosts/h{i}", json={"id": f"h{i}", "info": {"hostname": f"host-{i}"},
                                                  "roles": ["pf9-glance-role"], "role_status": "ok"})
            m.get(f"{RESMGR}/v2/hosts/h{i}?role_settings=true", json={
                "id": f"h{i}", "role_settings": {"pf9-glance-role": {"endpoint_address": f"http://h{i}.test:9494"}}})
            ep = f"http://h{i}.test:9494"
            m.get(f"{ep}/healthcheck", text="OK")
            m.get(f"{ep}/v2/", status_code=401)
            m.get(f"{ep}/v2/images", json={"images": []})
            m.get(f"{ep}/v2/info/stores/detail", json={"stores": [
                {"id": "file", "default": "true", "type": "file", "properties": {"data_dir": MOUNT}}]})
        yield m


def test_read_only_probes_and_reports_a_dead_host_as_drift(mock: requests_mock.Mocker) -> None:
    inputs = provider().check({}, news()).inputs
    olds = {**inputs, "report": [], "serving_count": 2, "endpoints": ["http://h1.test:9494", "http://h2.test:9494"]}
    mock.get("http://h2.test:9494/healthcheck", exc=requests.exceptions.ConnectionError("Connection refused"))
    result = provider().read("imagelib-health-RegionOne", olds)
    assert result.id == "imagelib-health-RegionOne"
    assert [(r["hostname"], r["status"]) for r in result.outs["report"]] == [("host-1", "serving"),
                                                                              ("host-2", "down")]
    assert (result.outs["serving_count"], result.outs["endpoints"]) == (1, ["http://h1.test:9494"])
    assert {r.method for r in mock.request_history} <= {"GET", "POST"}
    assert not [r for r in mock.request_history if r.method == "POST" and "h1.test" in r.netloc]
    assert all("latency" not in row for row in result.outs["report"])
