"""Health validation against the lab: real Keystone, real Glance hosts, real faults.

Every test restores what it changed (host processes, drain files, storage mode); the module fixture
grants the role to RegionOne's hosts and revokes again only the roles it granted.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from labkit import granted_region_roles, region_hosts, session_of, wait_serving

from imagelib_ha.client.failover import HostHealthBook, ImageSource, ImageSpec, create_image
from imagelib_ha.client.glance import GlanceHost, Timeouts
from imagelib_ha.client.health import ExpectedStore, HealthChecker, HealthError, RoleHost
from lab.api import Lab

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def roles(lab: Lab) -> Iterator[dict[str, Any]]:
    yield from granted_region_roles(lab)


def checker(status: dict[str, Any], **kwargs: Any) -> HealthChecker:
    return HealthChecker(session_of(status), region=status["region"],
                         expected_store=ExpectedStore("file", status["store_path"]), **kwargs)


def role_hosts(status: dict[str, Any]) -> list[RoleHost]:
    return [RoleHost(h["id"], h["hostname"], h["endpoint"]) for h in region_hosts(status)]


def test_health_passes_on_three_role_hosts(roles: dict[str, Any]) -> None:
    report = checker(roles).validate(role_hosts(roles), deadline=0)
    assert [h.status for h in report.hosts] == ["serving"] * 3
    assert report.canary is not None and "read back identically through 2 other host(s)" in report.canary
    assert report.endpoints == [h["endpoint"] for h in region_hosts(roles)]
    # Nothing left behind: no canary image remains.
    leftovers = GlanceHost(session_of(roles), report.endpoints[0]).find_by_property("pcd_imagelib_ha_canary",
                                                                                    "true")
    assert leftovers == []


def test_killed_host_is_reported_down(lab: Lab, roles: dict[str, Any]) -> None:
    victim = region_hosts(roles)[1]
    lab.kill(victim["name"])
    try:
        with pytest.raises(HealthError) as err:
            checker(roles).validate(role_hosts(roles), deadline=0)
        assert f"{victim['hostname']} ({victim['endpoint']}): down: connection refused" in str(err.value)
        assert err.value.report.serving_count == 2
    finally:
        lab.restart(victim["name"])
        wait_serving(lab.status())


def test_local_storage_fails_the_canary_naming_hosts_that_cannot_read(lab: Lab,
                                                                      roles: dict[str, Any]) -> None:
    lab.set_storage("local")
    try:
        wait_serving(lab.status())
        with pytest.raises(HealthError) as err:
            checker(roles).validate(role_hosts(roles), deadline=0)
        message = str(err.value)
        first, *others = region_hosts(roles)
        for other in others:
            assert (f"{other['hostname']} ({other['endpoint']}): no-shared-data: cannot read data written "
                    f"through {first['hostname']}") in message
        assert "HTTP 204 with 0 of" in message
        assert f"{first['hostname']} (" not in message
    finally:
        lab.set_storage("shared")
        wait_serving(lab.status())


def test_drained_host_is_reported_drained_and_not_chosen_for_uploads(
    lab: Lab, roles: dict[str, Any], tmp_path: Any
) -> None:
    drained = region_hosts(roles)[0]
    lab.drain(drained["name"])
    session = session_of(roles)
    image_id = None
    try:
        report = checker(roles).validate(role_hosts(roles), deadline=0)
        assert [h.status for h in report.hosts] == ["drained", "serving", "serving"]
        assert drained["endpoint"] not in report.endpoints
        source = tmp_path / "small.raw"
        source.write_bytes(b"drained-test" * 1000)
        spec = ImageSpec(key=f"test/health-lab/drained:{time.time_ns()}", name="drained-test",
                         disk_format="raw", container_format="bare")
        result = create_image(session, spec, ImageSource(str(source)), report.endpoints,
                              book=HostHealthBook())
        image_id = result.image_id
        assert result.host in report.endpoints and result.host != drained["endpoint"]
        assert all(a.host != drained["endpoint"] for a in result.attempts)
    finally:
        lab.undrain(drained["name"])
        if image_id:
            GlanceHost(session, region_hosts(roles)[1]["endpoint"]).delete_image(image_id)


def test_probes_are_concurrent_frozen_hosts_cost_one_timeout(lab: Lab, roles: dict[str, Any]) -> None:
    frozen = region_hosts(roles)[:2]
    for h in frozen:
        lab.freeze(h["name"])
    try:
        started = time.monotonic()
        concurrent = checker(roles, probe_timeout=2).probe(role_hosts(roles))
        concurrent_s = time.monotonic() - started
        started = time.monotonic()
        sequential = checker(roles, probe_timeout=2, sequential=True).probe(role_hosts(roles))
        sequential_s = time.monotonic() - started
    finally:
        for h in frozen:
            lab.thaw(h["name"])
    assert [h.status for h in concurrent.hosts] == ["frozen", "frozen", "serving"]
    assert [h.status for h in sequential.hosts] == ["frozen", "frozen", "serving"]
    print(f"two frozen hosts, probe timeout 2 s: concurrent {concurrent_s:.2f} s, "
          f"sequential {sequential_s:.2f} s")
    assert sequential_s >= 4.0
    assert concurrent_s < 3.9  # generous: both timeouts run at once


def test_store_mismatch_is_caught_through_the_api(roles: dict[str, Any]) -> None:
    wrong = HealthChecker(session_of(roles), region=roles["region"],
                          expected_store=ExpectedStore("file", "/var/opt/imagelibrary/data"))
    with pytest.raises(HealthError) as err:
        wrong.validate(role_hosts(roles), canary=False, deadline=0)
    assert str(err.value).count("misconfigured: file store data_dir is") == 3


def test_timeouts_are_bounded_for_a_frozen_upload_host(lab: Lab, roles: dict[str, Any]) -> None:
    """The per-host client gives up on a frozen host after its read timeout, not later."""
    victim = region_hosts(roles)[2]
    lab.freeze(victim["name"])
    try:
        host = GlanceHost(session_of(roles), victim["endpoint"], timeouts=Timeouts(connect=1, read=2))
        started = time.monotonic()
        result = host.probe(timeout=2)
        took = time.monotonic() - started
    finally:
        lab.thaw(victim["name"])
    assert result.status == "frozen"
    assert took < 5
