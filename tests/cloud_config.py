"""Providers read cloud access in ``configure()``: give a test provider the stack config the engine
would send (``pcd-imagelib-ha:cloud`` as a JSON string of camelCase keys)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, TypeVar

from imagelib_ha.providers.access import CLOUD_KEY, CloudConfiguredProvider

P = TypeVar("P", bound=CloudConfiguredProvider)


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def cloud_config(cloud: Mapping[str, Any]) -> dict[str, str]:
    """The engine's config map for ``cloud`` (snake_case access dict or camelCase config, either)."""
    return {CLOUD_KEY: json.dumps({camel(k): v for k, v in cloud.items() if v is not None})}


def configured(provider: P, cloud: Mapping[str, Any], env: Mapping[str, str] | None = None) -> P:
    """``provider`` after ``configure`` with ``cloud`` as the stack's cloud config."""
    provider.configure_from(cloud_config(cloud), env or {})
    return provider
