"""The real program's preview pass in-process, without the lab: what ``preview`` prints and what ``up``
refuses before its first request (the lab stack's auth URL points at a port nothing listens on, so any
request would fail with a connection error instead of the check failures asserted here)."""

from __future__ import annotations

import copy
import io
from pathlib import Path
from typing import Any

import pytest
from program_configs import LAB_PASSWORD, lab_config

from imagelib_ha.inprocess import executing
from imagelib_ha.inprocess.display import step_lines, store_config_diff
from imagelib_ha.inprocess.steps import Step

SETTINGS = "pulumi-python:dynamic/imagelib:ImageLibrarySettings"


def config_with_images(tmp_path: Path) -> dict[str, Any]:
    config = lab_config()
    for image in config["images"]:
        path = tmp_path / f"{image['name']}.raw"
        path.write_bytes(b"\x00" * 4096)
        image["source"] = str(path)
    return config


def test_preview_of_a_new_lab_stack_plans_creates_and_shows_the_glance_store_lines(
    lab_env: dict[str, str], tmp_path: Path
) -> None:
    out = io.StringIO()
    steps = executing.preview(config_with_images(tmp_path), stack="lab", root=tmp_path, out=out)

    assert {s.op for s in steps} == {"create"}
    assert sorted(s.type.rsplit(":", 1)[-1] for s in steps) == sorted(
        ["ImageLibrarySettings", "ImageLibraryRoleBaseline", "ImageLibraryRoles",
         "ImageLibraryHealth", "FailoverImage", "FailoverImage"]
    )
    text = out.getvalue()
    assert f"+filesystem_store_datadir = {lab_env['PCD_LAB_STORE_PATH']}" in text
    assert "plan: 6 to create" in text
    assert LAB_PASSWORD not in text
    assert not executing.manifest_path(tmp_path, "lab").exists()


def test_up_reports_every_check_failure_of_every_resource_before_the_first_request(
    lab_env: dict[str, str], tmp_path: Path
) -> None:
    config = config_with_images(tmp_path)
    config["hosts"][1]["mountPath"] = "/elsewhere/data"  # an HA prerequisite: the same path everywhere
    config["images"][0]["source"] = str(tmp_path / "missing.raw")
    out = io.StringIO()

    with pytest.raises(executing.InProcessError) as caught:
        executing.up(config, stack="lab", root=tmp_path, out=out)

    message = str(caught.value)
    assert "check refused the inputs of 3 resources" in message
    for resource, prop in [
        ("ImageLibrarySettings imagelib-regionone-settings", "hosts"),
        ("ImageLibraryHealth imagelib-regionone-health", "hosts"),
        ("FailoverImage imagelib-regionone-image-lab-tiny-a", "source"),
    ]:
        assert f"  {resource}: {prop}: " in message, message
    assert "Nothing was created, changed or deleted." in message
    assert out.getvalue() == ""
    assert not executing.manifest_path(tmp_path, "lab").exists()
    assert LAB_PASSWORD not in message


def test_a_settings_change_shows_the_changed_glance_store_lines_as_a_unified_diff() -> None:
    olds = {
        "backend": "nfs",
        "mount_path": "/var/opt/pf9/imagelibrary/data",
        "glance_store_config": "[DEFAULT]\nenabled_backends = file:file\n\n[glance_store]\n"
        "default_backend = file\n\n[file]\nfilesystem_store_datadir = /var/opt/pf9/imagelibrary/data\n",
    }
    news = {**copy.deepcopy(olds), "mount_path": "/var/opt/imagelibrary/data"}
    del news["glance_store_config"]

    diff = store_config_diff(olds, news)

    changed = [line for line in diff if line[:1] in "+-" and not line.startswith(("+++", "---"))]
    assert changed == [
        "-filesystem_store_datadir = /var/opt/pf9/imagelibrary/data",
        "+filesystem_store_datadir = /var/opt/imagelibrary/data",
    ]
    step = Step("update", "urn:s", SETTINGS, "s", ("mount_path",))
    lines = step_lines(step, olds, news, ())
    assert lines[1] == '        mount_path: "/var/opt/pf9/imagelibrary/data" => "/var/opt/imagelibrary/data"'
    assert "        +filesystem_store_datadir = /var/opt/imagelibrary/data" in lines
    assert store_config_diff(olds, {**news, "mount_path": olds["mount_path"]}) == []


def test_changed_secret_inputs_are_named_but_never_shown() -> None:
    step = Step("update", "urn:r", "pulumi-python:dynamic/imagelib:ImageLibraryRoles", "r", ("cloud", "host"))
    lines = step_lines(step, {"cloud": {"password": "old-pw"}, "host": "a"},
                       {"cloud": {"password": "new-pw"}, "host": "b"}, {"cloud"})
    assert lines[1:] == ['        cloud: [secret] => [secret]', '        host: "a" => "b"']
