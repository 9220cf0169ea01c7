"""The gates around image uploads: where an image is uploaded, and what it waits for.

An ``openstack.images.Image`` goes through an image-library host, not the region's public image
endpoint (images-through-image-library-hosts, per resource); every image waits for a health check
that waits for every role of its deployment (health-gates-images, over the stack).
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

from . import tokens
from .deployments import deployment_key
from .values import UNKNOWN, as_mapping, plain, prop, quoted_list

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
