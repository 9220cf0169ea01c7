"""The HTTP transport under a keystoneauth session: what each request costs, and which failed
requests may be sent again.

requests, by default, re-reads the environment on *every* request: it walks all of ``os.environ`` for
``*_proxy`` variables (twice), looks for ``REQUESTS_CA_BUNDLE``/``CURL_CA_BUNDLE`` and stats the
netrc files. Measured against the lab, that is about a fifth of the client's CPU per health probe.
When the environment names no proxy and no netrc file exists, the only thing the scan can find is a
CA bundle, which applies to requests that verify with the default trust store: the session is given
that bundle once (exactly what requests would pick) and the scan is skipped. With any proxy variable
or a netrc file, the scan stays, so proxies, ``no_proxy`` and netrc keep working exactly as before.
"""

from __future__ import annotations

import http.client
import os
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from keystoneauth1 import exceptions as ks_exc
from keystoneauth1 import session as ks_session
from requests.utils import NETRC_FILES

CA_BUNDLE_VARIABLES = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")

# Methods that change nothing on the server: sent again once when the connection they went out on was
# closed by the server before it answered (see :func:`is_dropped_keepalive`).
SAFE_TO_RESEND = frozenset({"GET", "HEAD"})

T = TypeVar("T")


def environment_ca_bundle() -> str | None:
    """The CA bundle requests takes from the environment (first set of ``CA_BUNDLE_VARIABLES``)."""
    return next((os.environ[name] for name in CA_BUNDLE_VARIABLES if os.environ.get(name)), None)


def environment_needs_rescan() -> bool:
    """Whether the environment names a proxy (or ``no_proxy``), or a netrc file exists.

    Either can depend on the URL of each request, so only the per-request scan handles it.
    """
    if any(value and name.lower().endswith("_proxy") for name, value in os.environ.items()):
        return True
    netrc = os.environ.get("NETRC")
    candidates = [netrc] if netrc is not None else [f"~/{name}" for name in NETRC_FILES]
    return any(Path(os.path.expanduser(c)).exists() for c in candidates)


def skip_environment_rescan(session: ks_session.Session) -> bool:
    """Stop ``session`` re-reading the environment per request when it has nothing to offer.

    Returns True when the scan was turned off. The decision is taken now: a variable set later in
    this process is not seen by this session (start the process with it instead).
    """
    requests_session = session.session
    if not requests_session.trust_env:
        return True
    if environment_needs_rescan():
        return False
    bundle = environment_ca_bundle()
    if bundle is not None and session.verify is True:
        # What requests does per request when told to verify with the default trust store.
        session.verify = bundle
    requests_session.trust_env = False
    return True


def caused_by(exc: BaseException, kind: type[BaseException]) -> bool:
    """True if ``kind`` appears anywhere in the chain of causes, contexts and wrapped arguments.

    keystoneauth re-raises requests' exceptions (as context), which wrap urllib3's, which wrap the
    socket error in their arguments: the socket error is what tells refused from timed out.
    """
    pending: list[BaseException] = [exc]
    seen: set[int] = set()
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, kind):
            return True
        pending.extend(a for a in current.args if isinstance(a, BaseException))
        for linked in (current.__cause__, current.__context__, getattr(current, "reason", None)):
            if isinstance(linked, BaseException):
                pending.append(linked)
    return False


def is_dropped_keepalive(exc: BaseException) -> bool:
    """True when the server closed the connection without sending a single byte of the answer.

    HTTP servers close idle keep-alive connections (gunicorn after 2 s, nginx after 75 s); a request
    sent on a pooled connection just as the server closes it fails this way although the host is fine.
    A host that dies mid-request can fail the same way, which is why only a read is sent again, once,
    on a fresh connection: a dead host then refuses at once and is reported as refused.
    """
    return caused_by(exc, http.client.RemoteDisconnected)


def resending_dropped_reads(method: str, send: Callable[[], T]) -> T:
    """``send()``; when ``method`` is a read and the server dropped its connection unanswered, once more.

    Every other failure (and a write's) is raised as ``send`` raised it, for the caller to classify.
    """
    try:
        return send()
    except (ks_exc.ConnectionError, ks_exc.UnknownConnectionError) as exc:
        if method not in SAFE_TO_RESEND or not is_dropped_keepalive(exc):
            raise
    return send()
