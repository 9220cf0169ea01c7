"""Contract: FailoverImage and ImageLibraryHealth served by ``python -m pulumi.dynamic`` (as the engine
runs them) and driven over gRPC against the lab: they pickle, import by name in a separate process, and
answer Check, Create, Diff, Read, Update and Delete with the shapes the engine expects."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from cloud_config import cloud_config
from grpc_harness import UNKNOWN, ProviderCallError, ProviderServer, dynamic_urn
from labkit import cloud_of, granted_region_roles, region_hosts
from pulumi.dynamic import ResourceProvider

from imagelib_ha.client.glance import GlanceHost
from imagelib_ha.client.image_key import KEY_PROPERTY, OWNER_PROPERTY
from imagelib_ha.client.session import CloudAccess, make_session
from imagelib_ha.providers.health import ImageLibraryHealthProvider
from imagelib_ha.providers.image import FailoverImageProvider
from lab.api import Lab

IMAGE_URN = dynamic_urn("pulumi-python:dynamic/imagelib:FailoverImage", "cirros")
HEALTH_URN = dynamic_urn("pulumi-python:dynamic/imagelib:ImageLibraryHealth", "health")


@pytest.fixture(scope="module")
def roles(lab: Lab) -> Iterator[dict[str, Any]]:
    yield from granted_region_roles(lab, wait=False)


OFFLINE_CLOUD = {"auth_url": "http://keystone.invalid/v3", "region": "RegionOne", "username": "admin",
                 "password": "s3cret-Pa55", "project_name": "admin"}


@contextmanager
def configured_server(cloud: Mapping[str, Any], provider: ResourceProvider | None = None
                      ) -> Iterator[ProviderServer]:
    """A provider (the image one by default) served as the engine runs it, with ``cloud`` as the stack
    config."""
    server = ProviderServer(provider or FailoverImageProvider()).start()
    try:
        server.configure(cloud_config(cloud))
        yield server
    finally:
        server.stop()


def test_image_check_over_grpc_lets_preview_unknowns_through(tmp_path: Path) -> None:
    source = tmp_path / "a.raw"
    source.write_bytes(b"abc")
    with configured_server(OFFLINE_CLOUD) as server:
        preview = server.check(IMAGE_URN, {}, {
            "region": "RegionOne", "name": "cirros", "source": str(source),
            "disk_format": "raw", "container_format": "bare", "identity": "p/s/cirros",
            "health": UNKNOWN, "endpoints": UNKNOWN})
        assert preview.failures == []
        assert preview.inputs["key"].startswith("p/s/cirros:")
        bad = server.check(IMAGE_URN, {}, {"region": "RegionOne", "name": "x",
                                           "source": str(source), "disk_format": "floppy",
                                           "container_format": "bare", "identity": "p/s/x"})
        assert [p for p, _ in bad.failures] == ["disk_format"]


def test_every_image_input_with_a_non_default_value_as_the_engine_sends_it(tmp_path: Path) -> None:
    """Over gRPC numbers are doubles: every input key, non-default, passes check and diffs as no change."""
    source = tmp_path / "a.raw"
    source.write_bytes(b"\x00" * 4096)
    digest = "sha256:" + hashlib.sha256(source.read_bytes()).hexdigest()
    news = {"region": "RegionOne", "name": "every-key", "source": str(source), "disk_format": "raw",
            "container_format": "ovf", "visibility": "public", "properties": {"os_distro": "cirros"},
            "tags": ["a", "b"], "identity": "p/s/every", "digest": digest, "health": "health-id",
            "endpoints": ["http://h1.test:9494"], "connect_timeout": 7, "read_timeout": 45,
            "import_method": "auto", "import_timeout": 600}
    with configured_server(OFFLINE_CLOUD) as server:
        checked = server.check(IMAGE_URN, {}, news)
        assert checked.failures == []
        inputs = checked.inputs
        assert (inputs["connect_timeout"], inputs["read_timeout"]) == (7, 45)
        assert (inputs["import_method"], inputs["import_timeout"]) == ("auto", 600)
        assert inputs["key"] == f"p/s/every:{digest[7:23]}:raw/ovf"
        state = {**inputs, "owner": "tok", "image_id": "i", "status": "active"}
        same = server.diff("i", IMAGE_URN, state, inputs)
        assert (same.changes, same.replaces) == ("DIFF_NONE", [])
        slower = server.check(IMAGE_URN, state, {**news, "connect_timeout": 9, "read_timeout": 60}).inputs
        assert server.diff("i", IMAGE_URN, state, slower).replaces == []
        # How the bytes get there is not the image: another method updates in place, replaces nothing.
        pulled = server.check(IMAGE_URN, state, {**news, "import_method": "upload"}).inputs
        moved = server.diff("i", IMAGE_URN, state, pulled)
        assert (moved.changes, moved.replaces) == ("DIFF_SOME", [])
        unpinned = server.check(IMAGE_URN, {}, {**news, "source": "https://user:pw@images.test/x.img",
                                                "digest": None})
        assert [p for p, _ in unpinned.failures] == ["source"]
        assert "pw@" not in unpinned.failures[0][1]


@pytest.mark.lab
def test_health_and_image_lifecycle_over_grpc(roles: dict[str, Any], tmp_path: Path) -> None:
    status = roles
    hosts = region_hosts(status)
    health_news = {
        "region": status["region"], "role_host_ids": [h["id"] for h in hosts],
        "hosts": [{"host": h["name"], "region": h["region"], "mount_path": status["store_path"]}
                  for h in hosts],
        "backend": "nfs", "expected_store": {"type": "file", "data_dir": status["store_path"]},
        "deadline": 30, "probe_timeout": 5,
    }
    source = tmp_path / "cirros.raw"
    source.write_bytes(b"contract-test" * 100_000)
    session = make_session(CloudAccess.from_dict(cloud_of(status)))
    cloud = cloud_of(status)
    with configured_server(cloud, ImageLibraryHealthProvider()) as health_server, \
            configured_server(cloud) as image_server:
        checked = health_server.check(HEALTH_URN, {}, health_news)
        assert checked.failures == []
        health = health_server.create(HEALTH_URN, checked.inputs)
        assert health.outputs["serving_count"] == 3
        assert [r["status"] for r in health.outputs["report"]] == ["serving"] * 3
        same = health_server.diff(health.id, HEALTH_URN, health.outputs, checked.inputs)
        assert (same.changes, same.replaces) == ("DIFF_NONE", [])
        again = health_server.diff(health.id, HEALTH_URN, health.outputs,
                                   {**checked.inputs, "revalidate": "1"})
        assert (again.changes, again.replaces) == ("DIFF_SOME", [])
        refreshed = health_server.read(health.id, HEALTH_URN, health.outputs)
        assert refreshed.outputs["report"] == health.outputs["report"]
        health_server.delete(health.id, HEALTH_URN, health.outputs)

        image_news = {
            "region": status["region"], "name": "contract-cirros",
            "source": str(source), "disk_format": "raw", "container_format": "bare",
            "identity": f"pcd-imagelib-ha/contract/cirros-{time.time_ns()}", "health": health.id,
            "endpoints": health.outputs["endpoints"], "properties": {"os_distro": "cirros"}, "tags": ["lab"],
        }
        image_checked = image_server.check(IMAGE_URN, {}, image_news)
        assert image_checked.failures == []
        created = image_server.create(IMAGE_URN, image_checked.inputs)
        image_id = created.id
        try:
            outs = created.outputs
            assert outs["image_id"] == image_id and outs["status"] == "active"
            assert outs["size"] == source.stat().st_size
            assert outs["host"] in health.outputs["endpoints"]
            assert "cloud" not in outs and status["admin"]["password"] not in str(outs)
            record = GlanceHost(session, outs["host"]).get_image(image_id)
            assert record is not None and record[KEY_PROPERTY] == image_checked.inputs["key"]
            assert record[OWNER_PROPERTY] == outs["owner"]

            unchanged = image_server.diff(image_id, IMAGE_URN, outs, image_checked.inputs)
            assert (unchanged.changes, unchanged.replaces) == ("DIFF_NONE", [])
            renamed_inputs = image_server.check(IMAGE_URN, outs,
                                                {**image_news, "name": "contract-renamed"}).inputs
            renamed = image_server.diff(image_id, IMAGE_URN, outs, renamed_inputs)
            assert (renamed.changes, renamed.replaces) == ("DIFF_SOME", [])
            updated = image_server.update(image_id, IMAGE_URN, outs, renamed_inputs)
            assert updated.outputs["name"] == "contract-renamed" and updated.outputs["image_id"] == image_id
            read = image_server.read(image_id, IMAGE_URN, updated.outputs)
            assert read.id == image_id and read.outputs["name"] == "contract-renamed"

            source.write_bytes(b"other content")
            new_content = image_server.check(IMAGE_URN, outs, image_news).inputs
            replaced = image_server.diff(image_id, IMAGE_URN, updated.outputs, new_content)
            assert replaced.replaces == ["content_digest"]

            image_server.delete(image_id, IMAGE_URN, updated.outputs)
            gone = image_server.read(image_id, IMAGE_URN, updated.outputs)
            assert gone.id == ""
            image_id = ""
        finally:
            if image_id:
                GlanceHost(session, hosts[0]["endpoint"]).delete_image(image_id)


@pytest.mark.lab
def test_hosts_the_catalog_no_longer_lists_are_not_used_and_the_error_crosses_grpc_without_secrets(
    roles: dict[str, Any], tmp_path: Path
) -> None:
    status = roles
    source = tmp_path / "x.raw"
    source.write_bytes(b"x" * 1000)
    gone = ["http://127.0.0.1:9", "http://127.0.0.1:10"]  # the health resource's view, stale since
    news = {"region": "RegionTwo", "name": "nowhere",
            "source": str(source), "disk_format": "raw", "container_format": "bare",
            "identity": f"contract/nowhere-{time.time_ns()}", "endpoints": gone, "connect_timeout": 1}
    # RegionTwo's catalog has no image-cluster endpoint unless a test gave its host the role.
    assert not [h for h in status["hosts"] if h["region"] == "RegionTwo" and h["roles"]]
    with configured_server({**cloud_of(status), "region": "RegionTwo"}) as server:
        checked = server.check(IMAGE_URN, {}, news)
        with pytest.raises(ProviderCallError) as err:
            server.create(IMAGE_URN, checked.inputs)
    details = err.value.details
    assert "no image-library endpoint to try" in details
    assert "127.0.0.1:9" not in details  # never tried: the catalog is the current view
    assert status["admin"]["password"] not in details
