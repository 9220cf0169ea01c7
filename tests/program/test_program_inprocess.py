"""The in-process run's own parts that need no lab: refusal, manifest, report table, deploy helpers."""

from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path

import pytest
from program_configs import EXAMPLE_PASSWORD, example_cinder_config, lab_config
from ssh_material import lab_ssh_env

from imagelib_ha import deploy
from imagelib_ha.inprocess import executing
from imagelib_ha.inprocess.manifest import Manifest, ManifestEntry


def entry(urn: str, password: str = EXAMPLE_PASSWORD) -> ManifestEntry:
    return ManifestEntry(
        urn=urn,
        type="pulumi-python:dynamic/imagelib:ImageLibraryRole",
        name=urn.rsplit("::", 1)[-1],
        id=f"id-{urn}",
        outputs={"cloud": {"auth_url": "http://k/v3", "password": password}, "host": "h"},
        secret_keys=["cloud"],
        dependencies=[],
        provider_blob="blob",
    )


def test_cinder_config_plans_the_volume_type_through_the_stand_in_and_says_so(tmp_path: Path) -> None:
    out = io.StringIO()
    steps = executing.preview(example_cinder_config(), stack="example", root=tmp_path, out=out)
    labels = [(s.op, s.label) for s in steps]
    assert ("create", "VolumeTypeV3 (in-process stand-in) imagelib-region1-storage-volume-type") in labels
    # The explicit openstack.Provider is no step: it has nothing to run, and its inputs hold credentials.
    assert not any("pulumi:providers" in s.type for s in steps)
    assert "VolumeTypeV3 (in-process stand-in)" in out.getvalue()
    assert EXAMPLE_PASSWORD not in out.getvalue()
    assert not executing.manifest_path(tmp_path, "example").exists()


def test_cinder_config_without_multiattach_is_refused_before_anything_is_touched(tmp_path: Path) -> None:
    config = example_cinder_config()
    config["storage"]["cinder"]["extraSpecs"]["multiattach"] = "<is> False"
    out = io.StringIO()
    with pytest.raises(executing.InProcessError) as caught:
        executing.up(config, stack="example", root=tmp_path, out=out)
    message = str(caught.value)
    assert (
        "ImageLibrarySettings imagelib-region1-settings: volume_type_extra_specs: the image library's Cinder "
        "volume type would not be multiattach: its extra spec 'multiattach' is '<is> False'"
    ) in message
    assert "pcd-imagelib-ha:storage.cinder.extraSpecs" in message
    assert message.endswith("Nothing was created, changed or deleted.")
    assert out.getvalue() == ""  # nothing created, nothing announced
    assert not executing.manifest_path(tmp_path, "example").exists()


def test_manifest_stores_no_credentials_and_drops_those_of_older_manifests(tmp_path: Path) -> None:
    path = tmp_path / ".inprocess" / "s.json"
    manifest = Manifest.load(path, "s")
    manifest.put(entry("urn:a"))
    manifest.replace(entry("urn:a"), entry("urn:a"))
    assert EXAMPLE_PASSWORD not in path.read_text()
    assert path.stat().st_mode & 0o077 == 0
    data = json.loads(path.read_text())
    assert [e["outputs"] for e in data["resources"] + data["pending_deletes"]] == [{"host": "h"}] * 2
    # A manifest written before the providers read credentials in configure() kept a "cloud" output.
    data["resources"][0]["outputs"]["cloud"] = {"auth_url": "http://k/v3", "password": None}
    path.write_text(json.dumps(data))
    loaded = Manifest.load(path, "s")
    stored = loaded.get("urn:a")
    assert stored is not None and stored.outputs == {"host": "h"}
    assert [e.urn for e in loaded.pending()] == ["urn:a"]
    for left in [*loaded.pending(), *loaded.deletion_order()]:
        loaded.forget(left)
    assert not path.exists()


def test_health_table_lists_every_host_with_its_status() -> None:
    table = executing.health_table(
        [
            {"host_id": "1", "hostname": "a.lab", "endpoint": "http://a", "status": "serving", "reason": ""},
            {"host_id": "2", "hostname": "bb.lab", "endpoint": None, "status": "down", "reason": "refused"},
        ]
    )
    lines = table.splitlines()
    assert lines[0].split() == ["HOSTNAME", "HOST_ID", "ENDPOINT", "STATUS", "REASON"]
    assert lines[1].split() == ["a.lab", "1", "http://a", "serving"]
    assert lines[2].split() == ["bb.lab", "2", "down", "refused"]
    assert lines[1].index("serving") == lines[2].index("down")


