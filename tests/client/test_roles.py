"""Assign-and-wait / remove-and-wait against requests-mock, on a fake clock.

Each test registers the ordered responses resmgr gives for one URI and asserts the exact request
sequence the waiter produced, plus the simulated time it took.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import pytest
import requests_mock
from keystone_fake import token_body

from imagelib_ha.client.errors import RoleConflictTimeout, RoleConvergeTimeout, RoleFailed
from imagelib_ha.client.resmgr import ResmgrClient
from imagelib_ha.client.roles import RoleProgress, RoleWaiter, WaitPolicy
from imagelib_ha.client.session import CloudAccess, make_session

AUTH_URL = "http://keystone.test/v3"
RESMGR = "http://mgmt.test/resmgr"
ROLE = f"{RESMGR}/v2/hosts/h1/roles/image-library"
HOST = f"{RESMGR}/v1/hosts/h1"
PASSWORD = "s3cret-Pa55"  # asserted never to leak into a message

TOKEN = token_body([
    {
        "type": "resmgr",
        "id": "svc",
        "endpoints": [{"id": "e", "interface": "public", "region_id": "RegionOne",
                       "region": "RegionOne", "url": RESMGR}],
    }
])


class FakeClock:
    """Monotonic time that only moves when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def m() -> Any:
    with requests_mock.Mocker() as mocker:
        mocker.post(f"{AUTH_URL}/auth/tokens", json=TOKEN, status_code=201, headers={"X-Subject-Token": "t"})
        yield mocker


def waiter(clock: FakeClock, progress: list[RoleProgress] | None = None, **policy: float) -> RoleWaiter:
    access = CloudAccess(auth_url=AUTH_URL, region="RegionOne", username="admin", password=PASSWORD,
                         project_name="admin")
    client = ResmgrClient(make_session(access), region="RegionOne")
    settings = {"converge_timeout": 1800.0, "failed_grace": 120.0, "conflict_timeout": 600.0,
                "poll_interval": 5.0, **policy}
    return RoleWaiter(client, WaitPolicy(**settings), clock=clock, sleep=clock.sleep,
                      progress=None if progress is None else progress.append)


def calls(m: Any) -> list[tuple[str, str]]:
    return [(r.method, urlsplit(r.url).path) for r in m.request_history][1:]  # after the token request


def host(role_status: str | None, glance: str | None, roles: tuple[str, ...] = ("pf9-glance-role",),
         message: str = "") -> dict[str, Any]:
    record: dict[str, Any] = {"id": "h1", "info": {"hostname": "node-1"}, "roles": list(roles),
                              "message": message}
    if role_status is not None:
        record["role_status"] = role_status
    if glance is not None:
        record["roles_status_details"] = {"pf9-glance-role": glance}
    return {"json": record}


PUT = ("PUT", "/resmgr/v2/hosts/h1/roles/image-library")
DELETE = ("DELETE", "/resmgr/v2/hosts/h1/roles/image-library")
GET = ("GET", "/resmgr/v1/hosts/h1")


def test_assign_retries_409_then_waits_until_ok_and_applied(m: Any) -> None:
    conflict = {"status_code": 409, "json": {"message": "RoleUpdateConflict"}}
    m.put(ROLE, [conflict, conflict, {"status_code": 200}])
    m.get(HOST, [
        host("converging", "start-apply"),
        host("ok", "auth-converging"),  # role_status alone reads ok before Glance serves
        host("ok", "applied"),
    ])
    clock, seen = FakeClock(), []
    result = waiter(clock, seen).assign_and_wait("h1", "node-1")
    assert calls(m) == [PUT, PUT, PUT, GET, GET, GET]
    assert m.request_history[1].json() == {}
    assert (result.role_status, result.glance_role_state) == ("ok", "applied")
    assert clock.sleeps == [5.0] * 4
    assert [p.phase for p in seen] == ["conflict", "conflict", "waiting", "waiting", "done"]
    assert "node-1 (h1): done" in str(seen[-1])


