"""What an image should be: its key, owner and the metadata Glance records, and the JSON patch that
brings an existing record to it (in-place updates, adoption, the key-scheme upgrade)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from imagelib_ha.client.image_key import KEY_PROPERTY, OWNER_PROPERTY


@dataclass(frozen=True)
class ImageSpec:
    """The image to create or adopt: its key, its owner token and the metadata Glance records."""

    key: str
    name: str
    disk_format: str
    container_format: str
    owner: str | None = None
    visibility: str | None = None
    properties: Mapping[str, str] = field(default_factory=dict)
    tags: Sequence[str] = ()

    def create_body(self) -> dict[str, Any]:
        """The ``POST /v2/images`` body (without ``id``): custom properties are top-level keys."""
        body: dict[str, Any] = dict(self.properties)
        body.update(
            {
                "name": self.name,
                "disk_format": self.disk_format,
                "container_format": self.container_format,
                "tags": list(self.tags),
                KEY_PROPERTY: self.key,
            }
        )
        if self.owner:
            body[OWNER_PROPERTY] = self.owner
        if self.visibility:
            body["visibility"] = self.visibility
        return body


def _set(record: Mapping[str, Any], name: str, value: Any) -> list[dict[str, Any]]:
    # Glance answers 409 to ``add`` on a property that exists: existing ones are replaced.
    if name not in record:
        return [{"op": "add", "path": f"/{name}", "value": value}]
    if record[name] != value:
        return [{"op": "replace", "path": f"/{name}", "value": value}]
    return []


def patch_to_spec(
    record: Mapping[str, Any], spec: ImageSpec, *, previous_properties: Iterable[str] = ()
) -> list[dict[str, Any]]:
    """The JSON patch that brings ``record`` to ``spec``: name, visibility, properties, tags, key, owner.

    Properties named in ``previous_properties`` (set by this resource before) and no longer wanted are
    removed; other properties of the record are left as they are. An owner of None leaves the owner
    property as it is.
    """
    ops: list[dict[str, Any]] = []
    if record.get("name") != spec.name:
        ops.append({"op": "replace", "path": "/name", "value": spec.name})
    if spec.visibility is not None and record.get("visibility") != spec.visibility:
        ops.append({"op": "replace", "path": "/visibility", "value": spec.visibility})
    for name, value in spec.properties.items():
        ops += _set(record, name, value)
    for name in previous_properties:
        if name not in spec.properties and name in record and name not in (KEY_PROPERTY, OWNER_PROPERTY):
            ops.append({"op": "remove", "path": f"/{name}"})
    if sorted(record.get("tags") or []) != sorted(spec.tags):
        ops.append({"op": "replace", "path": "/tags", "value": list(spec.tags)})
    ops += _set(record, KEY_PROPERTY, spec.key)
    if spec.owner:
        ops += _set(record, OWNER_PROPERTY, spec.owner)
    return ops
