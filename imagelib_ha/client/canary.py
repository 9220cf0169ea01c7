"""The shared-storage canary: a small image written through one host, read back through every other.

``/healthcheck`` and even a successful download prove nothing about sharing: a host without the data
answers 204 with an empty body. Only bytes written through one host and read back byte-identically
(sha512) through another prove that both use the same store. The canary is deleted afterwards; one left
by a crashed run is removed once it is old enough that no live run can still be using it.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from imagelib_ha.client.glance import GlanceError, GlanceHost, HashingUpload, SizedHashingUpload
from imagelib_ha.client.health_report import HealthReport, HostReport, map_hosts

CANARY_PROPERTY = "pcd_imagelib_ha_canary"
CANARY_SIZE = 64 * 1024
# A canary older than this was left by a run that crashed: safe to remove (a live run needs seconds).
CANARY_STALE_AFTER = timedelta(minutes=15)

Progress = Callable[[str], None]


class SharedStorageCanary:
    """Proves a region's serving hosts share one store, through their Glance APIs only."""

    def __init__(self, host: Callable[[str], GlanceHost], *, progress: Progress, sequential: bool) -> None:
        self.host = host
        self.progress = progress
        self.sequential = sequential

    def prove(self, report: HealthReport) -> HealthReport:
        """Write a small image through one serving host, read it back through every other, delete it.

        Hosts that cannot read it byte-identically become ``no-shared-data``. Returns a new report.
        """
        serving = report.serving
        if not serving:
            return report
        self._remove_stale_canaries(serving)
        data = os.urandom(CANARY_SIZE)
        expected = hashlib.sha512(data).hexdigest()
        canary_id = str(uuid.uuid4())
        rows = {id(h): h for h in report.hosts}
        writer: HostReport | None = None
        failed_writers: list[HostReport] = []
        for candidate in serving:
            try:
                self._write_canary(self.host(str(candidate.endpoint)), canary_id, data)
                writer = candidate
                break
            except GlanceError as exc:
                rows[id(candidate)] = replace(candidate, status="error",
                                              reason=f"cannot write the canary image: {exc}")
                failed_writers.append(candidate)
                self._delete_canary([candidate], canary_id)
                canary_id = str(uuid.uuid4())
        if writer is None:
            return replace(report, hosts=[rows[id(h)] for h in report.hosts], canary="no host could write it")
        try:
            readers = [h for h in serving if h is not writer and h not in failed_writers]

            def read(row: HostReport) -> HostReport:
                try:
                    got = self.host(str(row.endpoint)).download_sha512(canary_id)
                except GlanceError as exc:
                    return replace(row, status="error", reason=f"cannot read the canary image: {exc}")
                if got.sha512 == expected and got.size == len(data):
                    return row
                return replace(row, status="no-shared-data", reason=(
                    f"cannot read data written through {writer.label}: the canary image came back as "
                    f"HTTP {got.status} with {got.size} of {len(data)} bytes (sha512 "
                    f"{'matches' if got.sha512 == expected else 'differs'}): this host's store is not the "
                    "shared storage (local disk, or the share is not mounted at the same path)"))

            for old, new in zip(readers, map_hosts(read, readers, sequential=self.sequential), strict=True):
                rows[id(old)] = new
        finally:
            left = self._delete_canary([writer, *serving], canary_id)
        hosts = [rows[id(h)] for h in report.hosts]
        readers_ok = sum(1 for h in readers if rows[id(h)] is h)
        outcome = (f"written through {writer.label}, read back identically through {readers_ok} other "
                   f"host(s)")
        checked = replace(report, hosts=hosts, canary=outcome)
        if left:
            checked.problems.append(f"the canary image {canary_id} could not be deleted through any host: "
                                    "delete it once a host serves")
        return checked

    def _write_canary(self, host: GlanceHost, canary_id: str, data: bytes) -> None:
        host.create_image(image_id=canary_id, body={
            "name": f"pcd-imagelib-ha-canary-{canary_id[:8]}", "disk_format": "raw",
            "container_format": "bare", "visibility": "private", "os_hidden": True,
            CANARY_PROPERTY: "true",
        })
        self.progress(f"{host.endpoint}: writing canary image {canary_id}")
        body: HashingUpload = SizedHashingUpload(iter([data]), len(data))
        host.upload(canary_id, body)
        record = host.get_image(canary_id)
        if record is None or record.get("status") != "active":
            raise GlanceError(f"canary image {canary_id} is {record and record.get('status')!r} after upload")
        if record.get("os_hash_value") not in (None, body.sha512):
            raise GlanceError("the canary's os_hash_value differs from the bytes sent")

    def _delete_canary(self, candidates: Iterable[HostReport | None], canary_id: str) -> bool:
        """Delete the canary through the first host that can; True if it may still exist."""
        for row in candidates:
            if row is None or row.endpoint is None:
                continue
            try:
                self.host(row.endpoint).delete_image(canary_id)
                return False
            except GlanceError:
                continue
        return True

    def _remove_stale_canaries(self, serving: Sequence[HostReport]) -> None:
        """Delete canaries a crashed run left behind (old enough that no live run still uses them)."""
        host = self.host(str(serving[0].endpoint))
        try:
            found = host.find_by_property(CANARY_PROPERTY, "true")
        except GlanceError:
            return
        cutoff = datetime.now(UTC) - CANARY_STALE_AFTER
        for image in found:
            created = _parse_time(image.get("created_at"))
            if created is not None and created < cutoff:
                try:
                    host.delete_image(str(image["id"]))
                    self.progress(f"{host.endpoint}: removed stale canary image {image['id']}")
                except GlanceError:
                    continue


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
