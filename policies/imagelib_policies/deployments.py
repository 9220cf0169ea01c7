"""The configured shape of an image-library deployment, as the rules read it from resource properties.

Only config-known values are read: the ``ImageLibraryHA`` component's props and the dynamic
resources' inputs named in docs/contracts.md, never their computed outputs (a role's ``region``
output is what PCD reports after apply; its ``expected_region`` input is what the config says).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pulumi_policy import PolicyResource, ResourceValidationArgs

from . import tokens
from .values import UNKNOWN, as_int, plain, prop, urn_type_chain


@dataclass(frozen=True)
class HostEntry:
    """One configured image-library host: its id or hostname, region and mount path (each may be
    ``UNKNOWN`` at preview, or None when the config leaves it to the deployment's default)."""

    host: Any
    region: Any
    mount_path: Any

    def label(self, index: int) -> str:
        return self.host if isinstance(self.host, str) else f"#{index + 1}"


@dataclass(frozen=True)
class Deployment:
    """One image-library deployment as configured: an ``ImageLibraryHA`` component's props, or the
    inputs of an ``ImageLibrarySettings`` resource created outside that component."""

    kind: str
    name: str
    backend: Any
    region: Any
    mount_path: Any
    hosts: Any  # list[HostEntry], UNKNOWN, or None when the resource does not list them
    host_count: Any  # int, UNKNOWN or None


def _host_entries(raw: Any) -> Any:
    if raw is UNKNOWN or raw is None:
        return raw
    if not isinstance(raw, list):
        return None
    entries: list[HostEntry] = []
    for item in raw:
        if item is UNKNOWN:
            entries.append(HostEntry(UNKNOWN, UNKNOWN, UNKNOWN))
        elif isinstance(item, str):
            entries.append(HostEntry(item, None, None))
        elif isinstance(item, Mapping):
            entries.append(HostEntry(prop(item, "host"), prop(item, "region"), prop(item, "mount_path")))
    return entries


def _backend(raw: Any) -> Any:
    return raw.strip().lower() if isinstance(raw, str) else raw


def inside_component(urn: str) -> bool:
    """Whether the resource's URN places it inside an ``ImageLibraryHA`` component."""
    return tokens.HA in urn_type_chain(urn)[:-1]


def read_deployment(resource_type: str, props: Mapping[str, Any], name: str) -> Deployment | None:
    """The deployment described by an ``ImageLibraryHA``'s props or an ``ImageLibrarySettings``' inputs."""
    if resource_type not in (tokens.HA, tokens.SETTINGS):
        return None
    values = plain(props)
    hosts = _host_entries(prop(values, "hosts"))
    # Only the component carries host_count; settings list their hosts.
    count = as_int(prop(values, "host_count")) if resource_type == tokens.HA else None
    if count is None and (isinstance(hosts, list) or hosts is UNKNOWN):
        count = len(hosts) if isinstance(hosts, list) else UNKNOWN
    return Deployment(
        kind=tokens.KIND[resource_type],
        name=name,
        backend=_backend(prop(values, "backend")),
        region=prop(values, "region"),
        mount_path=prop(values, "mount_path"),
        hosts=hosts,
        host_count=count,
    )


def deployment_of(resource_type: str, props: Mapping[str, Any], name: str, urn: str) -> Deployment | None:
    """The deployment a resource describes for the per-resource rules, or None.

    An ``ImageLibrarySettings`` inside an ``ImageLibraryHA`` describes the same deployment as the
    component: only the component is read then, so that one mistake yields one violation. Settings
    created without the component (another program) are checked on their own.
    """
    if resource_type == tokens.SETTINGS and inside_component(urn):
        return None
    return read_deployment(resource_type, props, name)


def deployment_for(args: ResourceValidationArgs) -> Deployment | None:
    """:func:`deployment_of` for the resource a per-resource rule is validating."""
    return deployment_of(args.resource_type, args.props, args.name, args.urn)


def deployment_key(resource: PolicyResource) -> str | None:
    """The URN of the ``ImageLibraryHA`` component a resource belongs to (itself included), or None."""
    current: PolicyResource | None = resource
    seen: set[str] = set()
    while current is not None and current.urn not in seen:
        if current.resource_type == tokens.HA:
            return current.urn
        seen.add(current.urn)
        current = current.parent
    return None
