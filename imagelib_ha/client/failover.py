"""The failover engine: create (or adopt) the one image carrying a key, across a region's hosts.

The key, the attempt ids and the owner token are defined in :mod:`imagelib_ha.client.image_key`. Why a
run never makes two images for one key:

* Before creating, images carrying the key are looked up (hidden ones and every status too): an
  ``active`` one is adopted, and its ``pcd_imagelib_ha_owner`` is patched to this run's owner token
  (with name, visibility, properties and tags brought to the spec), so the resource that held it before
  no longer deletes it. Leftovers of an interrupted run (records that hold no finished image) are
  deleted. An active image is never deleted here: a second one carrying the key is reported and left.
* Glance never reuses a deleted id (409 until a database purge), so each id is used at most once; a
  record that a dead host left in ``saving`` (no other host accepts data for it) is deleted and the next
  id is used.
* When a host fails, the attempt's record is inspected through the next host: absent → create it there
  with the same id; ``queued`` → upload there; ``saving``/``killed`` → delete, next id. A frozen host that
  wakes up later finds its record deleted (Glance then drops its data) or its id taken: no second image.
* An error that is not the host's (a 4xx the API gives, an unreadable source, bytes that are not the
  pinned ones) ends the run; the records it created are deleted before the error is raised.

Partial data files left by a host that died mid-upload cannot be removed through the API (Glance
recorded no location); they are reported with their store path. With the Cinder store the partial
image is a volume, which :mod:`imagelib_ha.client.cinder_cleanup` removes through Cinder (or reports).

This module decides (survey, adoption, which host and id next); what a run has done, and the undoing
of a failed run, is kept by :class:`~imagelib_ha.client.failover_ledger.RunLedger`, which the run extends.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from keystoneauth1 import session as ks_session

from imagelib_ha.client import own_requests
from imagelib_ha.client.cinder_cleanup import AttemptVolumes
from imagelib_ha.client.failover_ledger import Progress, RunLedger
from imagelib_ha.client.failover_report import FailoverError, FailoverResult
from imagelib_ha.client.glance import (
    CHUNK_SIZE,
    LEFTOVER_STATUSES,
    GlanceError,
    GlanceHost,
    HostUnavailable,
    ImageConflict,
    SizedHashingUpload,
    Timeouts,
)
from imagelib_ha.client.host_health import HOST_HEALTH, HostHealthBook
from imagelib_ha.client.image_key import (
    KEY_PROPERTY,
    MAX_ATTEMPT_IDS,
    OWNER_PROPERTY,
    attempt_image_id,
    attempt_number,
    new_owner_token,
)
from imagelib_ha.client.image_source import ImageSource, SourceError
from imagelib_ha.client.image_spec import ImageSpec, patch_to_spec
from imagelib_ha.client.progress import TransferMeter


def _verify(record: Mapping[str, Any], *, size: int | None, sha512: str | None) -> str | None:
    """Why ``record`` is not the image we uploaded, or None if it is."""
    if record.get("status") != "active":
        return f"status {record.get('status')!r}, expected 'active'"
    if size is not None and record.get("size") != size:
        return f"size {record.get('size')} differs from the {size} bytes sent"
    if sha512 is not None:
        algo = record.get("os_hash_algo")
        if algo and algo != "sha512":
            return None  # the host hashes with another algorithm: nothing to compare against
        if record.get("os_hash_value") != sha512:
            return "os_hash_value differs from the sha512 computed while streaming"
    return None


class _Run(RunLedger):
    """One call of :func:`create_image`: the survey of what carries the key, then the creation host after
    host (what it has done, and the undoing when it fails, are kept by :class:`RunLedger`)."""

    # -- phases --------------------------------------------------------------------------------------

    def survey(self) -> FailoverResult | None:
        """Find images that already carry the key: adopt an active one, delete the leftovers."""
        for host in self.usable_hosts():
            try:
                return self._survey_on(host)
            except HostUnavailable as exc:
                self.host_failed(host, None, exc)
            except GlanceError as exc:
                # Not the host's fault (a 4xx, a refused token): another host would answer the same.
                self.note(host.endpoint, None, "error", str(exc))
                raise self.failed(f"the survey of images carrying this key failed: {exc}") from None
        raise self.failed("no host could be asked for existing images with this key")

    def _survey_on(self, host: GlanceHost) -> FailoverResult | None:
        key = self.spec.key
        ours = [(attempt_number(key, str(r["id"])), r) for r in host.find_by_property(KEY_PROPERTY, key)
                if r.get(KEY_PROPERTY) == key]
        known = [n for n, _ in ours if n is not None]
        self.next_attempt = max(known) + 1 if known else 0
        # ``killed`` records never appear in Glance's lists: look up the ids below the highest found.
        listed = {str(r["id"]) for _, r in ours}
        for n in range(self.next_attempt):
            image_id = attempt_image_id(key, n)
            if image_id not in listed:
                record = host.get_image(image_id)
                if record is not None:
                    ours.append((n, record))
        ours.sort(key=lambda item: MAX_ATTEMPT_IDS if item[0] is None else item[0])
        active = sorted(
            ((MAX_ATTEMPT_IDS if n is None else n, r) for n, r in ours if r.get("status") == "active"),
            key=lambda item: (item[0], str(item[1].get("created_at", ""))),
        )
        adopted = active[0][1] if active else None
        for _, record in ours:
            if record is adopted:
                continue
            if record.get("status") == "active":
                # Another finished image with this key: someone else's (or held by another resource).
                self.note(host.endpoint, str(record["id"]), "left-alone",
                          "another active image carries this key; it is not this resource's to delete")
            elif record.get("status") in LEFTOVER_STATUSES:
                # The key's attempt ids are this key's alone: an interrupted run's records, never an image.
                self.delete_leftover(host, record, "left over by an earlier run")
        if adopted is None:
            return None
        record = self.take(host, adopted)
        self.book.mark_good(host.endpoint)
        self.note(host.endpoint, str(record["id"]), "adopted",
                  "an active image already carries this key; ownership moved to this resource")
        return self.result(host, record, adopted=True)

    def take(self, host: GlanceHost, record: Mapping[str, Any]) -> dict[str, Any]:
        """Make ``record`` this run's: owner token, name, visibility, properties and tags of the spec."""
        ops = patch_to_spec(record, self.spec)
        if not ops:
            return dict(record)
        previous = record.get(OWNER_PROPERTY)
        updated = host.update_image(str(record["id"]), ops)
        if previous and previous != self.spec.owner:
            self.progress(f"{host.endpoint}: image {record['id']} taken over from its previous owner: that "
                          "resource's delete will leave it")
        return updated

    def create(self) -> FailoverResult:
        """Try each host in order of health until one holds the verified image."""
        for host in self.hosts:
            if host.endpoint in self.unreachable:
                # Refused or timed out earlier in this run: asking again would cost another timeout.
                continue
            reauthenticated = False
            while True:
                image_id = attempt_image_id(self.spec.key, self.next_attempt)
                try:
                    return self._create_on(host)
                except SourceError as exc:
                    self.note(host.endpoint, image_id, "source-error", str(exc))
                    raise self.failed(f"cannot read the image source: {exc}") from None
                except HostUnavailable as exc:
                    if exc.kind == "unauthorized" and not reauthenticated:
                        # The token was refused (revoked?): get a new one and retry this host once.
                        # keystoneauth's own re-auth is off for uploads: it would replay a used stream.
                        reauthenticated = True
                        self.session.invalidate()
                        self.note(host.endpoint, image_id, "reauthenticated", exc.reason)
                        continue
                    self.host_failed(host, image_id, exc)
                    break
                except GlanceError as exc:
                    # The API refused the request (4xx) or no token could be had: another host would
                    # answer the same. Nothing of this attempt may stay behind.
                    self.note(host.endpoint, image_id, "error", str(exc))
                    raise self.failed(f"the image API refused the request: {exc}") from None
        raise self.failed("every image-library host failed")

    def _create_on(self, host: GlanceHost) -> FailoverResult:
        record = self._usable_record(host)
        while record.get("status") == "active":
            # A host that froze during an earlier step finished the upload after all.
            size, sha512 = self.streamed.get(str(record["id"]), (self.source.known_size(), None))
            problem = _verify(record, size=size, sha512=sha512)
            if problem is None:
                record = self.take(host, record)
                self.book.mark_good(host.endpoint)
                self.note(host.endpoint, str(record["id"]), "adopted", "the attempt completed meanwhile")
                return self.result(host, record, adopted=True)
            self.delete_leftover(host, record, f"completed meanwhile, but {problem}")
            self.next_attempt += 1
            record = self._usable_record(host)
        image_id = str(record["id"])
        body = self.source.open(self.chunk_size)
        self.progress(f"{host.endpoint}: uploading {image_id}")
        self.writers[image_id] = host.endpoint
        size = len(body) if isinstance(body, SizedHashingUpload) else None
        meter = TransferMeter(self.progress, host=host.endpoint, attempt=self.next_attempt, what="upload",
                              total=size)
        body.on_chunk = meter.update
        request_id = own_requests.new_request_id()
        try:
            host.upload(image_id, body, request_id=request_id)
        except ImageConflict as exc:
            own_requests.record_aborted(request_id)
            # Another host holds the record in a state that refuses data: the next host inspects it.
            raise HostUnavailable(host.endpoint, "conflict", f"upload refused: {exc.detail}") from None
        except BaseException:
            # Abandoned mid-stream: what the host logs about it is this project's doing, not its fault.
            own_requests.record_aborted(request_id)
            raise
        finally:
            meter.finish()
            if size is None or body.bytes_sent == size:
                self.streamed[image_id] = (body.bytes_sent, body.sha512)
        size = body.bytes_sent
        final = host.get_image(image_id)
        if final is None:
            raise HostUnavailable(host.endpoint, "vanished", f"image {image_id} vanished after its upload")
        problem = _verify(final, size=size, sha512=body.sha512)
        if problem is not None:
            self.delete_leftover(host, final, f"verification failed: {problem}")
            self.next_attempt += 1
            raise HostUnavailable(host.endpoint, "verify-failed", problem)
        final = self.take(host, final)
        self.book.mark_good(host.endpoint)
        self.note(host.endpoint, image_id, "created", f"{body.bytes_sent} bytes, sha512 verified")
        return self.result(host, final, adopted=False)

    def _usable_record(self, host: GlanceHost) -> dict[str, Any]:
        """The current attempt's record through ``host``: created if absent, renewed if unusable."""
        for _ in range(MAX_ATTEMPT_IDS):
            image_id = attempt_image_id(self.spec.key, self.next_attempt)
            record = host.get_image(image_id)
            if record is None:
                self.touched.add(image_id)
                try:
                    return host.create_image(image_id=image_id, body=self.spec.create_body())
                except ImageConflict:
                    # Used before and deleted (Glance keeps the row), or hidden from us: next id.
                    self.note(host.endpoint, image_id, "id-taken", "id used before; moving to the next id")
                    self.next_attempt += 1
                    continue
            status = record.get("status")
            if record.get(KEY_PROPERTY) not in (None, self.spec.key):
                raise GlanceError(
                    f"image {image_id} exists with another {KEY_PROPERTY}: refusing to touch it"
                )
            if status in ("queued", "active"):
                return record
            # saving/killed/...: a dead host's half-made record, which no other host accepts data for.
            self.touched.add(image_id)
            self.delete_leftover(host, record, "the attempt's record cannot take data any more")
            self.next_attempt += 1
        raise GlanceError(f"gave up after {MAX_ATTEMPT_IDS} image ids for key {self.spec.key}")


