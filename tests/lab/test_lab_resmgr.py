"""The resmgr emulator's contract: shapes, status codes, convergence states and PCD's quirks."""

from __future__ import annotations

import time
from typing import Any

import pytest
import requests
from labhelp import host, login, wait_until

from lab.api import Lab

pytestmark = pytest.mark.lab

APPLY_ORDER = ["start-apply", "pre-auth", "auth-converging", "auth-converged", "applied"]


class Resmgr:
    """Plain-requests access to the emulator with a given token."""

    def __init__(self, st: dict[str, Any], token: str | None) -> None:
        self.base = st["resmgr_url"]
        self.headers = {"X-Auth-Token": token} if token else {}

    def call(self, method: str, path: str, body: Any = None) -> requests.Response:
        return requests.request(method, self.base + path, json=body, headers=self.headers, timeout=15)


@pytest.fixture
def admin(clean_lab: Lab) -> Resmgr:
    return Resmgr(clean_lab.status(), login(clean_lab.status(), "admin").get_token())


def watch_states(
    rm: Resmgr, host_id: str, *, until: str, timeout: float = 60
) -> list[tuple[str, str | None]]:
    """(role_status, pf9-glance-role state) changes seen while polling v1 until `until` is reached."""
    seen: list[tuple[str, str | None]] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = rm.call("GET", f"/v1/hosts/{host_id}")
        if r.status_code == 200:
            rec = r.json()
            state = (rec["role_status"], rec["roles_status_details"].get("pf9-glance-role"))
            if not seen or seen[-1] != state:
                seen.append(state)
            if state[1] == until or (until == "gone" and state[1] is None and "converging" != state[0]):
                return seen
        elif r.status_code == 404:
            if not seen or seen[-1] != ("404", None):
                seen.append(("404", None))
            if until == "gone":
                return seen
        time.sleep(0.05)
    raise AssertionError(f"never reached {until}: saw {seen}")


def test_auth_401_without_or_with_bad_token_and_403_for_non_admin_writes(clean_lab: Lab) -> None:
    st = clean_lab.status()
    hid = host(st, "lab-host-1")["id"]
    for token in (None, "not-a-token"):
        rm = Resmgr(st, token)
        assert rm.call("GET", "/v1/hosts").status_code == 401
        assert rm.call("GET", f"/v2/hosts/{hid}").status_code == 401
        assert rm.call("PUT", f"/v2/hosts/{hid}/roles/image-library", {}).status_code == 401
    member = Resmgr(st, login(st, "member").get_token())
    assert member.call("GET", "/v2/hosts").status_code == 200
    assert member.call("PUT", f"/v2/hosts/{hid}/roles/image-library", {}).status_code == 403
    assert member.call("DELETE", f"/v2/hosts/{hid}/roles/image-library").status_code == 403
    assert member.call("PUT", "/v2/blueprint/RegionOne", {"name": "RegionOne"}).status_code == 403
    assert host(clean_lab.status(), "lab-host-1")["roles"] == []


def test_host_lists_and_records_v1_and_v2(clean_lab: Lab, admin: Resmgr) -> None:
    st = clean_lab.status()
    v1 = admin.call("GET", "/v1/hosts")
    v2 = admin.call("GET", "/v2/hosts")
    assert v1.status_code == v2.status_code == 200
    assert {h["id"] for h in v1.json()} == {h["id"] for h in st["hosts"]} == {h["id"] for h in v2.json()}
    h1 = host(st, "lab-host-1")
    rec = admin.call("GET", f"/v1/hosts/{h1['id']}").json()
    assert rec["id"] == h1["id"]
    assert rec["info"]["hostname"] == h1["hostname"]
    assert rec["info"]["responding"] is True
    assert rec["roles"] == []
    assert rec["role_status"] == "ok"
    assert rec["roles_status_details"] == {}
    assert rec["extensions"]["ip_address"]["data"] == ["127.0.0.1"]
    rec2 = admin.call("GET", f"/v2/hosts/{h1['id']}").json()
    assert "hostconfig_id" in rec2 and rec2["id"] == h1["id"]
    assert admin.call("GET", "/v1/hosts/no-such-host").status_code == 404


