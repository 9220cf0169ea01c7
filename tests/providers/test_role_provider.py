"""ImageLibraryRoles and ImageLibraryRoleBaseline in-process against requests-mock.

resmgr is a small stateful fake served through requests-mock callbacks: a PUT assigns the role, the host
converges after some polls (or fails for good), a DELETE removes it. The tests judge what the fake holds
afterwards and the order of the writes (and of convergence) per host; hosts converge concurrently, so the
order of reads between hosts is not part of any contract.
"""

from __future__ import annotations

import pickle
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests_mock
from cloud_config import configured
from keystone_fake import token_body
from pulumi.dynamic.dynamic import serialize_provider
from pulumi.output import Unknown

from imagelib_ha.client.errors import HostNotFound, PcdError
from imagelib_ha.providers.baseline import ImageLibraryRoleBaselineProvider
from imagelib_ha.providers.role import ImageLibraryRoleProvider
from imagelib_ha.providers.role_host import match_host_endpoint
from imagelib_ha.providers.roles import ImageLibraryRolesProvider

AUTH_URL = "http://keystone.test/v3"
RESMGR = "http://mgmt.test/resmgr"
PASSWORD = "s3cret-Pa55"
CLOUD = {"auth_url": AUTH_URL, "region": "RegionOne", "username": "admin", "password": PASSWORD,
         "project_name": "admin"}
MOUNT = "/var/opt/imagelibrary/data"
FAST = {"poll_interval": 0.001, "failed_grace": 0.05, "converge_timeout": 30, "conflict_timeout": 10}
TIMING = ("converge_timeout", "failed_grace", "conflict_timeout", "poll_interval")


def endpoint_url(n: int) -> str:
    return f"https://10.0.0.1{n}:9494"


def catalog_endpoint(url: str, region: str = "RegionOne") -> dict[str, Any]:
    return {"id": url, "interface": "public", "region_id": region, "region": region, "url": url}


TOKEN = token_body([
    {"type": "resmgr", "id": "s1", "endpoints": [catalog_endpoint(RESMGR)]},
    {"type": "image-cluster", "id": "s2",
     "endpoints": [catalog_endpoint(endpoint_url(n)) for n in (1, 2, 3)]},
])


# --- a stateful resmgr -------------------------------------------------------------------------------


@dataclass
class FakeHost:
    """One resmgr host and its image-library role."""

    id: str
    hostname: str
    n: int
    region: str | None = None
    assigned: bool = False
    polls_to_converge: int = 1  # GETs after a PUT before the role reads applied
    polls_left: int = 0
    fail: str | None = None  # the host's message when its role fails for good
    conflicts: int = 0  # 409 answers before a write is accepted
    datadir: str | None = MOUNT
    waits_for: str | None = None  # the role converges only once this other host was assigned
    gone_gets: int = 0  # per-host GETs answering 404 though the listing shows the host (after a removal)

    def record(self) -> dict[str, Any]:
        rec: dict[str, Any] = {
            "id": self.id, "info": {"hostname": self.hostname}, "roles": [], "message": "",
            "extensions": {"ip_address": {"data": [f"10.0.0.1{self.n}"]}}, "role_status": "ok",
        }
        if self.region:
            rec["region"] = self.region
        if self.assigned:
            rec["roles"] = ["pf9-glance-role"]
            if self.fail:
                rec.update(role_status="failed", message=self.fail)
                rec["roles_status_details"] = {"pf9-glance-role": "auth-error"}
            elif self.polls_left > 0:
                rec["role_status"] = "converging"
                rec["roles_status_details"] = {"pf9-glance-role": "pre-auth"}
            else:
                rec["roles_status_details"] = {"pf9-glance-role": "applied"}
        return rec


