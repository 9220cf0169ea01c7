"""Reading resource properties as policies receive them: proxied, possibly unknown, possibly JSON text.

The analyzer hands policies read-only proxies that raise ``UnknownValueError`` when a value is not
known yet (preview). A policy that lets that exception escape is reported as "can't run during
preview"; these rules instead convert the properties to plain values once, with ``UNKNOWN`` standing
in for every unknown, and skip exactly the checks that need an unknown value.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, Final

from pulumi_policy.proxy import (
    UNKNOWN_ARCHIVE_VALUE,
    UNKNOWN_ARRAY_VALUE,
    UNKNOWN_ASSET_VALUE,
    UNKNOWN_BOOLEAN_VALUE,
    UNKNOWN_NUMBER_VALUE,
    UNKNOWN_OBJECT_VALUE,
    UNKNOWN_STRING_VALUE,
    UnknownValueError,
)

_UNKNOWN_SENTINELS: Final = frozenset(
    {
        UNKNOWN_ARCHIVE_VALUE,
        UNKNOWN_ARRAY_VALUE,
        UNKNOWN_ASSET_VALUE,
        UNKNOWN_BOOLEAN_VALUE,
        UNKNOWN_NUMBER_VALUE,
        UNKNOWN_OBJECT_VALUE,
        UNKNOWN_STRING_VALUE,
    }
)


class _Unknown:
    """The marker for a value that is not known until the resources it depends on exist."""

    _instance: _Unknown | None = None

    def __new__(cls) -> _Unknown:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNKNOWN"

    def __bool__(self) -> bool:
        # An unknown must never pass for a known falsy or truthy value by accident.
        raise TypeError("an unknown value has no truth value; test `is UNKNOWN` first")


UNKNOWN: Final = _Unknown()


def plain(value: Any) -> Any:
    """Deep-copy proxied properties into dicts and lists, with ``UNKNOWN`` for unknown values."""
    if isinstance(value, str):
        return UNKNOWN if value in _UNKNOWN_SENTINELS else value
    if isinstance(value, Mapping):
        result: dict[str, Any] = {}
        for key in value:
            try:
                item = value[key]
            except UnknownValueError:
                result[key] = UNKNOWN
                continue
            result[key] = plain(item)
        return result
    if isinstance(value, Sequence):
        items: list[Any] = []
        for index in range(len(value)):
            try:
                item = value[index]
            except UnknownValueError:
                items.append(UNKNOWN)
                continue
            items.append(plain(item))
        return items
    return value


def snake_to_camel(key: str) -> str:
    head, *rest = key.split("_")
    return head + "".join(part.capitalize() for part in rest)


def prop(props: Mapping[str, Any], key: str) -> Any:
    """A property by its snake_case name, also found under its camelCase spelling; None if absent.

    Component props and dynamic-resource inputs keep the program's snake_case keys; resources of
    bridged providers arrive camelCase. Reading both keeps the rules independent of that detail.
    """
    if key in props:
        return props[key]
    camel = snake_to_camel(key)
    if camel in props:
        return props[camel]
    return None


def as_bool(value: Any) -> Any:
    """A boolean from a bool or its string form; ``UNKNOWN`` stays unknown; anything else is None.

    pulumi-openstack's provider arguments reach policies as strings: ``insecure: "false"`` is a
    truthy Python string, so it must be parsed, never tested for truth directly.
    """
    if value is UNKNOWN or isinstance(value, bool):
        return value
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in ("true", "1", "yes", "on"):
            return True
        if lowered in ("false", "0", "no", "off", ""):
            return False
    return None


def as_mapping(value: Any) -> Any:
    """A dict from a dict or its JSON text (bridged provider arguments); ``UNKNOWN`` stays unknown.

    Returns None when the value is absent or not an object. Unknown sentinels inside the JSON text
    become ``UNKNOWN`` too.
    """
    if value is UNKNOWN or isinstance(value, dict):
        return plain(value)
    if isinstance(value, str):
        try:
            decoded = json.loads(value)
        except ValueError:
            return None
        return plain(decoded) if isinstance(decoded, dict) else None
    return None


def as_int(value: Any) -> Any:
    """An int from an int, an integral float or a numeric string; ``UNKNOWN`` stays; else None."""
    if value is UNKNOWN:
        return value
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def urn_stack(urn: str) -> str:
    """The stack name inside a URN (``urn:pulumi:<stack>::<project>::<type>::<name>``)."""
    head = urn.split("::", 1)[0]
    parts = head.split(":")
    return parts[2] if len(parts) >= 3 else ""


def urn_type_chain(urn: str) -> list[str]:
    """The qualified type of a URN split into its parents' types and its own, outermost first."""
    parts = urn.split("::")
    return parts[2].split("$") if len(parts) >= 4 else []


def quoted_list(items: Sequence[str]) -> str:
    """``'a', 'b'`` for messages; items are names, never prop values that could be secret."""
    return ", ".join(f"'{item}'" for item in items)
