"""A store change on a live library is refused before anything is touched, unless acknowledged; too few
hosts are refused outside a lab. The settings provider's ``check``, as the engine calls it (olds = the
inputs last deployed, numbers as doubles)."""

from __future__ import annotations

from typing import Any

import pytest

from imagelib_ha.providers.health import ImageLibraryHealthProvider
from imagelib_ha.providers.settings import ImageLibrarySettingsProvider

HOSTS = [
    {"host": "h1", "region": None, "mount_path": None},
    {"host": "h2", "region": None, "mount_path": None},
]


def settings_inputs(**changes: Any) -> dict[str, Any]:
    base = {"region": "RegionOne", "blueprint": "RegionOne", "backend": "nfs", "mount_path": "/srv/images",
            "volume_type": None, "shared": True, "hosts": HOSTS, "lab": False, "migration_ack": None}
    base.update(changes)
    return base


def failures(olds: dict[str, Any], news: dict[str, Any]) -> list[tuple[str, str]]:
    result = ImageLibrarySettingsProvider().check(olds, news)
    return [(f.property, f.reason) for f in result.failures]


def test_a_new_library_may_take_any_store() -> None:
    assert failures({}, settings_inputs(mount_path="/elsewhere")) == []


@pytest.mark.parametrize(("change", "prop", "target"), [
    ({"mount_path": "/srv/new"}, "mount_path", "/srv/new"),
    ({"backend": "cinder", "mount_path": None, "volume_type": "imagelib"}, "backend", "imagelib"),
])
def test_a_store_change_on_a_live_library_is_refused_naming_the_acknowledgement(
    change: dict[str, Any], prop: str, target: str
) -> None:
    found = failures(settings_inputs(), settings_inputs(**change))
    assert [p for p, _ in found] == [prop]
    reason = found[0][1]
    assert "unreadable" in reason
    key = {"mount_path": "storage.nfs.mountPath", "backend": "storage.backend"}[prop]
    assert reason.startswith(f"pcd-imagelib-ha:{key}: ")
    assert f"pcd-imagelib-ha:storage.acknowledgeMigrationTo to '{target}'" in reason


def test_a_volume_type_change_is_refused_too() -> None:
    olds = settings_inputs(backend="cinder", mount_path=None, volume_type="old-type")
    found = failures(olds, settings_inputs(backend="cinder", mount_path=None, volume_type="new-type"))
    assert [p for p, _ in found] == ["volume_type"]


def test_an_acknowledgement_naming_the_new_target_lets_it_through() -> None:
    assert failures(settings_inputs(), settings_inputs(mount_path="/srv/new", migration_ack="/srv/new")) == []


def test_an_acknowledgement_naming_another_target_does_not() -> None:
    found = failures(settings_inputs(), settings_inputs(mount_path="/srv/new", migration_ack="/srv/other"))
    assert [p for p, _ in found] == ["mount_path"]


def test_unchanged_store_with_other_changes_passes() -> None:
    assert failures(settings_inputs(), settings_inputs(hosts=[*HOSTS, {"host": "h3"}])) == []


def test_one_host_is_refused_outside_a_lab_and_allowed_in_it() -> None:
    one = [HOSTS[0]]
    found = failures({}, settings_inputs(hosts=one))
    assert [p for p, _ in found] == ["hosts"]
    assert "at least 2" in found[0][1]
    assert failures({}, settings_inputs(hosts=one, lab=True)) == []
    health = ImageLibraryHealthProvider().check({}, {
        "region": "RegionOne", "role_host_ids": ["h1"], "hosts": one, "backend": "nfs",
        "expected_store": {"type": "file", "data_dir": "/srv/images"}, "lab": False,
    })
    assert [f.property for f in health.failures] == ["hosts"]


def test_min_healthy_as_the_engine_sends_it_is_a_whole_number() -> None:
    result = ImageLibraryHealthProvider().check({}, {
        "region": "RegionOne", "role_host_ids": ["h1", "h2"], "hosts": HOSTS, "backend": "nfs",
        "expected_store": {"type": "file", "data_dir": "/srv/images"}, "min_healthy": 2.0,
        "probe_timeout": 5.0, "deadline": 120.0,
    })
    assert result.failures == []
    assert result.inputs["min_healthy"] == 2 and isinstance(result.inputs["min_healthy"], int)
    bad = ImageLibraryHealthProvider().check({}, {
        "region": "RegionOne", "role_host_ids": ["h1", "h2"], "hosts": HOSTS, "backend": "nfs",
        "expected_store": {"type": "file", "data_dir": "/srv/images"}, "min_healthy": 1.5,
    })
    assert [(f.property, f.reason) for f in bad.failures] == [("min_healthy", "must be a whole number")]
