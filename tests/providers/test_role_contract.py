"""Contract: the role and settings providers served by ``python -m pulumi.dynamic`` (as the engine runs
them) and driven over gRPC against the lab. Proves they pickle, import by name in a separate process,
and answer Check, Create, Diff, Read and Delete with the shapes the engine expects."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from grpc_harness import UNKNOWN, ProviderCallError, dynamic_urn, serve

from imagelib_ha.client.resmgr import ResmgrClient
from imagelib_ha.client.session import CloudAccess, make_session
from imagelib_ha.providers.role import ImageLibraryRoleProvider
from imagelib_ha.providers.settings import ImageLibrarySettingsProvider
from lab.api import Lab

ROLE_URN = dynamic_urn("pulumi-python:dynamic/imagelib:ImageLibraryRole", "role-1")
SETTINGS_URN = dynamic_urn("pulumi-python:dynamic/imagelib:ImageLibrarySettings", "settings")


def cloud_of(status: dict[str, Any]) -> dict[str, Any]:
    return {"auth_url": status["auth_url"], "region": status["region"], **status["admin"]}


def host_named(lab: Lab, name: str) -> dict[str, Any]:
    return next(h for h in lab.status()["hosts"] if h["name"] == name)


def test_role_check_over_grpc_needs_no_cloud() -> None:
    """Check alone (no lab): unknowns pass, bad inputs fail, defaults come back."""
    with serve(ImageLibraryRoleProvider()) as server:
        preview = server.check(ROLE_URN, {}, {"cloud": UNKNOWN, "host": UNKNOWN})
        assert preview.failures == []
        assert preview.inputs["converge_timeout"] == 1800
        bad = server.check(ROLE_URN, {}, {"cloud": {"auth_url": "http://x/v3", "region": "R"}, "host": ""})
        assert sorted(p for p, _ in bad.failures) == ["cloud", "host"]


@pytest.mark.lab
def test_role_provider_lifecycle_over_grpc(lab: Lab) -> None:
    status = lab.status()
    target = next(h for h in status["hosts"] if h["region"] == status["region"])
    lab.clear_fault(target["name"])
    if target["roles"]:
        lab.revoke_role(target["name"])
    news = {"cloud": cloud_of(status), "host": target["hostname"], "expected_region": status["region"],
            "poll_interval": 0.25, "converge_timeout": 120}
    with serve(ImageLibraryRoleProvider()) as server:
        try:
            checked = server.check(ROLE_URN, {}, news)
            assert checked.failures == []
            created = server.create(ROLE_URN, checked.inputs)
            assert created.id == target["id"]
            assert created.outputs["glance_role_state"] == "applied"
            assert created.outputs["adopted"] is False
            assert created.outputs["endpoint"] == target["url"]
            assert host_named(lab, target["name"])["roles"]

            same = server.diff(created.id, ROLE_URN, created.outputs, checked.inputs)
            assert (same.changes, same.replaces) == ("DIFF_NONE", [])
            by_id = {**checked.inputs, "host": target["id"]}
            respelled = server.diff(created.id, ROLE_URN, created.outputs, by_id)
            assert (respelled.changes, respelled.replaces) == ("DIFF_SOME", [])
            moved = server.diff(created.id, ROLE_URN, created.outputs, {**checked.inputs, "host": "other"})
            assert (moved.replaces, moved.delete_before_replace) == (["host"], False)

            read = server.read(created.id, ROLE_URN, created.outputs)
            assert read.id == created.id and read.outputs["role_status"] == "ok"

            server.delete(created.id, ROLE_URN, created.outputs)
            assert not host_named(lab, target["name"])["roles"]
            gone = server.read(created.id, ROLE_URN, created.outputs)
            assert gone.id == ""
        finally:
            if host_named(lab, target["name"])["roles"]:
                lab.revoke_role(target["name"])


@pytest.mark.lab
def test_role_error_crosses_grpc_with_its_message_and_no_secret(lab: Lab) -> None:
    status = lab.status()
    news = {"cloud": cloud_of(status), "host": "ghost.lab.local"}
    with serve(ImageLibraryRoleProvider()) as server:
        checked = server.check(ROLE_URN, {}, news)
        with pytest.raises(ProviderCallError) as exc:
            server.create(ROLE_URN, checked.inputs)
    assert "HostNotFound" in exc.value.details and "'ghost.lab.local'" in exc.value.details
    assert status["admin"]["password"] not in exc.value.details


@pytest.mark.lab
def test_settings_provider_lifecycle_over_grpc(lab: Lab) -> None:
    status = lab.status()
    cloud = cloud_of(status)
    client = ResmgrClient(make_session(CloudAccess.from_dict(cloud)), region=status["region"])
    original = client.get_blueprint(status["region"])
    assert original is not None
    hosts = [{"host": h["hostname"], "region": h["region"], "mount_path": None}
             for h in status["hosts"] if h["region"] == status["region"]]
    news = {"cloud": cloud, "region": status["region"], "backend": "nfs", "mount_path": status["store_path"],
            "hosts": hosts}
    with serve(ImageLibrarySettingsProvider()) as server:
        refused = server.check(SETTINGS_URN, {}, {**news, "backend": "local"})
        assert [p for p, _ in refused.failures] == ["backend"]
        checked = server.check(SETTINGS_URN, {}, news)
        assert checked.failures == []
        try:
            created = server.create(SETTINGS_URN, checked.inputs)
            assert created.id == f"{status['region']}/{status['region']}"
            assert created.outputs["blueprint_storage"] == status["store_path"]
            rendered = created.outputs["glance_store_config"]
            assert f"filesystem_store_datadir = {status['store_path']}" in rendered
            same = server.diff(created.id, SETTINGS_URN, created.outputs, checked.inputs)
            assert same.changes == "DIFF_NONE"
            read = server.read(created.id, SETTINGS_URN, created.outputs)
            assert read.outputs["blueprint_shared"] is True
            server.delete(created.id, SETTINGS_URN, created.outputs)
            assert client.get_blueprint(status["region"]) == {
                **original, "imageLibraryStorage": status["store_path"], "imageLibrarySharedStorage": True}
        finally:
            client.put_blueprint(status["region"], original)


@pytest.mark.lab
def test_three_concurrent_creates_share_one_provider_object_over_grpc(lab: Lab) -> None:
    """The server runs up to four calls at once on one unpickled provider: three hosts in parallel."""
    status = lab.status()
    targets = [h for h in status["hosts"] if h["region"] == status["region"]]
    for h in targets:
        lab.clear_fault(h["name"])
        if h["roles"]:
            lab.revoke_role(h["name"])
    cloud = cloud_of(status)
    with serve(ImageLibraryRoleProvider()) as server:
        try:
            checked = [server.check(ROLE_URN, {}, {"cloud": cloud, "host": h["id"], "poll_interval": 0.25,
                                                   "converge_timeout": 120}).inputs for h in targets]
            with ThreadPoolExecutor(max_workers=3) as pool:
                created = list(pool.map(lambda inputs: server.create(ROLE_URN, inputs), checked))
            assert [c.id for c in created] == [h["id"] for h in targets]
            assert [c.outputs["endpoint"] for c in created] == [h["url"] for h in targets]
            with ThreadPoolExecutor(max_workers=3) as pool:
                list(pool.map(lambda c: server.delete(c.id, ROLE_URN, c.outputs), created))
            assert all(not host_named(lab, h["name"])["roles"] for h in targets)
        finally:
            for h in targets:
                if host_named(lab, h["name"])["roles"]:
                    lab.revoke_role(h["name"])
