"""One image-library host's Glance (Images API v2), reached through its own ``image-cluster`` endpoint.

Every call goes through the shared keystoneauth ``Session`` with ``endpoint_override`` set to this
host, so token handling stays in keystoneauth. Transport rules that make failover work:

* Every request is bounded by a connect timeout and a *read* timeout: a frozen host (SIGSTOP) still
  accepts TCP connections from the kernel backlog, so only the read timeout ever fires.
* No connect retries and no status-code retries: a host that refused, timed out or answered 5xx is
  reported as :class:`HostUnavailable` at once, and the caller moves on to another host (failover is
  the retry). One exception: a read (GET/HEAD) whose pooled connection the server had just closed
  as idle is sent once more on a fresh connection (``transport.resending_dropped_reads``).
* A streamed upload is sent with ``allow_reauth=False``: on a 401 keystoneauth would re-authenticate
  and re-send the request with a body that is already consumed.
* A 2xx download proves nothing: a host without the data answers 204 with an empty body. Callers
  compare sha512 digests.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import requests
from keystoneauth1 import exceptions as ks_exc
from keystoneauth1 import session as ks_session

from imagelib_ha.client.glance_transport import (
    GlanceApiError,
    GlanceError,
    HostUnavailable,
    ImageConflict,
    KeystoneUnavailable,
    Timeouts,
    status_detail,
    transport_failure,
)
from imagelib_ha.client.transport import resending_dropped_reads

# Big enough that per-chunk Python overhead is negligible next to the socket and sha512, small enough
# that memory does not depend on the image size.
CHUNK_SIZE = 1024 * 1024

JSON_PATCH = "application/openstack-images-v2.1-json-patch"

# Statuses of an image record that still holds or may still receive data.
LEFTOVER_STATUSES = frozenset({"queued", "saving", "killed", "uploading", "importing"})


@dataclass(frozen=True)
class ProbeResult:
    """One host's answer to the health probe. ``latency`` is volatile: print it, never store it."""

    endpoint: str
    status: str  # serving | drained | down | frozen | unauthorized | error
    reason: str
    latency: float


@dataclass(frozen=True)
class Download:
    """What a full download returned: HTTP status, byte count and sha512 of the body."""

    status: int
    size: int
    sha512: str


class HashingUpload:
    """An upload body sent in fixed-size chunks, hashed with sha512 and counted as it goes.

    Iterating it consumes the source once; memory use is one chunk regardless of the image size.
    """

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = chunks
        self._hash = hashlib.sha512()
        self.bytes_sent = 0
        # Told the running byte count after each chunk (a progress meter); never changes the bytes.
        self.on_chunk: Callable[[int], None] | None = None

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._chunks:
            if not chunk:
                continue
            self._hash.update(chunk)
            self.bytes_sent += len(chunk)
            if self.on_chunk is not None:
                self.on_chunk(self.bytes_sent)
            yield chunk

    @property
    def sha512(self) -> str:
        return self._hash.hexdigest()


class SizedHashingUpload(HashingUpload):
    """A :class:`HashingUpload` of known length: requests then sends ``Content-Length``, not chunked."""

    def __init__(self, chunks: Iterable[bytes], size: int) -> None:
        super().__init__(chunks)
        self.size = size

    def __len__(self) -> int:
        return self.size


def is_default_store(store: Mapping[str, Any]) -> bool:
    """Glance reports ``default`` as the string ``"true"`` (seen on Glance 33), or a boolean."""
    return str(store.get("default", "")).lower() == "true"


