"""Every input key of every provider, with a non-default value, as the engine delivers it over gRPC.

Numbers cross the wire as protobuf doubles (a configured 2 arrives as 2.0), objects as structs, and the
credentials arrive only through Configure. ``check`` must accept all of it, and a resource checked and
stored that way must diff as unchanged against the same inputs (no phantom update at the next ``up``).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from grpc_harness import ProviderServer, dynamic_urn
from pulumi.dynamic import ResourceProvider

from imagelib_ha.providers import baseline, health, roles, settings

CLOUD = {"pcd-imagelib-ha:cloud": json.dumps({
    "authUrl": "https://keystone.example.com/v3", "region": "Region7", "username": "ops",
    "password": "grpc-S3cret", "projectName": "service", "timeoutSeconds": 12,
})}
HOSTS = [
    {"host": "node-1.example.com", "region": "Region7", "mount_path": "/srv/glance"},
    {"host": "5b0c1f4e-7d7a-4c39-9a57-0d2f4f0f9e11", "region": "Region7", "mount_path": "/srv/glance"},
]
BASELINE = [
    {"ref": "node-1.example.com", "host_id": "h-1", "hostname": "node-1.example.com", "held_before": True},
    {"ref": "5b0c1f4e-7d7a-4c39-9a57-0d2f4f0f9e11", "host_id": "5b0c1f4e-7d7a-4c39-9a57-0d2f4f0f9e11",
     "hostname": "node-2.example.com", "held_before": False},
]

# Every input key of each provider, none at its default.
CASES: dict[str, tuple[ResourceProvider, tuple[str, ...], dict[str, Any]]] = {
    "ImageLibrarySettings": (settings.ImageLibrarySettingsProvider(), settings.INPUT_KEYS, {
        "region": "Region7", "blueprint": "bp-7", "backend": "nfs", "mount_path": "/srv/glance",
        "volume_type": None, "volume_type_extra_specs": {"volume_backend_name": "nfs1"}, "shared": True,
        "hosts": HOSTS, "lab": True, "migration_ack": "/srv/glance",
    }),
    "ImageLibraryHealth": (health.ImageLibraryHealthProvider(), health.INPUT_KEYS, {
        "region": "Region7", "role_host_ids": ["h-1", "h-2"], "hosts": HOSTS, "backend": "nfs",
        "expected_store": {"type": "file", "data_dir": "/srv/glance"}, "min_healthy": 1,
        "probe_timeout": 7, "deadline": 45, "canary": False, "audit_images": True, "revalidate": "r2",
        "service_unit": "pf9-glance-api", "log_path": "/var/log/pf9/glance-api.log", "host_checks": True,
        "lab": True,
    }),
    "ImageLibraryRoleBaseline": (baseline.ImageLibraryRoleBaselineProvider(), baseline.INPUT_KEYS, {
        "region": "Region7", "hosts": [h["host"] for h in HOSTS],
    }),
    "ImageLibraryRoles": (roles.ImageLibraryRolesProvider(), roles.INPUT_KEYS, {
        "hosts": HOSTS, "baseline": BASELINE, "expected_region": "Region7", "converge_timeout": 900,
        "failed_grace": 0, "conflict_timeout": 30, "poll_interval": 2,
    }),
}


def created_outputs(kind: str, inputs: dict[str, Any]) -> dict[str, Any]:
    """The output-only keys a create would have stored, where the diff reads them."""
    if kind == "ImageLibraryRoles":
        members = [{**m, "owned": not m["held_before"], "assigned": True} for m in roles.wanted_hosts(inputs)]
        return {"members": members, "host_ids": [m["host_id"] for m in members]}
    if kind == "ImageLibraryRoleBaseline":
        return {"entries": BASELINE}
    return {}


def same_value(sent: Any, got: Any) -> bool:
    if isinstance(sent, bool) or isinstance(got, bool):
        return sent is got
    if isinstance(sent, int | float) and isinstance(got, int | float):
        return float(sent) == float(got)
    if isinstance(sent, dict) and isinstance(got, dict):
        return sent.keys() == got.keys() and all(same_value(sent[k], got[k]) for k in sent)
    if isinstance(sent, list) and isinstance(got, list):
        return len(sent) == len(got) and all(same_value(a, b) for a, b in zip(sent, got, strict=True))
    return bool(sent == got)


@pytest.mark.parametrize("kind", sorted(CASES))
def test_every_input_with_a_non_default_value_passes_check_and_diffs_as_unchanged(kind: str) -> None:
    provider, keys, news = CASES[kind]
    assert set(news) == set(keys), "the case must set every input key of the provider"
    urn = dynamic_urn(f"pulumi-python:dynamic/imagelib:{kind}", "grpc-inputs")
    with ProviderServer(provider) as server:
        server.configure(CLOUD)
        checked = server.check(urn, {}, news)
        assert checked.failures == []
        for key in keys:
            assert same_value(news[key], checked.inputs.get(key)), (key, news[key], checked.inputs.get(key))
        # What the engine stores is what check returned (plus outputs): the same config next time is
        # no change, whatever the doubles look like.
        stored = {**checked.inputs, **created_outputs(kind, checked.inputs)}
        again = server.check(urn, checked.inputs, news)
        diff = server.diff("id-1", urn, stored, again.inputs)
        assert diff.changes == "DIFF_NONE", (kind, diff)
        assert "grpc-S3cret" not in json.dumps(checked.inputs)


def test_a_bad_cloud_config_is_a_check_failure_naming_the_key_not_a_dead_provider() -> None:
    provider, _, news = CASES["ImageLibraryRoleBaseline"]
    with ProviderServer(provider) as server:
        bad = {"region": "Region7", "passwordEnv": "NOPE_X"}
        server.configure({"pcd-imagelib-ha:cloud": json.dumps(bad)})
        checked = server.check(dynamic_urn("pulumi-python:dynamic/imagelib:ImageLibraryRoleBaseline", "b"),
                               {}, news)
    assert [p for p, _ in checked.failures] == ["cloud"]
    assert "pcd-imagelib-ha:cloud.passwordEnv" in checked.failures[0][1]
