"""The lab's blueprint → Glance store rendering (lab/host_store.py), without a running lab."""

from __future__ import annotations

import configparser
from pathlib import Path

import pytest

from lab import host_store
from lab.settings import CinderSettings, Credentials, HostSpec, LabConfig

ROOT = Path("/tmp/lab-state")  # never written: the config is only rendered


def _cfg(*, cinder: bool) -> LabConfig:
    svc = Credentials(username="glance", password="glance-secret", project_name="service")
    return LabConfig(
        state_dir=str(ROOT), pg_port=1, pg_password="pg", pg_dir=str(ROOT / "pg"), keystone_port=2,
        resmgr_port=3, public_glance_port=4, control_token="t",
        admin=Credentials(username="admin", password="a", project_name="admin"),
        member=Credentials(username="member", password="m", project_name="admin"),
        glance_service=svc, operator=Credentials(username="op", password="o", project_name="admin"),
        hosts=[HostSpec(name="lab-host-1", id="h1", hostname="lab-host-1.lab.local", region="RegionOne",
                        port=5)],
        cinder=CinderSettings(api_port=6, rabbit_port=7, rabbit_dist_port=8, epmd_port=9, rabbit_password="r",
                              service=Credentials(username="cinder", password="c", project_name="service"))
        if cinder else None,
    )


def _parse(rendered: host_store.RenderedStore) -> configparser.ConfigParser:
    parser = configparser.ConfigParser()
    parser.read_string(f"[DEFAULT]\nenabled_backends = {rendered.enabled_backends}\n{rendered.sections}")
    return parser


def test_an_absolute_path_is_a_file_store_and_anything_else_a_volume_type() -> None:
    default = ROOT / "mnt" / "imagelibrary-data"
    assert host_store.from_blueprint({"imageLibraryStorage": "/var/opt/imagelibrary/data"}, default) == \
        host_store.FileStore(Path("/var/opt/imagelibrary/data"))
    assert host_store.from_blueprint({"imageLibraryStorage": "image_library"}, default) == \
        host_store.CinderStore("image_library")
    assert host_store.from_blueprint({}, default) == host_store.FileStore(default)
    with pytest.raises(host_store.StoreConfigError, match="must be a string"):
        host_store.from_blueprint({"imageLibraryStorage": 5}, default)


def test_a_file_store_renders_its_path_as_the_only_backend() -> None:
    store = host_store.FileStore(Path("/data"))
    conf = _parse(host_store.render(store, cfg=_cfg(cinder=False), region="RegionOne",
                                    mount_point_base=ROOT / "mnt-base", file_path=Path("/data")))
    assert conf["DEFAULT"]["enabled_backends"] == "file:file"
    assert conf["glance_store"]["default_backend"] == "file"
    assert conf["file"]["filesystem_store_datadir"] == "/data"
    assert not conf.has_section("cinder")


def test_a_volume_type_renders_the_cinder_store_with_the_glance_service_user() -> None:
    conf = _parse(host_store.render(host_store.CinderStore("image_library"), cfg=_cfg(cinder=True),
                                    region="RegionTwo", mount_point_base=ROOT / "mnt-base",
                                    file_path=Path("/unused")))
    assert conf["DEFAULT"]["enabled_backends"] == "cinder:cinder"
    assert conf["glance_store"]["default_backend"] == "cinder"
    c = conf["cinder"]
    assert c["cinder_volume_type"] == "image_library"
    assert c["cinder_os_region_name"] == "RegionTwo"
    assert (c["cinder_store_user_name"], c["cinder_store_password"], c["cinder_store_project_name"]) == \
        ("glance", "glance-secret", "service")
    assert c["cinder_store_auth_address"] == "http://127.0.0.1:2/v3"
    assert c["cinder_mount_point_base"] == str(ROOT / "mnt-base")
    assert not conf.has_section("file")


def test_a_volume_type_without_cinder_in_the_lab_names_the_fix() -> None:
    with pytest.raises(host_store.StoreConfigError, match=r"up --cinder.*or set imageLibraryStorage"):
        host_store.render(host_store.CinderStore("image_library"), cfg=_cfg(cinder=False), region="RegionOne",
                          mount_point_base=ROOT, file_path=ROOT)
