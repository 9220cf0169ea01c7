"""The pack's rules: the Image Library HA prerequisites of PCD, and the gates around image uploads.

Every validator reads config-known values only (component props, dynamic-resource inputs, provider
arguments), skips a check whose values are unknown at preview, and names resources, hosts, regions,
paths and volume types in its messages but never echoes a value that could be secret (cloud
credentials, provider arguments other than the ones it parses). Every message ends with the fix.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any, Final

from pulumi_policy import (
    EnforcementLevel,
    Policy,
    PolicyResource,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)

from . import config, tokens
from .deployments import Deployment, HostEntry, deployment_key, deployment_of, read_deployment
from .host_checks import host_checks_configured
from .values import UNKNOWN, as_bool, as_mapping, plain, prop, quoted_list, urn_stack


def _deployment(args: ResourceValidationArgs) -> Deployment | None:
    return deployment_of(args.resource_type, args.props, args.name, args.urn)


# --- shared-storage-required -------------------------------------------------------------------


def shared_storage_required_validator(
    args: ResourceValidationArgs, report_violation: ReportViolation
) -> None:
    deployment = _deployment(args)
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
    deployment = _deployment(args)
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


# --- minimum-hosts -----------------------------------------------------------------------------


def minimum_hosts_validator(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    deployment = _deployment(args)
    if deployment is None:
        return
    minimum = config.minimum_hosts(args.get_config())
    count = deployment.host_count
    if not isinstance(count, int) or count >= minimum:
        return
    noun = "host" if count == 1 else "hosts"
    report_violation(
        f"{deployment.kind} '{deployment.name}' has {count} image-library {noun}; "
        f"high availability needs at least {minimum}. "
        "Add hosts of the same region to pcd-imagelib-ha:hosts.",
        None,
    )


minimum_hosts: Final = ResourceValidationPolicy(
    name="minimum-hosts",
    description="An image-library deployment has at least the configured number of hosts (2 by default).",
    enforcement_level=EnforcementLevel.ADVISORY,
    config_schema=config.MINIMUM_HOSTS_SCHEMA,
    validate=minimum_hosts_validator,
)


# --- cinder-multiattach ------------------------------------------------------------------------

# Cinder enables multiattach only for this exact extra spec value (cinder/volume/api.py _is_multiattach).
MULTIATTACH_KEY: Final = "multiattach"
MULTIATTACH_ON: Final = "<is> True"


def cinder_multiattach_validator(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    deployment = _deployment(args)
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


# --- images-through-image-library-hosts -------------------------------------------------------


def images_through_image_library_hosts_validator(
    args: ResourceValidationArgs, report_violation: ReportViolation
) -> None:
    if args.resource_type != tokens.OPENSTACK_IMAGE or args.provider is None:
        # Without the provider's arguments nothing can be said about where the upload goes.
        return
    overrides = as_mapping(prop(plain(args.provider.props), "endpoint_overrides"))
    if overrides is UNKNOWN:
        return
    image_endpoint = overrides.get("image") if isinstance(overrides, dict) else None
    if image_endpoint is UNKNOWN or (isinstance(image_endpoint, str) and image_endpoint.strip()):
        return
    report_violation(
        f"Image '{args.name}' is uploaded through OpenStack provider '{args.provider.name}', which has no "
        "'image' endpoint override, so it goes to the region's public image endpoint that PCD cannot boot "
        "from. Set endpoint_overrides={'image': <an image-library host's endpoint>} on the provider, "
        "or create the image with FailoverImage.",
        None,
    )


images_through_image_library_hosts: Final = ResourceValidationPolicy(
    name="images-through-image-library-hosts",
    description="OpenStack images are uploaded through an image-library host, not the public image endpoint.",
    enforcement_level=EnforcementLevel.MANDATORY,
    validate=images_through_image_library_hosts_validator,
)


# --- tls-verification --------------------------------------------------------------------------


def tls_verification_validator(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    is_provider = args.resource_type == tokens.OPENSTACK_PROVIDER
    if not is_provider and args.resource_type != tokens.HA:
        return
    stack = urn_stack(args.urn)
    values = plain(args.props)
    if as_bool(prop(values, "insecure")) is not True:
        return
    if not is_provider and as_bool(prop(values, "lab")) is True:
        return  # the deployment says it is a lab (pcd-imagelib-ha:lab), whatever the stack is called
    if is_provider and stack in config.allowed_insecure_stacks(args.get_config()):
        return
    if is_provider:
        report_violation(
            f"OpenStack provider '{args.name}' disables TLS verification (insecure) in stack '{stack}'. "
            "Remove insecure and set cacert_file to the region's CA bundle, or add the stack to this "
            "policy's allowedStacks if it is a lab.",
            None,
        )
    else:
        report_violation(
            f"ImageLibraryHA '{args.name}' disables TLS verification (pcd-imagelib-ha:cloud.insecure) in "
            f"stack '{stack}'. Set pcd-imagelib-ha:cloud.insecure to false and "
            "pcd-imagelib-ha:cloud.caBundle to the region's CA bundle, or set pcd-imagelib-ha:lab: true "
            "if it is a lab.",
            None,
        )


tls_verification: Final = ResourceValidationPolicy(
    name="tls-verification",
    description="Image-library cloud settings verify TLS except in a lab; OpenStack providers except in "
    "allowed stacks.",
    enforcement_level=EnforcementLevel.MANDATORY,
    config_schema=config.TLS_VERIFICATION_SCHEMA,
    validate=tls_verification_validator,
)


# --- single-region (stack) ---------------------------------------------------------------------


def _host_labels(entries: Any, regions: dict[str, set[str]]) -> None:
    if not isinstance(entries, list):
        return
    for index, entry in enumerate(entries):
        if isinstance(entry, HostEntry) and isinstance(entry.region, str):
            regions[entry.region].add(f"host '{entry.label(index)}'")


def single_region_validator(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    regions: dict[str, set[str]] = defaultdict(set)
    for resource in args.resources:
        values = plain(resource.props)
        if resource.resource_type in (tokens.HA, tokens.SETTINGS):
            deployment = read_deployment(resource.resource_type, resource.props, resource.name)
            if deployment is None:
                continue
            noun = "deployment" if resource.resource_type == tokens.HA else "settings"
            if isinstance(deployment.region, str):
                regions[deployment.region].add(f"{noun} '{resource.name}'")
            _host_labels(deployment.hosts, regions)
        elif resource.resource_type in (tokens.HOSTS, tokens.ROLES):
            key = "region" if resource.resource_type == tokens.HOSTS else "expected_region"
            default_region = prop(values, key)
            entries = prop(values, "hosts")
            for index, entry in enumerate(entries if isinstance(entries, list) else []):
                if not isinstance(entry, dict):
                    continue
                host, region = entry.get("host"), entry.get("region")
                if region is None:
                    region = default_region
                if isinstance(region, str):
                    regions[region].add(f"host '{host if isinstance(host, str) else f'hosts[{index}]'}'")
    if len(regions) <= 1:
        return
    spans = "; ".join(f"{region}: {', '.join(sorted(labels))}" for region, labels in sorted(regions.items()))
    report_violation(
        f"Image-library hosts and settings span {len(regions)} regions ({spans}); an image library serves "
        "one region. Put every host of pcd-imagelib-ha:hosts in the region of pcd-imagelib-ha:cloud.region, "
        "or deploy one stack per region.",
        None,
    )


single_region: Final = StackValidationPolicy(
    name="single-region",
    description="Every image-library host and the image-library settings of a stack are in one region.",
    enforcement_level=EnforcementLevel.MANDATORY,
    validate=single_region_validator,
)


# --- health-gates-images (stack) ---------------------------------------------------------------

_IMAGE_LIBRARY_TYPES: Final = frozenset({tokens.HA, tokens.SETTINGS, tokens.ROLES, tokens.HEALTH})


def _missing_roles(health: PolicyResource, roles: Iterable[PolicyResource]) -> list[str]:
    depended = {dependency.urn for dependency in health.dependencies}
    return sorted(role.name for role in roles if role.urn not in depended)


def health_gates_images_validator(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    if not any(resource.resource_type in _IMAGE_LIBRARY_TYPES for resource in args.resources):
        # No image library in this stack: there is nothing to gate on; see
        # images-through-image-library-hosts for images uploaded by other programs.
        return
    roles_by_deployment: dict[str | None, list[PolicyResource]] = defaultdict(list)
    for resource in args.resources:
        if resource.resource_type == tokens.ROLES:
            roles_by_deployment[deployment_key(resource)].append(resource)
    for image in args.resources:
        if image.resource_type not in tokens.IMAGE_TYPES:
            continue
        kind = tokens.KIND[image.resource_type]
        healths = [d for d in image.dependencies if d.resource_type == tokens.HEALTH]
        if not healths:
            report_violation(
                f"{kind} '{image.name}' does not depend on an ImageLibraryHealth resource, so it could be "
                "uploaded before the image-library hosts are proven healthy. Pass the health resource as its "
                "health input, or add it to depends_on.",
                image.urn,
            )
            continue
        own_deployment = deployment_key(image)
        gaps: list[tuple[str, list[str]]] = []
        for health in healths:
            deployment = own_deployment if own_deployment is not None else deployment_key(health)
            missing = _missing_roles(health, roles_by_deployment.get(deployment, []))
            if not missing:
                break
            gaps.append((health.name, missing))
        else:
            health_name, missing = gaps[0]
            report_violation(
                f"{kind} '{image.name}' depends on ImageLibraryHealth '{health_name}', which does not depend "
                f"on role(s) {quoted_list(missing)} of its deployment, so the image could be uploaded before "
                "those hosts are ready. Pass the roles' host_ids as the health resource's role_host_ids.",
                image.urn,
            )


health_gates_images: Final = StackValidationPolicy(
    name="health-gates-images",
    description="Every image depends on a health check that depends on every role of its deployment.",
    enforcement_level=EnforcementLevel.MANDATORY,
    validate=health_gates_images_validator,
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


POLICIES: Final[list[Policy]] = [
    shared_storage_required,
    single_region,
    same_mount_path,
    minimum_hosts,
    cinder_multiattach,
    images_through_image_library_hosts,
    tls_verification,
    health_gates_images,
    cinder_volume_type_declared,
    host_checks_configured,
]