def test_v2_assign_walks_states_in_order_with_409_while_converging(clean_lab: Lab, admin: Resmgr) -> None:
    clean_lab.set_resmgr_options(converge_seconds=2, removal_404_seconds=2)
    st = clean_lab.status()
    h = host(st, "lab-host-1")
    path = f"/v2/hosts/{h['id']}/roles/image-library"
    r = admin.call("PUT", path, {})
    assert r.status_code == 200
    conflict = admin.call("PUT", path, {})
    assert conflict.status_code == 409
    assert "RoleUpdateConflict" in conflict.text
    assert admin.call("DELETE", path).status_code == 409
    seen = watch_states(admin, h["id"], until="applied")
    states = [s for _, s in seen if s is not None]
    assert states[-1] == "applied"
    assert [s for s in APPLY_ORDER if s in states] == [s for s in states if s in APPLY_ORDER], seen
    assert states == sorted(states, key=APPLY_ORDER.index), seen
    assert seen[-1][0] == "ok" and all(rs == "converging" for rs, _ in seen[:-1]), seen
    v2 = admin.call("GET", f"/v2/hosts/{h['id']}").json()
    assert v2["roles"] == ["image-library"]
    assert admin.call("GET", f"/v1/hosts/{h['id']}").json()["roles"] == ["pf9-glance-role"]
    # The role's Glance really serves once applied.
    assert requests.get(f"{h['url']}/healthcheck", timeout=5).status_code == 200
    settings = admin.call("GET", f"/v1/hosts/{h['id']}/roles/pf9-glance-role")
    assert settings.status_code == 200 and settings.json()["endpoint_address"] == h["url"]
    # Re-assigning an applied role is a no-op success.
    assert admin.call("PUT", path, {}).status_code == 200

    assert admin.call("DELETE", path).status_code == 200
    seen = watch_states(admin, h["id"], until="gone")
    assert seen[0] == ("converging", "start-deauth"), seen
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{h['url']}/healthcheck", timeout=5)
    # PCD quirk: the per-host record 404s for a while after the last role goes; the list still has it.
    assert admin.call("GET", f"/v1/hosts/{h['id']}").status_code == 404
    assert admin.call("GET", f"/v2/hosts/{h['id']}").status_code == 404
    assert h["id"] in {x["id"] for x in admin.call("GET", "/v1/hosts").json()}
    wait_until(lambda: admin.call("GET", f"/v1/hosts/{h['id']}").status_code == 200, timeout=10,
               what="the host record to come back")
    rec = admin.call("GET", f"/v1/hosts/{h['id']}").json()
    assert rec["roles"] == [] and rec["role_status"] == "ok"
    # A vanished object reads as 200 with a JSON null body.
    gone = admin.call("GET", f"/v1/hosts/{h['id']}/roles/pf9-glance-role")
    assert gone.status_code == 200 and gone.text == "null"


def test_v2_roles_spelling_is_configurable(clean_lab: Lab, admin: Resmgr) -> None:
    clean_lab.grant_role("lab-host-2")
    hid = host(clean_lab.status(), "lab-host-2")["id"]
    assert admin.call("GET", f"/v2/hosts/{hid}").json()["roles"] == ["image-library"]
    clean_lab.set_resmgr_options(v2_roles_spelling="pf9-glance-role")
    assert admin.call("GET", f"/v2/hosts/{hid}").json()["roles"] == ["pf9-glance-role"]
    listed = {x["id"]: x for x in admin.call("GET", "/v2/hosts").json()}
    assert listed[hid]["roles"] == ["pf9-glance-role"]


def test_v1_role_put_with_settings_and_delete(clean_lab: Lab, admin: Resmgr) -> None:
    clean_lab.set_resmgr_options(converge_seconds=1, removal_404_seconds=0)
    h = host(clean_lab.status(), "lab-host-3")
    settings = {"endpoint_address": h["url"], "filesystem_store_datadir": "/var/opt/imagelibrary/data",
                "update_public_glance_endpoint": "false", "region": "RegionOne"}
    path = f"/v1/hosts/{h['id']}/roles/pf9-glance-role"
    assert admin.call("PUT", path, settings).status_code == 200
    watch_states(admin, h["id"], until="applied")
    assert admin.call("GET", path).json() == settings
    withs = admin.call("GET", f"/v2/hosts/{h['id']}?role_settings=true").json()
    assert withs["role_settings"]["pf9-glance-role"] == settings
    assert admin.call("PUT", path, ["not", "an", "object"]).status_code == 400
    assert admin.call("DELETE", path).status_code == 200
    watch_states(admin, h["id"], until="gone")
    assert admin.call("PUT", f"/v1/hosts/{h['id']}/roles/pf9-nova", {}).status_code == 404
    assert admin.call("PUT", f"/v2/hosts/{h['id']}/roles/hypervisor", {}).status_code == 404


def test_blueprint_whole_object_writes_keep_unknown_fields(clean_lab: Lab, admin: Resmgr) -> None:
    original = admin.call("GET", "/v2/blueprint/RegionOne")
    assert original.status_code == 200
    bp = original.json()
    assert bp["imageLibrarySharedStorage"] is True
    assert bp["imageLibraryStorage"] == clean_lab.status()["store_path"]
    try:
        new = {**bp, "imageLibraryStorage": "/mnt/nfs/images", "imageLibrarySharedStorage": False,
               "someFutureField": {"x": 1}}
        assert admin.call("PUT", "/v2/blueprint/RegionOne", new).status_code == 200
        got = admin.call("GET", "/v2/blueprint/RegionOne").json()
        assert got == new
        bad = {**bp, "imageLibrarySharedStorage": "yes"}
        r = admin.call("PUT", "/v2/blueprint/RegionOne", bad)
        assert r.status_code == 400 and "imageLibrarySharedStorage" in r.text
        assert admin.call("GET", "/v2/blueprint/NoSuchRegion").status_code == 404
        assert any(b["name"] == "RegionTwo" for b in admin.call("GET", "/v2/blueprint").json())
    finally:
        admin.call("PUT", "/v2/blueprint/RegionOne", bp)


