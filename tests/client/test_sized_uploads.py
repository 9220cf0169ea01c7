"""Every upload carries its size: a URL that does not give its length is spooled first.

Glance's Cinder store sizes the image's volume from the upload's ``Content-Length``; without it, it
takes a resize-while-writing path reported to leave zero-filled images with valid-looking checksums.
"""

from __future__ import annotations

import gzip
import hashlib
from collections.abc import Iterator
from typing import Any

import pytest
import requests_mock
from test_failover import AUTH_URL, ID0, TOKEN, A, consume_upload, list_uri, record, session, spec

from imagelib_ha.client.failover import create_image
from imagelib_ha.client.failover_report import FailoverError
from imagelib_ha.client.host_health import HostHealthBook
from imagelib_ha.client.image_source import ImageSource

URL = "https://images.test/cirros.img"
DATA = bytes(range(256)) * 9_000  # several chunks
SHA256 = hashlib.sha256(DATA).hexdigest()


@pytest.fixture
def mock() -> Iterator[requests_mock.Mocker]:
    with requests_mock.Mocker() as m:
        m.post(f"{AUTH_URL}/auth/tokens", json=TOKEN, headers={"X-Subject-Token": "t"}, status_code=201)
        yield m


def serve_host(mock: requests_mock.Mocker) -> None:
    mock.get(list_uri(A), json={"images": []})
    done = record(ID0, "active", size=len(DATA), os_hash_algo="sha512",
                  os_hash_value=hashlib.sha512(DATA).hexdigest())
    mock.get(f"{A}/v2/images/{ID0}", [{"status_code": 404}, {"json": done}])
    mock.post(f"{A}/v2/images", status_code=201, json=record(ID0, "queued"))
    mock.put(f"{A}/v2/images/{ID0}/file", text=consume_upload)
    mock.delete(f"{A}/v2/images/{ID0}", status_code=204)


def upload_request(mock: requests_mock.Mocker) -> Any:
    return next(r for r in mock.request_history if r.method == "PUT")


@pytest.mark.parametrize(
    ("body", "headers"),
    [
        (DATA, {}),  # no Content-Length: a chunked response
        (gzip.compress(DATA), {"Content-Encoding": "gzip", "Content-Length": "999"}),  # length of the gzip
    ],
)
def test_a_url_without_a_usable_length_is_uploaded_with_its_real_size(
    mock: requests_mock.Mocker, body: bytes, headers: dict[str, str]
) -> None:
    mock.get(URL, content=body, headers=headers)
    serve_host(mock)
    result = create_image(session(), spec(), ImageSource(URL, expected_sha256=SHA256), [A],
                          book=HostHealthBook())
    assert (result.image_id, result.size) == (ID0, len(DATA))
    sent = upload_request(mock)
    assert sent.headers["Content-Length"] == str(len(DATA))
    assert "Transfer-Encoding" not in sent.headers


def test_an_unsized_url_with_other_bytes_than_pinned_fails_before_any_upload(
    mock: requests_mock.Mocker,
) -> None:
    mock.get(URL, content=b"changed upstream" * 1000)
    serve_host(mock)
    with pytest.raises(FailoverError, match="does not hold the pinned bytes"):
        create_image(session(), spec(), ImageSource(URL, expected_sha256=SHA256), [A],
                     book=HostHealthBook())
    assert not [r for r in mock.request_history if r.method == "PUT"]
    assert [(r.method, r.path) for r in mock.request_history][-1] == ("DELETE", f"/v2/images/{ID0}")
