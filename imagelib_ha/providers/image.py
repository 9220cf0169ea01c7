"""``FailoverImage``: one Glance image created through whichever image-library host is healthy.

Lifecycle:

* ``check`` judges every input before anything is touched (:mod:`imagelib_ha.providers.image_check`)
  and computes ``content_digest`` (the sha256 of the image's bytes: a file's hash, or a URL's pinned
  ``digest``) and ``key`` (``<identity>:<digest[:16]>:<disk_format>/<container_format>``).
* ``diff`` is precise and ignores ``__provider``. Only a change of the image itself replaces it: its
  bytes (``content_digest``), ``disk_format``, ``container_format`` or ``region``; the new key then has
  new attempt ids, so a replacement never shares a key or an id with the image it replaces. Everything
  else is an in-place update: name, visibility, properties and tags; the source's location (a moved
  file with the same bytes); the key's spelling (an identity change, or the key scheme of an earlier
  release); timeouts. ``endpoints`` and ``health`` only carry the dependency on the health resource and
  which hosts to try first: their changes alone are no change to the image.
* ``create`` draws a fresh owner token (output ``owner``) and runs the failover engine
  (``client.failover``): adopt an active image carrying the key (its owner property moves to this
  resource), else upload through the healthiest host, failing over. The hosts are the region's current
  ``image-cluster`` endpoints, those the health resource reported first.
* ``read`` finds the image (by id, else by owner token); deleted out of band → gone (empty id).
* ``update`` brings the record to the inputs with one JSON patch: metadata, key, and the owner property
  (which a resource of an earlier release, having no token, gets here: the upgrade replaces nothing).
* ``delete`` deletes only what this resource owns (``client.image_records``).

The provider keeps nothing on ``self`` after ``configure``: sessions are built per call, and the only
shared state (the host-health book, the file-facts cache) is lock-protected, since up to four gRPC
threads share the object.
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Mapping
from typing import Any

from keystoneauth1 import session as ks_session
from pulumi import Output
from pulumi.dynamic import CheckResult, CreateResult, DiffResult, ReadResult, UpdateResult

from imagelib_ha.client.block_storage import BlockStorage
from imagelib_ha.client.catalog import image_cluster_endpoints
from imagelib_ha.client.cinder_cleanup import AttemptVolumes
from imagelib_ha.client.glance import GlanceError, GlanceHost, HostUnavailable, Timeouts
from imagelib_ha.client.host_health import HOST_HEALTH
from imagelib_ha.client.image_key import KEY_PROPERTY, OWNER_PROPERTY, make_key, new_owner_token
from imagelib_ha.client.image_records import delete_owned, find_image
from imagelib_ha.client.image_source import ImageSource, is_url, parse_digest
from imagelib_ha.client.image_spec import ImageSpec, patch_to_spec
from imagelib_ha.client.web_download import DEFAULT_IMPORT_TIMEOUT, ImportPolicy, create_image_by_method
from imagelib_ha.providers.access import CloudConfiguredProvider
from imagelib_ha.providers.common import (
    SeededResource,
    diff_inputs,
    fill_defaults,
    inputs_with_defaults,
    is_unknown,
)
from imagelib_ha.providers.image_check import content_digest_of, input_failures

# Inputs with their defaults (None: optional). ``region``, ``name``, ``source``, ``disk_format``,
# ``container_format`` and ``identity`` are required; ``digest`` is required for a URL source.
INPUT_DEFAULTS: dict[str, Any] = {
    "visibility": None,
    "properties": {},
    "tags": [],
    "identity": None,
    "digest": None,
    "health": None,
    "endpoints": None,
    "connect_timeout": 3,
    "read_timeout": 30,
    "import_method": "upload",
    "import_timeout": DEFAULT_IMPORT_TIMEOUT,
}
REQUIRED = ("region", "name", "source", "disk_format", "container_format")
INPUT_KEYS = (*REQUIRED, *INPUT_DEFAULTS)

# Computed by ``check`` from the inputs; seeded so they exist as attributes.
DERIVED_KEYS = ("content_digest", "key")

# Output-only keys: seeded with None so each exists as an attribute on the resource object.
OUTPUT_KEYS = ("owner", "image_id", "status", "size", "os_hash_value", "host", "attempts", "orphans")

# What the image *is*: a change of one of these is a new image. Nothing else replaces it.
REPLACE_ON = ("content_digest", "disk_format", "container_format", "region")
# Carry the dependency on the health resource and the hosts to try: not part of the image.
NOT_THE_IMAGE = ("endpoints", "health")


def _inputs(props: Mapping[str, Any]) -> dict[str, Any]:
    """The input keys of ``props`` (inputs or stored outputs) with defaults filled in."""
    return inputs_with_defaults(props, INPUT_KEYS, INPUT_DEFAULTS)


def _timeouts(inputs: Mapping[str, Any]) -> Timeouts:
    return Timeouts(connect=float(inputs["connect_timeout"]), read=float(inputs["read_timeout"]))


def _progress(message: str) -> None:
    """One progress line (upload or import bytes, MB/s, host, attempt: at most one a second) for
    ``pulumi up``'s display.

    What reaches the display from a dynamic provider (pulumi 3.272): the engine reads every line a
    provider plugin writes to stderr and emits it as an info diagnostic
    (pulumi/pulumi ``sdk/go/common/resource/plugin/plugin.go``, ``newPlugin``'s ``runtrace``:
    ``ctx.Diag.Infoerrf(diag.StreamMessage("" /*urn*/, msg, errStreamID))``). ``pulumi.log.info`` is no
    better here: ``python -m pulumi.dynamic`` configures ``Settings`` without an engine address
    (``pulumi/dynamic/__main__.py``, ``get_provider``), so ``pulumi/log.py`` falls back to printing
    ``info: <msg>`` to the same stderr. Lines carry no URN, hence the resource type prefix.
    """
    print(f"[FailoverImage] {message}", file=sys.stderr, flush=True)


def _legacy_url_digest(olds: Mapping[str, Any]) -> bool:
    """True for state of an earlier release whose URL image's digest was the sha256 of the URL itself."""
    source, digest = olds.get("source"), olds.get("content_digest")
    if not (isinstance(source, str) and is_url(source)):
        return False
    return digest == hashlib.sha256(source.encode()).hexdigest()


