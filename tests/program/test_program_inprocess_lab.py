"""End to end: the whole program under the executing mocks against the lab, then down."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import Any

import pytest
from program_configs import lab_config

from imagelib_ha.client.glance import GlanceHost
from imagelib_ha.client.session import CloudAccess, make_session
from imagelib_ha.inprocess import executing
from imagelib_ha.inprocess.manifest import Manifest
from imagelib_ha.settings import parse_settings

BASELINE = "pulumi-python:dynamic/imagelib:ImageLibraryRoleBaseline"
ROLES = "pulumi-python:dynamic/imagelib:ImageLibraryRoles"
SETTINGS = "pulumi-python:dynamic/imagelib:ImageLibrarySettings"
HEALTH = "pulumi-python:dynamic/imagelib:ImageLibraryHealth"
IMAGE = "pulumi-python:dynamic/imagelib:FailoverImage"


def small_image(path: Path, size: int, seed: bytes) -> str:
    """Write ``size`` deterministic bytes; return their sha512."""
    block = hashlib.sha256(seed).digest() * 2048
    data = (block * (size // len(block) + 1))[:size]
    path.write_bytes(data)
    return hashlib.sha512(data).hexdigest()


@pytest.mark.lab
def test_program_in_process_creates_roles_passes_health_uploads_images_then_down_deletes_all(
    lab: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    status = lab.status()
    for key, value in {**lab.env(), "PCD_LAB_STORE_PATH": status["store_path"]}.items():
        monkeypatch.setenv(key, value)
    config = lab_config()
    digests = {}
    for index, image in enumerate(config["images"]):
        path = tmp_path / f"{image['name']}.raw"
        digests[image["name"]] = small_image(path, 300_000 + 7 * index, image["name"].encode())
        image["source"] = str(path)
    cloud = parse_settings(config).cloud_access()
    session = make_session(CloudAccess.from_dict(cloud))
    out = io.StringIO()
    stack = "e2e"
    manifest_file = executing.manifest_path(tmp_path, stack)
    image_ids: dict[str, str] = {}
    try:
        deployment = executing.up(config, stack=stack, root=tmp_path, out=out)
        run = deployment.run
        # The health provider prints its live table (with latency) to stderr, as under the engine.
        live_table = capsys.readouterr().err

        recorded = Manifest.load(manifest_file, stack).entries
        assert sorted(e.type for e in recorded) == sorted([SETTINGS, BASELINE, ROLES, HEALTH, IMAGE, IMAGE])
        roles = next(e for e in recorded if e.type == ROLES)
        role_hosts = {m["hostname"] for m in roles.outputs["members"]}
        assert role_hosts == {"lab-host-1.lab.local", "lab-host-2.lab.local", "lab-host-3.lab.local"}

        assert [s.op for s in deployment.steps] == ["create"] * 6
        assert run.outputs["serving_count"] == 3
        assert [r["status"] for r in run.outputs["health_report"]] == ["serving"] * 3
        endpoints = [h["endpoint"] for h in run.outputs["hosts"]]
        assert len(set(endpoints)) == 3 and all(endpoints)

        for name, expected in digests.items():
            image = run.outputs["images"][name]
            assert image["status"] == "active"
            assert image["os_hash_value"] == expected
            image_ids[name] = image["image_id"]
            for endpoint in endpoints:
                download = GlanceHost(session, endpoint).download_sha512(image["image_id"])
                assert (download.status, download.sha512) == (200, expected), f"{name} through {endpoint}"

        # A second up against the manifest changes nothing and uploads nothing again.
        again = io.StringIO()
        redeployment = executing.up(config, stack=stack, root=tmp_path, out=again)
        rerun = redeployment.run
        rerun_err = capsys.readouterr().err
        assert [s.op for s in redeployment.steps] == ["same"] * 6, again.getvalue()
        assert again.getvalue().count("unchanged ") == 6, again.getvalue()
        assert "created " not in again.getvalue()
        assert rerun.outputs["images"] == run.outputs["images"]

        printed = out.getvalue()
        assert printed.count("created    ImageLibraryRoles ") == 1
        # One health table per run: the provider's live one when it validated (create) ...
        assert "HOSTNAME" not in printed, printed
        rows = [line.split() for line in live_table.splitlines()]
        assert ["host", "endpoint", "status", "latency", "host", "checks", "reason"] in rows, live_table
        for hostname in role_hosts:
            row = next((r for r in rows if r and r[0] == hostname), None)
            # The step-3 checks over SSH ran on every host (the lab stack sets hostAccess).
            assert row is not None and row[2] == "serving" and row[4] == "ms" and row[5] == "ok", live_table
        # ... and the stored report when the resource was unchanged (nothing probed, no live table).
        printed_again = again.getvalue()
        assert "HOSTNAME" in printed_again and "serving" in printed_again
        assert "latency" not in rerun_err
        assert cloud["password"] not in live_table + rerun_err + printed_again
        assert "Ran without the Pulumi engine" in printed
        assert cloud["password"] not in printed
        assert "PRIVATE KEY" not in printed + live_table + printed_again
        assert cloud["password"] not in manifest_file.read_text()

        # Nothing drifted and nothing is planned: volatile figures (latency) are no outputs.
        drift_out = io.StringIO()
        drifts = executing.refresh(config, stack=stack, root=tmp_path, out=drift_out)
        assert drifts == [], drift_out.getvalue()
        planned = executing.preview(config, stack=stack, root=tmp_path, out=io.StringIO())
        assert {s.op for s in planned} == {"same"}
    finally:
        deleted = executing.down(config, stack=stack, root=tmp_path, out=out)

    assert deleted == 6
    assert not manifest_file.exists()
    control_plane = GlanceHost(session, status["public_glance_url"])
    for name, image_id in image_ids.items():
        assert control_plane.get_image(image_id) is None, f"{name} still exists after down"
    hosts = {h["hostname"]: h for h in lab.status()["hosts"]}
    for hostname in ("lab-host-1.lab.local", "lab-host-2.lab.local", "lab-host-3.lab.local"):
        assert not hosts[hostname]["roles"], f"{hostname} still holds {hosts[hostname]['roles']}"
