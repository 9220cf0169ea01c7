"""URL images the image-library host pulls itself (Glance's ``web-download`` import), with failover.

``importMethod`` of an image:

* ``upload``: the client streams the bytes (:mod:`imagelib_ha.client.failover`).
* ``web-download``: the client creates the record and asks the host to import the URL
  (``POST /v2/images/{id}/import``); it sends no image bytes. A host whose import fails (it cannot
  reach the URL) is left for the next host, as a host that refuses an upload is.
* ``auto``: web-download on each host that advertises it in ``GET /v2/info/import``, upload on one
  that does not. A host that advertises it but cannot fetch the URL (its import filter refuses it:
  400; or the import fails) gets the image **uploaded** instead, on the same host, from a fresh id:
  the client can read the URL, so the image is still made.

Whatever the method, a URL is only handed to Glance when it carries no credential (user info, a
query or a fragment: Glance keeps the URL in its task records and logs) and its bytes are pinned
(``sha256:``, so the result can be verified): otherwise the image is uploaded.

Failover keeps the upload path's rules (same key, attempt ids, owner token, survey and cleanup: this
run is a :class:`~imagelib_ha.client.failover._Run`). What differs is the wait: Glance's download has
no timeout, a stalled one holds its import lock for 60 minutes, and while it downloads no byte count is
visible. So each host's import is bounded by ``import_timeout``; a host that dies or freezes meanwhile
is noticed at the next poll (refused, or the read timeout). Either way the attempt's record is deleted
(through the next host when this one does not answer) and the image is made from create on the next
host, under the next attempt id: an ``importing`` record never becomes a second image.

The result is verified against the pin: Glance's ``os_hash_value`` when the host hashes with sha256,
else a streamed read-back (sha256) through the host that imported. A mismatch means the URL serves
other bytes than pinned: the record is deleted and the run ends (no host can help with that).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from keystoneauth1 import session as ks_session

from imagelib_ha.client import failover
from imagelib_ha.client.cinder_cleanup import AttemptVolumes
from imagelib_ha.client.failover_ledger import Progress
from imagelib_ha.client.failover_report import FailoverResult
from imagelib_ha.client.glance import CHUNK_SIZE, GlanceApiError, GlanceHost, HostUnavailable, Timeouts
from imagelib_ha.client.glance_import import WEB_DOWNLOAD, ImportingHost
from imagelib_ha.client.host_health import HOST_HEALTH, HostHealthBook
from imagelib_ha.client.image_source import ImageSource, SourceError, is_url, url_credential_problem
from imagelib_ha.client.image_spec import ImageSpec
from imagelib_ha.client.progress import TransferMeter

IMPORT_METHODS = ("upload", WEB_DOWNLOAD, "auto")
# A whole image pulled by a host: generous, since nothing tells a slow download from a stalled one.
DEFAULT_IMPORT_TIMEOUT = 1800.0


@dataclass(frozen=True)
class ImportPolicy:
    """How an image's bytes reach the store: ``method`` (upload | web-download | auto), the bound of
    one host's import, and how often it is polled."""

    method: str = "upload"
    timeout: float = DEFAULT_IMPORT_TIMEOUT
    # Polls start at ``poll_interval`` and grow by half each time up to ``max_poll_interval``: a small
    # image is seen active soon, a large one costs a few requests a minute, and a dead host is still
    # noticed within the longest interval.
    poll_interval: float = 1.0
    max_poll_interval: float = 5.0


def why_upload(method: str, source: ImageSource) -> str | None:
    """Why ``source`` must be uploaded whatever ``method`` says, or None if a host may pull it."""
    if method == "upload":
        return "importMethod is upload"
    if not is_url(source.location):
        return "the source is a local file"
    if url_credential_problem(source.location) is not None:
        return "the URL carries a credential, which must never reach Glance's task records"
    if source.expected_sha256 is None:
        return "the URL's bytes are not pinned, so what a host imports could not be verified"
    return None


