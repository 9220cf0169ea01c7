"""Happy-path fixtures and helpers for calling the pack's validators the way the analyzer does."""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

from pulumi_policy import (
    PolicyCustomTimeouts,
    PolicyProviderResource,
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.proxy import UNKNOWN_STRING_VALUE, unknown_checking_proxy

PROJECT = "pcd-imagelib-ha"
UNKNOWN = UNKNOWN_STRING_VALUE
SECRET = "Sup3r-S3cret-Passw0rd"  # must never appear in a violation message

HA = "pcd-imagelib-ha:index:ImageLibraryHA"
STORAGE = "pcd-imagelib-ha:index:SharedImageStorage"
HOSTS = "pcd-imagelib-ha:index:ImageLibraryHosts"
BASELINE = "pulumi-python:dynamic/imagelib:ImageLibraryRoleBaseline"
ROLES = "pulumi-python:dynamic/imagelib:ImageLibraryRoles"
SETTINGS = "pulumi-python:dynamic/imagelib:ImageLibrarySettings"
HEALTH = "pulumi-python:dynamic/imagelib:ImageLibraryHealth"
FAILOVER_IMAGE = "pulumi-python:dynamic/imagelib:FailoverImage"
OS_PROVIDER = "pulumi:providers:openstack"
OS_IMAGE = "openstack:images/image:Image"
OS_VOLUME_TYPE = "openstack:blockstorage/volumeTypeV3:VolumeTypeV3"
STACK_TYPE = "pulumi:pulumi:Stack"

MOUNT = "/var/opt/imagelibrary/data"
HOST_NAMES = ("host-1", "host-2", "host-3")


def urn(type_chain: Sequence[str], name: str, stack: str = "prod") -> str:
    return f"urn:pulumi:{stack}::{PROJECT}::{'$'.join(type_chain)}::{name}"


def cloud() -> dict[str, Any]:
    """Credentials in the shape of the 0.1 ``cloud`` input: props no resource carries any more, for the
    rule that no message may echo a secret whatever a resource holds."""
    return {
        "auth_url": "https://pcd.example.com/keystone/v3",
        "region": "RegionOne",
        "username": "admin",
        "password": SECRET,
        "project_name": "service",
        "project_domain_name": "Default",
        "user_domain_name": "Default",
        "application_credential_id": None,
        "application_credential_secret": SECRET,
        "ca_bundle": None,
        "insecure": False,
    }


def host_entries(regions: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """``{host, region, mount_path}`` per host; ``regions`` overrides the region of some hosts."""
    regions = regions or {}
    return [{"host": h, "region": regions.get(h, "RegionOne"), "mount_path": MOUNT} for h in HOST_NAMES]


def ha_props() -> dict[str, Any]:
    """An ImageLibraryHA's props for a good NFS deployment of three hosts (docs/contracts.md)."""
    return {
        "region": "RegionOne",
        "backend": "nfs",
        "mount_path": MOUNT,
        "volume_type": None,
        "host_count": len(HOST_NAMES),
        "host_names": list(HOST_NAMES),
        "hosts": host_entries(),
        "insecure": False,
        "lab": False,
        "min_healthy": None,
    }


def settings_props() -> dict[str, Any]:
    """An ImageLibrarySettings resource's inputs matching ``ha_props``."""
    return {
        "region": "RegionOne",
        "blueprint": "RegionOne",
        "backend": "nfs",
        "mount_path": MOUNT,
        "volume_type": None,
        "shared": True,
        "hosts": host_entries(),
        "lab": False,
        "migration_ack": None,
        "glance_store_config": None,
    }


def roles_props(regions: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """An ImageLibraryRoles resource's inputs (its outputs too) at preview: members not known yet."""
    return {
        "hosts": host_entries(regions),
        "baseline": UNKNOWN,
        "expected_region": "RegionOne",
        "converge_timeout": 1800,
        "failed_grace": 120,
        "conflict_timeout": 600,
        "poll_interval": 5,
        "members": UNKNOWN,
        "host_ids": UNKNOWN,
    }


def provider_props(**overrides: Any) -> dict[str, Any]:
    """pulumi-openstack provider arguments as they reach policies: JSON-encoded strings."""
    props: dict[str, Any] = {
        "authUrl": "https://pcd.example.com/keystone/v3",
        "region": "RegionOne",
        "userName": "admin",
        "password": SECRET,
        "tenantName": "service",
        "insecure": "false",
        "endpointOverrides": '{"image":"https://host-1.example.com:9292"}',
        "version": "5.5.3",
    }
    props.update(overrides)
    return {k: v for k, v in props.items() if v is not None}


def _options(parent: str | None = None) -> PolicyResourceOptions:
    return PolicyResourceOptions(False, [], None, [], PolicyCustomTimeouts(0, 0, 0), [], parent)


def resource_args(
    resource_type: str,
    props: Mapping[str, Any],
    name: str,
    *,
    parents: Sequence[str] = (),
    stack: str = "prod",
    provider: PolicyProviderResource | None = None,
    config: Mapping[str, Any] | None = None,
) -> ResourceValidationArgs:
    """Arguments as the analyzer builds them: props behind the unknown-checking proxy."""
    return ResourceValidationArgs(
        resource_type,
        unknown_checking_proxy(copy.deepcopy(dict(props))),
        urn([*parents, resource_type], name, stack),
        name,
        _options(),
        provider,
        dict(config) if config is not None else None,
    )


def openstack_provider(name: str = "image-host-1", **overrides: Any) -> PolicyProviderResource:
    props = provider_props(**overrides)
    return PolicyProviderResource(
        OS_PROVIDER, unknown_checking_proxy(props), urn([OS_PROVIDER], name), name
    )


def violations(policy: ResourceValidationPolicy | StackValidationPolicy, args: Any) -> list[str]:
    """Messages the policy reports for ``args`` (the message passed to report_violation)."""
    messages: list[str] = []

    def report(message: str, urn: str | None = None) -> None:
        messages.append(message)

    policy.validate(args, report)
    return messages


class StackBuilder:
    """Builds ``PolicyResource`` graphs (parents, dependencies) as the analyzer hands them to stack rules."""

    def __init__(self, stack: str = "prod") -> None:
        self.stack = stack
        self.resources: list[PolicyResource] = []
        self.root = self.add(STACK_TYPE, f"{PROJECT}-{stack}", {})

    def add(
        self,
        resource_type: str,
        name: str,
        props: Mapping[str, Any],
        *,
        parent: PolicyResource | None = None,
        depends_on: Sequence[PolicyResource] = (),
    ) -> PolicyResource:
        chain = [*self._chain(parent), resource_type] if parent is not None else [resource_type]
        parent = parent if parent is not None else getattr(self, "root", None)
        resource = PolicyResource(
            resource_type,
            unknown_checking_proxy(copy.deepcopy(dict(props))),
            urn(chain, name, self.stack),
            name,
            _options(parent.urn if parent is not None else None),
            None,
            parent,
            list(depends_on),
            {},
        )
        self.resources.append(resource)
        return resource

    def _chain(self, resource: PolicyResource) -> list[str]:
        # The URN's type part is the parent's qualified type followed by the child's own type.
        return resource.urn.split("::")[2].split("$") if resource.resource_type != STACK_TYPE else []

    def args(self, config: Mapping[str, Any] | None = None) -> StackValidationArgs:
        return StackValidationArgs(self.resources, dict(config) if config is not None else None)


def build_stack(
    *,
    ha: Mapping[str, Any] | None = None,
    settings: Mapping[str, Any] | None = None,
    host_regions: Mapping[str, Any] | None = None,
    hosts_component: Mapping[str, Any] | None = None,
    health_depends_on_roles: bool = True,
    image_type: str = FAILOVER_IMAGE,
    image_depends_on_health: bool = True,
    volume_type_name: str | None = None,
    stack: str = "prod",
) -> StackBuilder:
    """The resource graph of one deployment as the program builds it: ImageLibraryHA -> storage,
    settings, ImageLibraryHosts -> (ImageLibraryRoleBaseline, ImageLibraryRoles), health after the roles,
    the image after the health. ``host_regions`` puts some hosts in another region (in the hosts
    component and the roles); ``hosts_component`` replaces the hosts component's props."""
    b = StackBuilder(stack)
    ha_res = b.add(HA, "imagelib", ha if ha is not None else ha_props())
    props = dict(settings if settings is not None else settings_props())
    b.add(STORAGE, "imagelib-storage", {
        "backend": props.get("backend"), "mount_path": props.get("mount_path"),
        "volume_type": props.get("volume_type"), "nfs_server": "nfs.example.com",
        "nfs_export": "/exports/images", "region": props.get("region"), "glance_store_config": None,
    }, parent=ha_res)
    settings_res = b.add(SETTINGS, "imagelib-settings", props, parent=ha_res)
    hosts_props = {"region": "RegionOne", "hosts": host_entries(host_regions)}
    if hosts_component is not None:
        hosts_props = dict(hosts_component)
    hosts_res = b.add(HOSTS, "imagelib-hosts", hosts_props, parent=ha_res)
    baseline = b.add(BASELINE, "imagelib-hosts-baseline",
                     {"region": "RegionOne", "hosts": list(HOST_NAMES), "entries": UNKNOWN}, parent=hosts_res)
    roles = b.add(ROLES, "imagelib-hosts-roles", roles_props(host_regions), parent=hosts_res,
                  depends_on=[settings_res, baseline])
    health = b.add(HEALTH, "imagelib-health", {
        "region": "RegionOne", "role_host_ids": UNKNOWN, "hosts": host_entries(),
        "backend": props.get("backend"),
    }, parent=ha_res, depends_on=[roles] if health_depends_on_roles else [])
    if volume_type_name is not None:
        b.add(OS_VOLUME_TYPE, "imagelib-volume-type", {"name": volume_type_name}, parent=ha_res)
    b.add(image_type, "cirros", {"name": "cirros", "region": "RegionOne"},
          parent=ha_res, depends_on=[health] if image_depends_on_health else [])
    return b
