"""FailoverImage provider without a cloud: check, diff, the JSON patch of update, read of a deleted image,
and the resource class's type token and seeded outputs under Pulumi mocks."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pulumi
import pytest
import requests_mock
from keystone_fake import token_body
from pulumi.output import Unknown

from imagelib_ha.client.failover import KEY_PROPERTY, attempt_image_id
from imagelib_ha.client.session import CloudAccess, make_session
from imagelib_ha.providers.common import PROVIDER_VERSION
from imagelib_ha.providers.image import (
    FailoverImage,
    FailoverImageProvider,
    _candidate_endpoints,
    _patch_operations,
)

AUTH_URL = "http://keystone.test/v3"
HOST = "http://h1.test:9494"
PASSWORD = "s3cret-Pa55"
CLOUD = {"auth_url": AUTH_URL, "region": "RegionOne", "username": "admin", "password": PASSWORD,
         "project_name": "admin"}


@pytest.fixture
def image_file(tmp_path: Path) -> Path:
    path = tmp_path / "cirros.raw"
    path.write_bytes(b"\x00\x01" * 5000)
    return path


def news(image_file: Path, **changes: Any) -> dict[str, Any]:
    return {"cloud": CLOUD, "region": "RegionOne", "name": "cirros", "source": str(image_file),
            "disk_format": "raw", "container_format": "bare", "identity": "proj/lab/cirros",
            "properties": {"os_distro": "cirros"}, "tags": ["lab"], "endpoints": [HOST], **changes}


def checked(image_file: Path, **changes: Any) -> dict[str, Any]:
    result = FailoverImageProvider().check({}, news(image_file, **changes))
    assert result.failures == []
    return dict(result.inputs)


def test_check_adds_content_digest_key_and_defaults(image_file: Path) -> None:
    inputs = checked(image_file)
    digest = hashlib.sha256(image_file.read_bytes()).hexdigest()
    assert inputs["content_digest"] == digest
    assert inputs["key"] == f"proj/lab/cirros:{digest[:16]}"
    assert (inputs["connect_timeout"], inputs["read_timeout"]) == (3, 30)
    assert inputs["provider_version"] == PROVIDER_VERSION


def test_check_url_source_digests_the_url(image_file: Path) -> None:
    url = "https://images.test/cirros.img"
    inputs = checked(image_file, source=url)
    assert inputs["content_digest"] == hashlib.sha256(url.encode()).hexdigest()


def test_check_lets_unknowns_through_at_preview(image_file: Path) -> None:
    result = FailoverImageProvider().check({}, news(image_file, cloud=Unknown(), endpoints=Unknown(),
                                                    source=Unknown(), health=Unknown()))
    assert result.failures == []
    assert result.inputs["key"] is None


def test_check_names_each_bad_input_and_never_echoes_the_password(image_file: Path) -> None:
    result = FailoverImageProvider().check({}, news(
        image_file, disk_format="qcow3", container_format="box", visibility="everyone",
        source=str(image_file) + ".missing", properties={"id": "x", "size": "1", "ok": 5}, tags="lab",
        read_timeout=0, identity="", cloud={**CLOUD, "password": None},
    ))
    failed = sorted({prop for prop, _ in ((f.property, f.reason) for f in result.failures)})
    assert failed == ["cloud", "container_format", "disk_format", "identity", "properties", "read_timeout",
                      "source", "tags", "visibility"]
    text = " ".join(f.reason for f in result.failures)
    assert "does not exist" in text and "'id' is set by Glance" in text and "'ok' must be a string" in text
    assert PASSWORD not in text


def test_diff_replaces_on_content_and_updates_mutable_fields_in_place(image_file: Path) -> None:
    olds = {**checked(image_file), "image_id": "i", "status": "active", "attempts": []}
    provider = FailoverImageProvider()
    assert provider.diff("i", olds, checked(image_file)).changes is False
    renamed = provider.diff("i", olds, checked(image_file, name="cirros-2", tags=["x"]))
    assert (renamed.changes, renamed.replaces) == (True, [])
    image_file.write_bytes(b"new content")
    changed = provider.diff("i", olds, checked(image_file))
    assert sorted(changed.replaces) == ["content_digest", "key"]
    reformatted = provider.diff("i", olds, checked(image_file, disk_format="qcow2"))
    assert "disk_format" in reformatted.replaces


def test_diff_ignores_the_pickled_provider_and_the_hosts_to_try(image_file: Path) -> None:
    olds = {**checked(image_file), "__provider": "old-blob", "image_id": "i"}
    new = {**checked(image_file, endpoints=["http://other:9494"], health="health-2"), "__provider": "new"}
    result = FailoverImageProvider().diff("i", olds, new)
    assert result.changes is False


def test_diff_with_unknown_endpoints_at_preview_is_no_change(image_file: Path) -> None:
    olds = {**checked(image_file), "image_id": "i"}
    result = FailoverImageProvider().diff("i", olds, {**checked(image_file), "endpoints": Unknown()})
    assert result.changes is False


def test_patch_operations_replace_add_remove() -> None:
    record = {"name": "old", "visibility": "private", "os_distro": "cirros", "stale": "1", "tags": ["a"]}
    old = {"properties": {"os_distro": "cirros", "stale": "1"}}
    new = {"name": "new", "visibility": "public", "properties": {"os_distro": "ubuntu", "arch": "x86_64"},
           "tags": ["b", "a"]}
    assert _patch_operations(record, old, new) == [
        {"op": "replace", "path": "/name", "value": "new"},
        {"op": "replace", "path": "/visibility", "value": "public"},
        {"op": "replace", "path": "/os_distro", "value": "ubuntu"},
        {"op": "add", "path": "/arch", "value": "x86_64"},
        {"op": "remove", "path": "/stale"},
        {"op": "replace", "path": "/tags", "value": ["b", "a"]},
    ]
    same = {"name": "old", "visibility": None, "properties": {"os_distro": "cirros"}, "tags": ["a"]}
    assert _patch_operations(record, {"properties": {"os_distro": "cirros"}}, same) == []


TOKEN = token_body([{"type": "image-cluster", "id": "s", "endpoints": [
        {"id": "e", "interface": "public", "region_id": "RegionOne", "region": "RegionOne", "url": HOST}]}])


@pytest.fixture
def mock() -> Iterator[requests_mock.Mocker]:
    with requests_mock.Mocker() as m:
        m.post(f"{AUTH_URL}/auth/tokens", json=TOKEN, headers={"X-Subject-Token": "t"}, status_code=201)
        yield m


def test_read_of_an_image_deleted_out_of_band_is_gone(mock: requests_mock.Mocker, image_file: Path) -> None:
    inputs = checked(image_file)
    image_id = attempt_image_id(inputs["key"], 0)
    mock.get(f"{HOST}/v2/images/{image_id}", status_code=404)
    mock.get(f"{HOST}/v2/images", json={"images": []})
    result = FailoverImageProvider().read(image_id, {**inputs, "image_id": image_id})
    assert (result.id, result.outs) == ("", {})


def test_read_reports_drift_of_managed_fields(mock: requests_mock.Mocker, image_file: Path) -> None:
    inputs = checked(image_file)
    image_id = attempt_image_id(inputs["key"], 0)
    mock.get(f"{HOST}/v2/images/{image_id}", json={
        "id": image_id, "status": "active", "name": "renamed", KEY_PROPERTY: inputs["key"], "tags": ["lab"],
        "size": 10000, "os_hash_value": "abc"})
    result = FailoverImageProvider().read(image_id, {**inputs, "image_id": image_id})
    assert result.id == image_id
    assert result.outs["name"] == "renamed"
    assert result.outs["properties"] == {}  # os_distro was removed out of band
    assert FailoverImageProvider().diff(image_id, result.outs, inputs).changes is True


def test_update_patches_in_place_and_returns_full_outputs(mock: requests_mock.Mocker,
                                                          image_file: Path) -> None:
    olds = {**checked(image_file), "image_id": "img-1", "status": "active", "size": 10000,
            "os_hash_value": "abc", "host": HOST, "attempts": [{"host": HOST}], "orphans": []}
    record = {"id": "img-1", "status": "active", "name": "cirros", "os_distro": "cirros", "tags": ["lab"],
              "size": 10000, "os_hash_value": "abc"}
    mock.get(f"{HOST}/v2/images/img-1", json=record)
    mock.patch(f"{HOST}/v2/images/img-1", json={**record, "name": "cirros-2"})
    new = checked(image_file, name="cirros-2")
    result = FailoverImageProvider().update("img-1", olds, new)
    patch = [r for r in mock.request_history if r.method == "PATCH"]
    assert len(patch) == 1 and patch[0].json() == [{"op": "replace", "path": "/name", "value": "cirros-2"}]
    outs = result.outs
    assert outs["image_id"] == "img-1" and outs["name"] == "cirros-2" and outs["host"] == HOST
    assert outs["key"] == olds["key"] and outs["attempts"] == [{"host": HOST}]


def test_upload_hosts_come_from_health_else_the_catalog_without_drained_hosts(
    mock: requests_mock.Mocker, image_file: Path
) -> None:
    two = {"token": {**TOKEN["token"], "catalog": [{"type": "image-cluster", "id": "s", "endpoints": [
        {"id": f"e{i}", "interface": "public", "region_id": "RegionOne", "region": "RegionOne",
         "url": f"http://h{i}.test:9494"} for i in (1, 2)]}]}}
    mock.post(f"{AUTH_URL}/auth/tokens", json=two, headers={"X-Subject-Token": "t"}, status_code=201)
    mock.get("http://h1.test:9494/healthcheck", status_code=503, text="DISABLED BY FILE")
    mock.get("http://h2.test:9494/healthcheck", text="OK")
    mock.get("http://h2.test:9494/v2/", status_code=401)
    mock.get("http://h2.test:9494/v2/images", json={"images": []})
    session = make_session(CloudAccess.from_dict(CLOUD))
    given = checked(image_file, endpoints=["http://h9.test:9494"])
    assert _candidate_endpoints(session, given, upload=True) == ["http://h9.test:9494"]
    assert not [r for r in mock.request_history if "h1.test" in r.netloc or "h2.test" in r.netloc]
    none_given = checked(image_file, endpoints=[])
    assert _candidate_endpoints(session, none_given, upload=True) == ["http://h2.test:9494"]
    # Reads and deletes may use every host: given ones first, then the catalog.
    assert _candidate_endpoints(session, given) == ["http://h9.test:9494", "http://h1.test:9494",
                                                    "http://h2.test:9494"]


class _Mocks(pulumi.runtime.Mocks):
    def __init__(self) -> None:
        self.seen: list[tuple[str, dict[str, Any]]] = []

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        self.seen.append((args.typ, dict(args.inputs)))
        return "id-1", dict(args.inputs)

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
        return {}, None


@pulumi.runtime.test
def test_resource_class_type_token_and_seeded_outputs() -> Any:
    mocks = _Mocks()
    pulumi.runtime.set_mocks(mocks, preview=False)
    image = FailoverImage("img", {"cloud": CLOUD, "name": "cirros"})

    for key in ("image_id", "status", "size", "os_hash_value", "host", "attempts", "orphans", "key",
                "content_digest"):
        assert isinstance(getattr(image, key), pulumi.Output), key

    def verify(values: list[Any]) -> None:
        typ, inputs = mocks.seen[-1]
        assert typ == "pulumi-python:dynamic/imagelib:FailoverImage"
        assert inputs["provider_version"] == PROVIDER_VERSION

    return pulumi.Output.all(image.image_id, image.key).apply(verify)