def test_assign_tolerates_a_failed_flap_shorter_than_the_grace(m: Any) -> None:
    m.put(ROLE, status_code=202)
    m.get(HOST, [
        host("converging", "pre-auth"),
        host("failed", "auth-converging", message="hostagent restarting"),
        host("failed", "auth-converging"),
        host("converging", "auth-converged"),  # the flap ended after 10 s < 30 s grace
        host("failed", "auth-converged"),  # a new streak starts from zero
        host("ok", "applied"),
    ])
    clock = FakeClock()
    waiter(clock, failed_grace=30.0).assign_and_wait("h1")
    assert calls(m) == [PUT] + [GET] * 6
    assert clock.now - 1000.0 == 25.0


def test_assign_that_stays_failed_names_host_status_and_message(m: Any) -> None:
    m.put(ROLE, status_code=200)
    broken = host("failed", "auth-error", message="glance-api: No such file /var/opt/imagelibrary/data")
    m.get(HOST, [host("converging", "start-apply")] + [broken] * 10)
    clock = FakeClock()
    with pytest.raises(RoleFailed) as exc:
        waiter(clock, failed_grace=20.0).assign_and_wait("h1")
    text = str(exc.value)
    assert "node-1 (h1)" in text
    assert "role_status 'failed'" in text and "pf9-glance-role 'auth-error'" in text
    assert "No such file /var/opt/imagelibrary/data" in text
    assert PASSWORD not in text
    # first failed seen at t=5, still failed at t=25 (20 s = grace): 1 converging + 5 failed polls
    assert calls(m) == [PUT] + [GET] * 6
    assert exc.value.fields["host_id"] == "h1"


def test_conflict_that_never_clears_stops_at_the_conflict_timeout(m: Any) -> None:
    m.put(ROLE, status_code=409, text="RoleUpdateConflict")
    clock = FakeClock()
    with pytest.raises(RoleConflictTimeout, match="409 RoleUpdateConflict for 12 s"):
        waiter(clock, conflict_timeout=12.0).assign_and_wait("h1", "node-1")
    # t=0, 5, 10, then a shortened sleep to the 12 s limit
    assert calls(m) == [PUT] * 4
    assert clock.sleeps == [5.0, 5.0, 2.0]


def test_converge_timeout_bounds_everything(m: Any) -> None:
    m.put(ROLE, status_code=200)
    m.get(HOST, [host("converging", "auth-converging")])
    clock = FakeClock()
    with pytest.raises(RoleConvergeTimeout, match="within 17 s: last seen role_status 'converging'"):
        waiter(clock, converge_timeout=17.0).assign_and_wait("h1")
    assert calls(m) == [PUT] + [GET] * 5
    assert clock.now - 1000.0 == 17.0


def test_host_that_vanishes_while_assigning_is_waited_for_not_trusted(m: Any) -> None:
    m.put(ROLE, status_code=200)
    m.get(HOST, [{"status_code": 404}, {"text": "null"}, host("ok", "applied")])
    waiter(FakeClock()).assign_and_wait("h1")
    assert calls(m) == [PUT, GET, GET, GET]


def test_remove_waits_until_the_role_is_gone_and_accepts_a_404(m: Any) -> None:
    m.delete(ROLE, [{"status_code": 409}, {"status_code": 204}])
    m.get(HOST, [host("converging", "start-deauth"), host("converging", "not-applied", roles=()),
                 {"status_code": 404}])
    # "not-applied" with no roles is already removed: the 404 is never needed
    waiter(FakeClock()).remove_and_wait("h1")
    assert calls(m) == [DELETE, DELETE, GET, GET]


def test_remove_counts_a_vanished_host_as_removed(m: Any) -> None:
    m.delete(ROLE, status_code=200)
    m.get(HOST, [host("converging", "start-deauth"), {"status_code": 404}])
    waiter(FakeClock()).remove_and_wait("h1")
    assert calls(m) == [DELETE, GET, GET]


def test_remove_stuck_in_deauth_error_fails_with_the_message(m: Any) -> None:
    m.delete(ROLE, status_code=200)
    m.get(HOST, [host("ok", "deauth-error", message="could not stop pf9-glance-api")])
    with pytest.raises(RoleFailed, match=r"failed to remove .*could not stop pf9-glance-api"):
        waiter(FakeClock(), failed_grace=10.0).remove_and_wait("h1")
    assert calls(m) == [DELETE, GET, GET, GET]
