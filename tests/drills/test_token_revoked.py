"""Drill: every issued token is revoked in the middle of an image creation.

Glance trusts a token it validated for ``token_cache_seconds`` (keystonemiddleware's cache); the drill
waits that long after revoking, so the host really refuses the old token. A short token lifetime would
prove nothing: keystoneauth renews tokens with less than two minutes left on its own.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from drillkit import delete_key, endpoints, records_of_key, session_of, unique_key, write_image

from imagelib_ha.client.failover import HostHealthBook, ImageSource, ImageSpec, create_image
from imagelib_ha.client.glance import GlanceHost, Timeouts
from lab.api import Lab

pytestmark = pytest.mark.lab

LONGEST_CACHE_WAIT = 15


def test_token_revoked_mid_run_reauthenticates_and_never_replays_an_upload(
    drill_lab: tuple[Lab, dict[str, Any]], tmp_path: Path
) -> None:
    lab, status = drill_lab
    cache = int(status["token_cache_seconds"])
    if cache > LONGEST_CACHE_WAIT:
        pytest.fail(f"this lab's Glance trusts validated tokens for {cache} s: start it with "
                    f"`python -m lab up --token-cache-seconds 2` (the test fixture does) to run this drill")
    session = session_of(status)
    # Every PUT of image data as it goes on the wire (below keystoneauth, so its own retries count too).
    puts: list[tuple[str, int]] = []
    wire = session.session
    send = wire.request

    def counting_request(method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        if method == "PUT" and url.endswith("/file"):
            puts.append((url, id(kwargs.get("data"))))
        return send(method, url, *args, **kwargs)

    wire.request = counting_request  # type: ignore[method-assign,assignment]
    size = 8 * 1024 * 1024
    image = write_image(tmp_path / "drill.raw", size)
    key = unique_key("revoked")
    old_token = session.get_token()
    revoked: list[float] = []

    def progress(message: str) -> None:
        if "uploading" in message and not revoked:
            lab.revoke_tokens()
            time.sleep(cache + 1)  # past Glance's token cache: the old token is now refused
            revoked.append(time.monotonic())

    spec = ImageSpec(key=key, name="drill-revoked", disk_format="raw", container_format="bare")
    try:
        result = create_image(session, spec, ImageSource(str(image)), endpoints(status),
                              book=HostHealthBook(), timeouts=Timeouts(connect=3, read=30), progress=progress)
        assert revoked, "the revocation hook never ran"
        assert (result.status, result.size) == ("active", size)
        assert session.get_token() != old_token, "the session never re-authenticated"
        assert any(a.outcome == "reauthenticated" for a in result.attempts), result.attempts
        # Each PUT carried a body of its own: a consumed stream was never sent again.
        bodies = [body for _, body in puts]
        assert len(bodies) == len(set(bodies)) and 1 <= len(bodies) <= 2, puts
        # And later operations with the renewed token just work.
        records = records_of_key(session, endpoints(status)[0], key)
        assert [(r["id"], r["status"]) for r in records] == [(result.image_id, "active")]
        got = GlanceHost(session, result.host).download_sha512(result.image_id)
        assert (got.size, got.sha512) == (size, result.os_hash_value)
    finally:
        wire.request = send  # type: ignore[method-assign]
        delete_key(session_of(lab.status()), endpoints(status)[0], key)
