"""TLS verification: image-library cloud settings and OpenStack providers verify the cloud's certificates.

An ``ImageLibraryHA`` may skip verification only when its deployment says it is a lab
(``pcd-imagelib-ha:lab``); an OpenStack provider only in the stacks this rule's config allows.
"""

from __future__ import annotations

from typing import Final

from pulumi_policy import EnforcementLevel, ReportViolation, ResourceValidationArgs, ResourceValidationPolicy

from . import config, tokens
from .values import as_bool, plain, prop, urn_stack

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
