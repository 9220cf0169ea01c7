"""Failover-aware image creation against requests-mock: exact call sequences across three hosts.

Each host's URIs get ordered responses; the tests assert the request history host by host, the
image that results, and that no other image record is left.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import requests_mock
from keystone_fake import token_body

from imagelib_ha.client import own_requests
from imagelib_ha.client.failover import create_image
from imagelib_ha.client.failover_report import FailoverError
from imagelib_ha.client.glance import Timeouts
from imagelib_ha.client.host_health import HostHealthBook
from imagelib_ha.client.image_key import (
    KEY_PROPERTY,
    OWNER_PROPERTY,
    attempt_image_id,
    attempt_number,
    make_key,
)
from imagelib_ha.client.image_source import ImageSource, file_sha256
from imagelib_ha.client.image_spec import ImageSpec
from imagelib_ha.client.session import CloudAccess, make_session

AUTH_URL = "http://keystone.test/v3"
A, B, C = "http://host-a.test:9494", "http://host-b.test:9494", "http://host-c.test:9494"
KEY = "proj/lab/cirros:0123456789abcdef:raw/bare"
OWNER = "owner-token-of-this-run"
ID0, ID1, ID2 = (attempt_image_id(KEY, n) for n in range(3))
DATA_DIR = "/var/opt/imagelibrary/data/glance"
PASSWORD = "s3cret-Pa55"
REFUSED = requests.exceptions.ConnectionError("[Errno 111] Connection refused")

TOKEN = token_body()


@pytest.fixture
def mock() -> Iterator[requests_mock.Mocker]:
    with requests_mock.Mocker() as m:
        m.post(f"{AUTH_URL}/auth/tokens", json=TOKEN, headers={"X-Subject-Token": "token-1"},
               status_code=201)
        yield m


@pytest.fixture
def image_file(tmp_path: Path) -> Path:
    path = tmp_path / "disk.raw"
    path.write_bytes(bytes(range(256)) * 12_000)  # 3 MB: several chunks
    return path


def session() -> Any:
    return make_session(CloudAccess(auth_url=AUTH_URL, region="RegionOne", username="admin",
                                    password=PASSWORD, project_name="admin"))


def spec() -> ImageSpec:
    return ImageSpec(key=KEY, name="cirros", disk_format="raw", container_format="bare", owner=OWNER,
                     visibility="private", properties={"os_distro": "cirros"}, tags=["lab"])


def record(image_id: str, status: str, **extra: Any) -> dict[str, Any]:
    """A record as this run creates it (its owner token, the spec's metadata)."""
    return {"id": image_id, "status": status, KEY_PROPERTY: KEY, OWNER_PROPERTY: OWNER, "name": "cirros",
            "visibility": "private", "os_distro": "cirros", "tags": ["lab"], **extra}


def active(image_id: str, data: bytes) -> dict[str, Any]:
    return record(image_id, "active", size=len(data), os_hash_algo="sha512",
                  os_hash_value=hashlib.sha512(data).hexdigest())


def consume_upload(request: Any, context: Any) -> str:
    """Read the streamed body as a server would (this is what drives the client's hashing)."""
    for _ in request.body:
        pass
    context.status_code = 204
    return ""


def list_uri(host: str) -> str:
    return f"{host}/v2/images?{KEY_PROPERTY}={KEY}"


def calls(m: requests_mock.Mocker) -> list[tuple[str, str, str]]:
    """(host letter, method, path[?os_hidden]) for every Glance request, in order."""
    out = []
    for r in m.request_history:
        if r.netloc.startswith("host-"):
            path = r.path
            if path == "/v2/images" and r.method == "GET":
                path += f"?os_hidden={r.qs['os_hidden'][0]}"
            out.append((r.netloc[5].upper(), r.method, path))
    return out


def test_attempt_ids_follow_the_contract() -> None:
    assert ID1 == str(uuid.uuid5(uuid.NAMESPACE_URL, f"pcd-imagelib-ha:{KEY}:1"))
    assert attempt_number(KEY, ID2) == 2
    assert attempt_number(KEY, str(uuid.uuid4())) is None
    assert make_key("proj/lab/cirros", "0123456789abcdef" + "f" * 48, "raw", "bare") == KEY


def test_file_digest_is_the_sha256_of_its_bytes(image_file: Path) -> None:
    assert file_sha256(str(image_file)) == hashlib.sha256(image_file.read_bytes()).hexdigest()


def test_a_refused_b_503_c_201_one_image_on_c_and_leftovers_deleted(
    mock: requests_mock.Mocker, image_file: Path
) -> None:
    data = image_file.read_bytes()
    # A is down; B answers 503 to everything; C works. An earlier run left A's half-written record
    # (saving: a partial file in the store) and B's never-filled one (queued).
    mock.get(list_uri(A), exc=REFUSED)
    mock.get(list_uri(B), status_code=503, text="Service Unavailable")
    mock.get(f"{B}/v2/images/{ID2}", status_code=503, text="Service Unavailable")
    mock.get(list_uri(C), [{"json": {"images": [record(ID0, "saving"), record(ID1, "queued")]}},
                           {"json": {"images": []}}])
    mock.get(f"{C}/v2/info/stores/detail", json={"stores": [
        {"id": "shared", "type": "file", "default": True, "properties": {"data_dir": DATA_DIR}}]})
    mock.delete(f"{C}/v2/images/{ID0}", status_code=204)
    mock.delete(f"{C}/v2/images/{ID1}", status_code=204)
    mock.get(f"{C}/v2/images/{ID2}", [{"status_code": 404}, {"json": active(ID2, data)}])
    mock.post(f"{C}/v2/images", status_code=201, json=record(ID2, "queued"))
    mock.put(f"{C}/v2/images/{ID2}/file", text=consume_upload)

    book = HostHealthBook()
    result = create_image(session(), spec(), ImageSource(str(image_file)), [A, B, C], book=book)

    assert calls(mock) == [
        ("A", "GET", "/v2/images?os_hidden=false"),
        ("B", "GET", "/v2/images?os_hidden=false"),
        ("C", "GET", "/v2/images?os_hidden=false"),
        ("C", "GET", "/v2/images?os_hidden=true"),
        ("C", "GET", "/v2/info/stores/detail"),
        ("C", "DELETE", f"/v2/images/{ID0}"),
        ("C", "DELETE", f"/v2/images/{ID1}"),
        # A refused: never contacted again in this run. B gets one more chance and fails.
        ("B", "GET", f"/v2/images/{ID2}"),
        ("C", "GET", f"/v2/images/{ID2}"),
        ("C", "POST", "/v2/images"),
        ("C", "PUT", f"/v2/images/{ID2}/file"),
        ("C", "GET", f"/v2/images/{ID2}"),
    ]
    posted = [r for r in mock.request_history if r.method == "POST" and r.netloc.startswith("host-")]
    assert len(posted) == 1
    assert posted[0].json() == {"id": ID2, "name": "cirros", "disk_format": "raw", "container_format": "bare",
                                "visibility": "private", "tags": ["lab"], "os_distro": "cirros",
                                KEY_PROPERTY: KEY, OWNER_PROPERTY: OWNER}
    assert (result.image_id, result.host, result.status, result.adopted) == (ID2, C, "active", False)
    assert result.size == len(data)
    assert result.os_hash_value == hashlib.sha512(data).hexdigest()
    assert [(a.host, a.outcome) for a in result.attempts] == [
        (A, "refused"), (B, "server-error"), (C, "deleted-leftover"), (C, "deleted-leftover"),
        (B, "server-error"), (C, "created")]
    assert result.orphans_as_dicts() == [{"image_id": ID0, "path": f"{DATA_DIR}/{ID0}"}]
    # The next image starts with the host that served, and tries the refused one last.
    assert book.order([A, B, C]) == [C, A, B]


def test_host_dying_mid_upload_leaves_saving_record_next_host_uses_next_id(
    mock: requests_mock.Mocker, image_file: Path
) -> None:
    data = image_file.read_bytes()
    mock.get(list_uri(A), exc=REFUSED)
    mock.get(list_uri(B), json={"images": []})
    mock.get(f"{B}/v2/images/{ID0}", status_code=404)
    mock.post(f"{B}/v2/images", status_code=201, json=record(ID0, "queued"))
    mock.put(f"{B}/v2/images/{ID0}/file",
             exc=requests.exceptions.ConnectionError("('Connection aborted.', ConnectionResetError(104))"))
    mock.get(f"{C}/v2/images/{ID0}", json=record(ID0, "saving"))
    mock.get(f"{C}/v2/info/stores/detail", json={"stores": [
        {"id": "shared", "type": "file", "default": True, "properties": {"data_dir": DATA_DIR}}]})
    mock.delete(f"{C}/v2/images/{ID0}", status_code=204)
    mock.get(f"{C}/v2/images/{ID1}", [{"status_code": 404}, {"json": active(ID1, data)}])
    mock.post(f"{C}/v2/images", status_code=201, json=record(ID1, "queued"))
    mock.put(f"{C}/v2/images/{ID1}/file", text=consume_upload)

    result = create_image(session(), spec(), ImageSource(str(image_file)), [A, B, C], book=HostHealthBook())

    assert calls(mock) == [
        ("A", "GET", "/v2/images?os_hidden=false"),
        ("B", "GET", "/v2/images?os_hidden=false"),
        ("B", "GET", "/v2/images?os_hidden=true"),
        ("B", "GET", f"/v2/images/{ID0}"),
        ("B", "POST", "/v2/images"),
        ("B", "PUT", f"/v2/images/{ID0}/file"),
        ("C", "GET", f"/v2/images/{ID0}"),
        ("C", "GET", "/v2/info/stores/detail"),
        ("C", "DELETE", f"/v2/images/{ID0}"),
        ("C", "GET", f"/v2/images/{ID1}"),
        ("C", "POST", "/v2/images"),
        ("C", "PUT", f"/v2/images/{ID1}/file"),
        ("C", "GET", f"/v2/images/{ID1}"),
    ]
    assert (result.image_id, result.host) == (ID1, C)
    assert ("connection-lost" in [a.outcome for a in result.attempts])
    assert result.orphans_as_dicts() == [{"image_id": ID0, "path": f"{DATA_DIR}/{ID0}"}]
    # Each upload carries its own request id; the abandoned one is journaled, the completed one not,
    # so the host checks do not blame B for the errors it logs about this project's hang-up.
    puts = [r for r in mock.request_history if r.method == "PUT"]
    aborted, completed = (r.headers["X-Openstack-Request-ID"] for r in puts)
    assert aborted.startswith("req-") and aborted != completed
    recent = own_requests.recent_aborted()
    assert aborted in recent and completed not in recent


def test_all_hosts_fail_error_lists_each_host_and_no_record_is_left(
    mock: requests_mock.Mocker, image_file: Path
) -> None:
    mock.get(list_uri(A), exc=REFUSED)
    mock.get(list_uri(B), json={"images": []})
    mock.get(f"{B}/v2/images/{ID0}", [{"status_code": 404}, {"json": record(ID0, "queued")}])
    mock.post(f"{B}/v2/images", status_code=201, json=record(ID0, "queued"))
    mock.put(f"{B}/v2/images/{ID0}/file", status_code=503, text="Service Unavailable")
    mock.get(f"{C}/v2/images/{ID0}", exc=requests.exceptions.ReadTimeout("read timed out"))
    mock.delete(f"{B}/v2/images/{ID0}", status_code=204)

    with pytest.raises(FailoverError) as err:
        create_image(session(), spec(), ImageSource(str(image_file)), [A, B, C], book=HostHealthBook())

    message = str(err.value)
    assert f"{A}: refused: connection refused" in message
    assert f"{B}: server-error: PUT /v2/images/{ID0}/file answered 503" in message
    assert f"{C}: read-timeout" in message
    assert PASSWORD not in message
    assert calls(mock) == [
        ("A", "GET", "/v2/images?os_hidden=false"),
        ("B", "GET", "/v2/images?os_hidden=false"),
        ("B", "GET", "/v2/images?os_hidden=true"),
        ("B", "GET", f"/v2/images/{ID0}"),
        ("B", "POST", "/v2/images"),
        ("B", "PUT", f"/v2/images/{ID0}/file"),
        ("C", "GET", f"/v2/images/{ID0}"),
        # Cleanup: neither the refused nor the frozen host is asked again; B deletes the record.
        ("B", "GET", f"/v2/images/{ID0}"),
        ("B", "DELETE", f"/v2/images/{ID0}"),
    ]


def test_no_host_reachable_at_all(mock: requests_mock.Mocker, image_file: Path) -> None:
    for host in (A, B, C):
        mock.get(list_uri(host), exc=REFUSED)
    with pytest.raises(FailoverError) as err:
        create_image(session(), spec(), ImageSource(str(image_file)), [A, B, C], book=HostHealthBook())
    assert str(err.value).count("connection refused") == 3
    assert len(calls(mock)) == 3


def test_an_active_image_with_the_key_is_adopted_by_moving_its_owner_and_others_are_left_alone(
    mock: requests_mock.Mocker, image_file: Path
) -> None:
    data = image_file.read_bytes()
    theirs = {**active(ID1, data), OWNER_PROPERTY: "previous-owner", "name": "old-name", "tags": []}
    other = {**active(ID2, data), OWNER_PROPERTY: "someone-else"}
    mock.get(list_uri(A), [{"json": {"images": [other, theirs]}}, {"json": {"images": []}}])
    mock.get(f"{A}/v2/images/{ID0}", status_code=404)
    mock.patch(f"{A}/v2/images/{ID1}", json=active(ID1, data))
    result = create_image(session(), spec(), ImageSource(str(image_file)), [A, B], book=HostHealthBook())
    assert (result.image_id, result.adopted) == (ID1, True)
    assert result.record[OWNER_PROPERTY] == OWNER
    assert calls(mock) == [
        ("A", "GET", "/v2/images?os_hidden=false"),
        ("A", "GET", "/v2/images?os_hidden=true"),
        ("A", "GET", f"/v2/images/{ID0}"),  # killed records are never listed: looked up by id
        ("A", "PATCH", f"/v2/images/{ID1}"),  # ownership moves explicitly; ID2 (active) is not deleted
    ]
    patch = next(r for r in mock.request_history if r.method == "PATCH")
    assert patch.json() == [
        {"op": "replace", "path": "/name", "value": "cirros"},
        {"op": "replace", "path": "/tags", "value": ["lab"]},
        {"op": "replace", "path": f"/{OWNER_PROPERTY}", "value": OWNER},
    ]
    assert ("left-alone", ID2) in [(a.outcome, a.image_id) for a in result.attempts]


def test_an_api_error_mid_create_leaves_no_record(mock: requests_mock.Mocker, image_file: Path) -> None:
    mock.get(list_uri(A), json={"images": []})
    mock.get(f"{A}/v2/images/{ID0}", [{"status_code": 404}, {"json": record(ID0, "queued")}])
    mock.post(f"{A}/v2/images", status_code=201, json=record(ID0, "queued"))
    mock.put(f"{A}/v2/images/{ID0}/file", status_code=413, text="Request Entity Too Large")
    mock.delete(f"{A}/v2/images/{ID0}", status_code=204)
    with pytest.raises(FailoverError) as err:
        create_image(session(), spec(), ImageSource(str(image_file)), [A, B], book=HostHealthBook())
    assert "answered 413" in str(err.value)
    assert calls(mock)[-2:] == [("A", "GET", f"/v2/images/{ID0}"), ("A", "DELETE", f"/v2/images/{ID0}")]
    assert not [c for c in calls(mock) if c[0] == "B"]  # another host would refuse it the same way


def test_a_file_changed_since_check_is_refused_before_the_last_chunk(
    mock: requests_mock.Mocker, image_file: Path
) -> None:
    pinned = file_sha256(str(image_file))
    image_file.write_bytes(b"other bytes" * 300_000)
    received: list[int] = []

    def partial_read(request: Any, context: Any) -> str:
        for chunk in request.body:
            received.append(len(chunk))
        return ""

    mock.get(list_uri(A), json={"images": []})
    mock.get(f"{A}/v2/images/{ID0}", [{"status_code": 404}, {"json": record(ID0, "queued")}])
    mock.post(f"{A}/v2/images", status_code=201, json=record(ID0, "queued"))
    mock.put(f"{A}/v2/images/{ID0}/file", text=partial_read)
    mock.delete(f"{A}/v2/images/{ID0}", status_code=204)
    with pytest.raises(FailoverError, match="does not hold the pinned bytes"):
        create_image(session(), spec(), ImageSource(str(image_file), expected_sha256=pinned), [A],
                     book=HostHealthBook())
    assert sum(received) < image_file.stat().st_size  # the host never got the whole body
    assert ("A", "DELETE", f"/v2/images/{ID0}") in calls(mock)


def test_killed_record_found_by_id_is_deleted_and_a_deleted_id_is_skipped(
    mock: requests_mock.Mocker, image_file: Path
) -> None:
    data = image_file.read_bytes()
    mock.get(list_uri(A), [{"json": {"images": [record(ID1, "queued")]}}, {"json": {"images": []}}])
    mock.get(f"{A}/v2/images/{ID0}", json=record(ID0, "killed"))
    mock.delete(f"{A}/v2/images/{ID0}", status_code=204)
    mock.delete(f"{A}/v2/images/{ID1}", status_code=204)
    # ID2 was used and deleted long ago: Glance answers 404 to GET and 409 to POST.
    mock.get(f"{A}/v2/images/{ID2}", status_code=404)
    id3 = attempt_image_id(KEY, 3)
    mock.get(f"{A}/v2/images/{id3}", [{"status_code": 404}, {"json": active(id3, data)}])
    mock.post(f"{A}/v2/images", [{"status_code": 409, "text": "already exists"},
                                 {"status_code": 201, "json": record(id3, "queued")}])
    mock.put(f"{A}/v2/images/{id3}/file", text=consume_upload)
    result = create_image(session(), spec(), ImageSource(str(image_file)), [A], book=HostHealthBook())
    assert result.image_id == id3
    assert [c for c in calls(mock) if c[1] in ("DELETE", "POST")] == [
        ("A", "DELETE", f"/v2/images/{ID0}"), ("A", "DELETE", f"/v2/images/{ID1}"),
        ("A", "POST", "/v2/images"), ("A", "POST", "/v2/images")]
    assert [r.json()["id"] for r in mock.request_history if r.method == "POST" and "host-" in r.netloc] == [
        ID2, id3]


def test_checksum_mismatch_is_deleted_and_retried_on_the_next_host(
    mock: requests_mock.Mocker, image_file: Path
) -> None:
    data = image_file.read_bytes()
    mock.get(list_uri(A), json={"images": []})
    mock.get(f"{A}/v2/images/{ID0}", [{"status_code": 404}, {"json": active(ID0, b"other bytes")}])
    mock.post(f"{A}/v2/images", status_code=201, json=record(ID0, "queued"))
    mock.put(f"{A}/v2/images/{ID0}/file", text=consume_upload)
    mock.delete(f"{A}/v2/images/{ID0}", status_code=204)
    mock.get(f"{B}/v2/images/{ID1}", [{"status_code": 404}, {"json": active(ID1, data)}])
    mock.post(f"{B}/v2/images", status_code=201, json=record(ID1, "queued"))
    mock.put(f"{B}/v2/images/{ID1}/file", text=consume_upload)
    result = create_image(session(), spec(), ImageSource(str(image_file)), [A, B], book=HostHealthBook())
    assert (result.image_id, result.host) == (ID1, B)
    assert ("A", "DELETE", f"/v2/images/{ID0}") in calls(mock)
    assert "verify-failed" in [a.outcome for a in result.attempts]


def test_token_refused_during_upload_reauthenticates_and_retries_the_same_host_once(
    mock: requests_mock.Mocker, image_file: Path
) -> None:
    data = image_file.read_bytes()
    mock.get(list_uri(A), json={"images": []})
    mock.get(f"{A}/v2/images/{ID0}", [{"status_code": 404}, {"json": record(ID0, "queued")},
                                      {"json": active(ID0, data)}])
    mock.post(f"{A}/v2/images", status_code=201, json=record(ID0, "queued"))
    mock.put(f"{A}/v2/images/{ID0}/file", [{"status_code": 401}, {"text": consume_upload}])
    result = create_image(session(), spec(), ImageSource(str(image_file)), [A, B], book=HostHealthBook())
    assert (result.image_id, result.host) == (ID0, A)
    assert [c for c in calls(mock) if c[1] == "PUT"] == [("A", "PUT", f"/v2/images/{ID0}/file")] * 2
    assert [r.path for r in mock.request_history].count("/v3/auth/tokens") == 2


def test_a_host_known_bad_is_tried_last_by_later_images(mock: requests_mock.Mocker, image_file: Path) -> None:
    book = HostHealthBook()
    book.mark_bad(A, "connection refused")
    data = image_file.read_bytes()
    mock.get(list_uri(B), json={"images": []})
    mock.get(f"{B}/v2/images/{ID0}", [{"status_code": 404}, {"json": active(ID0, data)}])
    mock.post(f"{B}/v2/images", status_code=201, json=record(ID0, "queued"))
    mock.put(f"{B}/v2/images/{ID0}/file", text=consume_upload)
    result = create_image(session(), spec(), ImageSource(str(image_file)), [A, B], book=book)
    assert result.host == B
    assert all(c[0] == "B" for c in calls(mock))


def test_no_endpoints_is_a_clear_error(image_file: Path) -> None:
    with pytest.raises(FailoverError, match="no image-library endpoint"):
        create_image(session(), spec(), ImageSource(str(image_file)), [], book=HostHealthBook(),
                     timeouts=Timeouts())


def test_a_host_that_timed_out_is_not_asked_again_in_the_same_run(
    mock: requests_mock.Mocker, image_file: Path
) -> None:
    data = image_file.read_bytes()
    mock.get(list_uri(A), exc=requests.exceptions.ReadTimeout("read timed out"))
    mock.get(list_uri(B), json={"images": []})
    mock.get(f"{B}/v2/images/{ID0}", [{"status_code": 404}, {"json": active(ID0, data)}])
    mock.post(f"{B}/v2/images", status_code=201, json=record(ID0, "queued"))
    mock.put(f"{B}/v2/images/{ID0}/file", text=consume_upload)
    result = create_image(session(), spec(), ImageSource(str(image_file)), [A, B], book=HostHealthBook())
    assert result.host == B
    assert [c for c in calls(mock) if c[0] == "A"] == [("A", "GET", "/v2/images?os_hidden=false")]


def test_an_unreadable_source_leaves_no_record_and_says_so(mock: requests_mock.Mocker) -> None:
    source_url = "https://user:secret@images.test/cirros.img?token=abc"
    mock.get(source_url, status_code=500)
    mock.get(list_uri(A), json={"images": []})
    mock.get(f"{A}/v2/images/{ID0}", [{"status_code": 404}, {"json": record(ID0, "queued")}])
    mock.post(f"{A}/v2/images", status_code=201, json=record(ID0, "queued"))
    mock.delete(f"{A}/v2/images/{ID0}", status_code=204)
    with pytest.raises(FailoverError) as err:
        create_image(session(), spec(), ImageSource(source_url), [A, B], book=HostHealthBook())
    message = str(err.value)
    assert "cannot read the image source: image source https://images.test/cirros.img answered HTTP 500" \
        in message
    assert "secret" not in message and "token=abc" not in message
    assert calls(mock)[-2:] == [("A", "GET", f"/v2/images/{ID0}"), ("A", "DELETE", f"/v2/images/{ID0}")]
    assert not [c for c in calls(mock) if c[0] == "B"]  # failing over cannot fix a broken source


@pytest.mark.parametrize("same_bytes", [True, False])
def test_a_lost_answer_after_a_full_upload_is_verified_through_the_next_host(
    mock: requests_mock.Mocker, image_file: Path, same_bytes: bool
) -> None:
    data = image_file.read_bytes()
    mock.get(list_uri(A), json={"images": []})
    mock.get(f"{A}/v2/images/{ID0}", [{"status_code": 404},
                                      {"exc": requests.exceptions.ReadTimeout("read timed out")}])
    mock.post(f"{A}/v2/images", status_code=201, json=record(ID0, "queued"))
    mock.put(f"{A}/v2/images/{ID0}/file", text=consume_upload)
    # B sees the image A finished: the bytes streamed to A decide whether it is ours to adopt.
    mock.get(f"{B}/v2/images/{ID0}", json=active(ID0, data if same_bytes else b"x" * len(data)))
    mock.delete(f"{B}/v2/images/{ID0}", status_code=204)
    mock.get(f"{B}/v2/images/{ID1}", [{"status_code": 404}, {"json": active(ID1, data)}])
    mock.post(f"{B}/v2/images", status_code=201, json=record(ID1, "queued"))
    mock.put(f"{B}/v2/images/{ID1}/file", text=consume_upload)
    result = create_image(session(), spec(), ImageSource(str(image_file)), [A, B], book=HostHealthBook())
    if same_bytes:
        assert (result.image_id, result.host, result.adopted) == (ID0, B, True)
        assert not [c for c in calls(mock) if c[1] in ("DELETE", "POST") and c[0] == "B"]
    else:
        assert (result.image_id, result.host, result.adopted) == (ID1, B, False)
        assert ("B", "DELETE", f"/v2/images/{ID0}") in calls(mock)


def test_a_url_serving_other_bytes_than_pinned_is_an_error_and_leaves_no_record(
    mock: requests_mock.Mocker, image_file: Path
) -> None:
    url = "https://images.test/cirros.img"
    mock.get(url, content=b"changed upstream" * 1000, headers={"Content-Length": "16000"})
    mock.get(list_uri(A), json={"images": []})
    mock.get(f"{A}/v2/images/{ID0}", [{"status_code": 404}, {"json": record(ID0, "queued")}])
    mock.post(f"{A}/v2/images", status_code=201, json=record(ID0, "queued"))
    mock.put(f"{A}/v2/images/{ID0}/file", text=consume_upload)
    mock.delete(f"{A}/v2/images/{ID0}", status_code=204)
    with pytest.raises(FailoverError, match="does not hold the pinned bytes") as err:
        create_image(session(), spec(), ImageSource(url, expected_sha256=file_sha256(str(image_file))), [A],
                     book=HostHealthBook())
    assert "pin them" in str(err.value)
    assert calls(mock)[-1] == ("A", "DELETE", f"/v2/images/{ID0}")
    download = next(r for r in mock.request_history if r.netloc == "images.test")
    assert download.verify not in (False, None)  # TLS verified (system store), never turned off


def test_downloads_trust_the_system_store_plus_the_ca_bundle() -> None:
    import ssl

    import certifi

    from imagelib_ha.client.image_source import download_session

    # certifi's bundle ships with requests: a real PEM file on every machine, so the test never skips.
    bundle = certifi.where()
    adapter = download_session(bundle).get_adapter("https://images.test/x")
    prepared = requests.Request("GET", "https://images.test/x").prepare()
    _, pool_kwargs = adapter.build_connection_pool_key_attributes(prepared, True)
    context = pool_kwargs["ssl_context"]
    assert context.verify_mode == ssl.CERT_REQUIRED and context.get_ca_certs()
    assert download_session(None).get_adapter("https://images.test/x").__class__.__name__ == "HTTPAdapter"
