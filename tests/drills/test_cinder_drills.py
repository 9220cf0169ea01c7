"""Drills of the Block Storage variant on its own lab with real Cinder (``Lab.up(cinder=True)``).

In order, on one lab: a path → volume-type change on a live library is refused as a migration; a
config without multiattach is refused before anything is touched; ``Pulumi.lab-cinder.yaml`` deploys
end to end (the volume type through the in-process stand-in, hosts rendering the Cinder store from the
blueprint, health with the one-host-at-a-time canary, two images readable through every host); an
image uploaded through one host reads back identically through the two others; a host killed
mid-upload leaves one image and no volume or attachment; a frozen Cinder API fails the health check
within its timeout, and an upload meanwhile leaves no record behind.

Small images throughout: each Cinder operation costs about a second. Set
``PCD_LAB_CINDER_STATE_DIR`` to a running Cinder lab to reuse it (it is then left running).
"""

from __future__ import annotations

import copy
import hashlib
import io
import os
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from drillkit import REGION_ONE_HOSTS, host, records_of_key, session_of, unique_key, wait_until, write_image

from imagelib_ha.client.block_storage import BlockStorage
from imagelib_ha.client.cinder_cleanup import AttemptVolumes
from imagelib_ha.client.failover import (
    FailoverError,
    HostHealthBook,
    ImageSource,
    ImageSpec,
    attempt_image_id,
    create_image,
)
from imagelib_ha.client.glance import GlanceHost, Timeouts
from imagelib_ha.client.health import ExpectedStore, HealthChecker, HealthError, RoleHost
from imagelib_ha.client.resmgr import BLUEPRINT_STORAGE, ResmgrClient
from imagelib_ha.inprocess import executing
from lab.api import Lab

pytestmark = pytest.mark.lab

ROOT = Path(__file__).resolve().parents[2]
VOLUME_TYPE = "image_library"
STATE_ENV = "PCD_LAB_CINDER_STATE_DIR"


def stack_file(name: str) -> dict[str, Any]:
    data = yaml.safe_load((ROOT / f"Pulumi.{name}.yaml").read_text())
    return {k.removeprefix("pcd-imagelib-ha:"): v for k, v in data["config"].items()}


@pytest.fixture(scope="module")
def cinder_lab() -> Iterator[Lab]:
    named = os.environ.get(STATE_ENV)
    if named and Lab(named).agent_alive():
        yield Lab(named)
        return
    fresh = Lab(Path(tempfile.mkdtemp(prefix="pcd-lab-cinder-test-")))
    started = time.monotonic()
    try:
        fresh.up(hosts=3, cinder=True)
        print(f"Cinder lab up in {time.monotonic() - started:.1f}s")
        yield fresh
    finally:
        fresh.purge()


