"""How the host probe reaches the hosts over SSH (resolved settings, secrets in plain text, in memory).

Built from ``settings.host_access.resolve_host_access`` in the process that runs the checks; never
stored in state or printed (``__repr__`` hides the secrets).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ProxyJump:
    """A bastion host the connections go through."""

    host: str
    port: int = 22
    user: str = "root"


@dataclass(frozen=True)
class HostAccess:
    """SSH access to the image-library hosts: user, key or agent, host-key verification, limits."""

    user: str = "root"
    port: int | None = None
    private_key: str | None = field(default=None, repr=False)
    private_key_password: str | None = field(default=None, repr=False)
    agent_socket_path: str | None = None
    host_key: str | None = None
    known_hosts: str | None = None
    ssh_config: str | None = None
    proxy: ProxyJump | None = None
    per_dial_timeout: float = 15.0
    dial_error_limit: int = 10
    sudo: str | None = None
    concurrency: int = 8

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> HostAccess:
        values = dict(data)
        proxy = values.pop("proxy", None)
        return cls(**values, proxy=ProxyJump(**proxy) if proxy else None)
