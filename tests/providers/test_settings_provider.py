"""ImageLibrarySettingsProvider in-process against requests-mock: check refusals, rendering,
read-modify-write of the blueprint, drift on read, delete leaving the blueprint alone."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import pytest
import requests_mock
from cloud_config import configured
from keystone_fake import token_body
from pulumi.output import Unknown

from imagelib_ha.client.errors import BlueprintNotFound
from imagelib_ha.providers.settings import (
    ImageLibrarySettingsProvider,
    expected_store,
    render_glance_store_config,
)

AUTH_URL = "http://keystone.test/v3"
RESMGR = "http://mgmt.test/resmgr"
RESMGR_R2 = "http://mgmt-r2.test/resmgr"
PASSWORD = "s3cret-Pa55"
MOUNT = "/var/opt/imagelibrary/data"
CLOUD = {"auth_url": AUTH_URL, "region": "RegionOne", "username": "admin", "password": PASSWORD,
         "project_name": "admin"}
TOKEN = token_body([{"type": "resmgr", "id": "s1", "endpoints": [
    {"id": "e1", "interface": "public", "region_id": "RegionOne", "url": RESMGR},
    {"id": "e2", "interface": "public", "region_id": "RegionTwo", "url": RESMGR_R2},
]}])
BLUEPRINT = {
    "name": "RegionOne",
    "networkingType": "ovn",
    "imageLibraryStorage": "/var/opt/pf9/imagelibrary/data",
    "imageLibrarySharedStorage": False,
    "hostConfigs": [{"name": "hc1", "mgmtInterface": "ens3"}],
}


@pytest.fixture
def m() -> Any:
    with requests_mock.Mocker() as mocker:
        mocker.post(f"{AUTH_URL}/auth/tokens", json=TOKEN, status_code=201, headers={"X-Subject-Token": "t"})
        yield mocker


def calls(m: Any) -> list[tuple[str, str]]:
    return [(r.method, urlsplit(r.url).path) for r in m.request_history]


def host(name: str, region: str | None = "RegionOne", mount: str | None = MOUNT) -> dict[str, Any]:
    return {"host": name, "region": region, "mount_path": mount}


def provider() -> ImageLibrarySettingsProvider:
    """The provider as the engine hands it over: configured with the stack's cloud config."""
    return configured(ImageLibrarySettingsProvider(), CLOUD)


def news(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"region": "RegionOne", "backend": "nfs", "mount_path": MOUNT,
                            "hosts": [host("node-1"), host("node-2"), host("node-3")]}
    base.update(changes)
    return base


def checked(**changes: Any) -> dict[str, Any]:
    result = provider().check({}, news(**changes))
    assert result.failures == []
    return result.inputs


# --- check -------------------------------------------------------------------------------------------


def test_check_fills_defaults() -> None:
    inputs = checked(glance_store_config=None)
    assert inputs["blueprint"] == "RegionOne" and inputs["shared"] is True
    assert inputs["volume_type"] is None and "glance_store_config" not in inputs


@pytest.mark.parametrize(
    ("changes", "prop", "fragment"),
    [
        ({"backend": "local"}, "backend", "'local' storage cannot serve 3 image-library hosts"),
        ({"hosts": [host("node-1"), host("r2", region="RegionTwo")]}, "hosts", "'r2' in 'RegionTwo'"),
        ({"hosts": [host("node-1"), host("node-2", mount="/mnt/x")]}, "hosts", "'node-2' at '/mnt/x'"),
        ({"backend": "s3"}, "backend", "must be one of nfs, cinder, local"),
        ({"mount_path": "data", "hosts": [host("node-1", mount=None)], "lab": True}, "mount_path",
         "pcd-imagelib-ha:storage.nfs.mountPath"),
        ({"backend": "cinder", "mount_path": None}, "volume_type", "storage.cinder.volumeType"),
        ({"backend": "local", "hosts": [host("node-1")], "shared": True, "lab": True}, "shared",
         "not shared"),
        ({"hosts": [host("node-1")]}, "hosts", "at least 2 image-library hosts"),
    ],
)
def test_check_refuses(changes: dict[str, Any], prop: str, fragment: str) -> None:
    failures = provider().check({}, news(**changes)).failures
    assert [f.property for f in failures] == [prop]
    assert fragment in failures[0].reason
    assert PASSWORD not in failures[0].reason


CINDER = {"backend": "cinder", "mount_path": None, "volume_type": "ha-images"}
MULTIATTACH_MSG = (
    "the image library's Cinder volume type would not be multiattach: {problem}. Every image-library host "
    "attaches an image's volume to read it, and without multiattach a second host cannot read while the "
    "first holds it (it retries, then answers 500). Remove 'multiattach' from "
    "pcd-imagelib-ha:storage.cinder.extraSpecs (the program then sets it) or set it to '<is> True'."
)


