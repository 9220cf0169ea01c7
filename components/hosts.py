"""``ImageLibraryHosts``: the configured hosts of a region and the image-library role on them."""

from __future__ import annotations

from typing import Any

import pulumi

from imagelib_ha.providers.baseline import ImageLibraryRoleBaseline
from imagelib_ha.providers.roles import ImageLibraryRoles
from imagelib_ha.settings import StackSettings

TYPE = "pcd-imagelib-ha:index:ImageLibraryHosts"


class ImageLibraryHosts(pulumi.ComponentResource):
    """The image-library hosts of one region: who held the role before the stack, and the role on each.

    Two children with names that do not depend on how hosts are spelt or ordered: the baseline (recorded
    before any assignment, so an interrupted run's roles are still known as this stack's) and the roles.
    ``members`` is the roles' per-host record (id, hostname, endpoint, status, owned).
    """

    baseline: ImageLibraryRoleBaseline
    roles: ImageLibraryRoles
    members: pulumi.Output[list[dict[str, Any]]]
    host_ids: pulumi.Output[list[str]]

    def __init__(
        self,
        name: str,
        *,
        settings: StackSettings,
        depends_on: list[pulumi.Resource] | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        host_props = settings.host_props()
        super().__init__(TYPE, name, {"region": settings.region, "hosts": host_props}, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.baseline = ImageLibraryRoleBaseline(
            f"{name}-baseline",
            {"region": settings.region, "hosts": [h["host"] for h in host_props]},
            child,
        )
        roles = settings.roles
        self.roles = ImageLibraryRoles(
            f"{name}-roles",
            {
                "hosts": host_props,
                "baseline": self.baseline.entries,
                "expected_region": settings.region,
                "converge_timeout": roles.converge_timeout_seconds,
                "failed_grace": roles.failed_grace_seconds,
                "conflict_timeout": roles.conflict_timeout_seconds,
                "poll_interval": roles.poll_interval_seconds,
            },
            # depends_on goes to the roles themselves: a component's dependencies do not hold back its
            # children, and the roles must wait for the region's storage settings. The baseline is named
            # too, not only reached through its output: it must be recorded before any assignment.
            pulumi.ResourceOptions(parent=self, depends_on=[self.baseline, *(depends_on or [])]),
        )
        self.members = self.roles.members
        self.host_ids = self.roles.host_ids
        self.register_outputs({"members": self.members, "host_ids": self.host_ids})
