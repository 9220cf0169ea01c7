"""``ImageLibraryRole``: the image-library role on one PCD host, as a Pulumi dynamic resource.

Provider logic lands in the next commit; the class and its constructor signature are final.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pulumi import Input, Output, ResourceOptions
from pulumi.dynamic import CreateResult, Resource, ResourceProvider

from imagelib_ha.providers.common import PROVIDER_VERSION

# Output-only keys: seeded with None so each exists as an attribute on the resource object.
OUTPUT_KEYS = (
    "host_id",
    "hostname",
    "region",
    "role_status",
    "glance_role_state",
    "adopted",
    "endpoint",
)


class ImageLibraryRoleProvider(ResourceProvider):
    """Assigns, adopts, reads and removes the ``image-library`` role of one host through resmgr."""

    def create(self, props: dict[str, Any]) -> CreateResult:
        raise NotImplementedError("ImageLibraryRoleProvider.create is not implemented yet")


class ImageLibraryRole(Resource, module="imagelib", name="ImageLibraryRole"):
    """The ``image-library`` role assigned to one PCD host (resmgr v2 cluster role).

    A role that already existed is adopted (``adopted`` is true) and left in place on delete.
    Only a change of ``host`` replaces the resource, create-before-delete.
    """

    host_id: Output[str]
    hostname: Output[str]
    region: Output[str]
    role_status: Output[str]
    glance_role_state: Output[str]
    adopted: Output[bool]
    endpoint: Output[str | None]

    def __init__(
        self,
        resource_name: str,
        props: Mapping[str, Input[Any]],
        opts: ResourceOptions | None = None,
    ) -> None:
        full: dict[str, Any] = dict(props)
        full.setdefault("provider_version", PROVIDER_VERSION)
        for key in OUTPUT_KEYS:
            full.setdefault(key, None)
        super().__init__(ImageLibraryRoleProvider(), resource_name, full, opts)