def _candidate_endpoints(session: ks_session.Session, inputs: Mapping[str, Any], *, upload: bool = False
                         ) -> list[str]:
    """The hosts to use, best first (the failover engine then orders them by last known health).

    Always the region's current ``image-cluster`` endpoints from the catalog (read after
    re-authenticating): a host that lost the role since the health resource ran is not used, a host
    that gained it is. The health resource's endpoints come first, as the hint of which host served.
    For an upload, a host the hint does not vouch for is probed (within the connect timeout) unless the
    host-health book knows it bad: skipped when drained, marked bad when not serving; for reads,
    updates and deletes the hint's hosts stay too (one that went away may still answer). The public
    ``image`` endpoint is never among them.
    """
    given = inputs.get("endpoints")
    hint = [e.rstrip("/") for e in given if isinstance(e, str)] if isinstance(given, list) else []
    catalog = [e.rstrip("/") for e in
               image_cluster_endpoints(session, region=str(inputs["region"]), reauthenticate=True)]
    if not upload:
        return list(dict.fromkeys([*hint, *catalog]))
    timeouts = _timeouts(inputs)
    vouched = [e for e in hint if e in catalog]
    others = []
    for endpoint in catalog:
        if endpoint in vouched:
            continue
        if not HOST_HEALTH.is_bad(endpoint):
            # Bounded by the connect timeout: a frozen host must not cost every image a read timeout.
            probe = GlanceHost(session, endpoint, timeouts=timeouts).probe(timeout=timeouts.connect)
            if probe.status == "drained":
                continue
            if probe.status != "serving":
                HOST_HEALTH.mark_bad(endpoint, probe.reason)  # tried last, by this image and later ones
        others.append(endpoint)
    return list(dict.fromkeys([*vouched, *others]))


def _spec(inputs: Mapping[str, Any], owner: str | None) -> ImageSpec:
    return ImageSpec(
        key=inputs["key"],
        name=inputs["name"],
        disk_format=inputs["disk_format"],
        container_format=inputs["container_format"],
        owner=owner,
        visibility=inputs["visibility"],
        properties=dict(inputs["properties"] or {}),
        tags=list(inputs["tags"] or []),
    )


