"""How many image-library hosts a deployment has, and which region they are in.

High availability needs enough hosts (minimum-hosts, per resource), and an image library serves one
region, so every host and the settings of a stack share one (single-region, over the stack).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Final

from pulumi_policy import (
    EnforcementLevel,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)

from . import config, tokens
from .deployments import HostEntry, deployment_for, read_deployment
from .values import plain, prop

# --- minimum-hosts -----------------------------------------------------------------------------


def minimum_hosts_validator(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    deployment = deployment_for(args)
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
