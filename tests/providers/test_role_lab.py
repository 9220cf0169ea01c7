"""ImageLibraryRoles, ImageLibraryRoleBaseline and ImageLibrarySettings against the embedded lab (real
Keystone catalog, resmgr emulator, real Glance hosts started as the role converges), in-process, with
the providers configured from the stack config as the engine configures them."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

import pytest
from cloud_config import configured
from labkit import bare_region_roles, cloud_of, region_hosts, session_of, wait_resmgr_knows

from imagelib_ha.client.catalog import image_cluster_endpoints
from imagelib_ha.client.errors import HostNotFound, PcdError
from imagelib_ha.client.resmgr import ResmgrClient
from imagelib_ha.providers.baseline import ImageLibraryRoleBaselineProvider
from imagelib_ha.providers.roles import ImageLibraryRolesProvider
from imagelib_ha.providers.settings import ImageLibrarySettingsProvider
from lab.api import Lab

pytestmark = pytest.mark.lab

FAST = {"poll_interval": 0.25, "converge_timeout": 120, "failed_grace": 10, "conflict_timeout": 60}


def by_name(status: dict[str, Any], name: str) -> dict[str, Any]:
    return next(h for h in status["hosts"] if h["name"] == name)


@pytest.fixture
def role_lab(lab: Lab) -> Iterator[tuple[Lab, dict[str, Any]]]:
    """The RegionOne hosts without the role and without faults; put back as they were afterwards."""
    yield from bare_region_roles(lab)


class Stack:
    """The baseline and roles providers of one stack, configured with the lab's cloud config."""

    def __init__(self, status: dict[str, Any]) -> None:
        self.status = status
        self.baseline = configured(ImageLibraryRoleBaselineProvider(), cloud_of(status))
        self.roles = configured(ImageLibraryRolesProvider(), cloud_of(status))

    def record(self, refs: list[str], previous: dict[str, Any] | None = None) -> dict[str, Any]:
        checked = self.baseline.check({}, {"region": self.status["region"], "hosts": refs})
        assert checked.failures == []
        if previous is None:
            return self.baseline.create(checked.inputs).outs
        return self.baseline.update("b", previous, checked.inputs).outs

    def inputs(self, refs: list[str], baseline: dict[str, Any], **changes: Any) -> dict[str, Any]:
        news = {"hosts": [{"host": r, "region": None, "mount_path": self.status["store_path"]} for r in refs],
                "baseline": baseline["entries"], "expected_region": self.status["region"], **FAST, **changes}
        checked = self.roles.check({}, news)
        assert checked.failures == []
        return checked.inputs


def catalog(status: dict[str, Any]) -> list[str]:
    return image_cluster_endpoints(session_of(status), region=status["region"])


def held(lab: Lab) -> set[str]:
    return {h["name"] for h in region_hosts(lab.status()) if h["roles"]}


def wait_held(lab: Lab, expected: set[str], timeout: float = 60) -> None:
    """Until exactly ``expected`` hold the role: a withdrawn assignment is removed asynchronously."""
    deadline = time.monotonic() + timeout
    while held(lab) != expected:
        assert time.monotonic() < deadline, f"{held(lab)} hold the role, expected {expected}"
        time.sleep(0.25)


def test_three_hosts_converge_in_one_create_appear_in_the_catalog_and_are_removed_again(
    role_lab: tuple[Lab, dict[str, Any]],
) -> None:
    lab, status = role_lab
    hosts = region_hosts(status)
    assert len(hosts) == 3
    stack = Stack(status)
    # one by id, the others by hostname: both spellings resolve
    refs = [hosts[0]["id"], hosts[1]["hostname"], hosts[2]["hostname"]]
    baseline = stack.record(refs)
    created = stack.roles.create(stack.inputs(refs, baseline))
    outs = created.outs
    assert outs["host_ids"] == [h["id"] for h in hosts]
    for h, member in zip(hosts, outs["members"], strict=True):
        identity = (member["host_id"], member["hostname"], member["region"])
        assert identity == (h["id"], h["hostname"], "RegionOne")
        state = (member["role_status"], member["glance_role_state"], member["owned"])
        assert state == ("ok", "applied", True)
        assert member["endpoint"] == h["url"]
    assert sorted(catalog(status)) == sorted(h["url"] for h in hosts)
    assert all(by_name(lab.status(), h["name"])["running"] for h in hosts)

    read = stack.roles.read(created.id, outs)
    assert read.id == created.id and all(m["assigned"] for m in read.outs["members"])

    stack.roles.delete(created.id, outs)
    assert held(lab) == set()
    assert catalog(status) == []


