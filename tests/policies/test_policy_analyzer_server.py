"""The whole pack served as the Pulumi CLI serves it, driven over the Analyzer gRPC API."""

from __future__ import annotations

import ast
import re
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from analyzer_client import (
    PACK_DIR,
    UNKNOWN_VALUE,
    analyze,
    analyze_stack,
    configure,
    info,
    provider_message,
    sample_config,
    served_pack,
    stack_resource,
)
from policy_fixtures import (
    BASELINE,
    HA,
    HEALTH,
    HOSTS,
    OS_IMAGE,
    OS_PROVIDER,
    ROLES,
    SECRET,
    ha_props,
    provider_props,
    settings_props,
    urn,
)
from pulumi.runtime.proto import analyzer_pb2, analyzer_pb2_grpc

EXPECTED_POLICIES = {
    "shared-storage-required": (analyzer_pb2.MANDATORY, analyzer_pb2.POLICY_TYPE_RESOURCE),
    "single-region": (analyzer_pb2.MANDATORY, analyzer_pb2.POLICY_TYPE_STACK),
    "same-mount-path": (analyzer_pb2.MANDATORY, analyzer_pb2.POLICY_TYPE_RESOURCE),
    "minimum-hosts": (analyzer_pb2.ADVISORY, analyzer_pb2.POLICY_TYPE_RESOURCE),
    "cinder-multiattach": (analyzer_pb2.MANDATORY, analyzer_pb2.POLICY_TYPE_RESOURCE),
    "images-through-image-library-hosts": (analyzer_pb2.MANDATORY, analyzer_pb2.POLICY_TYPE_RESOURCE),
    "tls-verification": (analyzer_pb2.MANDATORY, analyzer_pb2.POLICY_TYPE_RESOURCE),
    "health-gates-images": (analyzer_pb2.MANDATORY, analyzer_pb2.POLICY_TYPE_STACK),
    "cinder-volume-type-declared": (analyzer_pb2.MANDATORY, analyzer_pb2.POLICY_TYPE_STACK),
    "host-checks-configured": (analyzer_pb2.ADVISORY, analyzer_pb2.POLICY_TYPE_RESOURCE),
}


@pytest.fixture(scope="module")
def pack() -> Iterator[analyzer_pb2_grpc.AnalyzerStub]:
    with served_pack() as stub:
        yield stub


@pytest.fixture
def configured(pack: analyzer_pb2_grpc.AnalyzerStub) -> analyzer_pb2_grpc.AnalyzerStub:
    """The pack configured with the sample config, as `--policy-pack-config policies/config.json` does."""
    configure(pack, sample_config())
    return pack


def descriptions(stub: analyzer_pb2_grpc.AnalyzerStub) -> dict[str, str]:
    return {p.name: p.description for p in info(stub).policies}


def test_analyzer_info_lists_every_rule_with_its_level(pack: analyzer_pb2_grpc.AnalyzerStub) -> None:
    analyzer_info = info(pack)
    assert analyzer_info.name == "pcd-imagelib-ha"
    assert analyzer_info.supportsConfig
    listed = {p.name: (p.enforcementLevel, p.policy_type) for p in analyzer_info.policies}
    assert listed == EXPECTED_POLICIES
    for policy in analyzer_info.policies:
        assert re.fullmatch(r"[a-z]+(-[a-z]+)+", policy.name), policy.name
        # One sentence each.
        assert policy.description.endswith(".") and policy.description.count(". ") == 0, policy.name


def test_config_schemas_carry_the_defaults(pack: analyzer_pb2_grpc.AnalyzerStub) -> None:
    schemas = {p.name: p.configSchema.properties for p in info(pack).policies}
    assert schemas["minimum-hosts"]["minimumHosts"]["default"] == 2
    assert list(schemas["tls-verification"]["allowedStacks"]["default"]) == ["lab"]
    assert list(schemas["cinder-volume-type-declared"]["declaredVolumeTypes"]["default"]) == []


def test_sample_config_names_every_rule_and_only_schema_properties(
    pack: analyzer_pb2_grpc.AnalyzerStub,
) -> None:
    config = sample_config()
    assert set(config) == set(EXPECTED_POLICIES)
    schemas = {p.name: p.configSchema.properties for p in info(pack).policies}
    json_types = {"integer": int, "array": list, "string": str, "boolean": bool}
    for name, entry in config.items():
        expected_level = "advisory" if EXPECTED_POLICIES[name][0] == analyzer_pb2.ADVISORY else "mandatory"
        assert entry["enforcementLevel"] == expected_level, name
        for key, value in entry.items():
            if key == "enforcementLevel":
                continue
            assert key in schemas[name], f"{name}.{key} is not in the rule's schema"
            assert isinstance(value, json_types[schemas[name][key]["type"]]), f"{name}.{key}"


