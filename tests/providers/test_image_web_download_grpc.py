"""FailoverImage with ``import_method: web-download`` served as the engine runs it, against the lab:
the host pulls the pinned URL (the lab's image server counts who fetched), the image is verified and
owned, and the progress lines reach the provider's stderr, which the engine shows in ``pulumi up``."""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cloud_config import cloud_config
from grpc_harness import ProviderServer, dynamic_urn
from labkit import cloud_of, granted_region_roles, region_hosts

from imagelib_ha.client.glance import GlanceHost
from imagelib_ha.client.image_key import OWNER_PROPERTY
from imagelib_ha.client.session import CloudAccess, make_session
from imagelib_ha.providers.image import FailoverImageProvider
from lab.api import Lab
from lab.image_source import ImageSourceServer, source_port

pytestmark = pytest.mark.lab

IMAGE_URN = dynamic_urn("pulumi-python:dynamic/imagelib:FailoverImage", "web")
SIZE = 6 * 1024 * 1024


@pytest.fixture(scope="module")
def roles(lab: Lab) -> Iterator[dict[str, Any]]:
    yield from granted_region_roles(lab)


def test_url_image_is_pulled_by_the_host_and_owned(roles: dict[str, Any], tmp_path: Path) -> None:
    status = roles
    data = os.urandom(SIZE)
    (tmp_path / "web.raw").write_bytes(data)
    endpoints = [h["endpoint"] for h in region_hosts(status)]
    server = ProviderServer(FailoverImageProvider()).start()
    stderr = ""
    try:
        server.configure(cloud_config(cloud_of(status)))
        with ImageSourceServer(tmp_path, source_port(Path(status["state_dir"]))) as source:
            news = {"region": status["region"], "name": "grpc-web", "source": source.url("web.raw"),
                    "digest": "sha256:" + hashlib.sha256(data).hexdigest(), "disk_format": "raw",
                    "container_format": "bare", "identity": f"pcd-imagelib-ha/grpc/web-{time.time_ns()}",
                    "endpoints": endpoints, "import_method": "web-download", "import_timeout": 120}
            checked = server.check(IMAGE_URN, {}, news)
            assert checked.failures == []
            created = server.create(IMAGE_URN, checked.inputs)
            outs = created.outputs
            assert (outs["status"], outs["size"]) == ("active", SIZE)
            assert outs["os_hash_value"] == hashlib.sha512(data).hexdigest()
            assert [a["outcome"] for a in outs["attempts"]] == ["importing", "imported", "created"]
            assert source.served == {"web.raw": SIZE}  # one fetch, by the host
            session = make_session(CloudAccess.from_dict(cloud_of(status)))
            record = GlanceHost(session, outs["host"]).get_image(created.id)
            assert record is not None and record[OWNER_PROPERTY] == outs["owner"]
            server.delete(created.id, IMAGE_URN, outs)
            assert GlanceHost(session, outs["host"]).get_image(created.id) is None
    finally:
        stderr = server.stop()
    assert "[FailoverImage]" in stderr and ": importing (" in stderr, stderr[-2000:]
