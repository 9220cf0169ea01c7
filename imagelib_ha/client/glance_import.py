"""Glance's interoperable image import on one image-library host: what it offers, start, watch.

Kept apart from :mod:`imagelib_ha.client.glance` (uploads, records, probes): the same transport rules
hold, since every call goes through :meth:`GlanceHost._request` (bounded connect and read timeouts, no
retries, 5xx and transport errors as :class:`HostUnavailable`).

What Glance 33 was seen doing (lab, web-download of 20 MB from 127.0.0.1):

* ``POST /v2/images/{id}/import`` answers 202 at once; the record stays ``queued`` for a moment, then
  reads ``importing`` while the host downloads into its staging store and copies into the store.
* The import's task (``GET /v2/images/{id}/tasks``) is ``processing``, then ``success`` or
  ``failure``; a failure puts the record back to ``queued`` with the store in
  ``os_glance_failed_import``. The task's message says ``Copied N MiB`` during the second pass only:
  while downloading, no byte count is visible through the API.
* Glance's download has no timeout: a source that stops sending leaves the record ``importing`` with
  the import lock (``os_glance_import_task``) held; the lock is only broken after 60 minutes.
  ``DELETE`` of an ``importing`` record answers 204.
* A URL the host's ``[import_filtering_opts]`` refuses answers 400 at the ``POST``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import requests

from imagelib_ha.client.glance import GlanceHost, HostUnavailable

WEB_DOWNLOAD = "web-download"


@dataclass(frozen=True)
class ImportState:
    """An import as one poll saw it: the record's status and the newest import task's state."""

    status: str | None  # None: the record is gone
    task_status: str | None
    task_message: str
    failed_stores: str

    @property
    def failed(self) -> bool:
        return self.task_status == "failure" or (self.status == "queued" and bool(self.failed_stores))


class ImportingHost(GlanceHost):
    """A :class:`GlanceHost` that can also ask its Glance to import an image's data itself."""

    def import_methods(self) -> list[str]:
        """The methods ``GET /v2/info/import`` advertises (empty if the host offers no import)."""
        resp = self._request("GET", "/v2/info/import", expect=(200, 404))
        if resp.status_code == 404:
            return []
        value = (resp.json().get("import-methods") or {}).get("value") or []
        return [str(v) for v in value]

    def start_web_download(self, image_id: str, url: str) -> None:
        """``POST /v2/images/{id}/import`` with method ``web-download``: the host fetches ``url``.

        ``url`` must carry no credential: Glance keeps it in its task records and logs.
        """
        self._request(
            "POST",
            f"/v2/images/{image_id}/import",
            expect=(202,),
            json={"method": {"name": WEB_DOWNLOAD, "uri": url}},
            log=False,
        )

    def import_state(self, image_id: str) -> ImportState:
        """The record's status, and its newest import task while the record reads ``queued``.

        While ``importing`` the task is only read back for nothing: a failure puts the record back to
        ``queued``, and that is when its message matters (one GET per poll, two while ``queued``).
        """
        record = self.get_image(image_id)
        if record is None:
            return ImportState(None, None, "", "")
        if record.get("status") != "queued":
            return ImportState(str(record.get("status")), None, "",
                               str(record.get("os_glance_failed_import") or ""))
        resp = self._request("GET", f"/v2/images/{image_id}/tasks", expect=(200, 403, 404))
        tasks: list[dict[str, Any]] = resp.json().get("tasks", []) if resp.status_code == 200 else []
        newest = max(tasks, key=lambda t: str(t.get("created_at", "")), default=None)
        return ImportState(
            status=str(record.get("status")),
            task_status=str(newest.get("status")) if newest else None,
            task_message=str(newest.get("message") or "") if newest else "",
            failed_stores=str(record.get("os_glance_failed_import") or ""),
        )

    def read_back_sha256(self, image_id: str, on_bytes: Callable[[int], None]) -> tuple[str, int]:
        """sha256 and size of the image's data as this host serves it (streamed, one chunk in memory).

        For verifying an import against a sha256 pin when the host hashes with another algorithm.
        """
        resp = self._request("GET", f"/v2/images/{image_id}/file", expect=(200, 204), stream=True, log=False)
        digest = hashlib.sha256()
        size = 0
        try:
            for chunk in resp.iter_content(chunk_size=self.chunk_size):
                digest.update(chunk)
                size += len(chunk)
                on_bytes(size)
        except requests.exceptions.RequestException as exc:
            raise HostUnavailable(self.endpoint, "connection-lost", f"read-back interrupted: {exc}") from None
        finally:
            resp.close()
        return digest.hexdigest(), size
