"""Where an image's bytes come from: a local file or an http(s) URL pinned by the sha256 of its bytes.

* A local file is hashed (sha256) by ``check``; a URL names the digest of its bytes in config
  (``sha256:<hex>``), since fetching it at every preview would be slow and what a URL serves may
  change. Either way the upload is verified against that digest while it streams: the last chunk is
  held back until the digest matches, so a file changed since ``check`` or a changed upstream file
  never becomes an image under the old key (the host gets a truncated body and the record is cleaned
  up).
* Downloads verify TLS against the system CA store plus the cloud's ``caBundle`` when given. The
  region's ``insecure`` (for its own APIs) never turns off verification of an image download.
* Every upload is sized (``Content-Length``): a URL that does not give its length is spooled to a
  temporary file first (:func:`spooled`).
* A URL must not carry a credential (user info or a query): the source is a resource input, and inputs
  are stored in state. Messages show a URL without either (:func:`redact_url`).
"""

from __future__ import annotations

import hashlib
import re
import ssl
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests
from requests.adapters import HTTPAdapter

from imagelib_ha.client.errors import PcdError
from imagelib_ha.client.glance import CHUNK_SIZE, HashingUpload, SizedHashingUpload, Timeouts

DIGEST_PATTERN = re.compile(r"^sha256:([0-9a-f]{64})$")


class SourceError(PcdError):
    """The image source (a local file or a URL) could not be read, or its bytes are not the pinned
    ones: no host can help with that."""


def is_url(source: str) -> bool:
    return source.startswith(("http://", "https://"))


def redact_url(url: str) -> str:
    """``url`` without user info or query (either may carry a credential), for messages."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def url_credential_problem(url: str) -> str | None:
    """Why ``url`` cannot be an image source (it may carry a credential), or None."""
    parts = urlsplit(url)
    if parts.username is not None or parts.password is not None:
        return ("carries user info (a credential): inputs are stored in the stack's state. Serve the "
                "image without credentials, or download it and give the file path")
    if parts.query or parts.fragment:
        return ("carries a query or fragment (signed URLs hold a credential there): inputs are stored "
                "in the stack's state. Give a plain URL, or download the image and give the file path")
    return None


def parse_digest(text: str) -> str | None:
    """The hex sha256 of a ``sha256:<64 hex digits>`` pin, or None if ``text`` is not one."""
    match = DIGEST_PATTERN.match(text.strip().lower())
    return match.group(1) if match else None


def file_sha256(path: str, *, chunk_size: int = CHUNK_SIZE) -> str:
    """sha256 of a local file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


class _ContextAdapter(HTTPAdapter):
    """An adapter whose TLS context trusts the system CA store plus an extra bundle."""

    def __init__(self, context: ssl.SSLContext) -> None:
        self._context = context
        super().__init__(max_retries=0)

    def build_connection_pool_key_attributes(
        self, request: requests.PreparedRequest, verify: Any, cert: Any = None
    ) -> Any:
        host_params, pool_kwargs = super().build_connection_pool_key_attributes(request, verify, cert)
        return host_params, {**pool_kwargs, "ssl_context": self._context}


def download_session(ca_bundle: str | None) -> requests.Session:
    """A requests session for image downloads: always verifying, system CAs plus ``ca_bundle``."""
    http = requests.Session()
    if ca_bundle:
        context = ssl.create_default_context()
        context.load_verify_locations(cafile=ca_bundle)
        http.mount("https://", _ContextAdapter(context))
    return http


def pinned_chunks(chunks: Iterable[bytes], expected_sha256: str, label: str) -> Iterator[bytes]:
    """``chunks``, with the last one held back until the sha256 of all of them is ``expected_sha256``.

    On a mismatch :class:`SourceError` is raised before the final chunk is sent: the receiving host
    never gets the whole body, so no image completes with bytes other than the pinned ones.
    """
    digest = hashlib.sha256()
    pending: bytes | None = None
    for chunk in chunks:
        if not chunk:
            continue
        digest.update(chunk)
        if pending is not None:
            yield pending
        pending = chunk
    if digest.hexdigest() != expected_sha256:
        raise SourceError(
            f"image source {label} does not hold the pinned bytes: sha256 {digest.hexdigest()}, expected "
            f"{expected_sha256}. If the new bytes are intended, pin them (set the image's digest to "
            "sha256:<new digest>), which creates a new image"
        )
    if pending is not None:
        yield pending


@dataclass(frozen=True)
class ImageSource:
    """The image bytes: a local file or an http(s) URL, read again for each attempt.

    ``expected_sha256`` (the digest in the image's key) is verified while streaming, when given.
    """

    location: str
    expected_sha256: str | None = None
    ca_bundle: str | None = None
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
        return SizedHashingUpload(self._pinned(_file_chunks(path, chunk_size)), size)

    def _pinned(self, chunks: Iterator[bytes]) -> Iterator[bytes]:
        if self.expected_sha256 is None:
            return chunks
        return pinned_chunks(chunks, self.expected_sha256, self.label)

    def _open_url(self, chunk_size: int) -> HashingUpload:
        http = download_session(self.ca_bundle)
        try:
            resp = http.get(self.location, stream=True, timeout=self.timeouts.as_requests(), verify=True)
        except requests.exceptions.RequestException as exc:
            raise SourceError(f"cannot fetch image source {self.label}: {type(exc).__name__}") from None
        if resp.status_code != 200:
            resp.close()
            raise SourceError(f"image source {self.label} answered HTTP {resp.status_code}")
        length = resp.headers.get("Content-Length")
        chunks = self._pinned(_response_chunks(resp, chunk_size, self.label))
        if length and length.isdigit() and "Content-Encoding" not in resp.headers:
            return SizedHashingUpload(chunks, int(length))
        return spooled(chunks, chunk_size)


def spooled(chunks: Iterable[bytes], chunk_size: int) -> SizedHashingUpload:
    """``chunks`` written to a temporary file first, so the upload knows its size.

    For a URL that does not say its length (chunked, or compressed in transit). Every upload then sends
    ``Content-Length``: Glance's Cinder store sizes the image's volume from it, and without it takes its
    resize-while-writing path, reported to leave zero-filled images with valid-looking checksums on
    NFS-backed volumes. A pinned digest is verified while spooling, before any host is asked. The file
    is removed when the upload is done with it (or dropped).
    """
    spool = tempfile.TemporaryFile()  # closed by read_back(), or below on a failure
    size = 0
    try:
        for chunk in chunks:
            spool.write(chunk)
            size += len(chunk)
        spool.seek(0)
    except BaseException:
        spool.close()
        raise

    def read_back() -> Iterator[bytes]:
        with spool:
            while chunk := spool.read(chunk_size):
                yield chunk

    return SizedHashingUpload(read_back(), size)


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
