"""``FailoverImage``: one Glance image created through whichever image-library host is healthy.

Provider logic lands in the next commits; the class and its constructor signature are final.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pulumi import Input, Output, ResourceOptions
from pulumi.dynamic import CreateResult, Resource, ResourceProvider

from imagelib_ha.providers.common import PROVIDER_VERSION

# Computed by ``check`` from the inputs; seeded so they exist as attributes.
DERIVED_KEYS = ("content_digest", "key")

# Output-only keys: seeded with None so each exists as an attribute on the resource object.
OUTPUT_KEYS = ("image_id", "status", "size", "os_hash_value", "host", "attempts", "orphans")


class FailoverImageProvider(ResourceProvider):
    """Creates, adopts, reads, updates and deletes one image, failing over across hosts."""

    def create(self, props: dict[str, Any]) -> CreateResult:
        raise NotImplementedError("FailoverImageProvider.create is not implemented yet")


class FailoverImage(Resource, module="imagelib", name="FailoverImage"):
    """A Glance image uploaded through the first healthy image-library host, never twice.

    The image carries ``pcd_imagelib_ha_key`` (stable identity + content digest); a content change
    replaces the resource, name/visibility/properties/tags update in place.
    """

    image_id: Output[str]
    status: Output[str]
    size: Output[int]
    os_hash_value: Output[str]
    host: Output[str]
    attempts: Output[list[dict[str, Any]]]
    orphans: Output[list[dict[str, Any]]]
    content_digest: Output[str]
    key: Output[str]

    def __init__(
        self,
        resource_name: str,
        props: Mapping[str, Input[Any]],
        opts: ResourceOptions | None = None,
    ) -> None:
        full: dict[str, Any] = dict(props)
        full.setdefault("provider_version", PROVIDER_VERSION)
        for key in DERIVED_KEYS + OUTPUT_KEYS:
            full.setdefault(key, None)
        super().__init__(FailoverImageProvider(), resource_name, full, opts)