def test_conflict_fault_answers_409_for_its_duration(clean_lab: Lab, admin: Resmgr) -> None:
    h = host(clean_lab.status(), "lab-host-1")
    path = f"/v2/hosts/{h['id']}/roles/image-library"
    clean_lab.set_fault("lab-host-1", conflict_seconds=2)
    r = admin.call("PUT", path, {})
    assert r.status_code == 409 and "RoleUpdateConflict" in r.text
    wait_until(lambda: admin.call("PUT", path, {}).status_code == 200, timeout=10, interval=0.5,
               what="the conflict to pass")


def test_flap_fault_passes_through_failed_then_converges(clean_lab: Lab, admin: Resmgr) -> None:
    clean_lab.set_resmgr_options(converge_seconds=1)
    h = host(clean_lab.status(), "lab-host-2")
    clean_lab.set_fault("lab-host-2", flap_failed_seconds=2)
    assert admin.call("PUT", f"/v2/hosts/{h['id']}/roles/image-library", {}).status_code == 200
    seen = watch_states(admin, h["id"], until="applied")
    statuses = [rs for rs, _ in seen]
    assert "failed" in statuses and statuses[-1] == "ok", seen
    assert statuses.index("failed") < len(statuses) - 1


def test_fail_fault_fails_for_good_with_its_message(clean_lab: Lab, admin: Resmgr) -> None:
    clean_lab.set_resmgr_options(converge_seconds=1)
    h = host(clean_lab.status(), "lab-host-3")
    clean_lab.set_fault("lab-host-3", fail_message="disk quota exceeded on the store")
    assert admin.call("PUT", f"/v2/hosts/{h['id']}/roles/image-library", {}).status_code == 200
    seen = watch_states(admin, h["id"], until="auth-error")
    time.sleep(1.5)
    rec = admin.call("GET", f"/v1/hosts/{h['id']}").json()
    assert rec["role_status"] == "failed" and rec["roles_status_details"]["pf9-glance-role"] == "auth-error"
    assert rec["message"] == "disk quota exceeded on the store", seen
    assert not host(clean_lab.status(), "lab-host-3")["running"]


def test_deauth_error_fault_answers_409_to_role_writes_until_cleared(clean_lab: Lab, admin: Resmgr) -> None:
    clean_lab.set_resmgr_options(converge_seconds=1, removal_404_seconds=0)
    clean_lab.grant_role("lab-host-2")
    h = host(clean_lab.status(), "lab-host-2")
    v2_path = f"/v2/hosts/{h['id']}/roles/image-library"
    v1_path = f"/v1/hosts/{h['id']}/roles/pf9-glance-role"
    clean_lab.set_fault("lab-host-2", deauth_error=True)
    assert admin.call("DELETE", v2_path).status_code == 200
    seen = watch_states(admin, h["id"], until="deauth-error")
    assert seen[0] == ("converging", "start-deauth") and seen[-1] == ("failed", "deauth-error"), seen
    time.sleep(1.5)  # it sits there: no convergence time ends it
    rec = admin.call("GET", f"/v1/hosts/{h['id']}").json()
    assert rec["roles"] == ["pf9-glance-role"] and rec["role_status"] == "failed", rec
    assert rec["roles_status_details"]["pf9-glance-role"] == "deauth-error" and rec["message"], rec
    for method, path in (("PUT", v2_path), ("DELETE", v2_path), ("PUT", v1_path), ("DELETE", v1_path)):
        r = admin.call(method, path, {} if method == "PUT" else None)
        assert r.status_code == 409, (method, path, r.status_code, r.text)
        assert "RoleUpdateConflict" in r.text and "deauth-error" in r.text, r.text
    assert not host(clean_lab.status(), "lab-host-2")["running"]

    clean_lab.clear_fault("lab-host-2")
    rec = admin.call("GET", f"/v1/hosts/{h['id']}").json()
    assert rec["roles"] == [] and rec["role_status"] == "ok", rec
    # Writable again: the role applies, and a removal now completes (the fault is gone).
    assert admin.call("PUT", v2_path, {}).status_code == 200
    watch_states(admin, h["id"], until="applied")
    assert admin.call("DELETE", v2_path).status_code == 200
    seen = watch_states(admin, h["id"], until="gone")
    assert ("failed", "deauth-error") not in seen, seen
