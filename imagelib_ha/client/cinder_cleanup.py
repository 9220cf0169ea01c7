"""The Cinder volumes a failover run's abandoned attempts leave behind, found and removed through Cinder.

With the Cinder store, Glance creates a volume ``image-<image id>`` (its metadata holds
``glance_image_id``) and attaches it on the uploading host while it writes. A host killed mid-upload
leaves that volume behind: attached to the dead host (or ``reserved``/``attaching``), or ``available``,
and deleting the image record does not delete it (Glance recorded no location). Unlike a file orphan it
can be removed through the API:

* only volumes named after an attempt id *this run abandoned* are touched (the key's attempt ids are
  its own; the image record is already deleted);
* an attachment is removed only when the host that wrote the attempt is down: it refuses
  connections or does not answer its probe in time (asked again now, unless this run already found
  it unreachable). Removing an attachment is Cinder bookkeeping, not a detach on the host: done under
  a serving host it would pull the volume from under its os-brick mount. A serving host detaches on
  its own once its upload ends, so the volume is left, and reported; so is one whose writer is
  unknown (a leftover of an earlier run);
* the volume is deleted once no attachment holds it and its status allows (a volume still
  ``creating`` is waited for, within ``settle_timeout``); what cannot be removed is reported with its
  id and the reason, never retried without bound.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from imagelib_ha.client.block_storage import BlockStorage, BlockStorageError
from imagelib_ha.client.glance import GlanceError, GlanceHost, is_default_store

# Cinder deletes a volume without ``force`` only in these states (cinder/volume/api.py, delete).
DELETABLE = frozenset({"available", "error", "error_restoring", "error_extending", "error_managing"})
# Probe answers that mean the host cannot be holding its attachment in use.
DOWN = frozenset({"down", "frozen"})
# States that change on their own (the volume service is working on it): wait for them.
TRANSIENT = frozenset({"creating", "attaching", "detaching", "reserved", "downloading", "deleting"})


@dataclass
class VolumeCleanup:
    """What the cleanup of one abandoned attempt removed, and what it left with the reason."""

    removed: list[str] = field(default_factory=list)
    left: list[tuple[str, str]] = field(default_factory=list)


class AttemptVolumes:
    """Finds and removes the volumes of abandoned image attempts in one region's Cinder."""

    def __init__(
        self,
        storage: BlockStorage,
        *,
        settle_timeout: float = 60.0,
        interval: float = 1.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.storage = storage
        self.settle_timeout = settle_timeout
        self.interval = interval
        self.sleep = sleep
        self._cinder_hosts: dict[str, bool] = {}

    def handles(self, host: GlanceHost) -> bool:
        """Whether ``host``'s default store is Cinder (its abandoned attempts are volumes); asked once."""
        if host.endpoint not in self._cinder_hosts:
            try:
                stores = host.stores_detail()
            except GlanceError:
                stores = []
            default = next((s for s in stores if is_default_store(s)), stores[0] if stores else {})
            self._cinder_hosts[host.endpoint] = default.get("type") == "cinder"
        return self._cinder_hosts[host.endpoint]

    def remove(self, image_id: str, *, writer: GlanceHost | None, known_down: bool = False) -> VolumeCleanup:
        """Remove the volumes of abandoned attempt ``image_id``, written through ``writer`` (None: unknown).

        ``known_down``: the run already found the writer unreachable (no need to wait for it again).
        Cinder errors are reported as what was left, never raised: the run's outcome is the image, and
        a leftover volume must not fail it.
        """
        outcome = VolumeCleanup()
        writer_down = writer is not None and (known_down or writer.probe().status in DOWN)
        try:
            volumes = self.storage.image_volumes(image_id)
        except BlockStorageError as exc:
            outcome.left.append(("?", f"cannot list the volumes of image {image_id}: {exc}"))
            return outcome
        for volume in volumes:
            volume_id = str(volume["id"])
            try:
                problem = self._remove_one(volume_id, writer_down=writer_down)
            except BlockStorageError as exc:
                problem = str(exc)
            if problem is None:
                outcome.removed.append(volume_id)
            else:
                outcome.left.append((volume_id, problem))
        return outcome

    def _remove_one(self, volume_id: str, *, writer_down: bool) -> str | None:
        """Remove one volume; None when it is gone, else why it stays."""
        attachments = self.storage.attachments(volume_id)
        if attachments:
            if not writer_down:
                # Only completed attachments name their host (the volume's own list shows those).
                volume = self.storage.volume(volume_id) or {}
                hosts = sorted({str(a.get("host_name")) for a in volume.get("attachments") or []
                                if a.get("host_name")}) or ["host not recorded yet"]
                return (f"still attached ({len(attachments)} attachment(s): {', '.join(hosts)}) while the "
                        "host that wrote it may be serving: not forced. Delete the attachments once that "
                        "host is down (openstack volume attachment delete), then the volume")
            for attachment in attachments:
                self.storage.delete_attachment(str(attachment["id"]))
        status = self._settled(volume_id)
        if status is None:
            return None
        if status not in DELETABLE:
            return f"status {status!r} after {self.settle_timeout:g}s: Cinder deletes no volume in that state"
        self.storage.delete_volume(volume_id)
        status = self._settled(volume_id, wanted_gone=True)
        if status is None:
            return None
        return f"still {status!r} {self.settle_timeout:g}s after its delete was accepted"

    def _settled(self, volume_id: str, *, wanted_gone: bool = False) -> str | None:
        """Poll until the volume's status stops changing by itself (or it is gone: None)."""
        deadline = time.monotonic() + self.settle_timeout
        while True:
            found: dict[str, Any] | None = self.storage.volume(volume_id)
            if found is None:
                return None
            status = str(found.get("status"))
            waiting = status in TRANSIENT or (wanted_gone and status != "error_deleting")
            if not waiting or time.monotonic() + self.interval > deadline:
                return status
            self.sleep(self.interval)
