"""host-checks-configured (advisory): a health resource that cannot check its hosts over SSH says so.

Without ``pcd-imagelib-ha:hostAccess`` the health check sees the hosts through their APIs only: the
service unit (``health.serviceUnit``), the log (``health.logPath``), the Glance config each host really
reads and its store mount are never looked at. The program passes ``host_checks`` (whether host
access is configured, never the access itself) to the health resource.
"""

from __future__ import annotations

from typing import Final

from pulumi_policy import EnforcementLevel, ReportViolation, ResourceValidationArgs, ResourceValidationPolicy

from . import tokens


def host_checks_configured_validator(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    if args.resource_type != tokens.HEALTH:
        return
    if args.props.get("host_checks") is True:
        return
    report_violation(
        f"{tokens.KIND[tokens.HEALTH]} '{args.name}' runs no host checks: without pcd-imagelib-ha:hostAccess "
        "the hosts' service unit (health.serviceUnit), log (health.logPath), Glance config and store mount "
        "are not checked, only their APIs. Set hostAccess (user, privateKey as a secret, knownHosts).",
        None,
    )


host_checks_configured: Final = ResourceValidationPolicy(
    name="host-checks-configured",
    description="The health check reaches the image-library hosts over SSH (pcd-imagelib-ha:hostAccess).",
    enforcement_level=EnforcementLevel.ADVISORY,
    validate=host_checks_configured_validator,
)
