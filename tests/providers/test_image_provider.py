"""FailoverImage provider without a cloud: check, diff, the JSON patch of update, read of a deleted image,
the hosts it uploads to, and the resource class's type token and seeded outputs under Pulumi mocks."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pulumi
import pytest
import requests_mock
from cloud_config import configured
from keystone_fake import token_body
from pulumi.output import Unknown

from imagelib_ha.client.host_health import HOST_HEALTH
from imagelib_ha.client.image_key import KEY_PROPERTY, OWNER_PROPERTY, attempt_image_id
from imagelib_ha.client.image_spec import ImageSpec, patch_to_spec
from imagelib_ha.client.session import CloudAccess, make_session
from imagelib_ha.providers.image import FailoverImage, FailoverImageProvider, _candidate_endpoints

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


def provider() -> FailoverImageProvider:
    return configured(FailoverImageProvider(), CLOUD)


def news(image_file: Path, **changes: Any) -> dict[str, Any]:
    return {"region": "RegionOne", "name": "cirros", "source": str(image_file),
            "disk_format": "raw", "container_format": "bare", "identity": "proj/lab/cirros",
            "properties": {"os_distro": "cirros"}, "tags": ["lab"], "endpoints": [HOST], **changes}


def checked(image_file: Path, **changes: Any) -> dict[str, Any]:
    result = provider().check({}, news(image_file, **changes))
    assert result.failures == []
    return dict(result.inputs)


def test_check_adds_content_digest_key_and_defaults(image_file: Path) -> None:
    inputs = checked(image_file)
    digest = hashlib.sha256(image_file.read_bytes()).hexdigest()
    assert inputs["content_digest"] == digest
    assert inputs["key"] == f"proj/lab/cirros:{digest[:16]}:raw/bare"
    assert (inputs["connect_timeout"], inputs["read_timeout"]) == (3, 30)
    assert "cloud" not in inputs and "provider_version" not in inputs


def test_check_url_source_uses_its_pinned_digest(image_file: Path) -> None:
    url = "https://images.test/cirros.img"
    pin = "ab" * 32
    inputs = checked(image_file, source=url, digest=f"sha256:{pin}")
    assert inputs["content_digest"] == pin
    assert inputs["key"] == f"proj/lab/cirros:{pin[:16]}:raw/bare"
    unpinned = provider().check({}, news(image_file, source=url))
    assert [f.property for f in unpinned.failures] == ["digest"]


def test_check_refuses_a_url_carrying_a_credential_without_echoing_it(image_file: Path) -> None:
    for url in ("https://user:hunter2@images.test/c.img", "https://images.test/c.img?X-Amz-Signature=hunter2"):
        result = provider().check({}, news(image_file, source=url, digest="sha256:" + "ab" * 32))
        assert [f.property for f in result.failures] == ["source"]
        assert "hunter2" not in result.failures[0].reason and "images.test" not in result.failures[0].reason


def test_check_numbers_as_the_engine_sends_them(image_file: Path) -> None:
    inputs = checked(image_file, connect_timeout=7.0, read_timeout=45.0)
    assert (inputs["connect_timeout"], inputs["read_timeout"]) == (7.0, 45.0)
    olds = {**checked(image_file, connect_timeout=7, read_timeout=45), "image_id": "i", "owner": "o"}
    assert provider().diff("i", olds, inputs).changes is False


def test_check_lets_unknowns_through_at_preview(image_file: Path) -> None:
    result = provider().check({}, news(image_file, endpoints=Unknown(), source=Unknown(), health=Unknown(),
                                       digest=Unknown()))
    assert result.failures == []
    assert result.inputs["key"] is None


def test_check_names_each_bad_input_and_never_echoes_the_password(image_file: Path) -> None:
    unconfigured = configured(FailoverImageProvider(), {**CLOUD, "password": None})
    result = unconfigured.check({}, news(
        image_file, disk_format="qcow3", container_format="box", visibility="everyone",
        source=str(image_file) + ".missing", properties={"id": "x", "size": "1", "ok": 5,
                                                         OWNER_PROPERTY: "x"}, tags="lab",
        read_timeout=0, identity="", digest="md5:abc", import_method="ftp", import_timeout=-1,
    ))
    failed = sorted({prop for prop, _ in ((f.property, f.reason) for f in result.failures)})
    assert failed == ["cloud", "container_format", "digest", "disk_format", "identity", "import_method",
                      "import_timeout", "properties", "read_timeout", "tags", "visibility"]
    text = " ".join(f.reason for f in result.failures)
    assert "'id' is set by Glance" in text and "'ok' must be a string" in text and OWNER_PROPERTY in text
    assert PASSWORD not in text
    missing = provider().check({}, news(image_file, source=str(image_file) + ".missing"))
    assert [f.property for f in missing.failures] == ["source"]
    assert "does not exist" in missing.failures[0].reason


def test_check_refuses_an_empty_file_and_a_file_whose_format_is_not_the_disk_format(tmp_path: Path) -> None:
    empty = tmp_path / "empty.raw"
    empty.write_bytes(b"")
    result = provider().check({}, news(empty))
    assert [f.property for f in result.failures] == ["source"] and "empty" in result.failures[0].reason
    qcow2 = tmp_path / "disk.img"
    # A qcow2 v3 header (magic, version 3, cluster_bits 16, size 1 MiB, header length 104).
    header = bytearray(104)
    header[0:4] = b"QFI\xfb"
    header[4:8] = (3).to_bytes(4, "big")
    header[20:24] = (16).to_bytes(4, "big")
    header[24:32] = (1 << 20).to_bytes(8, "big")
    header[100:104] = (104).to_bytes(4, "big")
    qcow2.write_bytes(bytes(header) + b"\x00" * 70_000)
    as_raw = provider().check({}, news(qcow2))
    assert [f.property for f in as_raw.failures] == ["disk_format"]
    assert "holds a qcow2 image, not raw" in as_raw.failures[0].reason
    raw = provider().check({}, news(tmp_path / "empty.raw", source=str(qcow2), disk_format="vmdk"))
    assert "not vmdk" in raw.failures[0].reason


def test_check_refuses_a_file_that_is_not_the_pinned_one(image_file: Path) -> None:
    result = provider().check({}, news(image_file, digest="sha256:" + "0" * 64))
    assert [f.property for f in result.failures] == ["digest"]
    pinned = "sha256:" + hashlib.sha256(image_file.read_bytes()).hexdigest()
    assert checked(image_file, digest=pinned)["content_digest"] == pinned[7:]


def test_diff_replaces_only_on_content_format_or_region(image_file: Path, tmp_path: Path) -> None:
    olds = {**checked(image_file), "image_id": "i", "status": "active", "attempts": [], "owner": "o"}
    p = provider()
    assert p.diff("i", olds, checked(image_file)).changes is False
    renamed = p.diff("i", olds, checked(image_file, name="cirros-2", tags=["x"]))
    assert (renamed.changes, renamed.replaces) == (True, [])
    moved = tmp_path / "elsewhere.raw"
    moved.write_bytes(image_file.read_bytes())
    relocated = p.diff("i", olds, checked(moved))
    assert (relocated.changes, relocated.replaces) == (True, [])
    respelt = p.diff("i", olds, checked(image_file, identity="proj/lab/other"))
    assert (respelt.changes, respelt.replaces) == (True, [])
    for change, replaced in (({"disk_format": "ami"}, ["disk_format"]),
                             ({"container_format": "ovf"}, ["container_format"]),
                             ({"region": "RegionTwo"}, ["region"])):
        assert p.diff("i", olds, checked(image_file, **change)).replaces == replaced
    image_file.write_bytes(b"new content")
    assert p.diff("i", olds, checked(image_file)).replaces == ["content_digest"]


def test_diff_of_state_from_the_release_before_owner_tokens_never_replaces(image_file: Path) -> None:
    new = checked(image_file)
    digest = new["content_digest"]
    olds = {**new, "key": f"proj/lab/cirros:{digest[:16]}", "cloud": CLOUD, "provider_version": "1",
            "image_id": "i"}
    result = provider().diff("i", olds, new)
    assert (result.changes, result.replaces) == (True, [])
    url = "https://images.test/cirros.img"
    url_new = checked(image_file, source=url, digest="sha256:" + "ab" * 32)
    url_olds = {**url_new, "content_digest": hashlib.sha256(url.encode()).hexdigest(), "digest": None,
                "key": "proj/lab/cirros:" + hashlib.sha256(url.encode()).hexdigest()[:16], "image_id": "i"}
    url_diff = provider().diff("i", url_olds, url_new)
    assert (url_diff.changes, url_diff.replaces) == (True, [])


def test_diff_ignores_the_pickled_provider_and_the_hosts_to_try(image_file: Path) -> None:
    olds = {**checked(image_file), "__provider": "old-blob", "image_id": "i"}
    new = {**checked(image_file, endpoints=["http://other:9494"], health="health-2"), "__provider": "new"}
    result = provider().diff("i", {**olds, "owner": "o"}, new)
    assert result.changes is False


def test_diff_with_unknown_endpoints_at_preview_is_no_change(image_file: Path) -> None:
    olds = {**checked(image_file), "image_id": "i", "owner": "o"}
    result = provider().diff("i", olds, {**checked(image_file), "endpoints": Unknown()})
    assert result.changes is False


def test_patch_to_spec_replace_add_remove_key_and_owner() -> None:
    record = {"name": "old", "visibility": "private", "os_distro": "cirros", "stale": "1", "tags": ["a"],
              KEY_PROPERTY: "old-key"}
    spec = ImageSpec(key="new-key", name="new", disk_format="raw", container_format="bare", owner="tok",
                     visibility="public", properties={"os_distro": "ubuntu", "arch": "x86_64"},
                     tags=["b", "a"])
    assert patch_to_spec(record, spec, previous_properties=["os_distro", "stale"]) == [
        {"op": "replace", "path": "/name", "value": "new"},
        {"op": "replace", "path": "/visibility", "value": "public"},
        {"op": "replace", "path": "/os_distro", "value": "ubuntu"},
        {"op": "add", "path": "/arch", "value": "x86_64"},
        {"op": "remove", "path": "/stale"},
        {"op": "replace", "path": "/tags", "value": ["b", "a"]},
        {"op": "replace", "path": f"/{KEY_PROPERTY}", "value": "new-key"},
        {"op": "add", "path": f"/{OWNER_PROPERTY}", "value": "tok"},
    ]
    same = ImageSpec(key="old-key", name="old", disk_format="raw", container_format="bare",
                     properties={"os_distro": "cirros"}, tags=["a"])
    assert patch_to_spec(record, same, previous_properties=["os_distro"]) == []


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
    result = provider().read(image_id, {**inputs, "image_id": image_id})
    assert (result.id, result.outs) == ("", {})


def test_read_reports_drift_of_managed_fields(mock: requests_mock.Mocker, image_file: Path) -> None:
    inputs = checked(image_file)
    image_id = attempt_image_id(inputs["key"], 0)
    mock.get(f"{HOST}/v2/images/{image_id}", json={
        "id": image_id, "status": "active", "name": "renamed", KEY_PROPERTY: inputs["key"], "tags": ["lab"],
        "size": 10000, "os_hash_value": "abc"})
    result = provider().read(image_id, {**inputs, "image_id": image_id})
    assert result.id == image_id
    assert result.outs["name"] == "renamed"
    assert result.outs["properties"] == {}  # os_distro was removed out of band
    assert provider().diff(image_id, result.outs, inputs).changes is True


def test_update_patches_in_place_and_returns_full_outputs(mock: requests_mock.Mocker,
                                                          image_file: Path) -> None:
    olds = {**checked(image_file), "image_id": "img-1", "status": "active", "size": 10000,
            "os_hash_value": "abc", "host": HOST, "attempts": [{"host": HOST}], "orphans": [], "owner": "tok"}
    record = {"id": "img-1", "status": "active", "name": "cirros", "os_distro": "cirros", "tags": ["lab"],
              "size": 10000, "os_hash_value": "abc", KEY_PROPERTY: olds["key"], OWNER_PROPERTY: "tok"}
    mock.get(f"{HOST}/v2/images/img-1", json=record)
    mock.patch(f"{HOST}/v2/images/img-1", json={**record, "name": "cirros-2"})
    new = checked(image_file, name="cirros-2")
    result = provider().update("img-1", olds, new)
    patch = [r for r in mock.request_history if r.method == "PATCH"]
    assert len(patch) == 1 and patch[0].json() == [{"op": "replace", "path": "/name", "value": "cirros-2"}]
    outs = result.outs
    assert outs["image_id"] == "img-1" and outs["name"] == "cirros-2" and outs["host"] == HOST
    assert outs["key"] == olds["key"] and outs["attempts"] == [{"host": HOST}] and outs["owner"] == "tok"


def test_update_refuses_an_image_another_resource_holds(mock: requests_mock.Mocker, image_file: Path) -> None:
    olds = {**checked(image_file), "image_id": "img-1", "owner": "tok"}
    mock.get(f"{HOST}/v2/images/img-1", json={"id": "img-1", "status": "active", OWNER_PROPERTY: "other"})
    with pytest.raises(Exception, match="held by another resource"):
        provider().update("img-1", olds, checked(image_file, name="cirros-2"))
    assert not [r for r in mock.request_history if r.method == "PATCH"]


def test_upload_hosts_are_the_catalogs_current_ones_health_hint_first_drained_skipped(
    mock: requests_mock.Mocker, image_file: Path
) -> None:
    HOST_HEALTH.forget()
    three = {"token": {**TOKEN["token"], "catalog": [{"type": "image-cluster", "id": "s", "endpoints": [
        {"id": f"e{i}", "interface": "public", "region_id": "RegionOne", "region": "RegionOne",
         "url": f"http://h{i}.test:9494"} for i in (1, 2, 3)]}]}}
    mock.post(f"{AUTH_URL}/auth/tokens", json=three, headers={"X-Subject-Token": "t"}, status_code=201)
    mock.get("http://h1.test:9494/healthcheck", status_code=503, text="DISABLED BY FILE")
    mock.get("http://h2.test:9494/healthcheck", text="OK")
    mock.get("http://h2.test:9494/v2/", status_code=401)
    mock.get("http://h2.test:9494/v2/images", json={"images": []})
    session = make_session(CloudAccess.from_dict(CLOUD))
    # The health resource vouched for h3 and h9; h9 has left the catalog since, h1 and h2 are new to it.
    given = checked(image_file, endpoints=["http://h9.test:9494", "http://h3.test:9494/"])
    assert _candidate_endpoints(session, given, upload=True) == ["http://h3.test:9494", "http://h2.test:9494"]
    assert not [r for r in mock.request_history if "h3.test" in r.netloc]  # vouched for: not probed
    mock.get("http://h3.test:9494/healthcheck", text="OK")
    mock.get("http://h3.test:9494/v2/", status_code=401)
    mock.get("http://h3.test:9494/v2/images", json={"images": []})
    none_given = checked(image_file, endpoints=[])
    assert _candidate_endpoints(session, none_given, upload=True) == ["http://h2.test:9494",
                                                                       "http://h3.test:9494"]
    # Reads and deletes may use every host: given ones first, then the catalog.
    assert _candidate_endpoints(session, given) == ["http://h9.test:9494", "http://h3.test:9494",
                                                    "http://h1.test:9494", "http://h2.test:9494"]


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
    image = FailoverImage("img", {"name": "cirros"})

    for key in ("owner", "image_id", "status", "size", "os_hash_value", "host", "attempts", "orphans", "key",
                "content_digest"):
        assert isinstance(getattr(image, key), pulumi.Output), key

    def verify(values: list[Any]) -> None:
        typ, inputs = mocks.seen[-1]
        assert typ == "pulumi-python:dynamic/imagelib:FailoverImage"
        assert "cloud" not in inputs and "provider_version" not in inputs

    return pulumi.Output.all(image.image_id, image.key).apply(verify)


def test_check_refuses_web_download_of_a_local_file(image_file: Path) -> None:
    result = provider().check({}, news(image_file, import_method="web-download"))
    assert [f.property for f in result.failures] == ["import_method"]
    assert "needs a URL source" in result.failures[0].reason
    assert provider().check({}, news(image_file, import_method="auto")).failures == []