def test_an_adopted_role_survives_delete_and_an_assigned_one_does_not(
    role_lab: tuple[Lab, dict[str, Any]],
) -> None:
    lab, status = role_lab
    first, second = region_hosts(status)[:2]
    lab.grant_role(first["name"])
    stack = Stack(status)
    refs = [first["hostname"], second["hostname"]]
    baseline = stack.record(refs)
    outs = stack.roles.create(stack.inputs(refs, baseline)).outs
    assert [m["owned"] for m in outs["members"]] == [False, True]
    stack.roles.delete("r", outs)
    assert held(lab) == {first["name"]}
    assert by_name(lab.status(), first["name"])["running"]
    assert catalog(status) == [first["url"]]


@pytest.mark.parametrize("unknown", ["0b6a3c2e-1111-4e5f-9a7b-000000000000", "no-such-host.lab.local"])
def test_an_unknown_host_is_a_clear_error_before_any_assignment(
    role_lab: tuple[Lab, dict[str, Any]], unknown: str,
) -> None:
    lab, status = role_lab
    lab.grant_role(region_hosts(status)[0]["name"])
    before = [(h["name"], h["roles"], h["role_status"]) for h in lab.status()["hosts"]]
    with pytest.raises(HostNotFound) as exc:
        Stack(status).record([region_hosts(status)[1]["hostname"], unknown])
    text = str(exc.value)
    assert f"'{unknown}'" in text and region_hosts(status)[0]["hostname"] in text
    assert status["admin"]["password"] not in text
    assert [(h["name"], h["roles"], h["role_status"]) for h in lab.status()["hosts"]] == before


def test_conflict_and_flap_converge(
    role_lab: tuple[Lab, dict[str, Any]], caplog: pytest.LogCaptureFixture,
) -> None:
    lab, status = role_lab
    conflicting, flapping = region_hosts(status)[:2]
    stack = Stack(status)
    refs = [conflicting["hostname"], flapping["id"]]
    baseline = stack.record(refs)
    inputs = stack.inputs(refs, baseline, failed_grace=8)
    # Set right before the create, long enough to outlast a slow first request on a busy machine.
    lab.set_fault(conflicting["name"], conflict_seconds=6)
    lab.set_fault(flapping["name"], flap_failed_seconds=2)
    with caplog.at_level(logging.INFO, logger="imagelib_ha.providers.roles"):
        outs = stack.roles.create(inputs).outs
    assert [(m["role_status"], m["glance_role_state"]) for m in outs["members"]] == [("ok", "applied")] * 2
    phases = [r.getMessage() for r in caplog.records]
    assert any(": conflict," in p and conflicting["hostname"] in p for p in phases), phases
    assert any(": failed-flap," in p for p in phases), phases
    stack.roles.delete("r", outs)
    assert held(lab) == set()


def test_a_host_that_fails_for_good_is_named_withdrawn_and_the_others_converge(
    role_lab: tuple[Lab, dict[str, Any]],
) -> None:
    lab, status = role_lab
    good, bad = region_hosts(status)[:2]
    lab.set_fault(bad["name"], fail_message="mount /var/opt/imagelibrary/data: no such device")
    stack = Stack(status)
    refs = [good["hostname"], bad["hostname"]]
    baseline = stack.record(refs)
    with pytest.raises(PcdError) as exc:
        stack.roles.create(stack.inputs(refs, baseline, failed_grace=1))
    text = str(exc.value)
    assert bad["hostname"] in text and bad["id"] in text
    assert "role_status 'failed'" in text and "no such device" in text
    assert good["hostname"] not in text
    assert status["admin"]["password"] not in text
    wait_held(lab, {good["name"]})
    assert by_name(lab.status(), good["name"])["role_status"] == "ok"


