"""The body of a Keystone v3 token as the requests-mock tests serve it to keystoneauth.

One envelope for every mocked test: a project-scoped admin token that never expires (so keystoneauth
never renews it mid-test), with the catalog each test needs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any


def token_body(catalog: Iterable[Mapping[str, Any]] = (), **extra: Any) -> dict[str, Any]:
    """``{"token": {...}}`` for ``POST /v3/auth/tokens``; ``extra`` adds keys such as ``roles``."""
    return {
        "token": {
            "methods": ["password"],
            "expires_at": "2999-01-01T00:00:00.000000Z",
            "user": {"id": "u1", "name": "admin", "domain": {"id": "default", "name": "Default"}},
            "project": {"id": "p1", "name": "admin", "domain": {"id": "default", "name": "Default"}},
            "catalog": list(catalog),
            **extra,
        }
    }