def test_stack_file_config_reads_the_lab_stack_and_refuses_cli_encrypted_values(tmp_path: Path) -> None:
    config = deploy.stack_file_config("lab")
    assert {k.removeprefix("pcd-imagelib-ha:") for k in config} == set(lab_config())
    (tmp_path / "Pulumi.x.yaml").write_text(
        "config:\n  pcd-imagelib-ha:cloud:\n    password:\n      secure: AAABADx\n"
    )
    with pytest.raises(deploy.DeployError, match="encrypted by the Pulumi CLI"):
        deploy.stack_file_config("x", root=tmp_path)
    with pytest.raises(deploy.DeployError, match=r"no stack file Pulumi\.y\.yaml"):
        deploy.stack_file_config("y", root=tmp_path)


def test_generated_lab_images_are_small_distinct_and_reproducible(tmp_path: Path) -> None:
    config = deploy.stack_file_config("lab")
    first = deploy.write_generated_images(config, root=tmp_path)
    assert [p.relative_to(tmp_path).as_posix() for p in first] == [
        ".lab-images/lab-tiny-a.raw",
        ".lab-images/lab-tiny-b.raw",
    ]
    digests = [hashlib.sha512(p.read_bytes()).hexdigest() for p in first]
    sizes = [p.stat().st_size for p in first]
    assert sizes == [1024 * 1024 + 17, 2 * 1024 * 1024 + 17]
    assert digests[0] != digests[1]
    for path in first:
        path.unlink()
    again = deploy.write_generated_images(config, root=tmp_path)
    assert [hashlib.sha512(p.read_bytes()).hexdigest() for p in again] == digests
    assert deploy.write_generated_images(config, root=tmp_path) == []  # existing files are kept


def test_notice_without_cli_says_how_to_install_and_what_differs() -> None:
    notice = deploy.notice_without_cli()
    assert "https://www.pulumi.com/docs/install/" in notice
    assert "no policy run" in notice and "preview" in notice
    assert ".inprocess/lab.json" in notice


def test_deploy_reports_errors_without_a_traceback(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def failing_up(stack: str) -> None:
        raise deploy.DeployError("the lab in /x is not running: run `make up` first")

    monkeypatch.setattr(deploy, "up", failing_up)
    assert deploy.main(["up"]) == 1
    err = capsys.readouterr().err
    assert err == "error: the lab in /x is not running: run `make up` first\n"


def test_deletion_waves_put_dependents_first_and_independent_resources_together() -> None:
    settings, health, image = entry("urn:settings"), entry("urn:health"), entry("urn:image")
    roles = [entry(f"urn:role{i}") for i in range(3)]
    for role in roles:
        role.dependencies = [settings.urn]
    health.dependencies = [r.urn for r in roles]
    image.dependencies = [health.urn]
    waves = executing.deletion_waves([image, health, *reversed(roles), settings])
    assert [[e.urn for e in wave] for wave in waves] == [
        ["urn:image"],
        ["urn:health"],
        ["urn:role2", "urn:role1", "urn:role0"],
        ["urn:settings"],
    ]


def test_outputs_are_printed_readably_and_secrets_hidden() -> None:
    text = executing.format_outputs(
        {"serving_count": 3.0, "glance_store_config": "[DEFAULT]\nx = 1\n", "cloud": {"password": "pw"}},
        frozenset({"cloud"}),
    )
    assert text.splitlines() == [
        "  cloud: [secret]",
        "  glance_store_config:",
        "      [DEFAULT]",
        "      x = 1",
        "  serving_count: 3",
    ]


FAKE_PULUMI = """#!/bin/sh
echo "$* | passphrase=$PULUMI_CONFIG_PASSPHRASE | password=$PCD_LAB_PASSWORD" >> "$FAKE_PULUMI_LOG"
case "$1 $2" in "stack select") exit 1;; esac
exit 0
"""


def test_up_with_the_cli_logs_in_to_a_file_backend_inits_the_lab_stack_and_runs_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A stand-in for the `pulumi` binary that records how it is called: the real CLI cannot be
    # installed here, and what matters is the sequence deploy.py drives.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "pulumi").write_text(FAKE_PULUMI)
    (bin_dir / "pulumi").chmod(0o755)
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "Pulumi.lab.yaml").write_text((deploy.REPO / "Pulumi.lab.yaml").read_text())
    log = tmp_path / "calls.log"
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_PULUMI_LOG", str(log))
    monkeypatch.delenv("PULUMI_CONFIG_PASSPHRASE", raising=False)
    monkeypatch.setattr(deploy, "REPO", repo)
    lab_env = {"OS_AUTH_URL": "http://127.0.0.1:1/v3", "PCD_LAB_PASSWORD": "pw-1", "PCD_LAB_STORE_PATH": "/s",
               **lab_ssh_env()}
    monkeypatch.setattr(deploy, "lab_environment", lambda start, cinder=False: lab_env)
    for key in lab_env:
        # deploy.up exports the lab's variables into os.environ: let monkeypatch undo that afterwards.
        monkeypatch.setenv(key, "placeholder")

    deploy.up()

    calls = log.read_text().splitlines()
    suffix = " | passphrase=pcd-imagelib-ha-lab | password=pw-1"
    assert calls == [
        f"login file://{repo}/.pulumi-state" + suffix,
        "stack select lab" + suffix,
        "stack init lab --secrets-provider passphrase" + suffix,
        "up --yes --stack lab" + suffix,
    ]
    assert (repo / ".lab-images" / "lab-tiny-a.raw").exists()
    assert not (repo / ".inprocess").exists()