def test_an_interrupted_run_leaves_no_role_behind_after_destroy(role_lab: tuple[Lab, dict[str, Any]]) -> None:
    """The baseline is recorded, the roles' create assigns one host and fails on the other (no state is
    recorded for the roles), the next create adopts the first as this stack's own, destroy removes both."""
    lab, status = role_lab
    first, second = region_hosts(status)[:2]
    stack = Stack(status)
    refs = [first["hostname"], second["hostname"]]
    baseline = stack.record(refs)
    lab.set_fault(second["name"], fail_message="mount.nfs: access denied")
    with pytest.raises(PcdError, match=second["hostname"]):
        stack.roles.create(stack.inputs(refs, baseline, failed_grace=1))
    wait_held(lab, {first["name"]})

    lab.clear_fault(second["name"])
    wait_resmgr_knows(status)  # the withdrawn host's per-host GET answers 404 for a while (tested below)
    outs = Stack(status).roles.create(stack.inputs(refs, baseline)).outs
    assert [m["owned"] for m in outs["members"]] == [True, True]
    stack.roles.delete("r", outs)
    assert held(lab) == set()


def test_a_host_whose_role_was_just_removed_is_assigned_again(role_lab: tuple[Lab, dict[str, Any]]) -> None:
    """After a host's last role goes, resmgr answers 404 to its per-host GET for a while (minutes on
    PCD; ``removal_404_seconds`` in the lab) though the host listing shows it. A run in that window (an
    engine retry after a withdrawn assignment, a destroy and up) must still assign the role."""
    lab, status = role_lab
    host = region_hosts(status)[0]
    stack = Stack(status)
    baseline = stack.record([host["hostname"]])
    lab.grant_role(host["name"])
    lab.revoke_role(host["name"])  # the 404 window starts now
    outs = stack.roles.create(stack.inputs([host["hostname"]], baseline)).outs
    assert [m["glance_role_state"] for m in outs["members"]] == ["applied"]
    stack.roles.delete("r", outs)


def test_update_grows_and_shrinks_the_set_without_dropping_capacity(
    role_lab: tuple[Lab, dict[str, Any]],
) -> None:
    lab, status = role_lab
    one, two, three = region_hosts(status)
    stack = Stack(status)
    baseline = stack.record([one["hostname"], two["hostname"]])
    outs = stack.roles.create(stack.inputs([one["hostname"], two["hostname"]], baseline)).outs
    moved = stack.record([one["hostname"], three["hostname"]], previous=baseline)
    inputs = stack.inputs([one["hostname"], three["hostname"]], moved)
    assert stack.roles.diff("r", outs, inputs).replaces == []
    updated = stack.roles.update("r", outs, inputs).outs
    assert updated["host_ids"] == [one["id"], three["id"]]
    assert held(lab) == {one["name"], three["name"]}
    assert sorted(catalog(status)) == sorted([one["url"], three["url"]])
    stack.roles.delete("r", updated)
    assert held(lab) == set()


def test_settings_write_the_blueprint_keep_other_fields_and_read_drift(lab: Lab) -> None:
    status = lab.status()
    client = ResmgrClient(session_of(status), region=status["region"])
    original = client.get_blueprint(status["region"])
    assert original is not None
    provider = configured(ImageLibrarySettingsProvider(), cloud_of(status))
    news = {"region": status["region"], "backend": "nfs", "mount_path": "/srv/pcd-images", "lab": True,
            "hosts": [{"host": h["hostname"], "region": h["region"], "mount_path": None}
                      for h in region_hosts(status)]}
    checked = provider.check({}, news)
    assert checked.failures == []
    try:
        created = provider.create(checked.inputs)
        live = client.get_blueprint(status["region"])
        expected = {**original, "imageLibraryStorage": "/srv/pcd-images", "imageLibrarySharedStorage": True}
        assert live == expected
        assert "filesystem_store_datadir = /srv/pcd-images" in created.outs["glance_store_config"]

        client.update_blueprint(status["region"], {"imageLibraryStorage": "/mnt/elsewhere"})
        refreshed = provider.read(created.id, created.outs)
        assert refreshed.outs["blueprint_storage"] == "/mnt/elsewhere"
        assert provider.diff(created.id, refreshed.outs, checked.inputs).changes is True
    finally:
        client.put_blueprint(status["region"], original)