def test_check_accepts_a_multiattach_cinder_type_and_ignores_specs_of_file_backends() -> None:
    specs = {"multiattach": "<is> True", "volume_backend_name": "nfs1"}
    assert checked(**CINDER, volume_type_extra_specs=specs)["volume_type_extra_specs"] == specs
    # A type the stack does not create (specs unknown to the program): the health check reads it.
    assert checked(**CINDER)["volume_type_extra_specs"] is None
    assert checked(volume_type_extra_specs={"multiattach": "False"})["backend"] == "nfs"


@pytest.mark.parametrize(
    ("specs", "problem"),
    [
        ({"volume_backend_name": "nfs1"}, "its extra specs have no 'multiattach'"),
        ({"multiattach": "<is> False"}, "its extra spec 'multiattach' is '<is> False', not '<is> True'"),
        # Cinder compares the exact string: "True" alone leaves multiattach off.
        ({"multiattach": "True"}, "its extra spec 'multiattach' is 'True', not '<is> True'"),
    ],
)
def test_check_refuses_a_cinder_type_without_multiattach(specs: dict[str, str], problem: str) -> None:
    failures = provider().check({}, news(**CINDER, volume_type_extra_specs=specs)).failures
    assert [(f.property, f.reason) for f in failures] == [
        ("volume_type_extra_specs", MULTIATTACH_MSG.format(problem=problem))
    ]


def test_check_lets_unknowns_through() -> None:
    unknown_host = {"host": Unknown(), "region": Unknown(), "mount_path": Unknown()}
    result = provider().check({}, news(mount_path=Unknown(), hosts=[unknown_host, unknown_host]))
    assert result.failures == []
    assert provider().check({}, news(hosts=Unknown(), backend=Unknown(), region=Unknown())).failures == []


# --- rendering ---------------------------------------------------------------------------------------


def test_rendered_store_sections() -> None:
    assert render_glance_store_config("nfs", mount_path=MOUNT + "/", volume_type=None) == (
        "[DEFAULT]\nenabled_backends = file:file\n\n[glance_store]\ndefault_backend = file\n\n"
        f"[file]\nfilesystem_store_datadir = {MOUNT}\n"
    )
    assert render_glance_store_config("cinder", mount_path=None, volume_type="ha-images") == (
        "[DEFAULT]\nenabled_backends = cinder:cinder\n\n[glance_store]\ndefault_backend = cinder\n\n"
        "[cinder]\ncinder_volume_type = ha-images\n"
    )
    assert expected_store("nfs", mount_path=MOUNT, volume_type=None) == {"type": "file", "data_dir": MOUNT}
    cinder = expected_store("cinder", mount_path=None, volume_type="v")
    assert cinder == {"type": "cinder", "volume_type": "v"}


# --- create / update / read / delete -----------------------------------------------------------------


def test_create_writes_only_the_image_library_fields(m: Any) -> None:
    m.get(f"{RESMGR}/v2/blueprint/RegionOne", json=BLUEPRINT)
    m.put(f"{RESMGR}/v2/blueprint/RegionOne", status_code=200)
    result = provider().create(checked())
    assert calls(m) == [("POST", "/v3/auth/tokens"), ("GET", "/resmgr/v2/blueprint/RegionOne"),
                        ("PUT", "/resmgr/v2/blueprint/RegionOne")]
    assert m.request_history[-1].json() == {**BLUEPRINT, "imageLibraryStorage": MOUNT,
                                            "imageLibrarySharedStorage": True}
    assert result.id == "RegionOne/RegionOne"
    assert result.outs["blueprint_storage"] == MOUNT and result.outs["blueprint_shared"] is True
    assert f"filesystem_store_datadir = {MOUNT}" in result.outs["glance_store_config"]
    assert "cloud" not in result.outs and PASSWORD not in repr(result.outs)


def test_cinder_settings_write_the_volume_type_in_the_settings_region(m: Any) -> None:
    m.get(f"{RESMGR_R2}/v2/blueprint/RegionTwo", json={**BLUEPRINT, "name": "RegionTwo"})
    m.put(f"{RESMGR_R2}/v2/blueprint/RegionTwo", status_code=204)
    inputs = checked(region="RegionTwo", backend="cinder", mount_path=None, volume_type="ha-images",
                     hosts=[host("a", "RegionTwo", None), host("b", "RegionTwo", None)])
    result = provider().update("RegionTwo/RegionTwo", {}, inputs)
    assert m.request_history[-1].json()["imageLibraryStorage"] == "ha-images"
    assert "cinder_volume_type = ha-images" in result.outs["glance_store_config"]
    assert m.request_history[-1].hostname == "mgmt-r2.test"


