"""The per-host Glance client against requests-mock: exact requests, timeouts and failure kinds."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import requests_mock
from keystone_fake import token_body

from imagelib_ha.client.glance import (
    CHUNK_SIZE,
    JSON_PATCH,
    GlanceHost,
    HashingUpload,
    HostUnavailable,
    ImageConflict,
    SizedHashingUpload,
    Timeouts,
)
from imagelib_ha.client.session import CloudAccess, make_session

AUTH_URL = "http://keystone.test/v3"
HOST = "http://host-a.test:9494"
IMAGE_ID = "3f0c2a4e-0000-4000-8000-000000000001"
PASSWORD = "s3cret-Pa55"

TOKEN = token_body()


@pytest.fixture
def mock() -> Iterator[requests_mock.Mocker]:
    with requests_mock.Mocker() as m:
        m.post(
            f"{AUTH_URL}/auth/tokens",
            [
                {"json": TOKEN, "headers": {"X-Subject-Token": "token-1"}, "status_code": 201},
                {"json": TOKEN, "headers": {"X-Subject-Token": "token-2"}, "status_code": 201},
            ],
        )
        yield m


@pytest.fixture
def host() -> GlanceHost:
    access = CloudAccess(auth_url=AUTH_URL, region="RegionOne", username="admin", password=PASSWORD,
                         project_name="admin")
    return GlanceHost(make_session(access), HOST, timeouts=Timeouts(connect=2.0, read=7.0))


def glance_calls(m: requests_mock.Mocker) -> list[tuple[str, str]]:
    return [(r.method, r.path) for r in m.request_history if r.netloc == "host-a.test:9494"]


def test_create_image_sends_the_chosen_id_and_bounded_timeouts(mock: requests_mock.Mocker,
                                                                host: GlanceHost) -> None:
    mock.post(f"{HOST}/v2/images", status_code=201, json={"id": IMAGE_ID, "status": "queued"})
    record = host.create_image(image_id=IMAGE_ID, body={"name": "cirros", "disk_format": "raw"})
    assert record["status"] == "queued"
    sent = mock.request_history[-1]
    assert sent.json() == {"name": "cirros", "disk_format": "raw", "id": IMAGE_ID}
    assert sent.headers["X-Auth-Token"] == "token-1"
    assert sent.timeout == (2.0, 7.0)


def test_create_with_a_used_id_is_a_conflict(mock: requests_mock.Mocker, host: GlanceHost) -> None:
    mock.post(f"{HOST}/v2/images", status_code=409, text="Image with identifier already exists")
    with pytest.raises(ImageConflict) as err:
        host.create_image(image_id=IMAGE_ID, body={})
    assert err.value.status == 409


def test_server_error_is_host_unavailable_and_never_retried(mock: requests_mock.Mocker,
                                                            host: GlanceHost) -> None:
    mock.get(f"{HOST}/v2/images/{IMAGE_ID}", [{"status_code": 503, "text": "busy"},
                                              {"status_code": 200, "json": {"id": IMAGE_ID}}])
    with pytest.raises(HostUnavailable) as err:
        host.get_image(IMAGE_ID)
    assert err.value.kind == "server-error"
    assert "503" in err.value.reason
    assert glance_calls(mock) == [("GET", f"/v2/images/{IMAGE_ID}")]


def test_refused_connection_is_reported_as_refused_without_connect_retries(
    mock: requests_mock.Mocker, host: GlanceHost
) -> None:
    mock.get(f"{HOST}/v2/images/{IMAGE_ID}",
             exc=requests.exceptions.ConnectionError("[Errno 111] Connection refused"))
    with pytest.raises(HostUnavailable) as err:
        host.get_image(IMAGE_ID)
    assert err.value.kind == "refused"
    assert len(glance_calls(mock)) == 1


def test_read_timeout_is_reported_as_read_timeout(mock: requests_mock.Mocker, host: GlanceHost) -> None:
    mock.get(f"{HOST}/v2/images/{IMAGE_ID}", exc=requests.exceptions.ReadTimeout("read timed out"))
    with pytest.raises(HostUnavailable) as err:
        host.get_image(IMAGE_ID)
    assert err.value.kind == "read-timeout"


def test_get_missing_image_is_none_and_delete_missing_is_false(mock: requests_mock.Mocker,
                                                               host: GlanceHost) -> None:
    mock.get(f"{HOST}/v2/images/{IMAGE_ID}", status_code=404)
    mock.delete(f"{HOST}/v2/images/{IMAGE_ID}", status_code=404)
    assert host.get_image(IMAGE_ID) is None
    assert host.delete_image(IMAGE_ID) is False


def test_upload_streams_fixed_chunks_with_length_and_hashes_them(mock: requests_mock.Mocker,
                                                                 host: GlanceHost) -> None:
    data = bytes(range(256)) * (3 * CHUNK_SIZE // 256) + b"tail"
    chunks = [data[i:i + CHUNK_SIZE] for i in range(0, len(data), CHUNK_SIZE)]
    seen: list[int] = []

    def consume(request: Any, context: Any) -> str:
        seen.extend(len(chunk) for chunk in request.body)
        context.status_code = 204
        return ""

    mock.put(f"{HOST}/v2/images/{IMAGE_ID}/file", text=consume)
    body = SizedHashingUpload(iter(chunks), len(data))
    host.upload(IMAGE_ID, body)
    sent = mock.request_history[-1]
    assert sent.headers["Content-Type"] == "application/octet-stream"
    assert sent.headers["Content-Length"] == str(len(data))
    assert "Transfer-Encoding" not in sent.headers
    # The stall bound while sending is the read timeout, not the connect timeout.
    assert sent.timeout == (7.0, 7.0)
    assert seen == [CHUNK_SIZE, CHUNK_SIZE, CHUNK_SIZE, 4]
    assert body.bytes_sent == len(data)
    assert body.sha512 == hashlib.sha512(data).hexdigest()


def test_upload_401_is_not_replayed_by_reauthentication(mock: requests_mock.Mocker, host: GlanceHost) -> None:
    mock.put(f"{HOST}/v2/images/{IMAGE_ID}/file", [{"status_code": 401}, {"status_code": 204}])
    with pytest.raises(HostUnavailable) as err:
        host.upload(IMAGE_ID, HashingUpload(iter([b"abc"])))
    assert err.value.kind == "unauthorized"
    assert glance_calls(mock) == [("PUT", f"/v2/images/{IMAGE_ID}/file")]
    assert [r.path for r in mock.request_history].count("/v3/auth/tokens") == 1


def test_metadata_update_is_a_json_patch(mock: requests_mock.Mocker, host: GlanceHost) -> None:
    mock.patch(f"{HOST}/v2/images/{IMAGE_ID}", json={"id": IMAGE_ID, "name": "new"})
    ops = [{"op": "replace", "path": "/name", "value": "new"}]
    assert host.update_image(IMAGE_ID, ops)["name"] == "new"
    sent = mock.request_history[-1]
    assert sent.headers["Content-Type"] == JSON_PATCH
    assert json.loads(sent.text) == ops


def test_find_by_property_asks_for_hidden_images_and_follows_pages(mock: requests_mock.Mocker,
                                                                   host: GlanceHost) -> None:
    mock.get(f"{HOST}/v2/images", [
        {"json": {"images": [{"id": "a", "status": "active"}], "next": "/v2/images?marker=a&limit=100"}},
        {"json": {"images": [{"id": "b", "status": "saving"}]}},
        {"json": {"images": [{"id": "c", "status": "queued"}]}},
    ])
    found = host.find_by_property("pcd_imagelib_ha_key", "p/s/n:abc")
    assert sorted(i["id"] for i in found) == ["a", "b", "c"]
    queries = [r.qs for r in mock.request_history if r.netloc == "host-a.test:9494"]
    assert queries[0] == {"limit": ["100"], "pcd_imagelib_ha_key": ["p/s/n:abc"], "os_hidden": ["false"],
                          "visibility": ["all"]}
    assert queries[1] == {"marker": ["a"], "limit": ["100"]}
    assert queries[2]["os_hidden"] == ["true"]


def test_download_of_a_host_without_data_is_empty_204(mock: requests_mock.Mocker, host: GlanceHost) -> None:
    mock.get(f"{HOST}/v2/images/{IMAGE_ID}/file", status_code=204, content=b"")
    result = host.download_sha512(IMAGE_ID)
    assert (result.status, result.size) == (204, 0)
    assert result.sha512 == hashlib.sha512(b"").hexdigest()


def test_download_hashes_the_bytes(mock: requests_mock.Mocker, host: GlanceHost) -> None:
    mock.get(f"{HOST}/v2/images/{IMAGE_ID}/file", status_code=200, content=b"x" * 5000)
    result = host.download_sha512(IMAGE_ID)
    assert result.size == 5000
    assert result.sha512 == hashlib.sha512(b"x" * 5000).hexdigest()


@pytest.mark.parametrize(("status", "content", "expected"), [(206, b"x", True), (204, b"", False),
                                                             (200, b"xyz", True)])
def test_ranged_read_tells_whether_the_host_has_the_data(mock: requests_mock.Mocker, host: GlanceHost,
                                                         status: int, content: bytes, expected: bool) -> None:
    mock.get(f"{HOST}/v2/images/{IMAGE_ID}/file", status_code=status, content=content)
    assert host.has_data(IMAGE_ID) is expected
    assert mock.request_history[-1].headers["Range"] == "bytes=0-0"


def test_stores_detail_and_file_data_dir(mock: requests_mock.Mocker, host: GlanceHost) -> None:
    mock.get(f"{HOST}/v2/info/stores/detail", json={"stores": [
        {"id": "cheap", "type": "file", "properties": {"data_dir": "/other"}},
        {"id": "shared", "type": "file", "default": True, "properties": {"data_dir": "/var/opt/data/"}},
    ]})
    assert host.default_file_data_dir() == "/var/opt/data/"


def probe_mock(m: requests_mock.Mocker, health: dict[str, Any], v2: dict[str, Any],
               listing: dict[str, Any]) -> None:
    m.get(f"{HOST}/healthcheck", **health)
    m.get(f"{HOST}/v2/", **v2)
    m.get(f"{HOST}/v2/images", **listing)


def test_probe_serving_needs_the_authenticated_list(mock: requests_mock.Mocker, host: GlanceHost) -> None:
    probe_mock(mock, {"text": "OK"}, {"status_code": 401}, {"json": {"images": []}})
    result = host.probe(timeout=4.0)
    assert (result.status, result.reason) == ("serving", "serving")
    calls = [(r.method, r.path, "X-Auth-Token" in r.headers) for r in mock.request_history
             if r.netloc == "host-a.test:9494"]
    assert calls == [("GET", "/healthcheck", False), ("GET", "/v2/", False), ("GET", "/v2/images", True)]
    assert all(r.timeout == (2.0, 4.0) for r in mock.request_history if r.netloc == "host-a.test:9494")


def test_probe_healthcheck_ok_but_database_down_is_an_error(mock: requests_mock.Mocker,
                                                            host: GlanceHost) -> None:
    probe_mock(mock, {"text": "OK"}, {"status_code": 200, "json": {}},
               {"status_code": 500, "text": "Internal Server Error"})
    result = host.probe()
    assert result.status == "error"
    assert "500" in result.reason


def test_probe_without_a_healthcheck_route_relies_on_the_other_probes(mock: requests_mock.Mocker,
                                                                      host: GlanceHost) -> None:
    probe_mock(mock, {"status_code": 404}, {"status_code": 401}, {"json": {"images": []}})
    assert host.probe().status == "serving"


def test_probe_drained_host(mock: requests_mock.Mocker, host: GlanceHost) -> None:
    probe_mock(mock, {"status_code": 503, "text": "DISABLED BY FILE"}, {}, {})
    result = host.probe()
    assert result.status == "drained"
    assert glance_calls(mock) == [("GET", "/healthcheck")]


@pytest.mark.parametrize(("exc", "status"), [
    (requests.exceptions.ConnectionError("[Errno 111] Connection refused"), "down"),
    (requests.exceptions.ReadTimeout("read timed out"), "frozen"),
])
def test_probe_unreachable_hosts(mock: requests_mock.Mocker, host: GlanceHost,
                                 exc: Exception, status: str) -> None:
    mock.get(f"{HOST}/healthcheck", exc=exc)
    assert host.probe().status == status


def test_probe_token_refused_is_unauthorized(mock: requests_mock.Mocker, host: GlanceHost) -> None:
    probe_mock(mock, {"text": "OK"}, {"status_code": 401}, {"status_code": 403, "text": "Forbidden"})
    result = host.probe()
    assert result.status == "unauthorized"
    assert PASSWORD not in result.reason
