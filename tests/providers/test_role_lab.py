"""ImageLibraryRole and ImageLibrarySettings providers against the embedded lab (real Keystone catalog,
resmgr emulator, real Glance hosts started as the role converges)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from imagelib_ha.client.catalog import image_cluster_endpoints
from imagelib_ha.client.errors import HostNotFound, RoleFailed
from imagelib_ha.client.resmgr import ResmgrClient
from imagelib_ha.client.session import CloudAccess, make_session
from imagelib_ha.providers.role import ImageLibraryRoleProvider
from imagelib_ha.providers.settings import ImageLibrarySettingsProvider
from lab.api import Lab

pytestmark = pytest.mark.lab

FAST = {"poll_interval": 0.25, "converge_timeout": 120, "failed_grace": 10, "conflict_timeout": 60}


def cloud_of(status: dict[str, Any]) -> dict[str, Any]:
    admin = status["admin"]
    return {"auth_url": status["auth_url"], "region": status["region"], **admin}


def region_one(status: dict[str, Any]) -> list[dict[str, Any]]:
    return [h for h in status["hosts"] if h["region"] == status["region"]]


def by_name(status: dict[str, Any], name: str) -> dict[str, Any]:
    return next(h for h in status["hosts"] if h["name"] == name)


def restore(lab: Lab) -> None:
    """No faults, no roles: the state every test here starts from and leaves behind."""
    for h in lab.status()["hosts"]:
        lab.clear_fault(h["name"])
        if h["roles"]:
            lab.revoke_role(h["name"])


@pytest.fixture
def role_lab(lab: Lab) -> Iterator[tuple[Lab, dict[str, Any]]]:
    restore(lab)
    yield lab, lab.status()
    restore(lab)


def props(status: dict[str, Any], host: str, **changes: Any) -> dict[str, Any]:
    news = {"cloud": cloud_of(status), "host": host, "expected_region": status["region"], **FAST, **changes}
    result = ImageLibraryRoleProvider().check({}, news)
    assert result.failures == []
    return result.inputs


def catalog(status: dict[str, Any]) -> list[str]:
    session = make_session(CloudAccess.from_dict(cloud_of(status)))
    return image_cluster_endpoints(session, region=status["region"])


def test_three_hosts_converge_appear_in_the_catalog_and_are_removed_again(
    role_lab: tuple[Lab, dict[str, Any]],
) -> None:
    lab, status = role_lab
    hosts = region_one(status)
    assert len(hosts) == 3
    provider = ImageLibraryRoleProvider()  # one object shared by three threads, as in the provider process
    results: dict[str, Any] = {}

    def create(h: dict[str, Any]) -> None:
        # one by id, the others by hostname: both spellings resolve
        ref = h["id"] if h is hosts[0] else h["hostname"]
        try:
            results[h["name"]] = provider.create(props(status, ref))
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            results[h["name"]] = exc

    threads = [threading.Thread(target=create, args=(h,)) for h in hosts]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    for h in hosts:
        created = results[h["name"]]
        assert not isinstance(created, Exception), created
        outs = created.outs
        assert created.id == h["id"]
        assert (outs["host_id"], outs["hostname"], outs["region"]) == (h["id"], h["hostname"], "RegionOne")
        assert (outs["role_status"], outs["glance_role_state"], outs["adopted"]) == ("ok", "applied", False)
        assert outs["endpoint"] == h["url"]
    assert sorted(catalog(status)) == sorted(h["url"] for h in hosts)
    assert all(by_name(lab.status(), h["name"])["running"] for h in hosts)

    read = provider.read(hosts[1]["id"], results[hosts[1]["name"]].outs)
    assert read.id == hosts[1]["id"] and read.outs["endpoint"] == hosts[1]["url"]

    for h in hosts:
        provider.delete(h["id"], results[h["name"]].outs)
    after = lab.status()
    assert all(not by_name(after, h["name"])["roles"] for h in hosts)
    assert catalog(status) == []
    assert provider.read(hosts[0]["id"], results[hosts[0]["name"]].outs).id == ""


def test_adopted_role_survives_delete_and_an_assigned_one_does_not(
    role_lab: tuple[Lab, dict[str, Any]],
) -> None:
    lab, status = role_lab
    first, second = region_one(status)[:2]
    lab.grant_role(first["name"])
    provider = ImageLibraryRoleProvider()

    adopted = provider.create(props(status, first["hostname"]))
    assigned = provider.create(props(status, second["hostname"]))
    assert adopted.outs["adopted"] is True and assigned.outs["adopted"] is False

    provider.delete(adopted.id, adopted.outs)
    provider.delete(assigned.id, assigned.outs)
    after = lab.status()
    assert by_name(after, first["name"])["roles"] and by_name(after, first["name"])["running"]
    assert not by_name(after, second["name"])["roles"]
    assert catalog(status) == [first["url"]]


@pytest.mark.parametrize("unknown", ["0b6a3c2e-1111-4e5f-9a7b-000000000000", "no-such-host.lab.local"])
def test_unknown_host_is_a_clear_error_and_leaves_other_hosts_alone(
    role_lab: tuple[Lab, dict[str, Any]], unknown: str,
) -> None:
    lab, status = role_lab
    lab.grant_role(region_one(status)[0]["name"])
    before = [(h["name"], h["roles"], h["role_status"]) for h in lab.status()["hosts"]]
    with pytest.raises(HostNotFound) as exc:
        ImageLibraryRoleProvider().create(props(status, unknown))
    text = str(exc.value)
    assert f"'{unknown}'" in text and region_one(status)[0]["hostname"] in text
    assert status["admin"]["password"] not in text
    assert [(h["name"], h["roles"], h["role_status"]) for h in lab.status()["hosts"]] == before


def test_conflict_for_a_while_then_converges(
    role_lab: tuple[Lab, dict[str, Any]], caplog: pytest.LogCaptureFixture,
) -> None:
    lab, status = role_lab
    h = region_one(status)[0]
    lab.set_fault(h["name"], conflict_seconds=2)
    provider = ImageLibraryRoleProvider()
    with caplog.at_level(logging.INFO, logger="imagelib_ha.providers.role"):
        created = provider.create(props(status, h["hostname"]))
    assert created.outs["glance_role_state"] == "applied"
    phases = [r.getMessage() for r in caplog.records]
    assert any(": conflict," in p for p in phases), phases
    provider.delete(created.id, created.outs)


def test_failed_flap_then_converges(
    role_lab: tuple[Lab, dict[str, Any]], caplog: pytest.LogCaptureFixture,
) -> None:
    lab, status = role_lab
    h = region_one(status)[1]
    lab.set_fault(h["name"], flap_failed_seconds=2)
    provider = ImageLibraryRoleProvider()
    with caplog.at_level(logging.INFO, logger="imagelib_ha.providers.role"):
        created = provider.create(props(status, h["id"], failed_grace=8))
    assert (created.outs["role_status"], created.outs["glance_role_state"]) == ("ok", "applied")
    assert any(": failed-flap," in r.getMessage() for r in caplog.records)
    provider.delete(created.id, created.outs)


def test_host_that_fails_for_good_ends_with_its_message_and_is_withdrawn(
    role_lab: tuple[Lab, dict[str, Any]],
) -> None:
    lab, status = role_lab
    h = region_one(status)[2]
    lab.set_fault(h["name"], fail_message="mount /var/opt/imagelibrary/data: no such device")
    with pytest.raises(RoleFailed) as exc:
        ImageLibraryRoleProvider().create(props(status, h["hostname"], failed_grace=1))
    text = str(exc.value)
    assert h["hostname"] in text and h["id"] in text
    assert "role_status 'failed'" in text and "no such device" in text
    assert any("withdrawn" in n for n in exc.value.__notes__)


def test_settings_write_the_blueprint_keep_other_fields_and_read_drift(lab: Lab) -> None:
    status = lab.status()
    cloud = cloud_of(status)
    client = ResmgrClient(make_session(CloudAccess.from_dict(cloud)), region=status["region"])
    original = client.get_blueprint(status["region"])
    assert original is not None
    provider = ImageLibrarySettingsProvider()
    news = {"cloud": cloud, "region": status["region"], "backend": "nfs", "mount_path": "/srv/pcd-images",
            "hosts": [{"host": h["hostname"], "region": h["region"], "mount_path": None}
                      for h in region_one(status)]}
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
