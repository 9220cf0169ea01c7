"""The served pack judging the resources the real program registers under mocks (no Pulumi CLI).

``run_program_under_mocks`` runs ``__main__.py`` and records every registration; each record is sent
as the engine would send it: ``Analyze`` with the resource's inputs (secrets wrapped, unknowns as the
unknown sentinel) and its provider, then one ``AnalyzeStack`` with every resource's outputs, parents
and dependencies.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest
from analyzer_client import (
    analyze,
    analyze_stack,
    configure,
    provider_message,
    sample_config,
    served_pack,
    stack_resource,
)
from policy_fixtures import BASELINE, HOSTS, ROLES, SECRET
from pulumi.runtime.proto import analyzer_pb2, analyzer_pb2_grpc
from shaped_mocks import ShapedMocks
from ssh_material import ssh_material_dir

from imagelib_ha.inprocess.recording import RecordedResource, run_program

HA_TYPE = "pcd-imagelib-ha:index:ImageLibraryHA"

LAB_CONFIG: dict[str, Any] = {
    "lab": True,
    "cloud": {
        "authUrl": "http://127.0.0.1:35357/v3",
        "region": "RegionOne",
        "username": "admin",
        "password": SECRET,
        "projectName": "admin",
        "projectDomainName": "Default",
        "userDomainName": "Default",
        "insecure": False,
    },
    "storage": {"backend": "nfs", "nfs": {"mountPath": "/var/opt/imagelibrary/data"}},
    "hosts": [{"hostname": f"lab-host-{i}.lab.local"} for i in (1, 2, 3)],
    "hostAccess": {"privateKey": (ssh_material_dir() / "id_ed25519").read_text(),
                   "knownHosts": str(ssh_material_dir() / "known_hosts")},
    "images": [
        {"name": "lab-tiny-a", "source": ".lab-images/lab-tiny-a.raw", "diskFormat": "raw"},
        {"name": "lab-tiny-b", "source": ".lab-images/lab-tiny-b.raw", "diskFormat": "raw"},
    ],
}


def lab_config(**changes: Any) -> dict[str, Any]:
    config = copy.deepcopy(LAB_CONFIG)
    config.update(changes)
    if config.get("lab") is False:
        # Outside a lab the settings refuse a plain http:// Keystone.
        config["cloud"] = {**config["cloud"], "authUrl": "https://pcd.example.com/keystone/v3"}
    return config


def run_program_under_mocks(
    config: dict[str, Any], *, stack: str = "lab", preview: bool = False
) -> list[RecordedResource]:
    """The program's registrations, its dynamic resources answering with provider-shaped outputs."""
    return run_program(config, stack=stack, preview=preview, mocks=ShapedMocks(preview=preview)).resources


@pytest.fixture(scope="module")
def pack() -> Iterator[analyzer_pb2_grpc.AnalyzerStub]:
    with served_pack() as stub:
        configure(stub, sample_config())
        yield stub


def _default_provider(record: RecordedResource) -> analyzer_pb2.AnalyzerProviderResource | None:
    # Without an explicit provider the engine uses the package's default provider, configured from
    # `<package>:*` stack config (none here). Dynamic resources' provider is irrelevant to the pack.
    package = record.type.split(":", 1)[0]
    if not record.custom or package in ("pulumi", "pulumi-python"):
        return None
    stack, project = record.urn.split("::")[0].split(":")[2], record.urn.split("::")[1]
    name = "default"
    provider_urn = f"urn:pulumi:{stack}::{project}::pulumi:providers:{package}::{name}"
    return provider_message(f"pulumi:providers:{package}", name, provider_urn, {})


def _provider(
    record: RecordedResource, by_urn: dict[str, RecordedResource]
) -> analyzer_pb2.AnalyzerProviderResource | None:
    if not record.provider:
        return _default_provider(record)
    provider_urn = record.provider.rsplit("::", 1)[0]  # a provider reference is "<urn>::<id>"
    provider = by_urn[provider_urn]
    return provider_message(
        provider.type, provider.name, provider.urn, provider.inputs, provider.secret_inputs
    )


