"""What one failover run has tried, created and left behind, and how a run that failed is undone.

:class:`RunLedger` is the state a run of :mod:`imagelib_ha.client.failover` carries from host to host:
each attempt and its outcome, why each host failed and which are not asked again, the ids whose records
may exist because of this run, the partial data files and Cinder volumes that dead hosts left. It
deletes a record of the key that is not the finished image (reporting what the API cannot remove),
builds the result, and, when every host failed or the API refused a request, deletes what the run may
have created and writes the error naming each host. Which host is tried next, which id is used and what
is adopted is the engine's decision (:mod:`imagelib_ha.client.failover`, and
:mod:`imagelib_ha.client.web_download` for hosts that import a URL themselves), not the ledger's.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from keystoneauth1 import session as ks_session

from imagelib_ha.client.cinder_cleanup import AttemptVolumes
from imagelib_ha.client.failover_report import Attempt, FailoverError, FailoverResult, Orphan
from imagelib_ha.client.glance import GlanceError, GlanceHost, HostUnavailable, Timeouts
from imagelib_ha.client.host_health import HostHealthBook
from imagelib_ha.client.image_source import ImageSource
from imagelib_ha.client.image_spec import ImageSpec
from imagelib_ha.client.transport import skip_environment_rescan

Progress = Callable[[str], None]

# Failures that say something about the host's reachability, not about this image's content.
UNREACHABLE_KINDS = frozenset({"refused", "connect-timeout", "read-timeout"})
# Failures about the image record or its content: the host itself may be fine. (``import-failed``: the
# host could not fetch a URL, which says nothing of how it serves uploads.)
CONTENT_KINDS = frozenset({"conflict", "verify-failed", "vanished", "import-failed"})


class RunLedger:
    """One run's hosts, attempts, failures, touched ids and orphans; the leftovers' removal and the undoing
    of a failed run."""

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
        volumes: AttemptVolumes | None = None,
    ) -> None:
        self.session = session
        self.volumes = volumes
        # The host each attempt id was uploaded through: its volume's attachments are that host's.
        self.writers: dict[str, str] = {}
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
        # Hosts that did not answer during the cleanup either: not asked again.
        self.silent: set[str] = set()
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
        in_cinder = status == "saving" and self.volumes is not None and self.volumes.handles(host)
        if status == "saving" and not in_cinder:
            # A host died (or froze) while writing: its partial file stays in the store.
            self.orphan(host, image_id)
        host.delete_image(image_id)
        self.note(host.endpoint, image_id, "deleted-leftover", f"{why} (status {status})")
        if in_cinder:
            self.remove_volumes(host, image_id)

    def remove_volumes(self, host: GlanceHost, image_id: str) -> None:
        """The abandoned attempt's Cinder volumes: removed, or reported as orphans with the reason."""
        assert self.volumes is not None
        writer = next((h for h in self.hosts if h.endpoint == self.writers.get(image_id)), None)
        known_down = writer is not None and writer.endpoint in self.unreachable
        outcome = self.volumes.remove(image_id, writer=writer, known_down=known_down)
        for volume_id in outcome.removed:
            self.note(host.endpoint, image_id, "volume-removed", f"Cinder volume {volume_id} of the attempt")
        for volume_id, why in outcome.left:
            self.orphans.append(Orphan(image_id, f"cinder volume {volume_id}"))
            self.note(host.endpoint, image_id, "volume-left", f"Cinder volume {volume_id}: {why}")

    # -- the end of a run ----------------------------------------------------------------------------

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
            if where.startswith("cinder volume"):
                lines.append(f"  {where} of attempt {orphan.image_id} was left (the attempts say why): "
                             "delete it with `openstack volume delete`")
                continue
            lines.append(f"  partial data file a dead host may have left: {where} (image {orphan.image_id}); "
                         "remove it on a host that mounts the store")
        for image_id in leftovers:
            lines.append(f"  image record {image_id} could not be deleted: delete it once a host serves")
        return FailoverError("\n".join(lines), list(self.attempts), list(self.orphans))

    def cleanup(self) -> list[str]:
        """Delete every record this run may have created; return the ids that could not be deleted."""
        remaining = []
        # A host whose upload only timed out may still answer a delete: a stalled store (a frozen
        # Cinder API) holds the upload, not the host's other requests. Asked last, and once.
        stalled = [h for h in self.hosts if h.endpoint in self.unreachable
                   and self.failures.get(h.endpoint, "").startswith("read-timeout")]
        for image_id in sorted(self.touched):
            deleted = False
            for host in self.usable_hosts() + [h for h in stalled if h.endpoint not in self.silent]:
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
                        self.silent.add(host.endpoint)
                except GlanceError:
                    continue
            if not deleted:
                remaining.append(image_id)
        return remaining
