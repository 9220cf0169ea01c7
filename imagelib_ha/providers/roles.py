"""``ImageLibraryRoles``: the image-library role on the configured set of PCD hosts, as one resource.

One resource for the whole set, named after the deployment, not one per host named after how the host
is spelt: a host named by its resmgr id instead of its hostname, or hosts listed in another order, must
not change a URN (a URN change is a create plus a delete of the "old" resource at the end of the
deployment, which removed the very role the new one had just adopted).

Ownership: resmgr keeps no owner on a role. Each member records ``owned`` -- true when this stack
assigned the role. A host first seen already holding it is this stack's only if it did not hold it
before the stack named it (``ImageLibraryRoleBaseline``, recorded before any assignment, tells an
interrupted run of this stack from someone else's role). ``delete`` and removing a host from the config
remove only owned roles. Another stack or a person assigning the same host is not detected: the first
to assign owns it, the other adopts it (see docs/invariants.md).

Lifecycle:

* ``check`` validates the inputs (numbers arrive as doubles; unknowns at preview pass).
* ``diff`` compares hosts by resmgr id and what is expected of each; timing inputs update in place;
  nothing replaces. A member that ``read`` found without its role is a change, so the next ``up``
  re-assigns it.
* ``create`` / ``update`` first converge every wanted host (assign where missing; an already converged
  host costs a few GETs, no wait), concurrently, then remove the owned roles of hosts no longer wanted, so
  capacity never drops during a change.
* ``read`` reports each member's live role state; ``delete`` removes the owned roles and waits.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from keystoneauth1 import exceptions as ks_exc
from pulumi import Output
from pulumi.dynamic import CheckFailure, CheckResult, CreateResult, DiffResult, ReadResult, UpdateResult

from imagelib_ha.client.errors import PcdError
from imagelib_ha.client.resmgr import ResmgrClient
from imagelib_ha.client.roles import RoleProgress, RoleWaiter, WaitPolicy
from imagelib_ha.providers.access import CloudConfiguredProvider
from imagelib_ha.providers.common import (
    SeededResource,
    contains_unknown,
    diff_inputs,
    fill_defaults,
    is_unknown,
)
from imagelib_ha.providers.role_host import (
    add_endpoints,
    converge_host,
    host_expectation_failures,
    number_failures,
)

LOG = logging.getLogger(__name__)

INPUT_DEFAULTS: dict[str, Any] = {
    "expected_region": None,
    "converge_timeout": 1800,
    "failed_grace": 120,
    "conflict_timeout": 600,
    "poll_interval": 5,
}
INPUT_KEYS = ("hosts", "baseline", *INPUT_DEFAULTS)
OUTPUT_KEYS = ("members", "host_ids")
TIMING_INPUTS = ("converge_timeout", "failed_grace", "conflict_timeout", "poll_interval")
# Hosts converge concurrently: on PCD each takes minutes, and they do not depend on each other.
MAX_PARALLEL_HOSTS = 8

T = TypeVar("T")


def _inputs(props: Mapping[str, Any]) -> dict[str, Any]:
    return fill_defaults({k: props.get(k) for k in INPUT_KEYS}, INPUT_DEFAULTS)


def _policy(inputs: Mapping[str, Any]) -> WaitPolicy:
    return WaitPolicy(**{key: float(inputs[key]) for key in TIMING_INPUTS})


def _log_progress(progress: RoleProgress) -> None:
    LOG.info("%s", progress)


def wanted_hosts(inputs: Mapping[str, Any]) -> list[dict[str, Any]]:
    """``{host_id, ref, hostname, held_before, region, mount_path}`` per wanted host, in config order.

    The baseline resolved each reference to a host id; the expectations (region, mount path) come from
    the configured host entry with the same reference.
    """
    expectations = {
        h.get("host"): h for h in (inputs.get("hosts") or []) if isinstance(h, Mapping)
    }
    wanted: dict[str, dict[str, Any]] = {}
    for entry in inputs.get("baseline") or []:
        expected = expectations.get(entry.get("ref")) or {}
        wanted.setdefault(str(entry["host_id"]), {
            "host_id": str(entry["host_id"]),
            "ref": entry.get("ref"),
            "hostname": entry.get("hostname"),
            "held_before": bool(entry.get("held_before")),
            "region": expected.get("region") or inputs.get("expected_region"),
            "mount_path": expected.get("mount_path"),
        })
    return list(wanted.values())


def _comparable(members: Sequence[Mapping[str, Any]]) -> list[tuple[Any, ...]]:
    """What makes the set of members what it is: host ids and what is expected of each, order ignored.

    Wanted hosts carry the expectation as ``region``; stored members as ``expected_region`` (their
    ``region`` is what resmgr reported).
    """
    return sorted(
        (str(m.get("host_id")), m.get("expected_region", m.get("region")) or None,
         m.get("mount_path") or None)
        for m in members
    )


def _run_all(items: Sequence[T], work: Callable[[T], Any], what: str) -> list[Any]:
    """``work`` on every item concurrently; one error naming every item that failed."""
    if not items:
        return []
    with ThreadPoolExecutor(max_workers=min(MAX_PARALLEL_HOSTS, len(items))) as pool:
        futures = [pool.submit(work, item) for item in items]
    results, problems = [], []
    for future in futures:
        try:
            results.append(future.result())
        except ks_exc.Unauthorized:
            raise  # the credentials, not a host: cloud_errors_explained names the config key
        except (PcdError, ks_exc.ClientException) as exc:
            problems.append("\n    ".join([str(exc), *getattr(exc, "__notes__", [])]))
    if problems:
        listed = "\n  - ".join(problems)
        raise PcdError(f"{what} failed on {len(problems)} of {len(items)} hosts:\n  - {listed}")
    return results


class ImageLibraryRolesProvider(CloudConfiguredProvider):
    """Assigns, adopts, reads and removes the ``image-library`` role on a set of hosts through resmgr."""

    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        inputs = _inputs(news)
        failures = self.cloud_failures()
        hosts = inputs["hosts"]
        if not contains_unknown(hosts):
            failures += host_expectation_failures(hosts)
        baseline = inputs["baseline"]
        if not contains_unknown(baseline) and baseline is not None and not (
            isinstance(baseline, list) and all(isinstance(e, Mapping) and e.get("host_id") for e in baseline)
        ):
            failures.append(
                CheckFailure("baseline", "must be the entries output of ImageLibraryRoleBaseline")
            )
        region = inputs["expected_region"]
        if region is not None and not is_unknown(region) and not (isinstance(region, str) and region):
            failures.append(CheckFailure("expected_region", "must be a region name or null"))
        failures += number_failures(inputs, TIMING_INPUTS, minimum_zero=("failed_grace",))
        return CheckResult(inputs, failures)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        old_members = olds.get("members") or []
        old = {k: olds.get(k) for k in TIMING_INPUTS}
        new = {k: news.get(k) for k in TIMING_INPUTS}
        old["members"] = _comparable(old_members)
        baseline = news.get("baseline")
        new["members"] = baseline if contains_unknown(baseline) else _comparable(wanted_hosts(news))
        # A member refresh found without its role: the next up must assign it again.
        old["assigned"] = all(m.get("assigned", True) for m in old_members)
        new["assigned"] = True
        return diff_inputs(fill_defaults(old, INPUT_DEFAULTS), new, stored=olds)

    def create(self, props: dict[str, Any]) -> CreateResult:
        inputs = _inputs(props)
        members = self._converge(inputs, previous={})
        return CreateResult(id_=f"imagelib-roles-{inputs['expected_region'] or 'region'}",
                            outs=self._outputs(inputs, members))

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        inputs = _inputs(news)
        previous = {str(m["host_id"]): m for m in olds.get("members") or [] if m.get("host_id")}
        members = self._converge(inputs, previous=previous)
        wanted = {m["host_id"] for m in members}
        leaving = [m for hid, m in previous.items() if hid not in wanted]
        self._remove_owned(inputs, leaving)
        return UpdateResult(outs=self._outputs(inputs, members))

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        client = self._client(props)
        members = []
        with self.cloud_errors_explained():
            for member in props.get("members") or []:
                host = client.get_host(str(member["host_id"]))
                live = dict(member)
                live["assigned"] = bool(host is not None and host.has_image_library)
                if host is not None:
                    live.update(role_status=host.role_status, glance_role_state=host.glance_role_state)
                members.append(live)
        return ReadResult(id_=id_, outs={**props, "members": members})

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        inputs = _inputs(props)
        self._remove_owned(inputs, list(props.get("members") or []))

    # --- steps -----------------------------------------------------------------------------------
    @staticmethod
    def _region(inputs: Mapping[str, Any]) -> str:
        return str(inputs.get("expected_region") or "")

    def _client(self, inputs: Mapping[str, Any]) -> ResmgrClient:
        return ResmgrClient(self.session(), region=self._region(inputs) or self.access.region)

    def _converge(self, inputs: Mapping[str, Any], *, previous: Mapping[str, Mapping[str, Any]]
                  ) -> list[dict[str, Any]]:
        client = self._client(inputs)
        waiter = RoleWaiter(client, _policy(inputs), progress=_log_progress)

        def one(want: dict[str, Any]) -> dict[str, Any]:
            before = previous.get(want["host_id"])
            # Ours if we recorded it so, or if the host did not hold the role before the stack named it.
            owned = bool(before["owned"]) if before is not None else not want["held_before"]
            return converge_host(client, waiter, want, owned=owned)

        with self.cloud_errors_explained():
            members = _run_all(wanted_hosts(inputs), one, "assigning the image-library role")
            add_endpoints(client, members)
        return members

    def _remove_owned(self, inputs: Mapping[str, Any], members: Sequence[Mapping[str, Any]]) -> None:
        for member in members:
            if not member.get("owned"):
                LOG.info("image-library role on %s was not assigned by this stack: left in place",
                         member.get("hostname") or member.get("host_id"))
        owned = [m for m in members if m.get("owned")]
        if not owned:
            return
        client = self._client(inputs)
        waiter = RoleWaiter(client, _policy(inputs), progress=_log_progress)

        def remove(member: Mapping[str, Any]) -> None:
            host = client.get_host(str(member["host_id"]))
            if host is not None and host.has_image_library:
                waiter.remove_and_wait(host.id, host.hostname)

        with self.cloud_errors_explained():
            _run_all(owned, remove, "removing the image-library role")

    @staticmethod
    def _outputs(inputs: Mapping[str, Any], members: list[dict[str, Any]]) -> dict[str, Any]:
        return {**inputs, "members": members, "host_ids": [m["host_id"] for m in members]}


class ImageLibraryRoles(SeededResource, module="imagelib", name="ImageLibraryRoles"):
    """The ``image-library`` role (resmgr v2 cluster role) on every configured host of one region.

    ``members``: per host ``{ref, host_id, hostname, region, role_status, glance_role_state, endpoint,
    owned, assigned}``; ``host_ids`` in config order. Roles this stack did not assign are adopted and left
    in place on delete.
    """

    members: Output[list[dict[str, Any]]]
    host_ids: Output[list[str]]

    provider_class = ImageLibraryRolesProvider
    output_keys = OUTPUT_KEYS
