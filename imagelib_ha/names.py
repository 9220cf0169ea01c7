"""Resource names derived from config values (the program names resources with them; settings checks
that two names do not collide)."""

from __future__ import annotations

import re


def resource_slug(value: str) -> str:
    """A resource-name-safe form of a config name (``pcd-host-01.example.com`` stays readable)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", value).strip("-") or "x"