@pytest.fixture(scope="module")
def deploy_root(cinder_lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Where the in-process runs keep their manifests and images; the lab's exports set meanwhile."""
    status = cinder_lab.status()
    saved = dict(os.environ)
    os.environ.update(cinder_lab.env())
    if status.get("store_path"):
        os.environ["PCD_LAB_STORE_PATH"] = str(status["store_path"])
    root = tmp_path_factory.mktemp("deploy")
    images = root / ".lab-images"
    images.mkdir()
    for name in ("lab-cinder-tiny-a", "lab-cinder-tiny-b"):
        write_image(images / f"{name}.raw", 1024 * 1024 + 17)
    cwd = os.getcwd()
    os.chdir(root)  # the stack files name their images relative to the project directory
    try:
        yield root
        # What the end-to-end drill deployed goes as `make down STACK=lab-cinder` takes it: a reused
        # lab is left as it was found.
        if executing.manifest_path(root, "drill-cinder").exists():
            executing.down(cinder_config(), stack="drill-cinder", root=root, out=io.StringIO())
    finally:
        os.chdir(cwd)
        os.environ.clear()
        os.environ.update(saved)


def blueprint_storage(status: dict[str, Any]) -> Any:
    client = ResmgrClient(session_of(status), region=status["region"])
    return (client.get_blueprint(status["region"]) or {}).get(BLUEPRINT_STORAGE)


def cinder_types(status: dict[str, Any]) -> list[str]:
    session = session_of(status)
    where = {"service_type": "block-storage", "region_name": status["region"]}
    body = session.get("/types", endpoint_filter=where, params={"is_public": "None"}).json()
    return [t["name"] for t in body["volume_types"]]


def image_volumes(status: dict[str, Any], image_ids: list[str]) -> list[dict[str, Any]]:
    storage = BlockStorage(session_of(status), region=status["region"])
    return [v for image_id in image_ids for v in storage.image_volumes(image_id)]


def cinder_config(**changes: Any) -> dict[str, Any]:
    config = stack_file("lab-cinder")
    config.update(changes)
    return config


def test_a_path_to_volume_type_change_on_a_live_library_is_refused_as_a_migration(
    cinder_lab: Lab, deploy_root: Path
) -> None:
    status = cinder_lab.status()
    nfs = stack_file("lab")
    nfs["images"] = []
    nfs["health"] = {**nfs["health"], "canary": False}  # a live library is all this drill needs
    executing.up(nfs, stack="drill-path", root=deploy_root, out=io.StringIO())
    try:
        before = blueprint_storage(status)
        assert before == status["store_path"]
        with pytest.raises(executing.InProcessError) as caught:
            executing.up(cinder_config(images=[]), stack="drill-path", root=deploy_root, out=io.StringIO())
        message = str(caught.value)
        assert "pcd-imagelib-ha:storage.backend: moving the image store of a live library from nfs" in message
        assert f"set pcd-imagelib-ha:storage.acknowledgeMigrationTo to '{VOLUME_TYPE}'" in message
        assert message.endswith("Nothing was created, changed or deleted.")
        assert blueprint_storage(status) == before
        assert VOLUME_TYPE not in cinder_types(status)
    finally:
        executing.down(nfs, stack="drill-path", root=deploy_root, out=io.StringIO())


def test_a_config_without_multiattach_is_refused_before_anything_is_touched(
    cinder_lab: Lab, deploy_root: Path
) -> None:
    status = cinder_lab.status()
    config = cinder_config()
    config["storage"] = copy.deepcopy(config["storage"])
    config["storage"]["cinder"]["extraSpecs"]["multiattach"] = "<is> False"
    before = blueprint_storage(status)
    with pytest.raises(executing.InProcessError) as caught:
        executing.up(config, stack="drill-cinder", root=deploy_root, out=io.StringIO())
    assert "volume_type_extra_specs: the image library's Cinder volume type would not be multiattach" in str(
        caught.value)
    assert not executing.manifest_path(deploy_root, "drill-cinder").exists()
    assert VOLUME_TYPE not in cinder_types(status)
    assert blueprint_storage(status) == before


def test_the_lab_cinder_stack_deploys_end_to_end(cinder_lab: Lab, deploy_root: Path) -> None:
    out = io.StringIO()
    started = time.monotonic()
    deployment = executing.up(cinder_config(), stack="drill-cinder", root=deploy_root, out=out)
    print(out.getvalue())
    print(f"lab-cinder up (in-process) took {time.monotonic() - started:.1f}s")
    status = cinder_lab.status()
    assert VOLUME_TYPE in cinder_types(status)
    assert "VolumeTypeV3 (in-process stand-in)" in out.getvalue()
    report = deployment.run.outputs["health_report"]
    assert [row["status"] for row in report] == ["serving"] * 3, report
    session = session_of(status)
    image_ids = {name: image["image_id"] for name, image in deployment.run.outputs["images"].items()}
    for name, image_id in image_ids.items():
        data = (deploy_root / ".lab-images" / f"{name}.raw").read_bytes()
        for h in REGION_ONE_HOSTS:
            got = GlanceHost(session, host(status, h)["endpoint"]).download_sha512(image_id)
            assert (got.status, got.size, got.sha512) == (200, len(data), hashlib.sha512(data).hexdigest()), h
    volumes = image_volumes(status, list(image_ids.values()))
    assert sorted(v["volume_type"] for v in volumes) == [VOLUME_TYPE] * 2
    assert all(v["multiattach"] for v in volumes)


def spec(key: str) -> ImageSpec:
    return ImageSpec(key=key, name="cinder-drill", disk_format="raw", container_format="bare")


def role_hosts(status: dict[str, Any]) -> list[RoleHost]:
    return [RoleHost(host(status, n)["id"], host(status, n)["hostname"], host(status, n)["endpoint"])
            for n in REGION_ONE_HOSTS]


def test_the_cinder_canary_passes_a_healthy_library_and_catches_a_frozen_host(cinder_lab: Lab) -> None:
    status = cinder_lab.status()
    store = ExpectedStore("cinder", volume_type=VOLUME_TYPE)
    checker = HealthChecker(session_of(status), region=status["region"], expected_store=store,
                            probe_timeout=5.0)
    started = time.monotonic()
    report = checker.validate(role_hosts(status), deadline=0)
    print(f"healthy: probes and canary of 3 hosts in {time.monotonic() - started:.1f}s; {report.canary}")
    assert report.serving_count == 3
    cinder_lab.freeze("lab-host-3")
    try:
        started = time.monotonic()
        with pytest.raises(HealthError) as caught:
            checker.validate(role_hosts(status), deadline=0)
        elapsed = time.monotonic() - started
    finally:
        cinder_lab.thaw("lab-host-3")
    rows = {h.hostname: h.status for h in caught.value.report.hosts}
    assert rows == {host(status, n)["hostname"]: "serving" for n in REGION_ONE_HOSTS[:2]} | {
        host(status, "lab-host-3")["hostname"]: "frozen"}
    assert elapsed < 5.0 + 5.0, f"a frozen host took {elapsed:.1f}s to be caught"


def test_uploaded_via_a_reads_back_identically_via_b_and_c(cinder_lab: Lab, tmp_path: Path) -> None:
    status = cinder_lab.status()
    session = session_of(status)
    image = write_image(tmp_path / "three.raw", 3 * 1024 * 1024)
    expected = hashlib.sha512(image.read_bytes()).hexdigest()
    key = unique_key("cinder-a-b-c")
    eps = [host(status, n)["endpoint"] for n in REGION_ONE_HOSTS]
    result = create_image(session, spec(key), ImageSource(str(image)), eps, book=HostHealthBook())
    try:
        assert result.host == eps[0] and result.os_hash_value == expected
        for endpoint in eps[1:]:
            got = GlanceHost(session, endpoint).download_sha512(result.image_id)
            assert (got.size, got.sha512) == (3 * 1024 * 1024, expected), endpoint
        (volume,) = image_volumes(status, [result.image_id])
        assert volume["multiattach"] and volume["status"] == "available", volume
    finally:
        GlanceHost(session, eps[0]).delete_image(result.image_id)


def test_a_host_killed_mid_upload_leaves_one_image_and_no_volume_or_attachment(
    cinder_lab: Lab, tmp_path: Path
) -> None:
    status = cinder_lab.status()
    session = session_of(status)
    size = 64 * 1024 * 1024
    image = write_image(tmp_path / "sixty-four.raw", size)
    key = unique_key("cinder-mid-upload")
    doomed = attempt_image_id(key, 0)
    storage = BlockStorage(session, region=status["region"], timeout=10)
    eps = [host(status, n)["endpoint"] for n in REGION_ONE_HOSTS]
    killed: list[str] = []

    def kill_once_attached() -> None:
        # The volume is attached on the writing host once Glance starts writing into it.
        def attached() -> bool:
            volumes = storage.image_volumes(doomed)
            return any(v.get("status") == "in-use" or v.get("attachments") for v in volumes)

        wait_until(attached, timeout=60, what="the attempt's volume to be attached", interval=0.05)
        cinder_lab.kill("lab-host-1")
        killed.append("lab-host-1")

    killer = threading.Thread(target=kill_once_attached)
    killer.start()
    try:
        result = create_image(session, spec(key), ImageSource(str(image)), eps, book=HostHealthBook(),
                              timeouts=Timeouts(connect=3, read=30), volumes=AttemptVolumes(storage))
    finally:
        killer.join()
    try:
        print("attempts:", [(a.host, a.outcome, a.reason) for a in result.attempts])
        assert killed, "lab-host-1 was never killed: the upload did not attach a volume there"
        assert result.host != eps[0] and result.image_id != doomed
        records = records_of_key(session, eps[1], key)
        assert [(r["id"], r["status"]) for r in records] == [(result.image_id, "active")]
        assert image_volumes(status, [doomed]) == [], "the dead host's volume leaked"
        assert result.orphans == []
        inventory = cinder_lab.status()["cinder"]
        volume_ids = {v["id"] for v in inventory["volumes"]}
        assert all(a["volume_id"] in volume_ids for a in inventory["attachments"]), inventory["attachments"]
    finally:
        GlanceHost(session, result.host).delete_image(result.image_id)
        cinder_lab.restart("lab-host-1")
        wait_until(lambda: GlanceHost(session, eps[0]).probe().status == "serving", timeout=90,
                   what="lab-host-1 to serve again")


def test_a_frozen_cinder_api_fails_health_within_its_timeout_and_leaves_no_record(
    cinder_lab: Lab, tmp_path: Path
) -> None:
    status = cinder_lab.status()
    session = session_of(status)
    key = unique_key("cinder-frozen-api")
    image = write_image(tmp_path / "small.raw", 1024 * 1024)
    eps = [host(status, n)["endpoint"] for n in REGION_ONE_HOSTS]
    store = ExpectedStore("cinder", volume_type=VOLUME_TYPE)
    checker = HealthChecker(session, region=status["region"], expected_store=store, probe_timeout=3.0)
    cinder_lab.cinder_freeze()
    try:
        started = time.monotonic()
        with pytest.raises(HealthError) as caught:
            checker.validate(role_hosts(status), deadline=0)
        elapsed = time.monotonic() - started
        problems = caught.value.report.problems
        silent = [p for p in problems if "no answer within 3s" in p and "Cinder API is down or not" in p]
        assert silent, problems
        assert elapsed < 3.0 * 3, f"health took {elapsed:.1f}s with Cinder frozen"
        with pytest.raises(FailoverError):
            create_image(session, spec(key), ImageSource(str(image)), eps, book=HostHealthBook(),
                         timeouts=Timeouts(connect=2, read=5),
                         volumes=AttemptVolumes(BlockStorage(session, region=status["region"], timeout=3)))
    finally:
        cinder_lab.cinder_thaw()
    assert records_of_key(session, eps[1], key) == []
    attempts = [attempt_image_id(key, n) for n in range(4)]
    wait_until(lambda: image_volumes(status, attempts) == [], timeout=60,
               what="the volumes Glance made for the abandoned attempts to go")
