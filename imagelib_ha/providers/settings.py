"""``ImageLibrarySettings``: a region's image-library storage settings, as a Pulumi dynamic resource.

Provider logic lands in the next commit; the class and its constructor signature are final.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pulumi import Input, Output, ResourceOptions
from pulumi.dynamic import CreateResult, Resource, ResourceProvider

from imagelib_ha.providers.common import PROVIDER_VERSION

OUTPUT_KEYS = ("glance_store_config", "blueprint_storage", "blueprint_shared")


class ImageLibrarySettingsProvider(ResourceProvider):
    """Writes the region blueprint's image-library storage fields and renders the Glance store config."""

    def create(self, props: dict[str, Any]) -> CreateResult:
        raise NotImplementedError("ImageLibrarySettingsProvider.create is not implemented yet")


class ImageLibrarySettings(Resource, module="imagelib", name="ImageLibrarySettings"):
    """The image-library storage settings of one region: blueprint fields and Glance store section."""

    glance_store_config: Output[str]
    blueprint_storage: Output[str]
    blueprint_shared: Output[bool]

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
        super().__init__(ImageLibrarySettingsProvider(), resource_name, full, opts)
