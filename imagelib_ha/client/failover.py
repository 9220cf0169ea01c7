"""Failover-aware image creation across a region's image-library hosts: never two images for one key.

Each image carries a *key* (a stable identity plus a digest of its content) in the property
``pcd_imagelib_ha_key``, and attempt ``n`` uses the deterministic id
``uuid5(NAMESPACE_URL, "pcd-imagelib-ha:" + key + ":" + str(n))``. Why this is safe:

* Before creating, images carrying the key are looked up (hidden ones and every status too): an
  ``active`` one is adopted, leftovers of a crashed run are deleted. A rerun never makes a second image.
* Glance never reuses a deleted id (409 until a database purge), so each id is used at most once; a
  record that a dead host left in ``saving`` (no other host accepts data for it) is deleted and the next
  id is used.
* When a host fails, the attempt's record is inspected through the next host: absent → create it there
  with the same id; ``queued`` → upload there; ``saving``/``killed`` → delete, next id. A frozen host that
  wakes up later finds its record deleted (Glance then drops its data) or its id taken: no second image.

Partial data files left by a host that died mid-upload cannot be removed through the API (Glance
recorded no location); they are reported with their store path.
"""

from __future__ import annotations

import hashlib
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests
from keystoneauth1 import session as ks_session

from imagelib_ha.client.glance import (
    CHUNK_SIZE,
    GlanceApiError,
    GlanceError,
    GlanceHost,
    HashingUpload,
    HostUnavailable,
    ImageConflict,
    SizedHashingUpload,
    Timeouts,
)
from imagelib_ha.client.transport import skip_environment_rescan

KEY_PROPERTY = "pcd_imagelib_ha_key"
ID_PREFIX = "pcd-imagelib-ha:"

# How many attempt ids are recognised as this key's when surveying leftovers. Each failed host costs
# at most two ids, so this is far beyond any real run.
MAX_ATTEMPT_IDS = 64

Progress = Callable[[str], None]

# Failures that say something about the host's reachability, not about this image's content.
UNREACHABLE_KINDS = frozenset({"refused", "connect-timeout", "read-timeout"})
# Failures about the image record or its content: the host itself may be fine.
CONTENT_KINDS = frozenset({"conflict", "verify-failed", "vanished"})


def attempt_image_id(key: str, attempt: int) -> str:
    """The image id of attempt ``attempt`` (0-based) for ``key``: the same in every process, every run."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{ID_PREFIX}{key}:{attempt}"))


def attempt_number(key: str, image_id: str) -> int | None:
    """Which attempt of ``key`` produced ``image_id``, or None if it is not one of this key's ids."""
    for n in range(MAX_ATTEMPT_IDS):
        if attempt_image_id(key, n) == image_id:
            return n
    return None


def make_key(identity: str, content_digest: str) -> str:
    """The image key: the stable identity and the first 16 hex digits of the content digest."""
    return f"{identity}:{content_digest[:16]}"


# -- sources --------------------------------------------------------------------------------------


def is_url(source: str) -> bool:
    return source.startswith(("http://", "https://"))


