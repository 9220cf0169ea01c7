"""Mocks whose dynamic resources answer with outputs shaped like their providers' (no cloud touched).

``EchoMocks`` returns each resource's inputs as its state, so an output-only key (the baseline's
``entries``, the roles' ``host_ids``) reads ``None``. The SDK drops a ``None`` input together with its
property dependency, which hides exactly the edges the graph rests on (roles after the baseline, health
after the roles). These mocks fill those keys as the providers would: with values on ``up``, and with the
engine's "unknown" sentinel on preview (as the engine answers for a resource not created yet).
"""

from __future__ import annotations

from typing import Any

from pulumi.runtime import rpc
from pulumi.runtime.mocks import MockResourceArgs

from imagelib_ha.inprocess.recording import EchoMocks

BASELINE = "pulumi-python:dynamic/imagelib:ImageLibraryRoleBaseline"
ROLES = "pulumi-python:dynamic/imagelib:ImageLibraryRoles"
HEALTH = "pulumi-python:dynamic/imagelib:ImageLibraryHealth"


def host_id_of(ref: str) -> str:
    """The made-up resmgr id of a host reference (a reference that looks like an id is one)."""
    return ref if len(ref) == 36 and ref.count("-") == 4 else f"id-of-{ref}"


def baseline_entries(refs: list[str]) -> list[dict[str, Any]]:
    return [{"ref": r, "host_id": host_id_of(r), "hostname": r, "held_before": False} for r in refs]


def role_members(entries: list[dict[str, Any]], expected_region: Any) -> list[dict[str, Any]]:
    return [{"ref": e["ref"], "host_id": e["host_id"], "hostname": e["hostname"], "region": expected_region,
             "mount_path": None, "role_status": "ok", "glance_role_state": "applied", "endpoint": None,
             "owned": not e["held_before"], "assigned": True} for e in entries]


class ShapedMocks(EchoMocks):
    """``EchoMocks`` plus the output-only keys of the baseline, roles and health resources."""

    def __init__(self, *, preview: bool = False) -> None:
        super().__init__()
        self.preview = preview

    def new_resource(self, args: MockResourceArgs) -> tuple[str | None, dict[Any, Any]]:
        resource_id, state = super().new_resource(args)
        outputs: dict[str, Any] = {}
        if args.typ == BASELINE:
            outputs["entries"] = baseline_entries(list(state.get("hosts") or []))
        elif args.typ == ROLES:
            entries = state.get("baseline")
            members = role_members(entries, state.get("expected_region")) if isinstance(entries, list) else []
            outputs.update(members=members, host_ids=[m["host_id"] for m in members])
        elif args.typ == HEALTH:
            ids = state.get("role_host_ids")
            outputs.update(report=[], serving_count=len(ids) if isinstance(ids, list) else 0, endpoints=[])
        if self.preview:
            outputs = dict.fromkeys(outputs, rpc.UNKNOWN)
        return resource_id, {**state, **outputs}