def _outputs(inputs: Mapping[str, Any], record: Mapping[str, Any], *, owner: str | None, host: str | None,
             attempts: Any, orphans: Any) -> dict[str, Any]:
    outs = dict(inputs)
    outs.update(
        owner=owner,
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
        failures = self.cloud_failures() + input_failures(inputs)
        inputs["content_digest"] = None
        inputs["key"] = None
        source, identity = inputs["source"], inputs["identity"]
        if not failures and not any(is_unknown(inputs[k]) for k in
                                    ("source", "identity", "digest", "disk_format", "container_format")):
            digest, failure = content_digest_of(source, inputs["digest"])
            if failure is not None:
                failures.append(failure)
            elif digest is not None:
                inputs["content_digest"] = digest
                inputs["key"] = make_key(identity, digest, inputs["disk_format"], inputs["container_format"])
        return CheckResult(inputs, failures)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        keys = [k for k in (*INPUT_KEYS, *DERIVED_KEYS) if k not in NOT_THE_IMAGE]
        old_inputs = fill_defaults({k: olds.get(k) for k in keys}, INPUT_DEFAULTS)
        new_inputs = {k: news.get(k) for k in keys}
        replace_on: tuple[str, ...] = REPLACE_ON
        if _legacy_url_digest(olds) and news.get("source") == olds.get("source"):
            # An earlier release digested a URL source's text, not its bytes: the first pin of the same
            # URL is no new content by itself (``update`` verifies the image holds the pinned bytes).
            replace_on = tuple(k for k in REPLACE_ON if k != "content_digest")
        result = diff_inputs(old_inputs, new_inputs, replace_on=replace_on, stored=olds)
        if not olds.get("owner") and olds.get("image_id"):
            # State of a release without owner tokens: the update records this resource's ownership.
            return DiffResult(changes=True, replaces=result.replaces, stables=result.stables,
                              delete_before_replace=result.delete_before_replace)
        return result

    def create(self, props: dict[str, Any]) -> CreateResult:
        inputs = _inputs(props)
        inputs["content_digest"], inputs["key"] = props.get("content_digest"), props.get("key")
        if not inputs["key"]:
            digest, failure = content_digest_of(inputs["source"], inputs["digest"])
            if failure is not None or digest is None:
                raise GlanceError(failure.reason if failure else "a URL source needs its digest")
            inputs["content_digest"] = digest
            inputs["key"] = make_key(inputs["identity"], digest, inputs["disk_format"],
                                     inputs["container_format"])
        owner = new_owner_token()
        session = self.session()
        timeouts = _timeouts(inputs)
        source = ImageSource(inputs["source"], expected_sha256=inputs["content_digest"],
                             ca_bundle=self.access.ca_bundle, timeouts=timeouts)
        with self.cloud_errors_explained():
            endpoints = _candidate_endpoints(session, inputs, upload=True)
            # Used only where a host stores images in Cinder: the volumes of abandoned attempts.
            volumes = AttemptVolumes(BlockStorage(session, region=str(inputs["region"]),
                                                  timeout=timeouts.read))
            policy = ImportPolicy(str(inputs["import_method"]), timeout=float(inputs["import_timeout"]))
            result = create_image_by_method(session, _spec(inputs, owner), source, endpoints, policy=policy,
                                            timeouts=timeouts, progress=_progress, volumes=volumes)
        if result.orphans:
            _progress("partial data dead hosts may have left (files: remove them on a host that mounts the "
                      "store; Cinder volumes: openstack volume delete): "
                      + ", ".join(o.path or o.image_id for o in result.orphans))
        outs = _outputs(inputs, result.record, owner=owner, host=result.host,
                        attempts=result.attempts_as_dicts(), orphans=result.orphans_as_dicts())
        return CreateResult(id_=result.image_id, outs=outs)

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        inputs = _inputs(props)
        key = props.get("key")
        session = self.session()
        with self.cloud_errors_explained():
            endpoints = _candidate_endpoints(session, inputs)
            _, record = find_image(session, str(key or ""), endpoints, image_id=id_ or None,
                                   owner=props.get("owner"), timeouts=_timeouts(inputs))
        if record is None or (key and record.get(KEY_PROPERTY) not in (None, key)):
            return ReadResult(id_="", outs={})  # deleted out of band
        wanted = inputs["properties"] or {}
        wanted_tags = list(inputs["tags"] or [])
        tags = sorted(record.get("tags") or [])
        outs = dict(props)
        outs.update(
            image_id=str(record["id"]),
            name=record.get("name"),
            # Only the properties this resource manages, as Glance has them now: one removed or changed
            # out of band shows as drift, and the next update puts it back.
            properties={k: record[k] for k in wanted if k in record},
            tags=wanted_tags if sorted(wanted_tags) == tags else tags,
            status=record.get("status"),
            size=record.get("size"),
            os_hash_value=record.get("os_hash_value"),
        )
        if inputs["visibility"] is not None:
            outs["visibility"] = record.get("visibility")
        return ReadResult(id_=str(record["id"]), outs=outs)

    def update(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        inputs = _inputs(news)
        inputs["content_digest"] = news.get("content_digest") or olds.get("content_digest")
        inputs["key"] = news.get("key") or olds.get("key")
        # A resource of a release without owner tokens takes ownership here (the upgrade's update).
        owner = olds.get("owner") or new_owner_token()
        spec = _spec(inputs, owner)
        session = self.session()
        timeouts = _timeouts(inputs)
        last: GlanceError | None = None
        with self.cloud_errors_explained():
            endpoints = _candidate_endpoints(session, inputs)
            for endpoint in HOST_HEALTH.order(endpoints):
                host = GlanceHost(session, endpoint, timeouts=timeouts)
                try:
                    record = self._owned_record(host, id_, inputs["name"], owner)
                    if _legacy_url_digest(olds) and olds.get("content_digest") != inputs["content_digest"]:
                        self._verify_pin(record, inputs, timeouts)
                    ops = patch_to_spec(record, spec, previous_properties=olds.get("properties") or {})
                    if ops:
                        record = host.update_image(id_, ops)
                        changed = ", ".join(f"{o['op']} {o['path']}" for o in ops)
                        _progress(f"{endpoint}: updated {id_}: {changed}")
                    HOST_HEALTH.mark_good(endpoint)
                    outs = _outputs(inputs, record, owner=owner, host=olds.get("host"),
                                    attempts=olds.get("attempts"), orphans=olds.get("orphans"))
                    return UpdateResult(outs=outs)
                except HostUnavailable as exc:
                    HOST_HEALTH.mark_bad(endpoint, exc.reason)
                    last = exc
        raise GlanceError(f"no image-library host could update image {id_}: {last}")

    @staticmethod
    def _owned_record(host: GlanceHost, id_: str, name: str, owner: str) -> dict[str, Any]:
        record = host.get_image(id_)
        if record is None:
            raise GlanceError(f"image {id_} ({name!r}) no longer exists: it was deleted outside this stack. "
                              "Run a refresh, then up again, to create it anew.")
        holder = record.get(OWNER_PROPERTY)
        if holder and holder != owner:
            raise GlanceError(
                f"image {id_} ({name!r}) is held by another resource now (it adopted the image: two images "
                "configured with one key?). Give each image its own key; this resource leaves it alone.")
        return record

    def _verify_pin(self, record: Mapping[str, Any], inputs: Mapping[str, Any], timeouts: Timeouts) -> None:
        """The first pin of an earlier release's URL image: the URL's bytes must be the pinned ones and
        the image's (compared by sha512, which Glance records)."""
        pinned = parse_digest(str(inputs["digest"] or ""))
        source = ImageSource(inputs["source"], expected_sha256=pinned, ca_bundle=self.access.ca_bundle,
                             timeouts=timeouts)
        body = source.open()
        for _ in body:  # the pin is checked while reading: SourceError if the URL serves other bytes
            pass
        if record.get("os_hash_value") not in (None, body.sha512):
            raise GlanceError(
                f"image {record['id']} does not hold the bytes {source.label} serves now (pinned digest "
                f"sha256:{pinned}): pin the digest of the bytes the image holds, or accept a new image by "
                "changing its key")

    def delete(self, id_: str, props: dict[str, Any]) -> None:
        inputs = _inputs(props)
        session = self.session()
        with self.cloud_errors_explained():
            endpoints = _candidate_endpoints(session, inputs)
            delete_owned(session, endpoints, image_id=id_ or None, key=props.get("key"),
                         owner=props.get("owner"), progress=_progress, timeouts=_timeouts(inputs))


class FailoverImage(SeededResource, module="imagelib", name="FailoverImage"):
    """A Glance image uploaded through the first healthy image-library host, never twice.

    The image carries ``pcd_imagelib_ha_key`` (identity, content digest, formats) and
    ``pcd_imagelib_ha_owner`` (this resource's token); new content or formats replace the resource,
    everything else updates in place.
    """

    owner: Output[str]
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
