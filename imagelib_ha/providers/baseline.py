"""``ImageLibraryRoleBaseline``: which configured hosts held the image-library role before this stack.

resmgr records no owner on a role, so "did this stack assign it?" cannot be read back later. A role found
assigned when the roles resource runs could be someone else's (adopt it, leave it on destroy) or this
stack's own, assigned by a run that was interrupted before the engine recorded it (then destroy must
remove it, or it leaks). This resource tells the two apart: it records, for each host the first time the
stack config names it, whether the host held the role *then*. The roles resource depends on it, so the
engine has recorded the baseline before any assignment can happen; an interrupted run leaves the
baseline in state, and the next run sees a host that did not hold the role before as this stack's.

Lifecycle:

* ``check`` validates the host references (unknowns at preview pass).
* ``diff``: the set of references (order ignored) or the region; never a replacement. A re-spelt host
  (hostname <-> id) is an update that resolves to the same host id and keeps what was recorded for it.
* ``create`` / ``update`` resolve every reference with one host listing; a host seen before keeps its
  recorded ``held_before``, a new one is recorded now; hosts no longer configured are forgotten.
* ``read`` changes nothing (a baseline is history, not live state); ``delete`` has nothing to delete.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pulumi import Output
from pulumi.dynamic import CheckFailure, CheckResult, CreateResult, DiffResult, ReadResult, UpdateResult

from imagelib_ha.client.resmgr import ResmgrClient
from imagelib_ha.providers.access import CloudConfiguredProvider
from imagelib_ha.providers.common import SeededResource, contains_unknown, diff_inputs, is_unknown

INPUT_KEYS = ("region", "hosts")
OUTPUT_KEYS = ("entries",)


def _refs(value: Any) -> list[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


class ImageLibraryRoleBaselineProvider(CloudConfiguredProvider):
    """Resolves host references and records whether each host held the role before this stack."""

    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        inputs = {k: news.get(k) for k in INPUT_KEYS}
        failures = self.cloud_failures()
        region, hosts = inputs["region"], inputs["hosts"]
        if not is_unknown(region) and not (isinstance(region, str) and region):
            failures.append(CheckFailure("region", "must be the region name (pcd-imagelib-ha:cloud.region)"))
        if not contains_unknown(hosts) and not (
            isinstance(hosts, list) and hosts and all(isinstance(h, str) and h.strip() for h in hosts)
        ):
            failures.append(CheckFailure(
                "hosts", "must be a non-empty list of resmgr host ids or hostnames (pcd-imagelib-ha:hosts)"
            ))
        return CheckResult(inputs, failures)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        old = {"region": olds.get("region"), "hosts": sorted(_refs(olds.get("hosts")))}
        new_hosts = news.get("hosts")
        new = {
            "region": news.get("region"),
            "hosts": new_hosts if contains_unknown(new_hosts) else sorted(_refs(new_hosts)),
        }
        return diff_inputs(old, new, stored=olds)

    def create(self, props: dict[str, Any]) -> CreateResult:
        inputs = {k: props.get(k) for k in INPUT_KEYS}
        outs = {**inputs, "entries": self._record(inputs, previous=[])}
        return CreateResult(id_=f"imagelib-role-baseline-{inputs['region']}", outs=outs)

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        inputs = {k: news.get(k) for k in INPUT_KEYS}
        previous = olds.get("entries") or []
        return UpdateResult(outs={**inputs, "entries": self._record(inputs, previous=previous)})

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        return ReadResult(id_=id_, outs=dict(props))

    def delete(self, _id: str, _props: dict[str, Any]) -> None:
        """A record of the past: nothing to delete."""

    def _record(self, inputs: Mapping[str, Any], *, previous: list[Any]) -> list[dict[str, Any]]:
        known = {e["host_id"]: e for e in previous if isinstance(e, Mapping) and e.get("host_id")}
        client = ResmgrClient(self.session(), region=str(inputs["region"]))
        with self.cloud_errors_explained():
            listed = client.list_hosts()
            entries = []
            for ref in _refs(inputs["hosts"]):
                host = client.find_host(ref, listed)
                before = known.get(host.id)
                held_before = bool(before["held_before"]) if before else host.has_image_library
                entries.append(
                    {"ref": ref, "host_id": host.id, "hostname": host.hostname, "held_before": held_before}
                )
        return entries


class ImageLibraryRoleBaseline(SeededResource, module="imagelib", name="ImageLibraryRoleBaseline"):
    """For each configured host: its resmgr id and whether it held the image-library role before this stack.

    ``entries`` is a list of ``{ref, host_id, hostname, held_before}`` in config order.
    """

    entries: Output[list[dict[str, Any]]]

    provider_class = ImageLibraryRoleBaselineProvider
    output_keys = OUTPUT_KEYS