def test_missing_blueprint_is_a_clear_error(m: Any) -> None:
    m.get(f"{RESMGR}/v2/blueprint/RegionOne", status_code=404)
    with pytest.raises(BlueprintNotFound, match="Blueprint 'RegionOne' does not exist"):
        provider().create(checked())


def test_read_reports_drift_in_place_of_the_inputs(m: Any) -> None:
    m.get(f"{RESMGR}/v2/blueprint/RegionOne", json={**BLUEPRINT, "imageLibraryStorage": "/mnt/changed",
                                                    "imageLibrarySharedStorage": True})
    settings = provider()
    state = {**checked(), "glance_store_config": "x", "blueprint_storage": MOUNT, "blueprint_shared": True}
    result = settings.read("RegionOne/RegionOne", state)
    assert result.id == "RegionOne/RegionOne"
    assert result.outs["blueprint_storage"] == "/mnt/changed" and result.outs["mount_path"] == "/mnt/changed"
    assert "filesystem_store_datadir = /mnt/changed" in result.outs["glance_store_config"]
    # the next `up` sees the drift and writes the configured value back
    diff = settings.diff(result.id, result.outs, checked())
    assert diff.changes is True and diff.replaces == []


def test_read_of_a_vanished_blueprint_is_gone(m: Any) -> None:
    m.get(f"{RESMGR}/v2/blueprint/RegionOne", text="null")
    assert provider().read("RegionOne/RegionOne", checked()).id == ""


def test_diff_replaces_on_region_or_blueprint_only() -> None:
    settings = provider()
    state = {**checked(), "glance_store_config": "x", "blueprint_storage": MOUNT, "blueprint_shared": True,
             "__provider": "old"}
    assert settings.diff("id", state, {**checked(), "__provider": "new"}).changes is False
    assert settings.diff("id", state, checked(blueprint="other")).replaces == ["blueprint"]
    changed = settings.diff("id", state, checked(hosts=[host("node-1"), host("node-2")]))
    assert changed.changes is True and changed.replaces == []


def test_state_of_the_earlier_release_updates_in_place_and_drops_cloud_and_provider_version(m: Any) -> None:
    """0.1 stored the credentials (``cloud``) and ``provider_version`` with every resource."""
    m.get(f"{RESMGR}/v2/blueprint/RegionOne", json={**BLUEPRINT, "imageLibraryStorage": MOUNT,
                                                    "imageLibrarySharedStorage": True})
    settings = provider()
    old = {**checked(), "cloud": {**CLOUD, "password": "the-0.1-password"}, "provider_version": "1",
           "glance_store_config": "x", "blueprint_storage": MOUNT, "blueprint_shared": True}
    assert settings.check(old, news()).failures == []
    diff = settings.diff("RegionOne/RegionOne", old, checked())
    assert (diff.changes, diff.replaces) == (True, [])
    outs = settings.update("RegionOne/RegionOne", old, checked()).outs
    assert "cloud" not in outs and "provider_version" not in outs
    assert "the-0.1-password" not in repr(outs) and PASSWORD not in repr(outs)
    assert settings.diff("RegionOne/RegionOne", outs, checked()).changes is False


def test_another_region_is_a_new_library_not_a_store_migration() -> None:
    """A region (or blueprint) change replaces the settings: a new library, with no images to strand."""
    settings = provider()
    old = {**checked(), "__provider": "blob"}
    moved = news(region="RegionTwo", blueprint="RegionTwo", mount_path="/srv/r2-images",
                 hosts=[host("r2-1", "RegionTwo", None), host("r2-2", "RegionTwo", None)])
    assert settings.check(old, moved).failures == []
    assert settings.diff("RegionOne/RegionOne", old, settings.check(old, moved).inputs).replaces


def test_a_bad_cloud_config_fails_check_on_cloud_without_the_password() -> None:
    settings = configured(ImageLibrarySettingsProvider(), {**CLOUD, "username": None})
    failures = settings.check({}, news()).failures
    assert [f.property for f in failures] == ["cloud"]
    assert "pcd-imagelib-ha:cloud.username" in failures[0].reason
    assert PASSWORD not in failures[0].reason


def test_delete_leaves_the_blueprint_alone(m: Any) -> None:
    provider().delete("RegionOne/RegionOne", checked())
    assert calls(m) == []
