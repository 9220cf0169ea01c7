"""``FailoverImage``: one Glance image created through whichever image-library host is healthy.

Lifecycle:

* ``check`` validates the inputs (unknowns at preview pass), computes ``content_digest`` (sha256 of a
  file's bytes, or of a URL) and ``key`` (``<identity>:<digest[:16]>``).
* ``diff`` is precise and ignores ``__provider``. A new content digest, key, source, format or region
  replaces the image: the new key gets new attempt ids, so a replacement can never adopt (and then
  lose, when the old one is deleted) the image it replaces. Name, visibility, properties and tags
  update in place. ``endpoints`` and ``health`` only carry the dependency on the health resource and
  which hosts to try first: their changes alone are no change to the image.
* ``create`` runs the failover engine (``client.failover``): adopt an active image with the key, else
  upload through the healthiest host, failing over; partial files a dead host left are reported in
  ``orphans``.
* ``read`` finds the image (by id, else by key); deleted out of band → gone (empty id).
* ``update`` applies name/visibility/properties/tags with one JSON patch and returns full outputs.
* ``delete`` deletes every image record carrying the key.

The provider keeps nothing on ``self``: sessions are built per call, and the only shared state (the
host-health book, the digest cache) is lock-protected, since up to four gRPC threads share the object.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Mapping, Sequence
from typing import Any

from keystoneauth1 import session as ks_session
from pulumi import Output
from pulumi.dynamic import (
    CheckFailure,
    CheckResult,
    CreateResult,
    DiffResult,
    ReadResult,
    UpdateResult,
)

from imagelib_ha.client.catalog import image_cluster_endpoints
from imagelib_ha.client.failover import (
    HOST_HEALTH,
    KEY_PROPERTY,
    ImageSource,
    ImageSpec,
    content_digest,
    create_image,
    find_image,
    is_url,
    make_key,
)
from imagelib_ha.client.glance import GlanceError, GlanceHost, HostUnavailable, Timeouts
from imagelib_ha.client.health import CANARY_PROPERTY
from imagelib_ha.providers.access import CloudConfiguredProvider
from imagelib_ha.providers.common import (
    SeededResource,
    contains_unknown,
    diff_inputs,
    fill_defaults,
    inputs_with_defaults,
    is_unknown,
)

LOG = logging.getLogger(__name__)

# Inputs with their defaults (None: optional). ``region``, ``name``, ``source``,
# ``disk_format``, ``container_format`` and ``identity`` are required.
INPUT_DEFAULTS: dict[str, Any] = {
    "visibility": None,
    "properties": {},
    "tags": [],
    "identity": None,
    "health": None,
    "endpoints": None,
    "connect_timeout": 3,
    "read_timeout": 30,
}
REQUIRED = ("region", "name", "source", "disk_format", "container_format")
INPUT_KEYS = (*REQUIRED, *INPUT_DEFAULTS)

# Computed by ``check`` from the inputs; seeded so they exist as attributes.
DERIVED_KEYS = ("content_digest", "key")

# Output-only keys: seeded with None so each exists as an attribute on the resource object.
OUTPUT_KEYS = ("image_id", "status", "size", "os_hash_value", "host", "attempts", "orphans")

REPLACE_ON = ("content_digest", "key", "disk_format", "container_format", "source", "region")
# Carry the dependency on the health resource and the hosts to try: not part of the image.
NOT_THE_IMAGE = ("endpoints", "health")

DISK_FORMATS = ("ami", "ari", "aki", "vhd", "vhdx", "vmdk", "raw", "qcow2", "vdi", "iso", "ploop")
CONTAINER_FORMATS = ("ami", "ari", "aki", "bare", "ovf", "ova", "docker", "compressed")
VISIBILITIES = ("public", "private", "shared", "community")
# Image attributes Glance owns or this project uses: not settable as custom properties.
RESERVED_PROPERTIES = frozenset({
    "id", "name", "status", "visibility", "tags", "disk_format", "container_format", "size",
    "virtual_size", "checksum", "os_hash_algo", "os_hash_value", "owner", "created_at", "updated_at",
    "locations", "direct_url", "self", "file", "schema", "protected", "os_hidden", "min_disk", "min_ram",
    "stores", KEY_PROPERTY, CANARY_PROPERTY,
})


# -- content digest, cached: check runs at every preview and a large image takes seconds to hash ----

_DIGESTS: dict[tuple[str, int, int, int], str] = {}
_DIGESTS_LOCK = threading.Lock()


def cached_content_digest(source: str) -> str:
    """:func:`content_digest`, remembered per (path, size, mtime, inode) for local files."""
    if is_url(source):
        return content_digest(source)
    stat = os.stat(source)
    cache_key = (os.path.abspath(source), stat.st_size, stat.st_mtime_ns, stat.st_ino)
    with _DIGESTS_LOCK:
        known = _DIGESTS.get(cache_key)
    if known is not None:
        return known
    digest = content_digest(source)
    with _DIGESTS_LOCK:
        _DIGESTS[cache_key] = digest
    return digest


# -- helpers ---------------------------------------------------------------------------------------


def _inputs(props: Mapping[str, Any]) -> dict[str, Any]:
    """The input keys of ``props`` (inputs or stored outputs) with defaults filled in."""
    return inputs_with_defaults(props, INPUT_KEYS, INPUT_DEFAULTS)


def _is_str(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())


def _source_failures(source: Any) -> list[CheckFailure]:
    if is_unknown(source):
        return []
    if not _is_str(source):
        return [CheckFailure("source", "must be a local file path or an http(s) URL")]
    if is_url(source):
        return []
    if not os.path.isfile(source):
        return [CheckFailure("source", f"file {source!r} does not exist or is not a regular file: give the "
                                       "path of the image file (relative to the project directory) or a URL")]
    if not os.access(source, os.R_OK):
        return [CheckFailure("source", f"file {source!r} is not readable by this user")]
    return []


def _choice_failures(inputs: Mapping[str, Any], key: str, allowed: Sequence[str], *, optional: bool = False
                     ) -> list[CheckFailure]:
    value = inputs.get(key)
    if is_unknown(value) or (optional and value is None):
        return []
    if value not in allowed:
        suffix = " (or null)" if optional else ""
        return [CheckFailure(key, f"must be one of {', '.join(allowed)}{suffix}")]
    return []


def _property_failures(properties: Any) -> list[CheckFailure]:
    if is_unknown(properties):
        return []
    if not isinstance(properties, Mapping):
        return [CheckFailure("properties", "must be a map of property names to string values")]
    failures = []
    for name, value in properties.items():
        if name in RESERVED_PROPERTIES:
            failures.append(CheckFailure("properties", f"{name!r} is set by Glance or by this project and "
                                                       "cannot be a custom property: remove it"))
        elif not is_unknown(value) and not isinstance(value, str):
            failures.append(CheckFailure("properties", f"{name!r} must be a string (quote numbers)"))
    return failures


def _tag_failures(tags: Any) -> list[CheckFailure]:
    if is_unknown(tags):
        return []
    if not isinstance(tags, list) or not all(is_unknown(t) or isinstance(t, str) for t in tags):
        return [CheckFailure("tags", "must be a list of strings")]
    return []


def _timeout_failures(inputs: Mapping[str, Any]) -> list[CheckFailure]:
    failures = []
    for key in ("connect_timeout", "read_timeout"):
        value = inputs.get(key)
        if is_unknown(value):
            continue
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            failures.append(CheckFailure(key, "must be a number of seconds, more than zero"))
    return failures


def _timeouts(inputs: Mapping[str, Any]) -> Timeouts:
    return Timeouts(connect=float(inputs["connect_timeout"]), read=float(inputs["read_timeout"]))


def _candidate_endpoints(session: ks_session.Session, inputs: Mapping[str, Any], *, upload: bool = False
                         ) -> list[str]:
    """The hosts to use, best first.

    For an upload: the health resource's serving endpoints; only when it gives none, the catalog's
    ``image-cluster`` endpoints minus drained hosts (a drained host is never chosen for uploads). For
    reads, updates and deletes: those endpoints, then the rest of the catalog (read after
    re-authenticating), which covers hosts that went away since. The public ``image`` endpoint is never
    among them.
    """
    given = inputs.get("endpoints")
    endpoints = [e.rstrip("/") for e in given if isinstance(e, str)] if isinstance(given, list) else []
    if upload and endpoints:
        return endpoints
    catalog = image_cluster_endpoints(session, region=str(inputs["region"]), reauthenticate=True)
    if upload:
        timeouts = _timeouts(inputs)
        return [e for e in catalog
                if GlanceHost(session, e, timeouts=timeouts).probe(timeout=timeouts.read).status != "drained"]
    return list(dict.fromkeys([*endpoints, *catalog]))


def _progress(message: str) -> None:
    # The provider process's stderr reaches the operator's terminal (the engine forwards it).
    print(f"[FailoverImage] {message}", file=sys.stderr, flush=True)


def _managed_view(record: Mapping[str, Any], inputs: Mapping[str, Any]) -> dict[str, Any]:
    """The mutable fields as Glance has them now, for drift: name, visibility, our properties, tags."""
    wanted = inputs.get("properties") or {}
    return {
        "name": record.get("name"),
        "visibility": record.get("visibility") if inputs.get("visibility") is not None else None,
        "properties": {k: record[k] for k in wanted if k in record},
        "tags": sorted(record.get("tags") or []),
    }


def _patch_operations(record: Mapping[str, Any], old: Mapping[str, Any], new: Mapping[str, Any]
                      ) -> list[dict[str, Any]]:
    """The JSON patch that brings ``record`` to ``new``'s name/visibility/properties/tags.

    Glance answers 409 to ``add`` on a property that exists, so existing ones are replaced; properties
    this resource set before and no longer wants are removed.
    """
    ops: list[dict[str, Any]] = []
    if record.get("name") != new["name"]:
        ops.append({"op": "replace", "path": "/name", "value": new["name"]})
    if new.get("visibility") is not None and record.get("visibility") != new["visibility"]:
        ops.append({"op": "replace", "path": "/visibility", "value": new["visibility"]})
    new_props: Mapping[str, str] = new.get("properties") or {}
    for name, value in new_props.items():
        if name not in record:
            ops.append({"op": "add", "path": f"/{name}", "value": value})
        elif record[name] != value:
            ops.append({"op": "replace", "path": f"/{name}", "value": value})
    for name in old.get("properties") or {}:
        if name not in new_props and name in record:
            ops.append({"op": "remove", "path": f"/{name}"})
    if sorted(record.get("tags") or []) != sorted(new.get("tags") or []):
        ops.append({"op": "replace", "path": "/tags", "value": list(new.get("tags") or [])})
    return ops


def _outputs(inputs: Mapping[str, Any], record: Mapping[str, Any], *, host: str | None,
             attempts: Any, orphans: Any) -> dict[str, Any]:
    outs = dict(inputs)
    outs.update(
        image_id=str(record["id"]),
        status=record.get("status"),
        size=record.get("size"),
        os_hash_value=record.get("os_hash_value"),
        host=host,
        attempts=attempts or [],
        orphans=orphans or [],
    )
    return outs


class FailoverImageProvider(CloudConfiguredProvider):
    """Creates, adopts, reads, updates and deletes one image, failing over across hosts."""

    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        inputs = _inputs(news)
        failures = self.cloud_failures()
        for key in ("region", "name", "identity"):
            value = inputs[key]
            if not is_unknown(value) and not _is_str(value):
                hint = ("set it, or let the program derive <project>/<stack>/<name>" if key == "identity"
                        else "it is required")
                failures.append(CheckFailure(key, f"must be a non-empty string: {hint}"))
        failures += _source_failures(inputs["source"])
        failures += _choice_failures(inputs, "disk_format", DISK_FORMATS)
        failures += _choice_failures(inputs, "container_format", CONTAINER_FORMATS)
        failures += _choice_failures(inputs, "visibility", VISIBILITIES, optional=True)
        failures += _property_failures(inputs["properties"])
        failures += _tag_failures(inputs["tags"])
        failures += _timeout_failures(inputs)
        endpoints = inputs["endpoints"]
        if not contains_unknown(endpoints) and endpoints is not None and not (
            isinstance(endpoints, list) and all(isinstance(e, str) for e in endpoints)
        ):
            failures.append(CheckFailure("endpoints", "must be a list of endpoint URLs (the health "
                                                      "resource's endpoints output)"))
        inputs["content_digest"] = None
        inputs["key"] = None
        source, identity = inputs["source"], inputs["identity"]
        if not failures and not is_unknown(source) and not is_unknown(identity):
            try:
                digest = cached_content_digest(source)
            except OSError as exc:
                failures.append(CheckFailure("source", f"cannot read {source!r}: {exc.strerror}"))
            else:
                inputs["content_digest"] = digest
                inputs["key"] = make_key(identity, digest)
        return CheckResult(inputs, failures)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        keys = [k for k in (*INPUT_KEYS, *DERIVED_KEYS) if k not in NOT_THE_IMAGE]
        old_inputs = fill_defaults({k: olds.get(k) for k in keys}, INPUT_DEFAULTS)
        new_inputs = {k: news.get(k) for k in keys}
        return diff_inputs(old_inputs, new_inputs, replace_on=REPLACE_ON, stored=olds)

    def create(self, props: dict[str, Any]) -> CreateResult:
        inputs = _inputs(props)
        inputs["content_digest"] = props.get("content_digest")
        inputs["key"] = props.get("key")
        if not inputs["key"]:
            digest = cached_content_digest(inputs["source"])
            inputs["content_digest"], inputs["key"] = digest, make_key(inputs["identity"], digest)
        session = self.session()
        with self.cloud_errors_explained():
            endpoints = _candidate_endpoints(session, inputs, upload=True)
        spec = ImageSpec(
            key=inputs["key"],
            name=inputs["name"],
            disk_format=inputs["disk_format"],
            container_format=inputs["container_format"],
            visibility=inputs["visibility"],
            properties=dict(inputs["properties"] or {}),
            tags=list(inputs["tags"] or []),
        )
        timeouts = _timeouts(inputs)
        verify = session.verify if session.verify is not None else True
        source = ImageSource(inputs["source"], verify=verify, timeouts=timeouts)
        with self.cloud_errors_explained():
            result = create_image(session, spec, source, endpoints, timeouts=timeouts, progress=_progress)
        if result.orphans:
            _progress("partial data files dead hosts may have left (remove them on a host that mounts the "
                      "store): "
                      + ", ".join(o.path or o.image_id for o in result.orphans))
        outs = _outputs(inputs, result.record, host=result.host, attempts=result.attempts_as_dicts(),
                        orphans=result.orphans_as_dicts())
        return CreateResult(id_=result.image_id, outs=outs)

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        inputs = _inputs(props)
        key = props.get("key")
        session = self.session()
        with self.cloud_errors_explained():
            endpoints = _candidate_endpoints(session, inputs)
            _, record = find_image(session, str(key or ""), endpoints, image_id=id_ or None,
                                   timeouts=_timeouts(inputs))
        if record is None or (key and record.get(KEY_PROPERTY) not in (None, key)):
            return ReadResult(id_="", outs={})  # deleted out of band
        view = _managed_view(record, inputs)
        wanted_tags = list(inputs["tags"] or [])
        outs = dict(props)
        outs.update(
            image_id=str(record["id"]),
            name=view["name"],
            # Only the properties this resource manages, as Glance has them now: one removed or changed
            # out of band shows as drift, and the next update puts it back.
            properties=view["properties"],
            tags=wanted_tags if sorted(wanted_tags) == view["tags"] else view["tags"],
            status=record.get("status"),
            size=record.get("size"),
            os_hash_value=record.get("os_hash_value"),
        )
        if inputs["visibility"] is not None:
            outs["visibility"] = view["visibility"]
        return ReadResult(id_=str(record["id"]), outs=outs)

    def update(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        inputs = _inputs(news)
        inputs["content_digest"] = news.get("content_digest") or olds.get("content_digest")
        inputs["key"] = news.get("key") or olds.get("key")
        session = self.session()
        with self.cloud_errors_explained():
            endpoints = _candidate_endpoints(session, inputs)
        timeouts = _timeouts(inputs)
        last: GlanceError | None = None
        with self.cloud_errors_explained():
            for endpoint in HOST_HEALTH.order(endpoints):
                host = GlanceHost(session, endpoint, timeouts=timeouts)
                try:
                    record = host.get_image(id_)
                    if record is None:
                        raise GlanceError(
                            f"image {id_} ({inputs['name']!r}) no longer exists: it was deleted outside this "
                            "stack. Run a refresh, then up again, to create it anew."
                        )
                    ops = _patch_operations(record, olds, inputs)
                    if ops:
                        record = host.update_image(id_, ops)
                        changed = ", ".join(f"{o['op']} {o['path']}" for o in ops)
                        _progress(f"{endpoint}: updated {id_}: {changed}")
                    HOST_HEALTH.mark_good(endpoint)
                    outs = _outputs(inputs, record, host=olds.get("host"), attempts=olds.get("attempts"),
                                    orphans=olds.get("orphans"))
                    return UpdateResult(outs=outs)
                except HostUnavailable as exc:
                    HOST_HEALTH.mark_bad(endpoint, exc.reason)
                    last = exc
        raise GlanceError(f"no image-library host could update image {id_}: {last}")

    def delete(self, id_: str, props: dict[str, Any]) -> None:
        inputs = _inputs(props)
        key = props.get("key")
        session = self.session()
        with self.cloud_errors_explained():
            endpoints = _candidate_endpoints(session, inputs)
        failures: list[str] = []
        with self.cloud_errors_explained():
            for endpoint in HOST_HEALTH.order(endpoints):
                host = GlanceHost(session, endpoint, timeouts=_timeouts(inputs))
                try:
                    ids = {id_} if id_ else set()
                    if key:
                        # Every record with this key is this resource's (the key holds its identity).
                        ids |= {str(r["id"]) for r in host.find_by_property(KEY_PROPERTY, key)}
                    for image_id in sorted(ids):
                        if host.delete_image(image_id):
                            _progress(f"{endpoint}: deleted {image_id}")
                    return
                except HostUnavailable as exc:
                    HOST_HEALTH.mark_bad(endpoint, exc.reason)
                    failures.append(f"{endpoint}: {exc.reason}")
        raise GlanceError(f"no image-library host could delete image {id_}: " + "; ".join(failures))


class FailoverImage(SeededResource, module="imagelib", name="FailoverImage"):
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

    provider_class = FailoverImageProvider
    output_keys = DERIVED_KEYS + OUTPUT_KEYS
