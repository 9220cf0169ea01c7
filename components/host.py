"""``ImageLibraryHost``: one image-library host and the role that makes it one."""

from __future__ import annotations

import re
from typing import Any

import pulumi

from imagelib_ha.providers.role import ImageLibraryRole
from imagelib_ha.settings import HostSettings, StackSettings

TYPE = "pcd-imagelib-ha:index:ImageLibraryHost"


def host_slug(host: str) -> str:
    """A resource-name-safe form of a host id or hostname (``pcd-host-01.example.com`` stays readable)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", host).strip("-") or "host"


class ImageLibraryHost(pulumi.ComponentResource):
    """One PCD host serving the image library: owns its ``ImageLibraryRole``.

    Exposes the resolved resmgr host id, hostname, this host's ``image-cluster`` endpoint and the role
    status. A role that existed before the stack is adopted and left in place on destroy (the role
    provider records ``adopted``).
    """

    host_ref: str
    role: ImageLibraryRole
    host_id: pulumi.Output[str]
    hostname: pulumi.Output[str]
    endpoint: pulumi.Output[str | None]
    status: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        *,
        host: HostSettings,
        settings: StackSettings,
        deployment: str,
        cloud: pulumi.Output[dict[str, Any]],
        depends_on: list[pulumi.Resource] | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        props = {
            "host": host.host,
            "region": host.region,
            "mount_path": host.mount_path,
            "deployment": deployment,
        }
        super().__init__(TYPE, name, props, opts)
        self.host_ref = host.host
        roles = settings.roles
        self.role = ImageLibraryRole(
            f"{name}-role",
            {
                "cloud": cloud,
                "host": host.host,
                "expected_region": host.region,
                "expected_mount_path": host.mount_path,
                "converge_timeout": roles.converge_timeout_seconds,
                "failed_grace": roles.failed_grace_seconds,
                "conflict_timeout": roles.conflict_timeout_seconds,
                "poll_interval": roles.poll_interval_seconds,
            },
            # Replacing a role (only on a host change) must not drop capacity: create the new first.
            # depends_on is given to the role itself: a component's dependencies do not hold back its
            # children, and the role must wait for the region's storage settings.
            pulumi.ResourceOptions(parent=self, delete_before_replace=False, depends_on=depends_on),
        )
        self.host_id = self.role.host_id
        self.hostname = self.role.hostname
        self.endpoint = self.role.endpoint
        self.status = self.role.role_status
        self.register_outputs(
            {
                "host_id": self.host_id,
                "hostname": self.hostname,
                "endpoint": self.endpoint,
                "status": self.status,
            }
        )