def content_digest(source: str, *, chunk_size: int = CHUNK_SIZE) -> str:
    """sha256 of a local file's bytes; for an http(s) URL, of the URL itself (fetching it at every
    preview would be slow and the remote content is not ours to pin)."""
    digest = hashlib.sha256()
    if is_url(source):
        digest.update(source.encode())
        return digest.hexdigest()
    with open(source, "rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


class SourceError(GlanceError):
    """The image source (a local file or a URL) could not be read: no host can help with that."""


def redact_url(url: str) -> str:
    """``url`` without user info or query (either may carry a credential), for messages."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


@dataclass(frozen=True)
class ImageSource:
    """Where the image bytes come from: a local file or an http(s) URL, read again for each attempt."""

    location: str
    verify: bool | str = True
    timeouts: Timeouts = field(default_factory=Timeouts)

    @property
    def label(self) -> str:
        return redact_url(self.location) if is_url(self.location) else self.location

    def known_size(self) -> int | None:
        """The byte count of a local file; None for a URL (known only once fetched)."""
        return None if is_url(self.location) else Path(self.location).stat().st_size

    def open(self, chunk_size: int = CHUNK_SIZE) -> HashingUpload:
        """A fresh upload body over the source; sized when the length is known up front.

        Raises :class:`SourceError` when the source cannot be opened; reading it later raises the same.
        """
        if is_url(self.location):
            return self._open_url(chunk_size)
        path = Path(self.location)
        try:
            size = path.stat().st_size
        except OSError as exc:
            raise SourceError(f"cannot read image file {self.label}: {exc.strerror}") from None
        return SizedHashingUpload(_file_chunks(path, chunk_size), size)

    def _open_url(self, chunk_size: int) -> HashingUpload:
        try:
            resp = requests.get(
                self.location, stream=True, timeout=self.timeouts.as_requests(), verify=self.verify
            )
        except requests.exceptions.RequestException as exc:
            raise SourceError(f"cannot fetch image source {self.label}: {type(exc).__name__}") from None
        if resp.status_code != 200:
            resp.close()
            raise SourceError(f"image source {self.label} answered HTTP {resp.status_code}")
        length = resp.headers.get("Content-Length")
        chunks = _response_chunks(resp, chunk_size, self.label)
        if length and length.isdigit() and "Content-Encoding" not in resp.headers:
            return SizedHashingUpload(chunks, int(length))
        return HashingUpload(chunks)


def _file_chunks(path: Path, chunk_size: int) -> Iterator[bytes]:
    try:
        with path.open("rb") as handle:
            while chunk := handle.read(chunk_size):
                yield chunk
    except OSError as exc:
        raise SourceError(f"cannot read image file {path}: {exc.strerror}") from None


def _response_chunks(resp: requests.Response, chunk_size: int, label: str) -> Iterator[bytes]:
    try:
        yield from resp.iter_content(chunk_size=chunk_size)
    except requests.exceptions.RequestException as exc:
        raise SourceError(f"image source {label} broke off: {type(exc).__name__}") from None
    finally:
        resp.close()


# -- what an image is -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImageSpec:
    """The image to create: its key and the metadata Glance records at creation."""

    key: str
    name: str
    disk_format: str
    container_format: str
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
        if self.visibility:
            body["visibility"] = self.visibility
        return body


@dataclass(frozen=True)
class Attempt:
    """One step of a run, for the outputs and the operator: which host, which id, what happened."""

    host: str
    image_id: str | None
    outcome: str
    reason: str


@dataclass(frozen=True)
class Orphan:
    """A partial data file a dead host may have left in the shared store (remove it with host access).

    A killed host leaves it for good; a frozen host that wakes up usually removes it itself when it
    finds its record deleted.
    """

    image_id: str
    path: str | None


@dataclass(frozen=True)
class FailoverResult:
    """The image that now carries the key, and how it got there."""

    image_id: str
    status: str
    size: int
    os_hash_value: str
    host: str
    adopted: bool
    attempts: list[Attempt]
    orphans: list[Orphan]
    record: dict[str, Any]

    def attempts_as_dicts(self) -> list[dict[str, Any]]:
        return [asdict(a) for a in self.attempts]

    def orphans_as_dicts(self) -> list[dict[str, Any]]:
        return [asdict(o) for o in self.orphans]


class FailoverError(GlanceError):
    """No host could create the image. The message lists every host and why, and any orphans."""

    def __init__(self, message: str, attempts: list[Attempt], orphans: list[Orphan]) -> None:
        super().__init__(message)
        self.attempts = attempts
        self.orphans = orphans


# -- host health, shared across images and threads --------------------------------------------------


class HostHealthBook:
    """Last known health of each endpoint, shared by every image created in this process.

    Hosts that served last come first, unknown ones next, hosts that failed last (the longest-failed
    first, as the likeliest to have recovered). So a host known bad costs later images nothing while
    any other host works. Thread-safe: the provider process runs up to four calls at once.
    """

    GOOD, UNKNOWN, BAD = 0, 1, 2

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._state: dict[str, tuple[int, float, str]] = {}

    def mark_good(self, endpoint: str) -> None:
        with self._lock:
            self._state[endpoint] = (self.GOOD, time.monotonic(), "served")

    def mark_bad(self, endpoint: str, reason: str) -> None:
        with self._lock:
            self._state[endpoint] = (self.BAD, time.monotonic(), reason)

    def is_bad(self, endpoint: str) -> bool:
        with self._lock:
            return self._state.get(endpoint, (self.UNKNOWN, 0.0, ""))[0] == self.BAD

    def order(self, endpoints: Iterable[str]) -> list[str]:
        """``endpoints`` by last known health, keeping the given order among equals."""
        with self._lock:
            snapshot = dict(self._state)
        indexed = list(enumerate(dict.fromkeys(endpoints)))

        def rank(item: tuple[int, str]) -> tuple[int, float, int]:
            position, endpoint = item
            state, when, _ = snapshot.get(endpoint, (self.UNKNOWN, 0.0, ""))
            return (state, when if state == self.BAD else 0.0, position)

        return [endpoint for _, endpoint in sorted(indexed, key=rank)]

    def forget(self) -> None:
        with self._lock:
            self._state.clear()


# One book per process: the dynamic provider object is shared by its gRPC threads, and every
# FailoverImage in a deployment benefits from what earlier ones learned.
HOST_HEALTH = HostHealthBook()


# -- the engine -------------------------------------------------------------------------------------


class _NextId(Exception):
    """The current attempt id cannot be used any more: move to the next one."""


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


class _Run:
    """One call of :func:`create_image`: its hosts, attempts, created ids and orphans."""

    def __init__(
        self,
        session: ks_session.Session,
        spec: ImageSpec,
        source: ImageSource,
        endpoints: Sequence[str],
        *,
        book: HostHealthBook,
        timeouts: Timeouts,
        chunk_size: int,
        progress: Progress | None,
    ) -> None:
        self.session = session
        self.spec = spec
        self.source = source
        self.book = book
        self.chunk_size = chunk_size
        self.progress = progress or (lambda _message: None)
        # Six or more requests per image: skip requests' per-request environment scan when it is idle.
        skip_environment_rescan(session)
        self.hosts = [
            GlanceHost(session, ep, timeouts=timeouts, chunk_size=chunk_size) for ep in book.order(endpoints)
        ]
        self.attempts: list[Attempt] = []
        self.orphans: list[Orphan] = []
        self.failures: dict[str, str] = {}
        # Hosts not asked again in this run: they refused, or made us wait a whole timeout already.
        self.unreachable: set[str] = set()
        # Ids whose record may exist because of this run (a timed-out POST may still have created
        # one): deleted again if every host fails.
        self.touched: set[str] = set()
        self.next_attempt = 0
        self._data_dirs: dict[str, str | None] = {}
        # What was streamed in full to each image id (size, sha512): verifies a record that a host
        # finished after we stopped waiting for it (a lost answer, a thawed host).
        self.streamed: dict[str, tuple[int, str]] = {}

    # -- bookkeeping --------------------------------------------------------------------------------

    def note(self, host: str, image_id: str | None, outcome: str, reason: str) -> None:
        self.attempts.append(Attempt(host, image_id, outcome, reason))
        self.progress(f"{host}: {outcome}" + (f" ({image_id})" if image_id else "") + f": {reason}")

    def host_failed(self, host: GlanceHost, image_id: str | None, exc: HostUnavailable) -> None:
        self.failures[host.endpoint] = f"{exc.kind}: {exc.reason}"
        if exc.kind in UNREACHABLE_KINDS:
            self.unreachable.add(host.endpoint)
        if exc.kind not in CONTENT_KINDS:
            self.book.mark_bad(host.endpoint, exc.reason)
        self.note(host.endpoint, image_id, exc.kind, exc.reason)

    def usable_hosts(self) -> list[GlanceHost]:
        return [h for h in self.hosts if h.endpoint not in self.unreachable]

    def data_dir(self, host: GlanceHost) -> str | None:
        """The file store's data dir as ``host`` reports it (None for cinder, or not allowed to ask)."""
        if host.endpoint not in self._data_dirs:
            try:
                self._data_dirs[host.endpoint] = host.default_file_data_dir()
            except GlanceError:
                self._data_dirs[host.endpoint] = None
        return self._data_dirs[host.endpoint]

    def orphan(self, host: GlanceHost, image_id: str) -> None:
        data_dir = self.data_dir(host)
        path = f"{data_dir.rstrip('/')}/{image_id}" if data_dir else None
        if all(o.image_id != image_id for o in self.orphans):
            self.orphans.append(Orphan(image_id, path))

    def delete_leftover(self, host: GlanceHost, record: Mapping[str, Any], why: str) -> None:
        """Delete a record of this key that is not the finished image; report a possible partial file."""
        image_id = str(record["id"])
        status = record.get("status")
        if status == "saving":
            # A host died (or froze) while writing: its partial file stays in the store.
            self.orphan(host, image_id)
        host.delete_image(image_id)
        self.note(host.endpoint, image_id, "deleted-leftover", f"{why} (status {status})")

    # -- phases --------------------------------------------------------------------------------------

    def survey(self) -> FailoverResult | None:
        """Find images that already carry the key: adopt an active one, delete the leftovers."""
        for host in self.usable_hosts():
            try:
                return self._survey_on(host)
            except HostUnavailable as exc:
                self.host_failed(host, None, exc)
        raise self.failed("no host could be asked for existing images with this key")

    def _survey_on(self, host: GlanceHost) -> FailoverResult | None:
        found = host.find_by_property(KEY_PROPERTY, self.spec.key)
        numbered = [(attempt_number(self.spec.key, str(r["id"])), r) for r in found]
        ours = [(n, r) for n, r in numbered if r.get(KEY_PROPERTY) == self.spec.key]
        if ours:
            known = [n for n, _ in ours if n is not None]
            self.next_attempt = max(known) + 1 if known else 0
        # ``killed`` records never appear in Glance's lists: look up the ids below the highest found.
        listed = {str(r["id"]) for _, r in ours}
        for n in range(self.next_attempt):
            image_id = attempt_image_id(self.spec.key, n)
            if image_id not in listed:
                record = host.get_image(image_id)
                if record is not None:
                    ours.append((n, record))
        ours.sort(key=lambda item: MAX_ATTEMPT_IDS if item[0] is None else item[0])
        active = sorted(
            ((n if n is not None else MAX_ATTEMPT_IDS, r) for n, r in ours if r.get("status") == "active"),
            key=lambda item: (item[0], str(item[1].get("created_at", ""))),
        )
        adopted = active[0][1] if active else None
        for _, record in ours:
            if record is adopted:
                continue
            status = record.get("status")
            if status == "active":
                self.delete_leftover(host, record, "duplicate of the adopted image")
            elif status in ("queued", "saving", "killed", "uploading", "importing"):
                self.delete_leftover(host, record, "left over by an earlier run")
        if adopted is None:
            return None
        self.book.mark_good(host.endpoint)
        self.note(host.endpoint, str(adopted["id"]), "adopted", "an active image already carries this key")
        return self.result(host, adopted, adopted=True)

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
        raise self.failed("every image-library host failed")

    def _create_on(self, host: GlanceHost) -> FailoverResult:
        record = self._usable_record(host)
        while record.get("status") == "active":
            # A host that froze during an earlier step finished the upload after all.
            size, sha512 = self.streamed.get(str(record["id"]), (self.source.known_size(), None))
            problem = _verify(record, size=size, sha512=sha512)
            if problem is None:
                self.book.mark_good(host.endpoint)
                self.note(host.endpoint, str(record["id"]), "adopted", "the attempt completed meanwhile")
                return self.result(host, record, adopted=True)
            self.delete_leftover(host, record, f"completed meanwhile, but {problem}")
            self.next_attempt += 1
            record = self._usable_record(host)
        image_id = str(record["id"])
        body = self.source.open(self.chunk_size)
        self.progress(f"{host.endpoint}: uploading {image_id}")
        size = len(body) if isinstance(body, SizedHashingUpload) else None
        try:
            host.upload(image_id, body)
        except ImageConflict as exc:
            # Another host holds the record in a state that refuses data: the next host inspects it.
            raise HostUnavailable(host.endpoint, "conflict", f"upload refused: {exc.detail}") from None
        finally:
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

    def result(self, host: GlanceHost, record: Mapping[str, Any], *, adopted: bool) -> FailoverResult:
        return FailoverResult(
            image_id=str(record["id"]),
            status=str(record.get("status")),
            size=int(record.get("size") or 0),
            os_hash_value=str(record.get("os_hash_value") or ""),
            host=host.endpoint,
            adopted=adopted,
            attempts=list(self.attempts),
            orphans=list(self.orphans),
            record=dict(record),
        )

    def failed(self, summary: str) -> FailoverError:
        """Clean up what this run created, then describe every host's failure and any orphans."""
        leftovers = self.cleanup()
        lines = [f"image {self.spec.name!r} (key {self.spec.key}): {summary}:"]
        for host in self.hosts:
            lines.append(f"  - {host.endpoint}: {self.failures.get(host.endpoint, 'not tried')}")
        for orphan in self.orphans:
            where = orphan.path or "(store path unknown)"
            lines.append(f"  partial data file a dead host may have left: {where} (image {orphan.image_id}); "
                         "remove it on a host that mounts the store")
        for image_id in leftovers:
            lines.append(f"  image record {image_id} could not be deleted: delete it once a host serves")
        return FailoverError("\n".join(lines), list(self.attempts), list(self.orphans))

    def cleanup(self) -> list[str]:
        """Delete every record this run may have created; return the ids that could not be deleted."""
        remaining = []
        for image_id in sorted(self.touched):
            deleted = False
            for host in self.usable_hosts():
                try:
                    record = host.get_image(image_id)
                    if record is not None:
                        self.delete_leftover(host, record, "every host failed")
                    deleted = True
                    break
                except HostUnavailable as exc:
                    self.failures.setdefault(host.endpoint, f"{exc.kind}: {exc.reason}")
                    if exc.kind in UNREACHABLE_KINDS:
                        self.unreachable.add(host.endpoint)
                except GlanceApiError:
                    continue
            if not deleted:
                remaining.append(image_id)
        return remaining


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
) -> FailoverResult:
    """Create (or adopt) the one image carrying ``spec.key``, trying ``endpoints`` by last known health.

    Raises :class:`FailoverError` when every host fails; no record of this key is then left behind
    (unless no host could delete it, which the message says).
    """
    if not endpoints:
        raise FailoverError(
            f"image {spec.name!r}: no image-library endpoint to try (is the image-library role assigned, "
            "and does the health resource report a serving host?)",
            [],
            [],
        )
    run = _Run(
        session,
        spec,
        source,
        endpoints,
        book=book,
        timeouts=timeouts or Timeouts(),
        chunk_size=chunk_size,
        progress=progress,
    )
    adopted = run.survey()
    if adopted is not None:
        return adopted
    return run.create()


def find_image(
    session: ks_session.Session,
    key: str,
    endpoints: Sequence[str],
    *,
    image_id: str | None = None,
    book: HostHealthBook = HOST_HEALTH,
    timeouts: Timeouts | None = None,
) -> tuple[str, dict[str, Any] | None]:
    """The active image carrying ``key`` (preferring ``image_id``) through the first host that answers.

    Returns (endpoint asked, record or None if no active image carries the key). Raises
    :class:`HostUnavailable` for the last host when none answers.
    """
    last: HostUnavailable | None = None
    for endpoint in book.order(endpoints):
        host = GlanceHost(session, endpoint, timeouts=timeouts or Timeouts())
        try:
            if image_id:
                record = host.get_image(image_id)
                if record is not None and record.get("status") not in ("deleted", "pending_delete"):
                    return endpoint, record
            found = [r for r in host.find_by_property(KEY_PROPERTY, key) if r.get("status") == "active"]
            found.sort(key=lambda r: attempt_number(key, str(r["id"])) or 0)
            return endpoint, (found[0] if found else None)
        except HostUnavailable as exc:
            book.mark_bad(endpoint, exc.reason)
            last = exc
    if last is None:
        raise GlanceError("no image-library endpoint to ask")
    raise last