def create_image(
    session: ks_session.Session,
    spec: ImageSpec,
    source: ImageSource,
    endpoints: Sequence[str],
    *,
    book: HostHealthBook = HOST_HEALTH,
    timeouts: Timeouts | None = None,
    chunk_size: int = CHUNK_SIZE,
    progress: Progress | None = None,
    volumes: AttemptVolumes | None = None,
) -> FailoverResult:
    """Create (or adopt) the one image carrying ``spec.key``, trying ``endpoints`` by last known health.

    ``spec.owner`` is the token the image will carry (an adopted image is patched to it; a fresh one
    when None, read it back from ``result.record``). ``volumes``: where a host stores images in Cinder,
    the volumes of abandoned attempts are removed through it (or reported). Raises
    :class:`FailoverError` when every host fails or the API refuses a request; no record this run made
    is then left behind (unless no host could delete it, which the message says).
    """
    return run_create(_Run, session, spec, source, endpoints, book=book, timeouts=timeouts,
                      chunk_size=chunk_size, progress=progress, volumes=volumes)


def run_create(
    make_run: Callable[..., _Run],
    session: ks_session.Session,
    spec: ImageSpec,
    source: ImageSource,
    endpoints: Sequence[str],
    *,
    book: HostHealthBook = HOST_HEALTH,
    timeouts: Timeouts | None = None,
    chunk_size: int = CHUNK_SIZE,
    progress: Progress | None = None,
    volumes: AttemptVolumes | None = None,
) -> FailoverResult:
    """:func:`create_image` with the run ``make_run`` builds (a :class:`_Run` or a subclass that gets the
    bytes to the host another way, e.g. :mod:`imagelib_ha.client.web_download`)."""
    if not spec.owner:
        # A caller without a resource (a script, a drill) still leaves an owned image.
        spec = dataclasses.replace(spec, owner=new_owner_token())
    if not endpoints:
        raise FailoverError(
            f"image {spec.name!r}: no image-library endpoint to try (is the image-library role assigned, "
            "and does the health resource report a serving host?)",
            [],
            [],
        )
    run = make_run(
        session=session,
        spec=spec,
        source=source,
        endpoints=endpoints,
        book=book,
        timeouts=timeouts or Timeouts(),
        chunk_size=chunk_size,
        progress=progress,
        volumes=volumes,
    )
    adopted = run.survey()
    if adopted is not None:
        return adopted
    return run.create()
