"""Contract: the roles, baseline, legacy role and settings providers served by ``python -m pulumi.dynamic``
(as the engine runs them) and driven over gRPC. Proves they pickle, import by name in a separate process,
read the cloud from the stack config sent to ``Configure``, take every number as the double the engine
sends, and answer Check, Create, Diff, Read, Update and Delete with the shapes the engine expects."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from cloud_config import cloud_config
from grpc_harness import UNKNOWN, ProviderCallError, ProviderServer, dynamic_urn, serve
from labkit import bare_region_roles, region_hosts, session_of, stack_config_of

from imagelib_ha.client.resmgr import ResmgrClient
from imagelib_ha.providers.baseline import ImageLibraryRoleBaselineProvider
from imagelib_ha.providers.role import ImageLibraryRoleProvider
from imagelib_ha.providers.roles import ImageLibraryRolesProvider
from imagelib_ha.providers.settings import ImageLibrarySettingsProvider
from lab.api import Lab

ROLES_URN = dynamic_urn("pulumi-python:dynamic/imagelib:ImageLibraryRoles", "imagelib-regionone-hosts-roles")
BASELINE_URN = dynamic_urn("pulumi-python:dynamic/imagelib:ImageLibraryRoleBaseline",
                           "imagelib-regionone-hosts-baseline")
LEGACY_URN = dynamic_urn("pulumi-python:dynamic/imagelib:ImageLibraryRole", "imagelib-node-1-role")
SETTINGS_URN = dynamic_urn("pulumi-python:dynamic/imagelib:ImageLibrarySettings", "settings")

PASSWORD = "contract-Secret-3c1"
FAKE_CLOUD = cloud_config({"authUrl": "http://keystone.invalid/v3", "region": "RegionOne",
                           "username": "admin", "password": PASSWORD, "projectName": "admin"})
# Every timing input with a value that is not its default; integers cross gRPC as doubles.
TIMING = {"converge_timeout": 120, "failed_grace": 10, "conflict_timeout": 60, "poll_interval": 0.25}


def host_named(lab: Lab, name: str) -> dict[str, Any]:
    return next(h for h in lab.status()["hosts"] if h["name"] == name)


# --- without the lab -------------------------------------------------------------------------------------


def test_roles_and_baseline_check_over_grpc_with_a_configured_cloud() -> None:
    """Check only (no request): unknowns pass, numbers arrive as doubles and pass, bad inputs are named."""
    with serve(ImageLibraryRolesProvider(), config=FAKE_CLOUD) as roles, \
            serve(ImageLibraryRoleBaselineProvider(), config=FAKE_CLOUD) as baseline:
        one_host = [{"host": "node-1", "region": None, "mount_path": None}]
        preview = roles.check(ROLES_URN, {}, {"hosts": one_host, "baseline": UNKNOWN,
                                              "expected_region": "RegionOne", **TIMING})
        assert preview.failures == []
        timeout = preview.inputs["converge_timeout"]
        assert timeout == 120 and isinstance(timeout, float)
        defaults = roles.check(ROLES_URN, {}, {"hosts": UNKNOWN, "baseline": UNKNOWN})
        assert defaults.failures == [] and defaults.inputs["poll_interval"] == 5
        bad = roles.check(ROLES_URN, {}, {"hosts": [{"host": "node-1"}, {"host": ""}], "baseline": UNKNOWN,
                                          "converge_timeout": 0, "poll_interval": "fast"})
        assert sorted(p for p, _ in bad.failures) == ["converge_timeout", "hosts", "poll_interval"]
        assert any("hosts[1]" in reason for _, reason in bad.failures)

        good = baseline.check(BASELINE_URN, {}, {"region": "RegionOne", "hosts": ["node-1", "h2"]})
        assert good.failures == []
        assert baseline.check(BASELINE_URN, {}, {"region": UNKNOWN, "hosts": UNKNOWN}).failures == []
        wrong = baseline.check(BASELINE_URN, {}, {"region": "RegionOne", "hosts": []})
        assert [p for p, _ in wrong.failures] == ["hosts"]


@pytest.mark.parametrize(("config", "key"), [
    ({}, "pcd-imagelib-ha:cloud"),
    ({"pcd-imagelib-ha:cloud": json.dumps({"region": "RegionOne", "username": "admin", "password": PASSWORD,
                                           "projectName": "admin"})}, "pcd-imagelib-ha:cloud.authUrl"),
    ({"cloud": FAKE_CLOUD["pcd-imagelib-ha:cloud"]}, "pcd-imagelib-ha:cloud"),  # not namespaced: not ours
])
def test_a_bad_cloud_config_is_a_check_failure_on_cloud_over_grpc(config: dict[str, str], key: str) -> None:
    with serve(ImageLibraryRolesProvider(), config=config) as server:
        checked = server.check(ROLES_URN, {}, {"hosts": UNKNOWN, "baseline": UNKNOWN})
    assert [p for p, _ in checked.failures] == ["cloud"]
    (reason,) = [r for _, r in checked.failures]
    assert key in reason and PASSWORD not in reason


# --- against the lab ------------------------------------------------------------------------------------


@pytest.fixture
def role_lab(lab: Lab) -> Iterator[tuple[Lab, dict[str, Any]]]:
    """The RegionOne hosts without the role and without faults; put back as they were afterwards."""
    yield from bare_region_roles(lab)


def entries(status: dict[str, Any], hosts: list[dict[str, Any]], *, by: str) -> list[dict[str, Any]]:
    return [{"host": h[by], "region": status["region"], "mount_path": status["store_path"]} for h in hosts]


def record_baseline(server: ProviderServer, status: dict[str, Any], refs: list[str],
                    previous: dict[str, Any] | None = None) -> dict[str, Any]:
    checked = server.check(BASELINE_URN, previous or {}, {"region": status["region"], "hosts": refs})
    assert checked.failures == []
    if previous is None:
        return server.create(BASELINE_URN, checked.inputs).outputs
    diff = server.diff("b", BASELINE_URN, previous, checked.inputs)
    assert diff.replaces == []
    return server.update("b", BASELINE_URN, previous, checked.inputs).outputs


@pytest.mark.lab
def test_roles_and_baseline_lifecycle_over_grpc_with_every_input(
    role_lab: tuple[Lab, dict[str, Any]],
) -> None:
    lab, status = role_lab
    hosts = region_hosts(status)[:2]
    lab.grant_role(hosts[1]["name"])  # someone else's role: adopted, left in place
    config = stack_config_of(status)
    with serve(ImageLibraryRoleBaselineProvider(), config=config) as baseline_server, \
            serve(ImageLibraryRolesProvider(), config=config) as roles_server:
        baseline = record_baseline(baseline_server, status, [h["hostname"] for h in hosts])
        assert [(e["host_id"], e["held_before"]) for e in baseline["entries"]] == [
            (hosts[0]["id"], False), (hosts[1]["id"], True)]

        news = {"hosts": entries(status, hosts, by="hostname"), "baseline": baseline["entries"],
                "expected_region": status["region"], **TIMING}
        checked = roles_server.check(ROLES_URN, {}, news)
        assert checked.failures == []
        assert {k: checked.inputs[k] for k in TIMING} == TIMING
        created = roles_server.create(ROLES_URN, checked.inputs)
        outs = created.outputs
        assert outs["host_ids"] == [h["id"] for h in hosts]
        members = {m["host_id"]: m for m in outs["members"]}
        for h, owned in zip(hosts, (True, False), strict=True):
            member = members[h["id"]]
            assert (member["role_status"], member["glance_role_state"]) == ("ok", "applied")
            assert member["owned"] is owned and member["endpoint"] == h["url"]
            assert member["mount_path"] == status["store_path"]
        assert all(host_named(lab, h["name"])["roles"] for h in hosts)

        same = roles_server.diff(created.id, ROLES_URN, outs, checked.inputs)
        assert (same.changes, same.replaces) == ("DIFF_NONE", [])

        # Re-spelt by id and reordered: the baseline updates in place, the roles see no change.
        refs = [hosts[1]["id"], hosts[0]["id"]]
        respelt_baseline = record_baseline(baseline_server, status, refs, previous=baseline)
        respelt = roles_server.check(ROLES_URN, outs, {**news, "hosts": entries(status, hosts[::-1], by="id"),
                                                       "baseline": respelt_baseline["entries"]})
        assert respelt.failures == []
        unchanged = roles_server.diff(created.id, ROLES_URN, outs, respelt.inputs)
        assert (unchanged.changes, unchanged.replaces) == ("DIFF_NONE", [])

        slower = roles_server.diff(created.id, ROLES_URN, outs, {**checked.inputs, "poll_interval": 1})
        assert (slower.changes, slower.replaces) == ("DIFF_SOME", [])
        updated = roles_server.update(created.id, ROLES_URN, outs, {**checked.inputs, "poll_interval": 1})
        assert updated.outputs["poll_interval"] == 1 and updated.outputs["members"] == outs["members"]

        read = roles_server.read(created.id, ROLES_URN, updated.outputs)
        assert read.id == created.id
        assert [m["assigned"] for m in read.outputs["members"]] == [True, True]

        roles_server.delete(created.id, ROLES_URN, read.outputs)
        assert not host_named(lab, hosts[0]["name"])["roles"]
        assert host_named(lab, hosts[1]["name"])["roles"]  # adopted: left in place
        baseline_server.delete("b", BASELINE_URN, respelt_baseline)


@pytest.mark.lab
def test_three_hosts_converge_in_one_create_and_concurrent_calls_share_the_provider(
    role_lab: tuple[Lab, dict[str, Any]],
) -> None:
    """The server runs up to four calls at once on one unpickled (and once configured) provider."""
    lab, status = role_lab
    hosts = region_hosts(status)
    config = stack_config_of(status)
    with serve(ImageLibraryRoleBaselineProvider(), config=config) as baseline_server, \
            serve(ImageLibraryRolesProvider(), config=config) as roles_server:
        baseline = record_baseline(baseline_server, status, [h["id"] for h in hosts])
        checked = roles_server.check(ROLES_URN, {}, {"hosts": entries(status, hosts, by="id"),
                                                     "baseline": baseline["entries"],
                                                     "expected_region": status["region"], **TIMING})
        created = roles_server.create(ROLES_URN, checked.inputs)
        assert [m["endpoint"] for m in created.outputs["members"]] == [h["url"] for h in hosts]
        assert all(m["owned"] for m in created.outputs["members"])
        with ThreadPoolExecutor(max_workers=4) as pool:
            reads = list(pool.map(
                lambda _: roles_server.read(created.id, ROLES_URN, created.outputs), range(4)))
        assert all(r.outputs["members"] == reads[0].outputs["members"] for r in reads)
        roles_server.delete(created.id, ROLES_URN, created.outputs)
    assert all(not host_named(lab, h["name"])["roles"] for h in hosts)


@pytest.mark.lab
def test_an_unknown_host_crosses_grpc_named_and_without_the_password(lab: Lab) -> None:
    status = lab.status()
    with serve(ImageLibraryRoleBaselineProvider(), config=stack_config_of(status)) as server:
        checked = server.check(BASELINE_URN, {}, {"region": status["region"], "hosts": ["ghost.lab.local"]})
        with pytest.raises(ProviderCallError) as exc:
            server.create(BASELINE_URN, checked.inputs)
    assert "HostNotFound" in exc.value.details and "'ghost.lab.local'" in exc.value.details
    assert status["admin"]["password"] not in exc.value.details


@pytest.mark.lab
def test_the_legacy_role_state_is_deleted_over_grpc_without_touching_the_role(
    role_lab: tuple[Lab, dict[str, Any]],
) -> None:
    lab, status = role_lab
    host = region_hosts(status)[0]
    lab.grant_role(host["name"])
    state = {"cloud": {"auth_url": status["auth_url"], "password": status["admin"]["password"]},
             "provider_version": "1", "host": host["hostname"], "host_id": host["id"],
             "hostname": host["hostname"], "adopted": False}
    with serve(ImageLibraryRoleProvider(), config=stack_config_of(status)) as server:
        server.delete(host["id"], LEGACY_URN, state)
    assert host_named(lab, host["name"])["roles"]


@pytest.mark.lab
def test_settings_provider_lifecycle_over_grpc(lab: Lab) -> None:
    status = lab.status()
    client = ResmgrClient(session_of(status), region=status["region"])
    original = client.get_blueprint(status["region"])
    assert original is not None
    hosts = [{"host": h["hostname"], "region": h["region"], "mount_path": None} for h in region_hosts(status)]
    news = {"region": status["region"], "backend": "nfs", "mount_path": status["store_path"], "hosts": hosts,
            "lab": True}
    with serve(ImageLibrarySettingsProvider(), config=stack_config_of(status)) as server:
        refused = server.check(SETTINGS_URN, {}, {**news, "backend": "local"})
        assert [p for p, _ in refused.failures] == ["backend"]
        checked = server.check(SETTINGS_URN, {}, news)
        assert checked.failures == []
        try:
            created = server.create(SETTINGS_URN, checked.inputs)
            assert created.id == f"{status['region']}/{status['region']}"
            assert created.outputs["blueprint_storage"] == status["store_path"]
            assert "cloud" not in created.outputs
            rendered = created.outputs["glance_store_config"]
            assert f"filesystem_store_datadir = {status['store_path']}" in rendered
            same = server.diff(created.id, SETTINGS_URN, created.outputs, checked.inputs)
            assert same.changes == "DIFF_NONE"
            # State written by 0.1 held the credentials: an in-place update drops them.
            legacy = {**created.outputs, "cloud": {"password": "0.1-password"}, "provider_version": "1"}
            upgrade = server.diff(created.id, SETTINGS_URN, legacy, checked.inputs)
            assert (upgrade.changes, upgrade.replaces) == ("DIFF_SOME", [])
            updated = server.update(created.id, SETTINGS_URN, legacy, checked.inputs)
            assert "cloud" not in updated.outputs and "provider_version" not in updated.outputs
            read = server.read(created.id, SETTINGS_URN, updated.outputs)
            assert read.outputs["blueprint_shared"] is True
            server.delete(created.id, SETTINGS_URN, created.outputs)
            assert client.get_blueprint(status["region"]) == {
                **original, "imageLibraryStorage": status["store_path"], "imageLibrarySharedStorage": True}
        finally:
            client.put_blueprint(status["region"], original)
