"""Day-2 operator changes never lose or duplicate an image or a role.

Each scenario deploys a sequence of stack configs to the lab, in order, on one stack (the scenarios
chain: each starts from the config the previous one converged on, and repairs first if it did not).
After every ``up`` the independent checker (``checker.py``) asserts what is really in Keystone, resmgr
and Glance, and ``preview`` must show only ``same``. The ops each ``up`` reports are asserted by
resource type, as the engine would show them.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import asyncssh
import pytest
import runner
from checker import KEY_PROPERTY
from harness import (
    HOSTNAMES,
    IMAGE_A,
    IMAGE_B,
    REPO,
    Lifecycle,
    base_config,
    changed,
    changes,
    image_entry,
    move_file,
    ops,
    write_image,
)
from runner import HEALTH, IMAGE, ROLE_PER_HOST, ROLES, SETTINGS

pytestmark = pytest.mark.lab
HERE = Path(__file__).resolve().parent


def host_ids(life: Lifecycle) -> dict[str, str]:
    """hostname -> resmgr id, read from resmgr itself."""
    return {h["info"]["hostname"]: h["id"] for h in life.checker.resmgr_hosts()}


def assert_roles_untouched(steps: list[runner.Step]) -> None:
    assert ops(steps, ROLES) in (["same"], ["update"]), f"roles: {ops(steps, ROLES)}"
    assert not ops(steps, ROLE_PER_HOST), f"per-host role resources still exist: {ops(steps, ROLE_PER_HOST)}"


def test_first_up_creates_everything_and_preview_then_shows_no_change(life: Lifecycle) -> None:
    config = base_config(life.images_dir)
    deployment, seen = life.deploy(config, "first up")
    steps = deployment.steps
    assert ops(steps, SETTINGS) == ["create"]
    assert ops(steps, ROLES) == ["create"], "one roles resource for the set of hosts"
    assert not ops(steps, ROLE_PER_HOST)
    assert ops(steps, HEALTH) == ["create"]
    assert ops(steps, IMAGE) == ["create", "create"]
    assert {s.op for s in steps} == {"create"}
    assert len(seen.role_hosts) == 3 and not seen.canaries


def test_moving_an_image_file_keeps_the_same_glance_image(life: Lifecycle, tmp_path: Path) -> None:
    config = life.start()
    before = life.checker.snapshot().image_id(life.identity(IMAGE_A))
    entry = image_entry(config, IMAGE_A)
    entry["source"] = move_file(entry["source"], tmp_path / "moved")
    deployment, seen = life.deploy(config, "move file")
    assert ops(deployment.steps, IMAGE, IMAGE_A) in (["update"], ["same"])
    assert set(changes(deployment.steps)) <= {("FailoverImage", "update")}, changes(deployment.steps)
    assert seen.image_id(life.identity(IMAGE_A)) == before


def test_new_content_replaces_the_image_new_one_active_before_the_old_goes(
    life: Lifecycle, tmp_path: Path
) -> None:
    config = life.start()
    identity = life.identity(IMAGE_A)
    old = life.checker.snapshot().image_id(identity)
    image_entry(config, IMAGE_A)["source"] = str(write_image(tmp_path / f"{IMAGE_A}.raw", 5003, "alpha-v2"))
    with life.watch(identity) as watch:
        deployment = life.up(config, "new content")
    assert ops(deployment.steps, IMAGE, IMAGE_A) == ["replace"]
    assert changes(deployment.steps) == {("FailoverImage", "replace"): 1}
    seen = life.converged(config)
    new = seen.image_id(identity)
    assert new != old and old not in seen.images
    # Create before delete: no moment without an active image for the key, and the old one was
    # still there (active) when the new one first showed active.
    watch.assert_always_active(identity)
    first_new = next((i for i, s in enumerate(watch.images) if new in s[identity]), None)
    assert first_new is not None, "the watch never saw the new image active"
    assert watch.statuses[first_new].get(old) == "active", "the old image was gone before the new was active"
    life.assert_preview_all_same(config)


def test_new_disk_format_replaces_the_image(life: Lifecycle) -> None:
    config = life.start()
    old = life.checker.snapshot().image_id(life.identity(IMAGE_B))
    # qcow2, vmdk, vdi or iso would need a file that really is one (Glance inspects uploads); an
    # `ami` disk is opaque bytes, as `raw` is (and Glance wants the `ami` container with it).
    image_entry(config, IMAGE_B)["diskFormat"] = "ami"
    image_entry(config, IMAGE_B)["containerFormat"] = "ami"
    deployment, seen = life.deploy(config, "disk format")
    assert ops(deployment.steps, IMAGE, IMAGE_B) == ["replace"]
    assert changes(deployment.steps) == {("FailoverImage", "replace"): 1}
    assert seen.image_id(life.identity(IMAGE_B)) != old and old not in seen.images


def test_renaming_an_image_leaves_exactly_one_under_the_new_name(
    life: Lifecycle, record_property: Callable[[str, object], None]
) -> None:
    original = life.start()
    config = changed(original)
    image_entry(config, IMAGE_B)["name"] = IMAGE_B + "-renamed"
    with life.returning_to(original):
        deployment, seen = life.deploy(config, "rename")
        image_ops = [(s.op, s.name) for s in deployment.steps if s.type == IMAGE and s.op != "same"]
        record_property("rename_ops", image_ops)
        print(f"rename: image ops {image_ops}")
        assert image_ops, "a rename must change the image resource"
        assert life.identity(IMAGE_B) not in {key.split(":")[0] for (_, _, key, _) in seen.images.values()}
        # The checker asserted: one active image named IMAGE_B-renamed carrying its key, nothing named
        # IMAGE_B left, no other record of this stack. The name goes back for the next scenarios.
        life.deploy(original, "rename back")


def test_visibility_properties_and_tags_update_the_image_in_place(life: Lifecycle) -> None:
    config = life.start()
    before = life.checker.snapshot().image_id(life.identity(IMAGE_A))
    entry = image_entry(config, IMAGE_A)
    entry["visibility"] = "shared"
    entry["properties"] = {"purpose": "lifecycle-v2", "os_distro": "cirros"}
    entry["tags"] = ["lifecycle", "day2"]
    deployment, seen = life.deploy(config, "visibility, properties, tags")
    assert ops(deployment.steps, IMAGE, IMAGE_A) == ["update"]
    assert changes(deployment.steps) == {("FailoverImage", "update"): 1}
    assert seen.image_id(life.identity(IMAGE_A)) == before


def test_respelling_a_host_as_its_resmgr_id_keeps_every_role(life: Lifecycle) -> None:
    config = life.start()
    ids = host_ids(life)
    holders = set(life.checker.snapshot().role_hosts)
    config["hosts"][0] = {"id": ids[config["hosts"][0]["hostname"]]}
    with life.watch() as watch:
        deployment = life.up(config, "re-spell host")
    watch.assert_role_holders_never_below(holders)
    assert_roles_untouched(deployment.steps)
    assert not {op for (_, op) in changes(deployment.steps)} & {"create", "delete", "replace"}
    assert [r["status"] for r in deployment.outputs["health_report"]] == ["serving"] * 3
    life.converged(config)
    life.assert_preview_all_same(config)


def test_reordering_hosts_changes_no_role(life: Lifecycle) -> None:
    config = life.start()
    holders = set(life.checker.snapshot().role_hosts)
    config["hosts"] = list(reversed(config["hosts"]))
    with life.watch() as watch:
        deployment = life.up(config, "reorder hosts")
    watch.assert_role_holders_never_below(holders)
    assert_roles_untouched(deployment.steps)
    assert not {op for (_, op) in changes(deployment.steps)} & {"create", "delete", "replace"}
    assert ops(deployment.steps, IMAGE) == ["same", "same"]
    life.converged(config)
    life.assert_preview_all_same(config)


def test_adding_a_host_assigns_its_role_and_removing_it_takes_the_role_back(life: Lifecycle) -> None:
    original = life.start()
    config = changed(original)
    name = life.lab.add_host()
    life.added_hosts.append(name)
    hostname = f"{name}.lab.local"
    holders = set(life.checker.snapshot().role_hosts)
    config["hosts"].append({"hostname": hostname})
    with life.returning_to(original):
        with life.watch() as watch:
            deployment, seen = life.deploy(config, "add host")
        watch.assert_role_holders_never_below(holders)
        assert ops(deployment.steps, ROLES) == ["update"]
        assert not ops(deployment.steps, ROLE_PER_HOST)
        assert ops(deployment.steps, IMAGE) == ["same", "same"]
        report = {r["hostname"]: r["status"] for r in deployment.outputs["health_report"]}
        assert report.get(hostname) == "serving" and len(report) == 4, report
        assert len(seen.role_hosts) == 4

        with life.watch() as watch:
            deployment, seen = life.deploy(original, "remove host")
        watch.assert_role_holders_never_below(holders)
        assert ops(deployment.steps, ROLES) == ["update"]
        assert ops(deployment.steps, IMAGE) == ["same", "same"]
        assert host_ids(life)[hostname] not in seen.role_hosts
    life.lab.remove_host(name)
    life.added_hosts.remove(name)


def test_health_settings_update_only_the_health_check(life: Lifecycle) -> None:
    config = life.start()
    config["health"] = {**config["health"], "probeTimeoutSeconds": 7, "minHealthyHosts": 2}
    holders = set(life.checker.snapshot().role_hosts)
    with life.watch() as watch:
        deployment, _ = life.deploy(config, "health settings")
    watch.assert_role_holders_never_below(holders)
    assert changes(deployment.steps) == {("ImageLibraryHealth", "update"): 1}
    assert ops(deployment.steps, ROLES) == ["same"]
    assert ops(deployment.steps, IMAGE) == ["same", "same"]


def test_a_mount_path_change_is_refused_naming_the_key_and_touches_nothing(life: Lifecycle) -> None:
    config = life.start()
    before = life.checker.snapshot()
    recorded = runner.recorded_resources(life.root, life.stack)
    config["storage"] = {"backend": "nfs", "nfs": {"mountPath": "/var/opt/imagelibrary/elsewhere"}}
    with pytest.raises(Exception) as refused:
        life.up(config, "mount path change")
    after = life.checker.snapshot()
    assert after.blueprint == before.blueprint, "a refused up rewrote the region's image-library settings"
    assert after == before, "a refused up touched the region"
    assert runner.recorded_resources(life.root, life.stack) == recorded, "a refused up changed the state"
    assert "storage.nfs.mountPath" in str(refused.value), str(refused.value)
    life.dirty = False  # nothing was touched: the region is still converged on life.current


def test_a_rotated_password_needs_no_change(life: Lifecycle) -> None:
    config = life.start()
    before = life.checker.snapshot()
    life.rotate_password()
    deployment = life.up(config, "after password rotation")
    assert not changes(deployment.steps), f"a new password changed resources: {changes(deployment.steps)}"
    seen = life.converged(config)
    assert seen.images == before.images and seen.role_hosts == before.role_hosts
    life.assert_preview_all_same(config)


def _host_check_rows(printed: str) -> dict[str, str]:
    """hostname -> its host-check cell, from the health tables a run printed (the last one wins)."""
    rows = {}
    for line in printed.splitlines():
        cells = re.split(r"\s{2,}", line.strip())  # host, endpoint, status, latency, host checks, reason
        if len(cells) >= 5 and cells[0] in HOSTNAMES:
            rows[cells[0]] = cells[4]
    return rows


def test_a_rotated_ssh_key_needs_no_change_and_the_next_check_uses_it(
    life: Lifecycle, capsys: pytest.CaptureFixture[str]
) -> None:
    config = life.start()
    authorized = sorted(Path(life.lab.status()["state_dir"]).glob("**/authorized_keys"))
    assert len(authorized) >= len(HOSTNAMES), authorized
    old_public = {f: f.read_text() for f in authorized}
    new_key = asyncssh.generate_private_key("ssh-ed25519")
    new_public = new_key.export_public_key().decode()
    rotated = changed(config)
    rotated["hostAccess"] = {**config["hostAccess"], "privateKeyEnv": "PCD_LIFECYCLE_ROTATED_SSH_KEY"}
    life.env.setenv("PCD_LIFECYCLE_ROTATED_SSH_KEY", new_key.export_private_key().decode())
    try:
        # The operator's rotation: the new key is authorized on every host, then the stack is told.
        for f in authorized:
            f.write_text(old_public[f] + new_public)
        life.assert_preview_all_same(rotated)
        deployment = life.up(rotated, "after ssh key rotation")
        assert not changes(deployment.steps), f"a new SSH key changed resources: {changes(deployment.steps)}"
        # The old key withdrawn: only a check that really uses the configured key still gets in.
        for f in authorized:
            f.write_text(new_public)
        capsys.readouterr()
        assert not life.refresh(rotated), "a key rotation shows as drift"
        assert _host_check_rows(capsys.readouterr().err) == {h: "ok" for h in HOSTNAMES}
        # The stale key, as a stack not told of the rotation would use it: the checks cannot get in,
        # and only the health report says so.
        stale = life.refresh(config)
        assert set(_host_check_rows(capsys.readouterr().err).values()) == {"unknown"}
        assert [d.type for d in stale] == [HEALTH], stale
    finally:
        for f, text in old_public.items():
            f.write_text(text)
    healed = life.refresh(config)  # the key the hosts hold again: the recorded report back to ok
    assert _host_check_rows(capsys.readouterr().err) == {h: "ok" for h in HOSTNAMES}
    assert [d.type for d in healed] == [HEALTH], healed
    life.dirty = False  # the region was not touched: still converged on life.current


def test_out_of_band_deletions_show_in_refresh_and_up_repairs_them(life: Lifecycle) -> None:
    config = life.start()
    seen = life.checker.snapshot()
    gone_image = seen.image_id(life.identity(IMAGE_A))
    victim = host_ids(life)[HOSTNAMES[2]]
    life.checker.delete_image(gone_image)
    life.checker.remove_role(victim)
    life.dirty = True
    drift = life.refresh(config)
    image_drift = [d for d in drift if d.type == IMAGE]
    assert len(image_drift) == 1 and image_drift[0].gone and IMAGE_A in image_drift[0].name, drift
    assert [d.type for d in drift if d.type in (ROLES, ROLE_PER_HOST)] == [ROLES], drift
    assert not [d for d in drift if d.type not in (IMAGE, ROLES, HEALTH)], drift
    deployment, repaired = life.deploy(config, "repair drift")
    assert ops(deployment.steps, IMAGE, IMAGE_A) == ["create"]
    assert ops(deployment.steps, ROLES) == ["update"]
    assert victim in repaired.role_hosts
    assert repaired.image_id(life.identity(IMAGE_B)) == seen.image_id(life.identity(IMAGE_B))


def test_an_interrupted_up_converges_on_the_next_up(life: Lifecycle, tmp_path: Path) -> None:
    config = life.start()
    big = "lc-charlie"
    config["images"].append(
        {"name": big, "source": str(write_image(tmp_path / f"{big}.raw", 48 * 1024 * 1024 + 5, "charlie"))}
    )
    image_entry(config, IMAGE_B)["source"] = str(write_image(tmp_path / f"{IMAGE_B}.raw", 7001, "bravo-v2"))
    config_file = tmp_path / "config.json"
    config_file.write_text(json.dumps(config))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(HERE)])}
    recorded_before = {e.get("urn") for e in runner.recorded_resources(life.root, life.stack)}
    life.dirty = True
    proc = subprocess.Popen(
        [sys.executable, "-m", "runner", "up", str(config_file), life.stack, str(life.root)],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
    )
    big_identity = life.identity(big)
    uploading = None
    deadline = time.monotonic() + 120
    try:
        while proc.poll() is None and time.monotonic() < deadline:
            mid = [i for i in life.checker.images_named(big)
                   if str(i.get(KEY_PROPERTY, "")).startswith(big_identity) and i["status"] != "active"]
            if mid:
                uploading = mid[0]["status"]
                break
            time.sleep(0.02)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        _, err = proc.communicate(timeout=30)
    assert uploading is not None, f"the up ended before its upload was interrupted: {err.decode()[-2000:]}"
    recorded = {e.get("urn") for e in runner.recorded_resources(life.root, life.stack)}
    assert not any(big in str(urn) for urn in recorded), "killed during the upload, yet the image is recorded"
    assert recorded >= recorded_before - {None}, "the interrupted run lost resources from the state"

    deployment, seen = life.deploy(config, "after interruption")
    assert ops(deployment.steps, IMAGE, big) == ["create"]
    assert big_identity in {key.split(":")[0] for (_, _, key, _) in seen.images.values()}
    # Back to the two tiny images (deletes the big one, its file no longer needed).
    config["images"] = [i for i in config["images"] if i["name"] != big]
    deployment, _ = life.deploy(config, "drop the big image")
    assert ops(deployment.steps, IMAGE, big) == ["delete"]


def test_sequence_respell_rework_rename_and_move(life: Lifecycle, tmp_path: Path) -> None:
    """A host is re-spelt by id while an image gets new content and the other new tags; then the hosts
    are reordered and re-spelt again while an image is renamed and the probe timeout changes; then both
    files move while visibility and properties change. (Hosts joining and leaving are the add-host
    scenario's: each costs a role convergence.)"""
    config = life.start()
    ids = host_ids(life)
    identity_a = life.identity(IMAGE_A)
    old_a = life.checker.snapshot().image_id(identity_a)
    holders = set(life.checker.snapshot().role_hosts)

    config["hosts"] = [{"id": ids[HOSTNAMES[0]]}, {"hostname": HOSTNAMES[1]}, {"hostname": HOSTNAMES[2]}]
    new_a = write_image(tmp_path / "v3" / f"{IMAGE_A}.raw", 4500, "alpha-v3")
    image_entry(config, IMAGE_A)["source"] = str(new_a)
    image_entry(config, IMAGE_B)["tags"] = ["lifecycle", "sequence"]
    with life.watch(identity_a) as watch:
        deployment, seen = life.deploy(config, "sequence 1: re-spell, content, tags")
    watch.assert_always_active(identity_a)
    watch.assert_role_holders_never_below(holders)
    assert_roles_untouched(deployment.steps)
    assert ops(deployment.steps, IMAGE, IMAGE_A) == ["replace"]
    assert ops(deployment.steps, IMAGE, IMAGE_B) == ["update"]
    assert old_a not in seen.images

    renamed = IMAGE_B + "-2"
    before_rename = changed(config)
    config["hosts"] = [{"hostname": HOSTNAMES[2]}, {"hostname": HOSTNAMES[0]}, {"id": ids[HOSTNAMES[1]]}]
    image_entry(config, IMAGE_B)["name"] = renamed
    config["health"] = {**config["health"], "probeTimeoutSeconds": 4}
    with life.returning_to(before_rename):
        with life.watch() as watch:
            deployment, seen = life.deploy(config, "sequence 2: reorder, re-spell, rename, probe timeout")
        watch.assert_role_holders_never_below(holders)
        assert_roles_untouched(deployment.steps)
        assert ops(deployment.steps, HEALTH) == ["update"]
        assert ops(deployment.steps, IMAGE, IMAGE_A) == ["same"]

        image_a = seen.image_id(identity_a)
        for entry in config["images"]:
            entry["source"] = move_file(entry["source"], tmp_path / "reorganised")
        image_entry(config, renamed)["visibility"] = "public"
        image_entry(config, IMAGE_A)["properties"] = {"purpose": "lifecycle", "hw_rng_model": "virtio"}
        deployment, seen = life.deploy(config, "sequence 3: move files, visibility, properties")
        assert set(ops(deployment.steps, IMAGE)) == {"update"}
        assert not {op for (_, op) in changes(deployment.steps)} & {"create", "delete", "replace"}
        assert seen.image_id(identity_a) == image_a

        image_entry(config, renamed)["name"] = IMAGE_B
        life.deploy(config, "sequence: name back")


def test_sequence_rotate_drift_repair_and_down(life: Lifecycle) -> None:
    """The password rotates while visibility changes; an image vanishes out of band, refresh sees it
    and up restores it while a tag changes; then ``down`` leaves nothing of the stack."""
    config = life.start()
    life.rotate_password()
    image_entry(config, IMAGE_A)["visibility"] = "community"
    deployment, seen = life.deploy(config, "sequence 4: rotate + visibility")
    assert changes(deployment.steps) == {("FailoverImage", "update"): 1}

    life.checker.delete_image(seen.image_id(life.identity(IMAGE_A)))
    life.dirty = True
    drift = life.refresh(config)
    assert [(d.type, d.gone) for d in drift if d.type == IMAGE] == [(IMAGE, True)], drift
    image_entry(config, IMAGE_B)["tags"] = ["lifecycle", "last"]
    deployment, seen = life.deploy(config, "sequence 5: repair + tags")
    assert ops(deployment.steps, IMAGE, IMAGE_A) == ["create"]
    assert ops(deployment.steps, IMAGE, IMAGE_B) == ["update"]

    recorded = runner.recorded_resources(life.root, life.stack)
    deleted = life.down(config)
    assert deleted == 6, f"settings, baseline, roles, health and two images; the state recorded {recorded}"
    life.checker.assert_gone(config, life.stack, roles_before=set())
    assert not runner.manifest_file(life.root, life.stack).exists()
    life.current, life.dirty = None, False