def test_pack_imports_only_pulumi_policy_and_itself() -> None:
    """The CLI installs only policies/requirements.txt for the pack: no project import may creep in."""
    allowed = {"pulumi_policy", "imagelib_policies", "__future__"} | set(sys.stdlib_module_names)
    for path in PACK_DIR.rglob("*.py"):
        if "venv" in path.parts:
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                roots = [alias.name.split(".")[0] for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                roots = [node.module.split(".")[0]]
            else:
                continue
            assert set(roots) <= allowed, f"{path.relative_to(PACK_DIR)} imports {roots}"
    requirements = (PACK_DIR / "requirements.txt").read_text().split()
    assert "pulumi-policy==1.21.0" in requirements


def test_analyze_reports_local_storage_with_full_diagnostic(
    configured: analyzer_pb2_grpc.AnalyzerStub,
) -> None:
    props = ha_props()
    props["backend"] = "local"
    ha_urn = urn([HA], "imagelib")
    diagnostics = analyze(configured, resource_type=HA, name="imagelib", urn=ha_urn, props=props)
    assert [(d.policyName, d.enforcementLevel) for d in diagnostics] == [
        ("shared-storage-required", analyzer_pb2.MANDATORY)
    ]
    diagnostic = diagnostics[0]
    assert diagnostic.policyPackName == "pcd-imagelib-ha"
    assert diagnostic.message == (
        descriptions(configured)["shared-storage-required"] + "\n"
        "ImageLibraryHA 'imagelib' runs 3 image-library hosts on the 'local' backend, so an image uploaded "
        "through one host is missing on the others. Set pcd-imagelib-ha:storage.backend to 'nfs' or "
        "'cinder', or run a single host."
    )


def test_analyze_happy_component_has_no_diagnostics(configured: analyzer_pb2_grpc.AnalyzerStub) -> None:
    assert (
        analyze(configured, resource_type=HA, name="imagelib", urn=urn([HA], "imagelib"), props=ha_props())
        == []
    )


def test_analyze_unknowns_at_preview_skip_without_any_diagnostic(
    configured: analyzer_pb2_grpc.AnalyzerStub,
) -> None:
    props = ha_props()
    props.update(backend=UNKNOWN_VALUE, host_count=UNKNOWN_VALUE, hosts=UNKNOWN_VALUE, insecure=UNKNOWN_VALUE)
    assert (
        analyze(configured, resource_type=HA, name="imagelib", urn=urn([HA], "imagelib"), props=props) == []
    )


def test_analyze_openstack_image_sees_its_provider(configured: analyzer_pb2_grpc.AnalyzerStub) -> None:
    image = {"name": "debian", "containerFormat": "bare", "diskFormat": "qcow2"}
    secret = frozenset({"password"})
    good = provider_message(OS_PROVIDER, "host-1", urn([OS_PROVIDER], "host-1"), provider_props(), secret)
    bad = provider_message(
        OS_PROVIDER,
        "default_5_5_3",
        urn([OS_PROVIDER], "default_5_5_3"),
        provider_props(endpointOverrides=None),
        secret,
    )
    image_urn = urn([OS_IMAGE], "debian")
    assert (
        analyze(configured, resource_type=OS_IMAGE, name="debian", urn=image_urn, props=image, provider=good)
        == []
    )
    diagnostics = analyze(
        configured, resource_type=OS_IMAGE, name="debian", urn=image_urn, props=image, provider=bad
    )
    assert [d.policyName for d in diagnostics] == ["images-through-image-library-hosts"]
    assert (
        "OpenStack provider 'default_5_5_3', which has no 'image' endpoint override" in diagnostics[0].message
    )
    assert SECRET not in diagnostics[0].message


def test_configured_count_and_enforcement_level(pack: analyzer_pb2_grpc.AnalyzerStub) -> None:
    config = sample_config()
    config["minimum-hosts"] = {"enforcementLevel": "advisory", "minimumHosts": 4}
    configure(pack, config)
    diagnostics = analyze(
        pack, resource_type=HA, name="imagelib", urn=urn([HA], "imagelib"), props=ha_props()
    )
    assert [(d.policyName, d.enforcementLevel) for d in diagnostics] == [
        ("minimum-hosts", analyzer_pb2.ADVISORY)
    ]
    config["minimum-hosts"]["enforcementLevel"] = "mandatory"
    configure(pack, config)
    diagnostics = analyze(
        pack, resource_type=HA, name="imagelib", urn=urn([HA], "imagelib"), props=ha_props()
    )
    assert [(d.policyName, d.enforcementLevel) for d in diagnostics] == [
        ("minimum-hosts", analyzer_pb2.MANDATORY)
    ]
    config["minimum-hosts"]["enforcementLevel"] = "disabled"
    configure(pack, config)
    assert analyze(pack, resource_type=HA, name="imagelib", urn=urn([HA], "imagelib"), props=ha_props()) == []


def test_tls_allow_list_follows_the_stack_in_the_urn(configured: analyzer_pb2_grpc.AnalyzerStub) -> None:
    insecure = provider_props(insecure="true")
    lab = analyze(
        configured,
        resource_type=OS_PROVIDER,
        name="p",
        urn=urn([OS_PROVIDER], "p", "lab"),
        props=insecure,
        secret_keys=frozenset({"password"}),
    )
    prod = analyze(
        configured,
        resource_type=OS_PROVIDER,
        name="p",
        urn=urn([OS_PROVIDER], "p", "prod"),
        props=insecure,
        secret_keys=frozenset({"password"}),
    )
    assert lab == []
    assert [d.policyName for d in prod] == ["tls-verification"]
    assert "in stack 'prod'" in prod[0].message and SECRET not in prod[0].message
    not_insecure = analyze(
        configured,
        resource_type=OS_PROVIDER,
        name="p",
        urn=urn([OS_PROVIDER], "p", "prod"),
        props=provider_props(insecure="false"),
    )
    assert not_insecure == []


def _stack(health_depends_on_roles: bool) -> list[analyzer_pb2.AnalyzerResource]:
    """The program's graph as the engine hands it to AnalyzeStack: no resource carries credentials; the
    pickled provider (``__provider``) is the only secret property of a dynamic resource."""
    ha_urn = urn([HA], "imagelib")
    settings_type = "pulumi-python:dynamic/imagelib:ImageLibrarySettings"
    image_type = "pulumi-python:dynamic/imagelib:FailoverImage"
    provider_blob = {"__provider": "gASVRAAAAAAAAACMG2ltYWdlbGliX2hhLnByb3ZpZGVycy5yb2xlcw=="}
    secret = frozenset({"__provider"})
    resources = [stack_resource(resource_type=HA, name="imagelib", urn=ha_urn, props={"region": "RegionOne"})]
    settings_urn = urn([HA, settings_type], "imagelib-settings")
    resources.append(
        stack_resource(
            resource_type=settings_type,
            name="imagelib-settings",
            urn=settings_urn,
            props={**settings_props(), **provider_blob},
            secret_keys=secret,
            parent=ha_urn,
        )
    )
    hosts_urn = urn([HA, HOSTS], "imagelib-hosts")
    resources.append(stack_resource(resource_type=HOSTS, name="imagelib-hosts", urn=hosts_urn, parent=ha_urn,
                                    props={"members": [], "host_ids": ["a", "b", "c"]}))
    baseline_urn = urn([HA, HOSTS, BASELINE], "imagelib-hosts-baseline")
    resources.append(
        stack_resource(
            resource_type=BASELINE,
            name="imagelib-hosts-baseline",
            urn=baseline_urn,
            parent=hosts_urn,
            secret_keys=secret,
            props={"region": "RegionOne", "hosts": ["host-1", "host-2", "host-3"], **provider_blob},
        )
    )
    roles_urn = urn([HA, HOSTS, ROLES], "imagelib-hosts-roles")
    resources.append(
        stack_resource(
            resource_type=ROLES,
            name="imagelib-hosts-roles",
            urn=roles_urn,
            parent=hosts_urn,
            secret_keys=secret,
            props={"hosts": settings_props()["hosts"], "expected_region": "RegionOne", **provider_blob},
            dependencies=[settings_urn, baseline_urn],
        )
    )
    health_urn = urn([HA, HEALTH], "imagelib-health")
    resources.append(
        stack_resource(
            resource_type=HEALTH,
            name="imagelib-health",
            urn=health_urn,
            parent=ha_urn,
            props={"region": "RegionOne", "role_host_ids": ["a", "b", "c"]},
            dependencies=[roles_urn] if health_depends_on_roles else [],
        )
    )
    resources.append(
        stack_resource(
            resource_type=image_type,
            name="cirros",
            urn=urn([HA, image_type], "cirros"),
            parent=ha_urn,
            props={"name": "cirros", "health": UNKNOWN_VALUE},
            dependencies=[health_urn],
        )
    )
    return resources


def test_analyze_stack_follows_parents_and_dependencies(configured: analyzer_pb2_grpc.AnalyzerStub) -> None:
    assert analyze_stack(configured, _stack(health_depends_on_roles=True)) == []
    diagnostics = analyze_stack(configured, _stack(health_depends_on_roles=False))
    assert [(d.policyName, d.urn) for d in diagnostics] == [
        ("health-gates-images", urn([HA, "pulumi-python:dynamic/imagelib:FailoverImage"], "cirros"))
    ]
    assert "does not depend on role(s) 'imagelib-hosts-roles'" in diagnostics[0].message


def _messages(diagnostics: list[Any]) -> list[str]:
    return [d.message for d in diagnostics]
