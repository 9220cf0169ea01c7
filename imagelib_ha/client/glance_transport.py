"""How a request to one image-library host fails: the Glance error family, timeouts, and the
classification of transport errors that failover and the health report act on.

Kept apart from :mod:`imagelib_ha.client.glance` (the API calls) so the rules that decide "this host is
down" versus "send that read again" are in one place and small enough to read whole.
"""

from __future__ import annotations

from dataclasses import dataclass

import requests
from keystoneauth1 import exceptions as ks_exc

from imagelib_ha.client.errors import PcdError
from imagelib_ha.client.transport import caused_by


class GlanceError(PcdError):
    """A Glance request failed (one branch of the client's error family, :class:`PcdError`)."""


class HostUnavailable(GlanceError):
    """The host could not serve the request: it refused, timed out, lost the connection or answered 5xx.

    ``kind`` is one of ``refused``, ``connect-timeout``, ``read-timeout``, ``connection-lost``,
    ``server-error``, ``unauthorized``. ``refused`` means nothing was sent: the host is down.
    """

    def __init__(self, endpoint: str, kind: str, reason: str) -> None:
        super().__init__(f"{endpoint}: {reason}")
        self.endpoint = endpoint
        self.kind = kind
        self.reason = reason


class KeystoneUnavailable(GlanceError):
    """No token could be had: Keystone's fault, not the image host's, so failover cannot help."""


class GlanceApiError(GlanceError):
    """The host answered, but with a client error (4xx) the caller did not expect."""

    def __init__(self, endpoint: str, method: str, path: str, status: int, detail: str) -> None:
        super().__init__(f"{endpoint}: {method} {path} answered {status}: {detail}")
        self.endpoint = endpoint
        self.status = status
        self.detail = detail


class ImageConflict(GlanceApiError):
    """409: the id is taken (deleted ids too: Glance never reuses them) or the image's state forbids it."""


@dataclass(frozen=True)
class Timeouts:
    """Seconds to wait for a TCP connection and for each read from the socket."""

    connect: float = 3.0
    read: float = 30.0

    def as_requests(self) -> tuple[float, float]:
        return (self.connect, self.read)


def status_detail(resp: requests.Response) -> str:
    """A short, secret-free description of an error response for messages."""
    text = (resp.text or "").strip().replace("\n", " ")
    if len(text) > 200:
        text = text[:200] + "..."
    return text or resp.reason or "no detail"


def transport_failure(endpoint: str, exc: Exception) -> HostUnavailable:
    """Classify a keystoneauth transport exception by the socket error underneath it."""
    if isinstance(exc, ks_exc.ConnectTimeout) or caused_by(exc, TimeoutError):
        if caused_by(exc, requests.exceptions.ConnectTimeout):
            return HostUnavailable(endpoint, "connect-timeout", "connection timed out")
        return HostUnavailable(
            endpoint, "read-timeout", "no answer within the read timeout (host frozen or overloaded)"
        )
    if caused_by(exc, ConnectionRefusedError) or "connection refused" in str(exc).lower():
        return HostUnavailable(endpoint, "refused", "connection refused (host down)")
    if isinstance(exc, ks_exc.SSLError):
        return HostUnavailable(endpoint, "connection-lost", "TLS handshake or transfer failed")
    return HostUnavailable(endpoint, "connection-lost", "connection lost (host died or reset the connection)")