class GlanceHost:
    """One image-library host's Glance API v2, at ``endpoint`` (its ``image-cluster`` URL).

    Thread-safe as far as the underlying keystoneauth session is: it keeps no state of its own.
    """

    def __init__(
        self,
        session: ks_session.Session,
        endpoint: str,
        *,
        timeouts: Timeouts | None = None,
        chunk_size: int = CHUNK_SIZE,
    ) -> None:
        self.session = session
        self.endpoint = endpoint.rstrip("/")
        self.timeouts = timeouts or Timeouts()
        self.chunk_size = chunk_size

    def __repr__(self) -> str:
        return f"GlanceHost({self.endpoint!r})"

    # -- transport ---------------------------------------------------------------------------------

    def _request(
        self,
        method: str,
        path: str,
        *,
        expect: Sequence[int],
        authenticated: bool = True,
        timeout: tuple[float, float] | None = None,
        **kwargs: Any,
    ) -> requests.Response:
        """Send one request to this host; 5xx and transport errors become :class:`HostUnavailable`.

        Status codes outside ``expect`` and below 500 raise :class:`GlanceApiError` (409:
        :class:`ImageConflict`).
        """
        if authenticated:
            # Fetch (or reuse) the token first, so a Keystone outage is not blamed on this host.
            try:
                self.session.get_auth_headers()
            except ks_exc.ClientException as exc:
                raise KeystoneUnavailable(f"cannot get a Keystone token: {type(exc).__name__}") from None
        def send() -> requests.Response:
            return self.session.request(
                path,
                method,
                endpoint_override=self.endpoint,
                authenticated=authenticated,
                raise_exc=False,
                connect_retries=0,
                status_code_retries=0,
                timeout=timeout or self.timeouts.as_requests(),
                **kwargs,
            )

        try:
            resp = resending_dropped_reads(method, send)
        except (ks_exc.ConnectionError, ks_exc.UnknownConnectionError) as exc:
            raise transport_failure(self.endpoint, exc) from None
        if resp.status_code in expect:
            return resp
        if resp.status_code >= 500:
            detail = status_detail(resp)
            raise HostUnavailable(
                self.endpoint, "server-error", f"{method} {path} answered {resp.status_code}: {detail}"
            )
        if resp.status_code in (401, 403) and authenticated:
            raise HostUnavailable(
                self.endpoint, "unauthorized", f"{method} {path} answered {resp.status_code}: token refused"
            )
        error = ImageConflict if resp.status_code == 409 else GlanceApiError
        raise error(self.endpoint, method, path, resp.status_code, status_detail(resp))

    # -- images ------------------------------------------------------------------------------------

    def create_image(self, *, image_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """``POST /v2/images`` with a client-chosen ``id`` (409 if it was ever used); returns the record."""
        payload = dict(body)
        payload["id"] = image_id
        resp = self._request("POST", "/v2/images", expect=(201,), json=payload)
        record: dict[str, Any] = resp.json()
        return record

    def get_image(self, image_id: str) -> dict[str, Any] | None:
        """The image record, or None when Glance does not know it (never created, or deleted)."""
        resp = self._request("GET", f"/v2/images/{image_id}", expect=(200, 404))
        if resp.status_code == 404:
            return None
        record: dict[str, Any] = resp.json()
        return record

    def delete_image(self, image_id: str) -> bool:
        """``DELETE /v2/images/{id}``; True if deleted, False if it was already gone."""
        resp = self._request("DELETE", f"/v2/images/{image_id}", expect=(204, 404))
        return resp.status_code == 204

    def update_image(self, image_id: str, operations: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """Apply a JSON patch (``add``/``replace``/``remove`` operations) to the image's metadata."""
        resp = self._request(
            "PATCH",
            f"/v2/images/{image_id}",
            expect=(200,),
            data=json.dumps(list(operations)),
            headers={"Content-Type": JSON_PATCH},
        )
        record: dict[str, Any] = resp.json()
        return record

    def upload(self, image_id: str, body: HashingUpload, *, request_id: str | None = None) -> None:
        """``PUT /v2/images/{id}/file``, streaming ``body`` (which hashes what it sends).

        ``request_id`` (``req-<uuid>``) is sent as ``X-Openstack-Request-ID``: Glance logs the request
        under it, so errors of an upload this project abandoned can be told apart.

        Sent without re-authentication: a 401 retry would replay a consumed stream. A host dying
        mid-upload surfaces as :class:`HostUnavailable` (``connection-lost`` or ``read-timeout``).
        """
        self._request(
            "PUT",
            f"/v2/images/{image_id}/file",
            expect=(204, 201, 200),
            data=body,
            headers={"Content-Type": "application/octet-stream",
                     **({"X-Openstack-Request-ID": request_id} if request_id else {})},
            allow_reauth=False,
            # urllib3 bounds each socket send by the *connect* timeout; a host that stops reading
            # mid-upload (frozen) should cost the read timeout, as every other stall does.
            timeout=(self.timeouts.read, self.timeouts.read),
            log=False,
        )

    def list_images(self, filters: Mapping[str, str]) -> list[dict[str, Any]]:
        """Every image matching ``filters``, following Glance's pagination."""
        params: dict[str, str] = {"limit": "100", **filters}
        images: list[dict[str, Any]] = []
        path = "/v2/images"
        query: dict[str, str] | None = params
        for _ in range(1000):  # a bound, not a retry: 100 000 images is far beyond one key
            resp = self._request("GET", path, expect=(200,), params=query)
            page = resp.json()
            images.extend(page.get("images", []))
            next_link = page.get("next")
            if not next_link:
                return images
            # ``next`` is "/v2/images?marker=...&..." relative to the endpoint root.
            path, query = next_link, None
        return images

    def find_by_property(self, name: str, value: str) -> list[dict[str, Any]]:
        """Images carrying property ``name`` = ``value``, hidden ones included.

        Glance's list hides images with ``os_hidden`` set unless asked for them, so both halves are
        queried. It never lists ``killed`` records at all (its list always excludes deleted rows
        together with killed ones): callers that must find those look them up by id.
        """
        found: dict[str, dict[str, Any]] = {}
        for hidden in ("false", "true"):
            for image in self.list_images({name: value, "os_hidden": hidden, "visibility": "all"}):
                found[image["id"]] = image
        return list(found.values())

    def download_sha512(self, image_id: str) -> Download:
        """Download the image data and hash it. A host without the data answers 204 and an empty body."""
        resp = self._request(
            "GET",
            f"/v2/images/{image_id}/file",
            expect=(200, 204, 206),
            stream=True,
            log=False,
        )
        digest = hashlib.sha512()
        size = 0
        try:
            for chunk in resp.iter_content(chunk_size=self.chunk_size):
                digest.update(chunk)
                size += len(chunk)
        except requests.exceptions.RequestException as exc:
            raise HostUnavailable(self.endpoint, "connection-lost", f"download interrupted: {exc}") from None
        finally:
            resp.close()
        return Download(status=resp.status_code, size=size, sha512=digest.hexdigest())

    def has_data(self, image_id: str) -> bool:
        """One-byte ranged read: 206 (or a non-empty 200) means this host can read the data, 204 not."""
        resp = self._request(
            "GET",
            f"/v2/images/{image_id}/file",
            expect=(200, 204, 206),
            headers={"Range": "bytes=0-0"},
            stream=True,
            log=False,
        )
        try:
            if resp.status_code == 204:
                return False
            if resp.status_code == 206:
                return True
            return bool(resp.raw.read(1))
        finally:
            resp.close()

    def stores_detail(self) -> list[dict[str, Any]]:
        """``GET /v2/info/stores/detail`` (admin): each store's ``id``, ``type`` and ``properties``.

        File stores report ``properties.data_dir``; cinder stores ``properties.volume_type``.
        """
        resp = self._request("GET", "/v2/info/stores/detail", expect=(200,))
        stores: list[dict[str, Any]] = resp.json().get("stores", [])
        return stores

    def default_file_data_dir(self) -> str | None:
        """The data dir of this host's default (else only) file store, or None if it has none."""
        stores = self.stores_detail()
        files = [s for s in stores if s.get("type") == "file"]
        chosen = next((s for s in files if is_default_store(s)), files[0] if files else None)
        if chosen is None:
            return None
        data_dir = (chosen.get("properties") or {}).get("data_dir")
        return str(data_dir) if data_dir else None

    # -- health ------------------------------------------------------------------------------------

    def probe(self, *, timeout: float | None = None) -> ProbeResult:
        """Is this host serving? ``/healthcheck``, then ``GET /v2/``, then an authenticated list.

        ``/healthcheck`` only reflects the drain file (503 "DISABLED BY FILE" = drained); with the
        database down it still says 200. The authenticated list is what proves the host serves.
        """
        started = time.monotonic()
        limit = timeout if timeout is not None else self.timeouts.read
        bounds = (min(self.timeouts.connect, limit), limit)

        def result(status: str, reason: str) -> ProbeResult:
            return ProbeResult(self.endpoint, status, reason, time.monotonic() - started)

        try:
            # 404: a proxy in front of the host may not pass /healthcheck on; the next probes decide.
            resp = self._request(
                "GET", "/healthcheck", expect=(200, 404, 503), authenticated=False, timeout=bounds, log=False
            )
            if resp.status_code == 503:
                if "DISABLED BY FILE" in resp.text.upper():
                    return result("drained", "drained: /healthcheck disabled by file")
                return result("error", f"/healthcheck answered 503: {status_detail(resp)}")
            resp = self._request("GET", "/v2/", expect=(200, 300, 401), authenticated=False, timeout=bounds)
            self._request("GET", "/v2/images", expect=(200,), params={"limit": "1"}, timeout=bounds)
        except HostUnavailable as exc:
            status = {
                "refused": "down",
                "connect-timeout": "down",
                "connection-lost": "down",
                "read-timeout": "frozen",
                "unauthorized": "unauthorized",
            }.get(exc.kind, "error")
            return result(status, exc.reason)
        except GlanceError as exc:
            return result("error", str(exc))
        return result("serving", "serving")