def test_preview_and_refresh_with_the_cli_run_pulumi_preview_diff_and_refresh(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "pulumi").write_text(FAKE_PULUMI)
    (bin_dir / "pulumi").chmod(0o755)
    repo = tmp_path / "repo"
    (repo / ".pulumi-state").mkdir(parents=True)
    (repo / "Pulumi.lab.yaml").write_text((deploy.REPO / "Pulumi.lab.yaml").read_text())
    log = tmp_path / "calls.log"
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_PULUMI_LOG", str(log))
    monkeypatch.setattr(deploy, "REPO", repo)
    lab_env = {"OS_AUTH_URL": "http://127.0.0.1:1/v3", "PCD_LAB_PASSWORD": "pw-1", "PCD_LAB_STORE_PATH": "/s",
               **lab_ssh_env()}
    started: list[bool] = []
    monkeypatch.setattr(deploy, "lab_environment",
                        lambda start, cinder=False: started.append(start) or lab_env)
    for key in lab_env:
        monkeypatch.setenv(key, "placeholder")

    assert deploy.main(["preview"]) == 0
    assert deploy.main(["refresh"]) == 0

    commands = [line.split(" | ")[0] for line in log.read_text().splitlines()]
    assert [c for c in commands if not c.startswith(("login", "stack"))] == [
        "preview --diff --stack lab",
        "refresh --yes --stack lab",
    ]
    assert started == [False, False]  # neither starts a lab: there is nothing to preview or read without one
    assert not (repo / ".inprocess").exists()


def test_preview_without_the_cli_previews_in_process_and_touches_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "Pulumi.lab.yaml").write_text((deploy.REPO / "Pulumi.lab.yaml").read_text())
    monkeypatch.setenv("PATH", str(tmp_path / "no-pulumi-here"))
    monkeypatch.setattr(deploy, "REPO", repo)
    monkeypatch.chdir(repo)  # the images' relative sources resolve against the project directory
    lab_env = {"OS_AUTH_URL": "http://127.0.0.1:1/v3", "PCD_LAB_PASSWORD": "pw-1", "PCD_LAB_STORE_PATH": "/s",
               **lab_ssh_env()}
    monkeypatch.setattr(deploy, "lab_environment", lambda start, cinder=False: lab_env)
    for key in lab_env:
        monkeypatch.setenv(key, "placeholder")

    assert deploy.main(["preview"]) == 0
    assert deploy.main(["refresh"]) == 0

    printed = capsys.readouterr().out
    assert "Previewing the same program" in printed and "plan: 6 to create" in printed
    assert "+filesystem_store_datadir = /s" in printed
    assert "in-process refresh: nothing recorded for stack lab" in printed
    assert "pw-1" not in printed
    assert not (repo / ".inprocess").exists()
