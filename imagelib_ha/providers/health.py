"""``ImageLibraryHealth``: validation of a region's image-library hosts after every role change.

Provider logic lands in the next commits; the class and its constructor signature are final.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pulumi import Input, Output, ResourceOptions
from pulumi.dynamic import CreateResult, Resource, ResourceProvider

from imagelib_ha.providers.common import PROVIDER_VERSION

# Output-only keys: seeded with None so each exists as an attribute on the resource object.
OUTPUT_KEYS = ("report", "serving_count", "endpoints")


class ImageLibraryHealthProvider(ResourceProvider):
    """Probes every image-library host, checks its store, and proves the storage is shared."""

    def create(self, props: dict[str, Any]) -> CreateResult:
        raise NotImplementedError("ImageLibraryHealthProvider.create is not implemented yet")


class ImageLibraryHealth(Resource, module="imagelib", name="ImageLibraryHealth"):
    """The validated state of a region's image library: per-host report and serving endpoints.

    Create and update run the shared-storage canary; read (refresh) only probes.
    """

    report: Output[list[dict[str, Any]]]
    serving_count: Output[int]
    endpoints: Output[list[str]]

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
        super().__init__(ImageLibraryHealthProvider(), resource_name, full, opts)
