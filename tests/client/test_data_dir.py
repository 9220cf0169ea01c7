"""One data-dir rule for the role check and the health check: the data dir is the mount path itself."""

from __future__ import annotations

from typing import Any

import pytest

from imagelib_ha.client.data_dir import same_data_dir
from imagelib_ha.client.health_report import ExpectedStore

MOUNT = "/var/opt/imagelibrary/data"


@pytest.mark.parametrize(("actual", "same"), [
    (MOUNT, True), (MOUNT + "/", True), ("/var/opt/imagelibrary/x/../data", True),
    (MOUNT + "/glance", False), ("/var/opt/imagelibrary", False), (None, False), ("", False),
])
def test_the_rule(actual: str | None, same: bool) -> None:
    assert same_data_dir(actual, MOUNT) is same


@pytest.mark.parametrize("actual", [MOUNT, MOUNT + "/glance", "/var/lib/glance/images"])
def test_the_health_check_and_the_role_check_agree(actual: str, monkeypatch: Any) -> None:
    from imagelib_ha.client.errors import MountPathMismatch
    from imagelib_ha.providers import role_host

    class Client:
        def get_glance_role_settings(self, _host_id: str) -> dict[str, str]:
            return {"filesystem_store_datadir": actual}

    class Host:
        id, label = "h1", "node-1"

    stores = [{"id": "file", "default": True, "type": "file", "properties": {"data_dir": actual}}]
    health_ok = ExpectedStore("file", data_dir=MOUNT).mismatch(stores) is None
    try:
        role_host.check_mount_path(Client(), Host(), MOUNT)  # type: ignore[arg-type]
        role_ok = True
    except MountPathMismatch:
        role_ok = False
    assert health_ok == role_ok == (actual == MOUNT)
