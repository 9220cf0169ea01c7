"""HA prerequisites at apply time: one region, no local storage for several hosts, one mount path."""

from __future__ import annotations

from typing import Any

import pytest
from pulumi.output import Unknown

from imagelib_ha.providers.prereqs import ha_prerequisite_failures

MOUNT = "/var/opt/imagelibrary/data"


def hosts(*specs: tuple[str, str | None, str | None]) -> list[dict[str, Any]]:
    return [{"host": h, "region": r, "mount_path": p} for h, r, p in specs]


def good(**changes: Any) -> dict[str, Any]:
    args: dict[str, Any] = {
        "region": "RegionOne",
        "backend": "nfs",
        "mount_path": MOUNT,
        "hosts": hosts(
            ("node-1", "RegionOne", MOUNT), ("node-2", None, None), ("node-3", "RegionOne", MOUNT)
        ),
    }
    args.update(changes)
    return args


def test_a_sound_deployment_has_no_failures() -> None:
    assert ha_prerequisite_failures(**good()) == []


def test_cinder_ignores_mount_paths() -> None:
    args = good(backend="cinder", mount_path=None,
                hosts=hosts(("a", "RegionOne", "/x"), ("b", "RegionOne", "/y")))
    assert ha_prerequisite_failures(**args) == []


def test_a_host_in_another_region_is_named() -> None:
    failures = ha_prerequisite_failures(**good(hosts=hosts(("node-1", "RegionOne", None),
                                                           ("r2-1", "RegionTwo", None))))
    assert len(failures) == 1
    prop, reason = failures[0]
    assert prop == "hosts"
    assert "'r2-1' in 'RegionTwo'" in reason and "region 'RegionOne'" in reason
    assert "one stack per region" in reason


def test_two_regions_among_hosts_when_the_main_region_is_unknown() -> None:
    two = hosts(("a", "R1", None), ("b", "R2", None))
    failures = ha_prerequisite_failures(**good(region=Unknown(), hosts=two))
    assert failures == [("hosts", failures[0][1])]
    assert "span 2 regions" in failures[0][1]


def test_local_storage_with_several_hosts_is_refused() -> None:
    failures = ha_prerequisite_failures(**good(backend="local"))
    assert [p for p, _ in failures] == ["backend"]
    assert "'local' storage cannot serve 3 image-library hosts" in failures[0][1]


def test_local_storage_with_one_host_is_allowed_in_a_lab() -> None:
    one = hosts(("a", "RegionOne", MOUNT))
    assert ha_prerequisite_failures(**good(backend="local", hosts=one, lab=True)) == []


def test_fewer_than_two_hosts_are_refused_outside_a_lab() -> None:
    failures = ha_prerequisite_failures(**good(hosts=hosts(("a", "RegionOne", MOUNT))))
    assert [p for p, _ in failures] == ["hosts"]
    assert "at least 2" in failures[0][1] and "pcd-imagelib-ha:lab" in failures[0][1]
    assert ha_prerequisite_failures(**good(hosts=hosts(("a", "RegionOne", MOUNT)), lab=True)) == []


def test_a_differing_mount_path_names_host_and_both_paths() -> None:
    mixed = hosts(("node-1", None, MOUNT), ("node-2", None, "/mnt/other"))
    failures = ha_prerequisite_failures(**good(hosts=mixed))
    assert len(failures) == 1
    reason = failures[0][1]
    assert f"'{MOUNT}'" in reason and "'node-2' at '/mnt/other'" in reason
    assert "pcd-imagelib-ha:storage.nfs.mountPath" in reason
    assert "node-1" not in reason


def test_differing_paths_among_hosts_without_a_deployment_path() -> None:
    mixed = hosts(("a", None, "/p"), ("b", None, "/q"))
    failures = ha_prerequisite_failures(**good(mount_path=None, hosts=mixed))
    assert len(failures) == 1 and "different paths" in failures[0][1]


def test_every_violation_is_reported_at_once() -> None:
    failures = ha_prerequisite_failures(**good(backend="local", hosts=hosts(("a", "RegionTwo", "/p"),
                                                                            ("b", "RegionOne", MOUNT))))
    assert sorted(p for p, _ in failures) == ["backend", "hosts", "hosts"]


@pytest.mark.parametrize("field", ["region", "backend", "hosts", "mount_path"])
def test_unknown_values_at_preview_pass(field: str) -> None:
    bad = good(backend="local", hosts=hosts(("a", "RegionTwo", "/p"), ("b", "RegionOne", MOUNT)))
    bad[field] = Unknown()
    failures = ha_prerequisite_failures(**bad)
    # an unknown value silences exactly the rules that depend on it
    expected = {"region": {"backend", "hosts"}, "backend": {"hosts"}, "hosts": set(),
                "mount_path": {"backend", "hosts"}}[field]
    assert {p for p, _ in failures} == expected


def test_unknown_entries_inside_hosts_are_skipped() -> None:
    args = good(hosts=[{"host": Unknown(), "region": Unknown(), "mount_path": Unknown()},
                       {"host": "b", "region": "RegionOne", "mount_path": MOUNT}])
    assert ha_prerequisite_failures(**args) == []


def test_provider_modules_import_without_side_effects() -> None:
    """The provider process imports these modules by name: no output, no threads, no sockets."""
    import subprocess
    import sys

    code = (
        "import threading\n"
        "before = threading.active_count()\n"
        "import imagelib_ha.providers.access, imagelib_ha.providers.common\n"
        "import imagelib_ha.providers.roles, imagelib_ha.providers.role_host\n"
        "import imagelib_ha.providers.baseline\n"
        "import imagelib_ha.providers.role, imagelib_ha.providers.settings, imagelib_ha.providers.prereqs\n"
        "import imagelib_ha.providers.health, imagelib_ha.providers.image\n"
        "assert threading.active_count() == before, threading.enumerate()\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "" and done.stderr == ""
