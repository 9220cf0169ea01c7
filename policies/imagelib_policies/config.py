"""The pack's configuration: one schema per configurable rule, and typed readers with the defaults.

The Pulumi CLI fills missing properties from each schema's ``default`` before it configures the
pack; the readers apply the same defaults so that direct calls (tests, other tooling) behave alike.
Enforcement levels are configured per rule in the same file (``"enforcementLevel"``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from pulumi_policy import PolicyConfigSchema

DEFAULT_MINIMUM_HOSTS: Final = 2
DEFAULT_ALLOWED_INSECURE_STACKS: Final = ("lab",)

MINIMUM_HOSTS_SCHEMA: Final = PolicyConfigSchema(
    properties={
        "minimumHosts": {
            "type": "integer",
            "minimum": 1,
            "default": DEFAULT_MINIMUM_HOSTS,
            "description": "How many image-library hosts a deployment needs to count as highly available.",
        },
    },
)

TLS_VERIFICATION_SCHEMA: Final = PolicyConfigSchema(
    properties={
        "allowedStacks": {
            "type": "array",
            "items": {"type": "string"},
            "default": list(DEFAULT_ALLOWED_INSECURE_STACKS),
            "description": "Stack names (such as lab stacks) allowed to skip TLS verification.",
        },
    },
)

CINDER_VOLUME_TYPE_SCHEMA: Final = PolicyConfigSchema(
    properties={
        "declaredVolumeTypes": {
            "type": "array",
            "items": {"type": "string"},
            "default": [],
            "description": "Cinder volume types that exist in the region outside this stack.",
        },
    },
)


class PolicyConfigError(ValueError):
    """A policy configuration value has the wrong type or range."""


def minimum_hosts(config: Mapping[str, Any]) -> int:
    value = config.get("minimumHosts", DEFAULT_MINIMUM_HOSTS)
    # JSON numbers may arrive as floats through the protobuf Struct the CLI sends.
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise PolicyConfigError(
            "minimum-hosts: minimumHosts must be an integer of at least 1; fix it in the policy pack config"
        )
    return value


def _string_list(config: Mapping[str, Any], key: str, default: tuple[str, ...], rule: str) -> frozenset[str]:
    value = config.get(key, list(default))
    if isinstance(value, str) or not all(isinstance(item, str) for item in value):
        raise PolicyConfigError(f"{rule}: {key} must be a list of strings; fix it in the policy pack config")
    return frozenset(value)


def allowed_insecure_stacks(config: Mapping[str, Any]) -> frozenset[str]:
    return _string_list(config, "allowedStacks", DEFAULT_ALLOWED_INSECURE_STACKS, "tls-verification")


def declared_volume_types(config: Mapping[str, Any]) -> frozenset[str]:
    return _string_list(config, "declaredVolumeTypes", (), "cinder-volume-type-declared")