def judge(
    stub: analyzer_pb2_grpc.AnalyzerStub, records: list[RecordedResource]
) -> tuple[list[tuple[str, str]], list[analyzer_pb2.AnalyzeDiagnostic]]:
    """Every diagnostic the pack reports for the program's resources: (policy, urn) pairs and all."""
    by_urn = {r.urn: r for r in records}
    diagnostics: list[analyzer_pb2.AnalyzeDiagnostic] = []
    pairs: list[tuple[str, str]] = []
    for record in records:
        # A resource policy's diagnostic carries no URN: the engine ties it to the analyzed resource.
        found = analyze(
            stub,
            resource_type=record.type,
            name=record.name,
            urn=record.urn,
            props=record.inputs,
            secret_keys=record.secret_inputs,
            parent=record.parent,
            provider=_provider(record, by_urn),
        )
        pairs += [(d.policyName, d.urn or record.urn) for d in found]
        diagnostics += found
    stack = [
        stack_resource(
            resource_type=record.type,
            name=record.name,
            urn=record.urn,
            # Stack policies see outputs. A component's outputs are what it passes to register_outputs,
            # which the recording does not keep: send none, the strictest case for the rules.
            props=record.outputs if record.custom else {},
            secret_keys=record.secret_inputs,
            parent=record.parent,
            dependencies=record.dependencies,
            provider=_provider(record, by_urn),
        )
        for record in records
    ]
    found = analyze_stack(stub, stack)
    pairs += [(d.policyName, d.urn) for d in found]
    diagnostics += found
    return sorted(pairs), diagnostics


def ha_urn(records: list[RecordedResource]) -> str:
    (ha,) = [r for r in records if r.type == HA_TYPE]
    return ha.urn


@pytest.mark.parametrize("preview", [True, False], ids=["preview", "update"])
def test_lab_config_passes_every_rule(pack: analyzer_pb2_grpc.AnalyzerStub, preview: bool) -> None:
    records = run_program_under_mocks(lab_config(), stack="lab", preview=preview)
    assert {r.type for r in records} >= {
        HA_TYPE,
        HOSTS,
        BASELINE,
        ROLES,
        "pulumi-python:dynamic/imagelib:ImageLibraryHealth",
        "pulumi-python:dynamic/imagelib:FailoverImage",
    }
    pairs, diagnostics = judge(pack, records)
    assert pairs == [], [d.message for d in diagnostics]


def test_local_storage_on_two_hosts_in_two_regions(pack: analyzer_pb2_grpc.AnalyzerStub) -> None:
    config = lab_config(
        storage={"backend": "local"},
        hosts=[
            {"hostname": "lab-host-1.lab.local", "region": "RegionOne"},
            {"hostname": "lab-host-r2-1.lab.local", "region": "RegionTwo"},
        ],
    )
    records = run_program_under_mocks(config, stack="lab", preview=True)
    pairs, diagnostics = judge(pack, records)
    assert pairs == [("shared-storage-required", ha_urn(records)), ("single-region", "")]
    messages = {d.policyName: d.message for d in diagnostics}
    assert "runs 2 image-library hosts on the 'local' backend" in messages["shared-storage-required"]
    assert "RegionTwo: host 'lab-host-r2-1.lab.local'" in messages["single-region"]
    assert all(SECRET not in d.message for d in diagnostics)


def test_single_host_is_advisory_only(pack: analyzer_pb2_grpc.AnalyzerStub) -> None:
    records = run_program_under_mocks(lab_config(hosts=[{"hostname": "lab-host-1.lab.local"}]), preview=True)
    pairs, diagnostics = judge(pack, records)
    assert pairs == [("minimum-hosts", ha_urn(records))]
    assert diagnostics[0].enforcementLevel == analyzer_pb2.ADVISORY


def test_without_host_access_the_health_check_is_flagged_as_advisory(
    pack: analyzer_pb2_grpc.AnalyzerStub,
) -> None:
    config = lab_config()
    del config["hostAccess"]
    records = run_program_under_mocks(config, preview=True)
    pairs, diagnostics = judge(pack, records)
    health = next(r.urn for r in records if r.type == "pulumi-python:dynamic/imagelib:ImageLibraryHealth")
    assert pairs == [("host-checks-configured", health)]
    assert diagnostics[0].enforcementLevel == analyzer_pb2.ADVISORY
    assert "health.serviceUnit" in diagnostics[0].message


def test_cinder_outside_the_lab(pack: analyzer_pb2_grpc.AnalyzerStub) -> None:
    cinder = {"backend": "cinder", "cinder": {"volumeType": "imagelib-ssd"}}
    records = run_program_under_mocks(lab_config(lab=False, storage=cinder), stack="prod", preview=True)
    assert any(r.type == "openstack:blockstorage/volumeTypeV3:VolumeTypeV3" for r in records)
    pairs, diagnostics = judge(pack, records)
    assert pairs == [], [d.message for d in diagnostics]

    insecure_cloud = {**lab_config(lab=False)["cloud"], "insecure": True}
    records = run_program_under_mocks(
        lab_config(lab=False, storage=cinder, cloud=insecure_cloud), stack="prod", preview=True
    )
    pairs, diagnostics = judge(pack, records)
    provider_urns = [r.urn for r in records if r.type == "pulumi:providers:openstack"]
    assert pairs == sorted(
        [("tls-verification", ha_urn(records))] + [("tls-verification", u) for u in provider_urns]
    )
    assert provider_urns
    assert all(SECRET not in d.message for d in diagnostics)