@dataclass
class FakeResmgr:
    """resmgr's host and role API over ``hosts``; ``events`` records writes and convergence in order."""

    hosts: dict[str, FakeHost]
    events: list[tuple[str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def install(self, m: requests_mock.Mocker) -> None:
        m.get(re.compile(rf"{RESMGR}/v1/hosts$"), json=self._list)
        m.get(re.compile(rf"{RESMGR}/v1/hosts/[^/?]+$"), json=self._get)
        m.get(re.compile(rf"{RESMGR}/v2/hosts/[^/?]+\?role_settings=true$"), json=self._settings)
        m.put(re.compile(rf"{RESMGR}/v2/hosts/[^/]+/roles/image-library$"), json=self._write)
        m.delete(re.compile(rf"{RESMGR}/v2/hosts/[^/]+/roles/image-library$"), json=self._write)

    @staticmethod
    def _host_id(request: Any, index: int) -> str:
        return urlsplit(request.url).path.removeprefix(urlsplit(RESMGR).path).split("/")[index]

    def _list(self, _request: Any, _context: Any) -> list[dict[str, Any]]:
        with self.lock:
            self.events.append(("LIST", "*"))
            return [h.record() for h in self.hosts.values()]

    def _get(self, request: Any, context: Any) -> dict[str, Any] | None:
        host_id = self._host_id(request, 3)
        with self.lock:
            host = self.hosts.get(host_id)
            if host is None or (host.gone_gets > 0 and not host.assigned):
                if host is not None:
                    host.gone_gets -= 1
                context.status_code = 404
                return None
            gate_open = host.waits_for is None or ("PUT", host.waits_for) in self.events
            if host.assigned and host.polls_left > 0 and gate_open:
                host.polls_left -= 1
            record = host.record()
            if record.get("roles_status_details", {}).get("pf9-glance-role") == "applied":
                if ("APPLIED", host_id) not in self.events[self._last_write(host_id):]:
                    self.events.append(("APPLIED", host_id))
            return record

    def _last_write(self, host_id: str) -> int:
        writes = [i for i, (method, h) in enumerate(self.events)
                  if h == host_id and method in ("PUT", "DELETE")]
        return writes[-1] if writes else 0

    def _settings(self, request: Any, context: Any) -> dict[str, Any] | None:
        host_id = self._host_id(request, 3).split("?")[0]
        with self.lock:
            host = self.hosts.get(host_id)
            if host is None:
                context.status_code = 404
                return None
            record = host.record()
            if host.assigned:
                settings: dict[str, Any] = {"endpoint_address": endpoint_url(host.n) + "/"}
                if host.datadir:
                    settings["filesystem_store_datadir"] = host.datadir
                record["role_settings"] = {"pf9-glance-role": settings}
            return record

    def _write(self, request: Any, context: Any) -> dict[str, Any]:
        host_id = self._host_id(request, 3)
        host = self.hosts[host_id]
        with self.lock:
            if host.conflicts > 0:
                host.conflicts -= 1
                context.status_code = 409
                return {"code": 409, "message": "RoleUpdateConflict"}
            self.events.append((request.method, host_id))
            if request.method == "PUT":
                host.assigned, host.polls_left = True, host.polls_to_converge
            else:
                host.assigned, host.polls_left = False, 0
            context.status_code = 200
            return {}

    # --- what tests read -----------------------------------------------------------------------
    def writes(self, host_id: str | None = None) -> list[tuple[str, str]]:
        return [(m, h) for m, h in self.events if m in ("PUT", "DELETE") and host_id in (None, h)]

    def index(self, event: tuple[str, str]) -> int:
        return self.events.index(event)

    def held(self) -> set[str]:
        return {h.id for h in self.hosts.values() if h.assigned}


def hosts(*specs: tuple[str, str], **kwargs: Any) -> dict[str, FakeHost]:
    return {host_id: FakeHost(host_id, name, n=int(host_id[1:]), **kwargs) for host_id, name in specs}


@pytest.fixture
def m() -> Iterator[requests_mock.Mocker]:
    with requests_mock.Mocker() as mocker:
        mocker.post(f"{AUTH_URL}/auth/tokens", json=TOKEN, status_code=201, headers={"X-Subject-Token": "t"})
        yield mocker


@pytest.fixture
def resmgr(m: requests_mock.Mocker) -> FakeResmgr:
    """Three RegionOne hosts without the role: h1/node-1, h2/node-2, h3/node-3."""
    fake = FakeResmgr(hosts(("h1", "node-1"), ("h2", "node-2"), ("h3", "node-3")))
    fake.install(m)
    return fake


# --- building inputs the way the engine does --------------------------------------------------------


def roles_provider() -> ImageLibraryRolesProvider:
    return configured(ImageLibraryRolesProvider(), CLOUD)


def baseline_provider() -> ImageLibraryRoleBaselineProvider:
    return configured(ImageLibraryRoleBaselineProvider(), CLOUD)


def host_entries(refs: list[str], mount: str | None = None) -> list[dict[str, Any]]:
    return [{"host": ref, "region": None, "mount_path": mount} for ref in refs]


def record_baseline(refs: list[str], previous: dict[str, Any] | None = None) -> dict[str, Any]:
    """The baseline's outputs for ``refs``: created, or updated from ``previous`` outputs."""
    provider = baseline_provider()
    checked = provider.check({}, {"region": "RegionOne", "hosts": refs})
    assert checked.failures == []
    if previous is None:
        return provider.create(checked.inputs).outs
    return provider.update("baseline", previous, checked.inputs).outs


def roles_inputs(refs: list[str], baseline: dict[str, Any], **changes: Any) -> dict[str, Any]:
    news = {"hosts": host_entries(refs), "baseline": baseline["entries"], "expected_region": "RegionOne",
            **FAST, **changes}
    checked = roles_provider().check({}, news)
    assert checked.failures == []
    return checked.inputs


def members_by_id(outs: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {m["host_id"]: m for m in outs["members"]}


def owned(outs: dict[str, Any]) -> dict[str, bool]:
    return {m["host_id"]: m["owned"] for m in outs["members"]}


def converged(refs: list[str], fake: FakeResmgr) -> tuple[dict[str, Any], dict[str, Any]]:
    """Baseline and roles created for ``refs``: (baseline outputs, roles outputs)."""
    baseline = record_baseline(refs)
    outs = roles_provider().create(roles_inputs(refs, baseline)).outs
    return baseline, outs


def error_text(exc: BaseException) -> str:
    return "\n".join([str(exc), *getattr(exc, "__notes__", [])])


# --- check -------------------------------------------------------------------------------------------


def test_roles_check_fills_defaults_and_keeps_only_inputs() -> None:
    news = {"hosts": host_entries(["node-1"]), "baseline": [], "members": None, "host_ids": None}
    result = roles_provider().check({}, news)
    assert result.failures == []
    assert result.inputs == {
        "hosts": host_entries(["node-1"]), "baseline": [], "expected_region": None, "converge_timeout": 1800,
        "failed_grace": 120, "conflict_timeout": 600, "poll_interval": 5,
    }


def test_roles_check_accepts_every_number_as_the_double_the_engine_sends() -> None:
    news = {"hosts": host_entries(["node-1"]), "baseline": [], "converge_timeout": 1800.0,
            "failed_grace": 0.0, "conflict_timeout": 600.0, "poll_interval": 5.0}
    assert roles_provider().check({}, news).failures == []


def test_roles_check_names_each_bad_entry() -> None:
    news = {
        "hosts": [{"host": "node-1"}, {"host": " "}, {"host": "node-3", "mount_path": "relative/dir"},
                  {"host": "node-4", "region": ""}, "node-5"],
        "baseline": [{"ref": "node-1"}], "expected_region": "", "converge_timeout": 0, "failed_grace": -1,
        "poll_interval": "5", "conflict_timeout": True,
    }
    failures = roles_provider().check({}, news).failures
    by_prop: dict[str, list[str]] = {}
    for f in failures:
        by_prop.setdefault(f.property, []).append(f.reason)
    assert sorted(by_prop) == ["baseline", "conflict_timeout", "converge_timeout", "expected_region",
                               "failed_grace", "hosts", "poll_interval"]
    hosts_text = " ".join(by_prop["hosts"])
    for named in ("hosts[1]", "hosts[2].mount_path", "hosts[3].region", "hosts[4]"):
        assert named in hosts_text
    assert "hosts[0]" not in hosts_text


def test_roles_check_refuses_an_empty_host_list() -> None:
    failures = roles_provider().check({}, {"hosts": [], "baseline": []}).failures
    assert [f.property for f in failures] == ["hosts"]
    assert "pcd-imagelib-ha:hosts" in failures[0].reason


def test_roles_check_lets_preview_unknowns_through() -> None:
    provider = roles_provider()
    assert provider.check({}, {"hosts": Unknown(), "baseline": Unknown(), "expected_region": Unknown(),
                               "converge_timeout": Unknown(), "poll_interval": Unknown()}).failures == []
    partly = [{"host": Unknown(), "region": Unknown(), "mount_path": Unknown()}, {"host": "node-2"}]
    assert provider.check({}, {"hosts": partly, "baseline": [Unknown()]}).failures == []


def test_baseline_check_names_bad_inputs_and_lets_unknowns_through() -> None:
    provider = baseline_provider()
    assert provider.check({}, {"region": "RegionOne", "hosts": ["node-1", "h2"]}).failures == []
    bad = provider.check({}, {"region": "", "hosts": ["node-1", " "]}).failures
    assert sorted(f.property for f in bad) == ["hosts", "region"]
    assert "pcd-imagelib-ha:hosts" in next(f.reason for f in bad if f.property == "hosts")
    assert provider.check({}, {"region": Unknown(), "hosts": [Unknown(), "node-2"]}).failures == []
    assert provider.check({}, {"region": "RegionOne", "hosts": Unknown()}).failures == []


@pytest.mark.parametrize("provider_class", [ImageLibraryRolesProvider, ImageLibraryRoleBaselineProvider])
def test_a_bad_cloud_config_fails_check_on_cloud_naming_the_key_not_the_password(provider_class: Any) -> None:
    provider = configured(provider_class(), {**CLOUD, "auth_url": None})
    if provider_class is ImageLibraryRoleBaselineProvider:
        news: dict[str, Any] = {"region": "RegionOne", "hosts": ["node-1"]}
    else:
        news = {"hosts": host_entries(["node-1"]), "baseline": []}
    failures = provider.check({}, news).failures
    assert [f.property for f in failures] == ["cloud"]
    assert "pcd-imagelib-ha:cloud.authUrl" in failures[0].reason
    assert PASSWORD not in failures[0].reason
    missing = provider_class()
    missing.configure_from({}, {})
    (failure,) = missing.check({}, news).failures
    assert failure.property == "cloud" and "pcd-imagelib-ha:cloud" in failure.reason


# --- baseline ----------------------------------------------------------------------------------------


def test_baseline_resolves_every_reference_with_one_listing_and_writes_nothing(resmgr: FakeResmgr) -> None:
    resmgr.hosts["h2"].assigned = True  # someone else's role
    outs = record_baseline(["node-1", "h2", "node-3"])
    assert outs["entries"] == [
        {"ref": "node-1", "host_id": "h1", "hostname": "node-1", "held_before": False},
        {"ref": "h2", "host_id": "h2", "hostname": "node-2", "held_before": True},
        {"ref": "node-3", "host_id": "h3", "hostname": "node-3", "held_before": False},
    ]
    assert resmgr.events == [("LIST", "*")]
    assert (outs["region"], outs["hosts"]) == ("RegionOne", ["node-1", "h2", "node-3"])


def test_baseline_of_an_unknown_host_names_it_and_the_known_ones(resmgr: FakeResmgr) -> None:
    with pytest.raises(HostNotFound) as caught:
        record_baseline(["node-1", "node-9"])
    text = str(caught.value)
    assert "'node-9'" in text and "node-1, node-2, node-3" in text
    assert resmgr.writes() == []


def test_baseline_update_keeps_what_it_recorded_records_new_hosts_and_forgets_dropped_ones(
    resmgr: FakeResmgr,
) -> None:
    first = record_baseline(["node-1", "node-2"])
    # This stack assigned node-1 since; node-3 was given the role by someone else before it is named.
    resmgr.hosts["h1"].assigned = resmgr.hosts["h3"].assigned = True
    second = record_baseline(["h1", "node-3"], previous=first)
    assert second["entries"] == [
        {"ref": "h1", "host_id": "h1", "hostname": "node-1", "held_before": False},
        {"ref": "node-3", "host_id": "h3", "hostname": "node-3", "held_before": True},
    ]
    # node-2 was forgotten: named again later, it is recorded as it is then.
    resmgr.hosts["h2"].assigned = True
    third = record_baseline(["h1", "node-3", "node-2"], previous=second)
    assert third["entries"][2]["held_before"] is True


def test_baseline_diff_ignores_order_and_updates_a_respelt_host_in_place() -> None:
    provider = baseline_provider()
    olds = {"region": "RegionOne", "hosts": ["node-1", "node-2"], "entries": [], "__provider": "old"}
    reordered = provider.diff("b", olds, {"region": "RegionOne", "hosts": ["node-2", "node-1"],
                                          "__provider": "new"})
    assert reordered.changes is False
    respelt = provider.diff("b", olds, {"region": "RegionOne", "hosts": ["h1", "node-2"]})
    assert (respelt.changes, respelt.replaces) == (True, [])
    unknown = provider.diff("b", olds, {"region": "RegionOne", "hosts": Unknown()})
    assert (unknown.changes, unknown.replaces) == (True, [])


def test_baseline_read_and_delete_touch_nothing(resmgr: FakeResmgr, m: requests_mock.Mocker) -> None:
    outs = record_baseline(["node-1"])
    before = m.call_count
    provider = baseline_provider()
    assert provider.read("b", outs).outs == outs
    provider.delete("b", outs)
    assert m.call_count == before


# --- roles: diff --------------------------------------------------------------------------------------


def test_roles_diff_of_unchanged_inputs_is_no_change_even_with_a_new_provider_blob(
    resmgr: FakeResmgr,
) -> None:
    baseline, outs = converged(["node-1", "node-2"], resmgr)
    news = {**roles_inputs(["node-1", "node-2"], baseline), "__provider": "new-blob"}
    result = roles_provider().diff("r", {**outs, "__provider": "old-blob"}, news)
    assert result.changes is False and result.replaces == []


@pytest.mark.parametrize("refs", [["h1", "node-2"], ["node-2", "node-1"], ["h2", "h1"]],
                         ids=["respelt-by-id", "reordered", "both"])
def test_roles_diff_of_a_respelt_or_reordered_host_set_is_no_change(
    resmgr: FakeResmgr, refs: list[str],
) -> None:
    baseline, outs = converged(["node-1", "node-2"], resmgr)
    assert baseline_provider().diff("b", baseline, {"region": "RegionOne", "hosts": refs}).replaces == []
    new_baseline = record_baseline(refs, previous=baseline)
    result = roles_provider().diff("r", outs, roles_inputs(refs, new_baseline))
    assert (result.changes, result.replaces) == (False, [])


def test_roles_diff_of_another_host_is_an_update_never_a_replace(resmgr: FakeResmgr) -> None:
    baseline, outs = converged(["node-1", "node-2"], resmgr)
    new_baseline = record_baseline(["node-1", "node-3"], previous=baseline)
    result = roles_provider().diff("r", outs, roles_inputs(["node-1", "node-3"], new_baseline))
    assert (result.changes, result.replaces, result.delete_before_replace) == (True, [], False)


def test_roles_diff_of_a_timing_change_is_an_update(resmgr: FakeResmgr) -> None:
    baseline, outs = converged(["node-1"], resmgr)
    result = roles_provider().diff("r", outs, roles_inputs(["node-1"], baseline, converge_timeout=60))
    assert (result.changes, result.replaces) == (True, [])
    assert "converge_timeout" not in result.stables
    # The same numbers as doubles are no change.
    doubles = {k: float(v) for k, v in FAST.items()}
    assert roles_provider().diff("r", outs, roles_inputs(["node-1"], baseline, **doubles)).changes is False


def test_roles_diff_of_a_baseline_unknown_at_preview_is_a_change(resmgr: FakeResmgr) -> None:
    baseline, outs = converged(["node-1"], resmgr)
    news = {**roles_inputs(["node-1"], baseline), "baseline": Unknown()}
    result = roles_provider().diff("r", outs, news)
    assert (result.changes, result.replaces) == (True, [])


def test_roles_diff_with_no_expected_region_is_no_change_once_converged(resmgr: FakeResmgr) -> None:
    """``expected_region`` is optional: a converged set must not show a change on every ``up``."""
    baseline = record_baseline(["node-1"])
    inputs = roles_inputs(["node-1"], baseline, expected_region=None)
    outs = roles_provider().create(inputs).outs
    assert roles_provider().diff("r", outs, inputs).changes is False


def test_a_member_read_without_its_role_is_a_change_and_update_assigns_it_again(resmgr: FakeResmgr) -> None:
    baseline, outs = converged(["node-1", "node-2"], resmgr)
    resmgr.hosts["h2"].assigned = False  # removed out of band
    read = roles_provider().read("r", outs)
    assert read.id == "r"
    assert {m["host_id"]: m["assigned"] for m in read.outs["members"]} == {"h1": True, "h2": False}
    inputs = roles_inputs(["node-1", "node-2"], baseline)
    result = roles_provider().diff("r", read.outs, inputs)
    assert (result.changes, result.replaces) == (True, [])
    before = len(resmgr.writes())
    updated = roles_provider().update("r", read.outs, inputs).outs
    assert resmgr.writes()[before:] == [("PUT", "h2")]
    assert all(m["assigned"] for m in updated["members"]) and resmgr.held() == {"h1", "h2"}
    assert roles_provider().diff("r", updated, inputs).changes is False


def test_read_reports_each_members_live_state(resmgr: FakeResmgr, m: requests_mock.Mocker) -> None:
    _, outs = converged(["node-1", "node-2"], resmgr)
    resmgr.hosts["h1"].polls_left = 5  # converging again
    del resmgr.hosts["h2"]  # and h2 answers 404
    read = roles_provider().read("r", outs)
    live = members_by_id(read.outs)
    assert (live["h1"]["role_status"], live["h1"]["glance_role_state"], live["h1"]["assigned"]) == (
        "converging", "pre-auth", True)
    assert live["h2"]["assigned"] is False
    assert owned(read.outs) == owned(outs)
    assert sorted(resmgr.writes()) == [("PUT", "h1"), ("PUT", "h2")]  # read writes nothing


def test_read_without_expected_region_asks_the_resmgr_of_the_clouds_region(m: requests_mock.Mocker) -> None:
    """``expected_region`` is optional: create, update and delete then use the cloud's region, and so
    must read, or a refresh asks another region's resmgr and reports every role gone."""
    other = "http://mgmt-r2.test/resmgr"
    m.post(f"{AUTH_URL}/auth/tokens", status_code=201, headers={"X-Subject-Token": "t"}, json=token_body([
        {"type": "resmgr", "id": "s1", "endpoints": [catalog_endpoint(other, "RegionTwo"),
                                                     catalog_endpoint(RESMGR, "RegionOne")]},
    ]))
    fake = FakeResmgr(hosts(("h1", "node-1")))
    fake.install(m)
    fake.hosts["h1"].assigned = True
    m.get(re.compile(rf"{other}/"), status_code=404)
    outs = {"hosts": host_entries(["node-1"]), "baseline": [], "expected_region": None, **FAST,
            "members": [{"ref": "node-1", "host_id": "h1", "hostname": "node-1", "owned": True,
                         "assigned": True}], "host_ids": ["h1"]}
    read = roles_provider().read("r", outs)
    assert [mem["assigned"] for mem in read.outs["members"]] == [True]


# --- roles: create -----------------------------------------------------------------------------------


def test_create_assigns_missing_roles_concurrently_and_adopts_existing_ones(resmgr: FakeResmgr) -> None:
    resmgr.hosts["h3"].assigned, resmgr.hosts["h3"].polls_left = True, 0  # someone else's, converged
    # Each of node-1 and node-2 converges only once the other was assigned: one at a time, neither would.
    resmgr.hosts["h1"].waits_for, resmgr.hosts["h2"].waits_for = "h2", "h1"
    _, outs = converged(["node-1", "node-2", "node-3"], resmgr)
    assert sorted(resmgr.writes()) == [("PUT", "h1"), ("PUT", "h2")]
    assert owned(outs) == {"h1": True, "h2": True, "h3": False}
    assert outs["host_ids"] == ["h1", "h2", "h3"]
    for host_id, member in members_by_id(outs).items():
        n = resmgr.hosts[host_id].n
        state = (member["role_status"], member["glance_role_state"], member["assigned"])
        assert state == ("ok", "applied", True)
        assert member["endpoint"] == endpoint_url(n)
        assert member["hostname"] == f"node-{n}" and member["ref"] == f"node-{n}"
    assert resmgr.held() == {"h1", "h2", "h3"}


def test_a_role_found_on_a_host_that_did_not_hold_it_before_is_owned(resmgr: FakeResmgr) -> None:
    """Owned is false only for a host the baseline saw holding the role."""
    baseline = record_baseline(["node-1", "node-2"])
    resmgr.hosts["h1"].assigned = resmgr.hosts["h2"].assigned = True  # after the baseline was recorded
    outs = roles_provider().create(roles_inputs(["node-1", "node-2"], baseline)).outs
    assert resmgr.writes() == []
    assert owned(outs) == {"h1": True, "h2": True}


def test_a_role_this_stack_assigns_is_owned_even_where_one_was_held_before(resmgr: FakeResmgr) -> None:
    """The baseline saw node-1 holding the role; it was removed before the roles ran, so this stack
    assigns it: that role is this stack's, and destroy must remove it."""
    resmgr.hosts["h1"].assigned = True
    baseline = record_baseline(["node-1"])
    resmgr.hosts["h1"].assigned = False
    outs = roles_provider().create(roles_inputs(["node-1"], baseline)).outs
    assert resmgr.writes() == [("PUT", "h1")]
    assert owned(outs) == {"h1": True}


def test_an_already_converged_host_costs_no_wait(resmgr: FakeResmgr, m: requests_mock.Mocker) -> None:
    resmgr.hosts["h1"].assigned, resmgr.hosts["h1"].polls_left = True, 0
    baseline = record_baseline(["node-1"])
    inputs = roles_inputs(["node-1"], baseline, poll_interval=30, converge_timeout=600)
    started = time.monotonic()
    outs = roles_provider().create(inputs).outs
    assert time.monotonic() - started < 10  # one poll interval would be 30 s
    reads = [r for r in m.request_history if r.method == "GET" and r.path.endswith("/v1/hosts/h1")]
    assert 1 <= len(reads) <= 2
    assert resmgr.writes() == [] and owned(outs) == {"h1": False}


def test_a_host_whose_last_role_was_just_removed_is_assigned_not_reported_gone(resmgr: FakeResmgr) -> None:
    """PCD answers 404 to the per-host GET for minutes after a host's last role goes, while the host
    listing shows it: a run in that window (an engine retry after a withdrawn assignment, a destroy and
    up) must assign the role, not fail with "no longer known to resmgr"."""
    baseline = record_baseline(["node-1"])
    resmgr.hosts["h1"].gone_gets = 3
    outs = roles_provider().create(roles_inputs(["node-1"], baseline)).outs
    assert resmgr.writes() == [("PUT", "h1")]
    assert owned(outs) == {"h1": True} and resmgr.held() == {"h1"}


def test_create_retries_conflicts_and_finds_each_hosts_endpoint(resmgr: FakeResmgr) -> None:
    resmgr.hosts["h1"].conflicts = 2
    resmgr.hosts["h2"].polls_to_converge = 3
    _, outs = converged(["node-1", "node-2"], resmgr)
    assert sorted(resmgr.writes()) == [("PUT", "h1"), ("PUT", "h2")]
    assert [m["endpoint"] for m in outs["members"]] == [endpoint_url(1), endpoint_url(2)]


def test_a_host_that_fails_is_named_in_one_error_withdrawn_and_the_others_converge(
    resmgr: FakeResmgr,
) -> None:
    resmgr.hosts["h2"].fail = "mount /var/opt/imagelibrary/data: no such device"
    baseline = record_baseline(["node-1", "node-2", "node-3"])
    with pytest.raises(PcdError) as caught:
        roles_provider().create(roles_inputs(["node-1", "node-2", "node-3"], baseline))
    text = str(caught.value)
    assert "1 of 3 hosts" in text
    assert "node-2 (h2)" in text and "no such device" in text
    assert "node-1" not in text and "node-3" not in text
    assert PASSWORD not in text
    assert resmgr.writes("h2") == [("PUT", "h2"), ("DELETE", "h2")]
    assert resmgr.held() == {"h1", "h3"}
    assert ("APPLIED", "h1") in resmgr.events and ("APPLIED", "h3") in resmgr.events


def test_the_error_of_a_failed_host_says_its_assignment_was_withdrawn(resmgr: FakeResmgr) -> None:
    resmgr.hosts["h1"].fail = "no such device"
    baseline = record_baseline(["node-1"])
    with pytest.raises(PcdError) as caught:
        roles_provider().create(roles_inputs(["node-1"], baseline))
    assert "withdrawn" in error_text(caught.value)


def test_the_error_says_when_a_failed_hosts_assignment_could_not_be_withdrawn(
    resmgr: FakeResmgr, m: requests_mock.Mocker,
) -> None:
    resmgr.hosts["h1"].fail = "no such device"
    m.delete(re.compile(rf"{RESMGR}/v2/hosts/h1/roles/image-library$"), status_code=500)
    baseline = record_baseline(["node-1"])
    with pytest.raises(PcdError) as caught:
        roles_provider().create(roles_inputs(["node-1"], baseline))
    text = error_text(caught.value)
    assert "could not be withdrawn" in text and "PCD UI" in text


def test_create_refuses_a_host_of_another_region_and_touches_nothing(resmgr: FakeResmgr) -> None:
    resmgr.hosts["h1"].region = "RegionTwo"
    baseline = record_baseline(["node-1"])
    with pytest.raises(PcdError) as caught:
        roles_provider().create(roles_inputs(["node-1"], baseline))
    assert "in region 'RegionTwo', but is configured for region 'RegionOne'" in str(caught.value)
    assert resmgr.writes() == []


def test_a_mount_path_mismatch_withdraws_an_assigned_role_but_never_an_adopted_one(
    resmgr: FakeResmgr,
) -> None:
    resmgr.hosts["h1"].datadir = resmgr.hosts["h2"].datadir = "/srv/x"
    resmgr.hosts["h2"].assigned, resmgr.hosts["h2"].polls_left = True, 0  # someone else's
    baseline = record_baseline(["node-1", "node-2"])
    inputs = roles_inputs(["node-1", "node-2"], baseline)
    inputs["hosts"] = host_entries(["node-1", "node-2"], mount=MOUNT)
    with pytest.raises(PcdError) as caught:
        roles_provider().create(inputs)
    text = str(caught.value)
    assert "2 of 2 hosts" in text and "'/srv/x'" in text and f"'{MOUNT}'" in text
    assert resmgr.writes() == [("PUT", "h1"), ("DELETE", "h1")]
    assert resmgr.held() == {"h2"}


# --- roles: update and delete --------------------------------------------------------------------------


def test_update_converges_an_added_host_before_removing_a_dropped_owned_one(resmgr: FakeResmgr) -> None:
    baseline, outs = converged(["node-1", "node-2"], resmgr)
    resmgr.hosts["h3"].polls_to_converge = 3
    new_baseline = record_baseline(["node-1", "node-3"], previous=baseline)
    updated = roles_provider().update("r", outs, roles_inputs(["node-1", "node-3"], new_baseline)).outs
    assert resmgr.index(("APPLIED", "h3")) < resmgr.index(("DELETE", "h2"))
    assert resmgr.writes("h1") == [("PUT", "h1")]  # converged already: not written again
    assert resmgr.held() == {"h1", "h3"}
    assert owned(updated) == {"h1": True, "h3": True} and updated["host_ids"] == ["h1", "h3"]


def test_update_leaves_a_dropped_adopted_host_in_place(resmgr: FakeResmgr) -> None:
    resmgr.hosts["h2"].assigned, resmgr.hosts["h2"].polls_left = True, 0
    baseline, outs = converged(["node-1", "node-2"], resmgr)
    assert owned(outs) == {"h1": True, "h2": False}
    new_baseline = record_baseline(["node-1"], previous=baseline)
    updated = roles_provider().update("r", outs, roles_inputs(["node-1"], new_baseline)).outs
    assert resmgr.writes() == [("PUT", "h1")]
    assert resmgr.held() == {"h1", "h2"} and owned(updated) == {"h1": True}


def test_update_returns_the_full_outputs_with_the_new_timing(resmgr: FakeResmgr) -> None:
    baseline, outs = converged(["node-1"], resmgr)
    updated = roles_provider().update("r", outs, roles_inputs(["node-1"], baseline, converge_timeout=60)).outs
    assert updated["converge_timeout"] == 60
    assert set(updated) >= {"hosts", "baseline", "expected_region", "members", "host_ids", *TIMING}
    assert members_by_id(updated)["h1"]["owned"] is True


def test_a_role_that_update_assigns_again_is_owned(resmgr: FakeResmgr) -> None:
    """An adopted role removed out of band and assigned again by this stack is this stack's now."""
    resmgr.hosts["h1"].assigned, resmgr.hosts["h1"].polls_left = True, 0
    baseline, outs = converged(["node-1"], resmgr)
    assert owned(outs) == {"h1": False}
    resmgr.hosts["h1"].assigned = False
    read = roles_provider().read("r", outs).outs
    updated = roles_provider().update("r", read, roles_inputs(["node-1"], baseline)).outs
    assert resmgr.writes() == [("PUT", "h1")]
    assert owned(updated) == {"h1": True}


def test_delete_removes_only_owned_roles_and_waits(resmgr: FakeResmgr) -> None:
    resmgr.hosts["h3"].assigned, resmgr.hosts["h3"].polls_left = True, 0
    _, outs = converged(["node-1", "node-2", "node-3"], resmgr)
    resmgr.hosts["h2"].assigned = False  # already gone: nothing to remove
    roles_provider().delete("r", outs)
    assert sorted(resmgr.writes()[:2]) == [("PUT", "h1"), ("PUT", "h2")]
    assert resmgr.writes()[2:] == [("DELETE", "h1")]
    assert resmgr.held() == {"h3"}


def test_interrupted_run_roles_are_known_as_this_stacks_and_destroy_removes_them(resmgr: FakeResmgr) -> None:
    """Baseline recorded, then the roles' create assigns node-1 and fails on node-2: the engine records
    no roles resource. The next create finds node-1 holding the role; the baseline says it did not before,
    so it is this stack's, and destroy removes it."""
    refs = ["node-1", "node-2"]
    baseline = record_baseline(refs)
    assert [e["held_before"] for e in baseline["entries"]] == [False, False]
    resmgr.hosts["h2"].fail = "mount.nfs: access denied"
    with pytest.raises(PcdError, match="node-2"):
        roles_provider().create(roles_inputs(refs, baseline))
    assert resmgr.held() == {"h1"}

    resmgr.hosts["h2"].fail = None  # fixed; the engine retries the create
    outs = roles_provider().create(roles_inputs(refs, baseline)).outs
    assert resmgr.writes("h1") == [("PUT", "h1")]  # found assigned: not written again
    assert owned(outs) == {"h1": True, "h2": True}

    roles_provider().delete("r", outs)
    assert resmgr.held() == set()
    assert resmgr.writes("h1") == [("PUT", "h1"), ("DELETE", "h1")]


def test_the_legacy_per_host_role_delete_removes_nothing(resmgr: FakeResmgr, m: requests_mock.Mocker) -> None:
    resmgr.hosts["h1"].assigned = True
    legacy = configured(ImageLibraryRoleProvider(), CLOUD)
    state = {"cloud": CLOUD, "provider_version": "1", "host": "node-1", "host_id": "h1", "hostname": "node-1",
             "adopted": False}
    legacy.delete("h1", state)
    assert m.call_count == 0 and resmgr.held() == {"h1"}
    assert legacy.read("h1", state).outs == state
    assert [f.property for f in legacy.check({}, {"host": "node-1"}).failures] == ["host"]


# --- credentials ----------------------------------------------------------------------------------------


def rejected(m: requests_mock.Mocker) -> None:
    m.post(f"{AUTH_URL}/auth/tokens", status_code=401, json={"error": {"code": 401, "title": "Unauthorized"}})


def assert_names_the_config_key(exc: BaseException) -> None:
    text = error_text(exc)
    assert "rejected the credentials in pcd-imagelib-ha:cloud" in text and AUTH_URL in text
    assert PASSWORD not in text


def test_rejected_credentials_at_baseline_name_the_config_key(
    resmgr: FakeResmgr, m: requests_mock.Mocker,
) -> None:
    rejected(m)
    with pytest.raises(PcdError) as caught:
        record_baseline(["node-1"])
    assert_names_the_config_key(caught.value)


def test_rejected_credentials_at_roles_create_name_the_config_key(
    resmgr: FakeResmgr, m: requests_mock.Mocker,
) -> None:
    baseline = record_baseline(["node-1", "node-2"])
    rejected(m)
    with pytest.raises(PcdError) as caught:
        roles_provider().create(roles_inputs(["node-1", "node-2"], baseline))
    assert_names_the_config_key(caught.value)
    assert resmgr.writes() == []


def test_rejected_credentials_at_roles_delete_name_the_config_key(
    resmgr: FakeResmgr, m: requests_mock.Mocker,
) -> None:
    _, outs = converged(["node-1"], resmgr)
    rejected(m)
    with pytest.raises(PcdError) as caught:
        roles_provider().delete("r", outs)
    assert_names_the_config_key(caught.value)
    assert resmgr.held() == {"h1"}


def test_rejected_credentials_at_roles_read_name_the_config_key(
    resmgr: FakeResmgr, m: requests_mock.Mocker,
) -> None:
    _, outs = converged(["node-1"], resmgr)
    rejected(m)
    with pytest.raises(PcdError) as caught:
        roles_provider().read("r", outs)
    assert_names_the_config_key(caught.value)


def test_a_403_is_not_reported_as_rejected_credentials(resmgr: FakeResmgr, m: requests_mock.Mocker) -> None:
    baseline = record_baseline(["node-1"])
    m.get(re.compile(rf"{RESMGR}/v1/hosts/h1$"), status_code=403, text='{"error": "admin role required"}')
    with pytest.raises(PcdError) as caught:
        roles_provider().create(roles_inputs(["node-1"], baseline))
    text = error_text(caught.value)
    assert "403" in text and "rejected the credentials" not in text
    assert PASSWORD not in text


# --- endpoint matching, pickling ------------------------------------------------------------------------


def test_endpoint_matching_rules() -> None:
    eps = [endpoint_url(1), endpoint_url(2), "http://127.0.0.1:9001", "http://127.0.0.1:9002"]
    assert match_host_endpoint(eps, endpoint_address="http://127.0.0.1:9002/", ip_address=None) == eps[3]
    assert match_host_endpoint(eps, endpoint_address="10.0.0.12", ip_address=None) == eps[1]
    assert match_host_endpoint(eps, endpoint_address=None, ip_address="10.0.0.11") == eps[0]
    # every lab host is 127.0.0.1: the IP alone cannot tell them apart
    assert match_host_endpoint(eps, endpoint_address=None, ip_address="127.0.0.1") is None
    assert match_host_endpoint(eps, endpoint_address=None, ip_address=None) is None


@pytest.mark.parametrize(
    "provider_class", [ImageLibraryRolesProvider, ImageLibraryRoleBaselineProvider, ImageLibraryRoleProvider]
)
def test_provider_pickles_by_reference_and_holds_nothing_but_the_access(provider_class: Any) -> None:
    fresh = provider_class()
    assert vars(fresh) == {}
    blob = serialize_provider(fresh)
    assert len(blob) < 400, "pickled by value: the provider process would not run the checked-out code"
    assert isinstance(pickle.loads(pickle.dumps(fresh)), provider_class)
    configured_one = configured(provider_class(), CLOUD)
    assert set(vars(configured_one)) == {"_access", "_access_problem"}
    assert PASSWORD not in repr(vars(configured_one))