class _ImportRun(failover._Run):
    """A failover run whose hosts import the URL themselves (``web-download``) where they can."""

    def __init__(self, *args: Any, policy: ImportPolicy, sleep: Callable[[float], None], **kwargs: Any
                 ) -> None:
        super().__init__(*args, **kwargs)
        self.policy = policy
        self.sleep = sleep
        self.hosts = [ImportingHost(h.session, h.endpoint, timeouts=h.timeouts, chunk_size=h.chunk_size)
                      for h in self.hosts]
        self._methods: dict[str, bool] = {}

    def _imports_on(self, host: GlanceHost) -> bool:
        if self.policy.method != "auto":
            return True
        if host.endpoint not in self._methods:
            assert isinstance(host, ImportingHost)
            self._methods[host.endpoint] = WEB_DOWNLOAD in host.import_methods()
            if not self._methods[host.endpoint]:
                self.note(host.endpoint, None, "upload", "the host does not advertise web-download")
        return self._methods[host.endpoint]

    def _create_on(self, host: GlanceHost) -> FailoverResult:
        if not self._imports_on(host):
            return super()._create_on(host)
        assert isinstance(host, ImportingHost)
        record = self._usable_record(host)
        while record.get("status") == "active" or record.get("os_glance_import_task") \
                or record.get("os_glance_failed_import"):
            if record.get("status") == "active":
                # An import we stopped waiting for finished after all: keep it if it holds the pin.
                problem = self._digest_problem(host, record)
                if problem is None:
                    return self._finish(host, record, "adopted", "the import completed meanwhile")
                self.delete_leftover(host, record, f"completed meanwhile, but {problem}")
            else:
                # An earlier import's record: its lock or failure would stand in the way.
                self.delete_leftover(host, record, "an earlier import's record")
            self.next_attempt += 1
            record = self._usable_record(host)
        image_id = str(record["id"])
        try:
            host.start_web_download(image_id, self.source.location)
        except GlanceApiError as exc:
            if exc.status != 400:
                raise
            # The host's import filter refuses this URL.
            return self._not_imported(host, image_id, f"the host refuses to fetch the URL: {exc.detail}")
        self.note(host.endpoint, image_id, "importing", f"web-download of {self.source.label}")
        failure = self._wait(host, image_id)
        if failure is not None:
            return self._not_imported(host, image_id, failure)
        final = host.get_image(image_id)
        if final is None:
            raise HostUnavailable(host.endpoint, "vanished", f"image {image_id} vanished after its import")
        self.note(host.endpoint, image_id, "imported", f"active, {final.get('size')} bytes; verifying")
        problem = self._digest_problem(host, final)
        if problem is not None:
            self.delete_leftover(host, final, f"verification failed: {problem}")
            self.next_attempt += 1
            raise SourceError(f"image source {self.source.label} served other bytes than pinned: {problem}")
        return self._finish(host, final, "created", "imported by web-download, digest verified")

    def _wait(self, host: ImportingHost, image_id: str) -> str | None:
        """Poll the import until the record is active (None) or the import failed (why).

        The host going away raises :class:`HostUnavailable` from the poll; the deadline passing
        deletes the record (best effort) and raises it too, so the next host takes over.
        """
        meter = TransferMeter(self.progress, host=host.endpoint, attempt=self.next_attempt, what=WEB_DOWNLOAD)
        deadline = time.monotonic() + self.policy.timeout
        interval = self.policy.poll_interval
        while True:
            state = host.import_state(image_id)
            if state.status is None:
                raise HostUnavailable(host.endpoint, "vanished",
                                      f"image {image_id} vanished during its import")
            if state.status == "active":
                return None
            if state.failed:
                return f"the host's import failed: {state.task_message or 'no detail'}"
            if time.monotonic() >= deadline:
                self._give_up(host, image_id)
                raise HostUnavailable(
                    host.endpoint, "import-stalled",
                    f"the import did not finish within {self.policy.timeout:.0f} s "
                    "(a stalled source or host)")
            meter.status(f"{state.status}{', ' + state.task_message if state.task_message else ''}")
            self.sleep(min(interval, max(0.0, deadline - time.monotonic())))
            interval = min(interval * 1.5, max(self.policy.max_poll_interval, self.policy.poll_interval))

    def _give_up(self, host: ImportingHost, image_id: str) -> None:
        try:
            record = host.get_image(image_id)
            if record is not None:
                self.delete_leftover(host, record, "its import was given up")
        except HostUnavailable:
            pass  # the next host finds the record and deletes it
        self.next_attempt += 1

    def _not_imported(self, host: ImportingHost, image_id: str, why: str) -> FailoverResult:
        """The host cannot import the URL: ``auto`` uploads on this host, ``web-download`` moves on."""
        record = host.get_image(image_id)
        if record is not None:
            self.delete_leftover(host, record, why)
        self.next_attempt += 1
        if self.policy.method == "auto":
            self._methods[host.endpoint] = False
            self.note(host.endpoint, None, "upload", f"{why}; uploading instead")
            return super()._create_on(host)
        raise HostUnavailable(host.endpoint, "import-failed", why)

    def _digest_problem(self, host: GlanceHost, record: dict[str, Any]) -> str | None:
        pinned = self.source.expected_sha256
        assert pinned is not None  # why_upload() sends unpinned sources to the upload path
        if record.get("os_hash_algo") == "sha256":
            return None if record.get("os_hash_value") == pinned else "os_hash_value differs from the pin"
        assert isinstance(host, ImportingHost)
        meter = TransferMeter(self.progress, host=host.endpoint, attempt=self.next_attempt, what="read-back")
        digest, size = host.read_back_sha256(str(record["id"]), meter.update)
        meter.finish()
        if digest != pinned:
            return f"the {size} bytes read back have sha256 {digest}, not the pinned {pinned}"
        return None

    def _finish(self, host: GlanceHost, record: dict[str, Any], outcome: str, reason: str) -> FailoverResult:
        taken = self.take(host, record)
        self.book.mark_good(host.endpoint)
        self.note(host.endpoint, str(record["id"]), outcome, reason)
        return self.result(host, taken, adopted=outcome == "adopted")


def create_image_by_method(
    session: ks_session.Session,
    spec: ImageSpec,
    source: ImageSource,
    endpoints: Sequence[str],
    *,
    policy: ImportPolicy,
    book: HostHealthBook = HOST_HEALTH,
    timeouts: Timeouts | None = None,
    chunk_size: int = CHUNK_SIZE,
    progress: Progress | None = None,
    volumes: AttemptVolumes | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> FailoverResult:
    """Create (or adopt) the one image carrying ``spec.key``, by ``policy.method`` where allowed.

    Same contract as :func:`imagelib_ha.client.failover.create_image`, which it is for uploads.
    """
    if policy.method not in IMPORT_METHODS:
        raise ValueError(f"import method {policy.method!r} is not one of {', '.join(IMPORT_METHODS)}")
    reason = why_upload(policy.method, source)
    if reason is not None:
        if policy.method != "upload" and progress is not None:
            progress(f"image {spec.name!r}: uploading: {reason}")
        return failover.create_image(session, spec, source, endpoints, book=book, timeouts=timeouts,
                                     chunk_size=chunk_size, progress=progress, volumes=volumes)
    return failover.run_create(
        lambda **kwargs: _ImportRun(policy=policy, sleep=sleep, **kwargs),
        session, spec, source, endpoints, book=book, timeouts=timeouts, chunk_size=chunk_size,
        progress=progress, volumes=volumes,
    )
