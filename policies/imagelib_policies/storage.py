"""Shared image storage: every image-library host must read the same images.

Per resource, a deployment's configured storage: more than one host needs a shared backend
(shared-storage-required), NFS hosts mount the share at one path (same-mount-path), and a Cinder
volume type lets every host attach an image's volume at once (cinder-multiattach). Per stack, the
Cinder volume type a deployment names exists: the stack creates or declares it
(cinder-volume-type-declared).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Final

from pulumi_policy import (
    EnforcementLevel,
    PolicyResource,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)

from . import config, tokens
from .deployments import deployment_for, deployment_key
from .values import UNKNOWN, as_mapping, plain, prop, quoted_list

# --- shared-storage-required -------------------------------------------------------------------


def shared_storage_required_validator(
    args: ResourceValidationArgs, report_violation: ReportViolation
) -> None:
    deployment = deployment_for(args)
    if deployment is None or deployment.backend != "local":
        return
    count = deployment.host_count
    if not isinstance(count, int) or count <= 1:
        return
    report_violation(
        f"{deployment.kind} '{deployment.name}' runs {count} image-library hosts on the 'local' backend, "
        "so an image uploaded through one host is missing on the others. "
        "Set pcd-imagelib-ha:storage.backend to 'nfs' or 'cinder', or run a single host.",
        None,
    )


shared_storage_required: Final = ResourceValidationPolicy(
    name="shared-storage-required",
    description="An image-library deployment with more than one host must keep its images on NFS or Cinder.",
    enforcement_level=EnforcementLevel.MANDATORY,
    validate=shared_storage_required_validator,
)


# --- same-mount-path ---------------------------------------------------------------------------


def same_mount_path_validator(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    deployment = deployment_for(args)
    if deployment is None or deployment.backend != "nfs" or not isinstance(deployment.hosts, list):
        return
    hosts_by_path: dict[str, list[str]] = defaultdict(list)
    for index, entry in enumerate(deployment.hosts):
        path = entry.mount_path if entry.mount_path is not None else deployment.mount_path
        if isinstance(path, str):
            hosts_by_path[path].append(entry.label(index))
    if len(hosts_by_path) <= 1:
        return
    groups = "; ".join(f"'{path}' on {quoted_list(hosts)}" for path, hosts in sorted(hosts_by_path.items()))
    report_violation(
        f"{deployment.kind} '{deployment.name}' uses NFS but its hosts mount the share at different paths "
        f"({groups}), so Glance on each host would read a different directory. "
        "Give every entry of pcd-imagelib-ha:hosts the same mountPath, or drop the per-host mountPath "
        "to use pcd-imagelib-ha:storage.nfs.mountPath.",
        None,
    )


same_mount_path: Final = ResourceValidationPolicy(
    name="same-mount-path",
    description="Every host of an NFS image-library deployment mounts the share at the same path.",
    enforcement_level=EnforcementLevel.MANDATORY,
    validate=same_mount_path_validator,
)


# --- cinder-multiattach ------------------------------------------------------------------------

# Cinder enables multiattach only for this exact extra spec value (cinder/volume/api.py _is_multiattach).
MULTIATTACH_KEY: Final = "multiattach"
MULTIATTACH_ON: Final = "<is> True"


def cinder_multiattach_validator(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    deployment = deployment_for(args)
    if deployment is None or deployment.backend != "cinder":
        return
    specs = as_mapping(prop(plain(args.props), "volume_type_extra_specs"))
    if specs is UNKNOWN or specs is None:
        return  # unknown at preview, or a type the stack does not create (the health check reads it)
    value = specs.get(MULTIATTACH_KEY) if isinstance(specs, dict) else None
    if value is UNKNOWN or value == MULTIATTACH_ON:
        return
    found = (
        f"sets '{MULTIATTACH_KEY}' to '{value}'" if isinstance(value, str) else f"has no '{MULTIATTACH_KEY}'"
    )
    report_violation(
        f"{deployment.kind} '{deployment.name}' stores images as Cinder volumes, but its volume type "
        f"{found}, so a second image-library host cannot read an image while another has its volume "
        f"attached. Remove '{MULTIATTACH_KEY}' from pcd-imagelib-ha:storage.cinder.extraSpecs (the program "
        f"then sets it) or set it to '{MULTIATTACH_ON}'.",
        None,
    )


cinder_multiattach: Final = ResourceValidationPolicy(
    name="cinder-multiattach",
    description="The Cinder volume type of an image-library deployment is multiattach.",
    enforcement_level=EnforcementLevel.MANDATORY,
    validate=cinder_multiattach_validator,
)


# --- cinder-volume-type-declared (stack) -------------------------------------------------------

# When several resources describe one deployment's storage, the first with a known backend speaks.
_STORAGE_SOURCES: Final = (tokens.HA, tokens.SETTINGS, tokens.STORAGE)


def _storage_sources(resources: Iterable[PolicyResource]) -> dict[str, PolicyResource]:
    chosen: dict[str, PolicyResource] = {}
    for source_type in _STORAGE_SOURCES:
        for resource in resources:
            if resource.resource_type != source_type:
                continue
            backend = prop(plain(resource.props), "backend")
            if not isinstance(backend, str):
                continue
            chosen.setdefault(deployment_key(resource) or resource.urn, resource)
    return chosen


def cinder_volume_type_declared_validator(
    args: StackValidationArgs, report_violation: ReportViolation
) -> None:
    declared = set(config.declared_volume_types(args.get_config()))
    some_name_unknown = False
    for resource in args.resources:
        if resource.resource_type == tokens.OPENSTACK_VOLUME_TYPE:
            name = prop(plain(resource.props), "name")
            if isinstance(name, str):
                declared.add(name)
            elif name is UNKNOWN:
                some_name_unknown = True
    for _, resource in sorted(_storage_sources(args.resources).items()):
        values = plain(resource.props)
        if str(prop(values, "backend")).strip().lower() != "cinder":
            continue
        kind = tokens.KIND[resource.resource_type]
        volume_type = prop(values, "volume_type")
        if volume_type is UNKNOWN:
            continue
        if not isinstance(volume_type, str) or not volume_type.strip():
            report_violation(
                f"{kind} '{resource.name}' uses the Cinder backend but names no volume type. "
                "Set pcd-imagelib-ha:storage.cinder.volumeType.",
                resource.urn,
            )
        elif volume_type not in declared and not some_name_unknown:
            report_violation(
                f"{kind} '{resource.name}' uses Cinder volume type '{volume_type}', which this stack neither "
                "creates (openstack.blockstorage.VolumeTypeV3) nor declares. Create it in the stack, or list "
                "it in this policy's declaredVolumeTypes if it already exists in the region.",
                resource.urn,
            )


cinder_volume_type_declared: Final = StackValidationPolicy(
    name="cinder-volume-type-declared",
    description="A Cinder image-library backend names a volume type that the stack creates or declares.",
    enforcement_level=EnforcementLevel.MANDATORY,
    config_schema=config.CINDER_VOLUME_TYPE_SCHEMA,
    validate=cinder_volume_type_declared_validator,
)
