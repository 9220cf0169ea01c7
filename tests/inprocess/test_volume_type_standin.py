"""The in-process stand-in for pulumi-openstack's ``VolumeTypeV3``, run by the in-process runner against
a fake Cinder (requests-mock): create, in-place update, replacement and delete, in the engine's order.

The program (``volume_type_program.py``) declares the volume type as ``components/storage.py`` does
(explicit provider) and a toy resource that depends on it; the toy's calls and the fake Cinder's
mutations land in one journal, so the order between them is what a test reads.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pulumi_openstack.blockstorage.volume_type_v3 as installed
import pytest
import requests_mock
from fake_cinder import AUTH_URL, FakeCinder

from imagelib_ha.inprocess import executing
from imagelib_ha.inprocess.manifest import Manifest
from imagelib_ha.inprocess.standins import VOLUME_TYPE_V3
from imagelib_ha.inprocess.volume_type_standin import VolumeTypeV3StandIn, schema_keys

PROGRAM = Path(__file__).resolve().parent / "volume_type_program.py"
PASSWORD = "cinder-Test-Secret-5"
MULTIATTACH = {"multiattach": "<is> True"}
LABEL = "VolumeTypeV3 (in-process stand-in) images"


class Stack:
    """One stack running ``volume_type_program.py`` in a temp dir, with a fake Cinder per region."""

    def __init__(self, root: Path, m: requests_mock.Mocker) -> None:
        self.root = root
        self.journal = root / "journal.jsonl"
        self.cinder = FakeCinder(m, self.journal, regions=("RegionOne", "RegionTwo"))

    def config(self, **volume_type: Any) -> dict[str, Any]:
        spec = {"name": "image_library", "extraSpecs": dict(MULTIATTACH), **volume_type}
        return {
            "cloud": {"authUrl": AUTH_URL, "region": "RegionOne", "username": "admin", "password": PASSWORD,
                      "projectName": "admin"},
            "journal": str(self.journal),
            "world": str(self.root / "world.json"),
            "volume_type": spec,
        }

    def up(self, **volume_type: Any) -> tuple[executing.Deployment, str]:
        out = io.StringIO()
        deployment = executing.up(self.config(**volume_type), stack="s", root=self.root, out=out,
                                  program=PROGRAM)
        return deployment, out.getvalue()

    def down(self) -> int:
        return executing.down(self.config(), stack="s", root=self.root, out=io.StringIO())

    def mark(self) -> int:
        """The journal's length now: ``calls(mark)`` then returns what came after."""
        return len(self.journal.read_text().splitlines()) if self.journal.exists() else 0

    def calls(self, since: int = 0) -> list[dict[str, Any]]:
        if not self.journal.exists():
            return []
        lines = self.journal.read_text().splitlines()[since:]
        return [c for c in map(json.loads, lines) if c["call"] in ("cinder", "create", "update", "delete")]

    def manifest(self) -> Manifest:
        return Manifest.load(executing.manifest_path(self.root, "s"), "s")

    def type_entry(self) -> Any:
        (entry,) = [e for e in self.manifest().entries if e.type == VOLUME_TYPE_V3]
        return entry


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    with requests_mock.Mocker() as m:
        yield Stack(tmp_path, m)


def ops(calls: list[dict[str, Any]]) -> list[str]:
    """Each call as one word: the Cinder request, or the toy provider's call."""
    return [c["op"] if c["call"] == "cinder" else f"toy {c['call']}" for c in calls]


def test_its_inputs_and_outputs_are_the_installed_volume_type_v3_properties() -> None:
    def wire_names(cls: type) -> list[str]:
        return sorted(v.fget._pulumi_name for v in vars(cls).values() if isinstance(v, property))  # type: ignore[attr-defined]

    expected = ["description", "extraSpecs", "isPublic", "name", "region"]
    assert list(schema_keys()) == expected
    assert wire_names(installed.VolumeTypeV3Args) == wire_names(installed.VolumeTypeV3) == expected


def test_create_runs_before_its_dependent_and_is_recorded_as_the_stand_in(stack: Stack) -> None:
    deployment, out = stack.up()
    assert ops(stack.calls()) == ["POST /types", "toy create"]
    (created,) = stack.cinder.types["RegionOne"].values()
    assert (created["name"], created["extra_specs"], created["is_public"]) == (
        "image_library", MULTIATTACH, True)
    entry = stack.type_entry()
    assert entry.id == created["id"] and entry.provider_blob == f"standin:{VOLUME_TYPE_V3}"
    # An unset description is sent empty, as the Terraform provider sends its zero value.
    assert entry.outputs == {"name": "image_library", "description": "", "isPublic": True,
                             "extraSpecs": MULTIATTACH, "region": "RegionOne"}
    assert f"created    {LABEL}" in out
    assert deployment.run.outputs["volume_type_id"] == created["id"]
    # Neither the stand-in's record nor the output carries the cloud password (the provider is not recorded).
    manifest_text = executing.manifest_path(stack.root, "s").read_text()
    assert PASSWORD not in manifest_text and "pulumi:providers" not in manifest_text
    assert PASSWORD not in out


def test_extra_specs_update_in_place_dropping_the_old_keys_first(stack: Stack) -> None:
    stack.up()
    type_id = stack.type_entry().id
    mark = stack.mark()
    specs = {**MULTIATTACH, "volume_backend_name": "nfs1"}
    deployment, _ = stack.up(extraSpecs=specs, description="images")

    assert {s.name: s.op for s in deployment.steps} == {"images": "update", "consumer": "same"}
    # As terraform-provider-openstack: PUT the changed fields, delete every old spec, then set the new.
    assert ops(stack.calls(mark)) == [
        f"PUT /types/{type_id}", f"DELETE /types/{type_id}/extra_specs/multiattach",
        f"POST /types/{type_id}/extra_specs",
    ]
    assert stack.cinder.types["RegionOne"][type_id]["extra_specs"] == specs
    assert stack.type_entry().id == type_id and stack.type_entry().outputs["description"] == "images"


def test_a_property_left_out_of_the_config_is_no_change(stack: Stack) -> None:
    stack.up(description="images")
    mark = stack.mark()
    deployment, _ = stack.up()  # description unset: optional and computed, the live value stays
    assert {s.op for s in deployment.steps} == {"same"}
    assert stack.calls(mark) == []


def test_a_region_change_replaces_create_before_delete_with_the_old_type_deleted_last(stack: Stack) -> None:
    stack.up()
    old_id = stack.type_entry().id
    mark = stack.mark()
    deployment, out = stack.up(region="RegionTwo")

    by_name = {s.name: s for s in deployment.steps}
    assert (by_name["images"].op, by_name["images"].changed) == ("replace", ("region",))
    calls = stack.calls(mark)
    assert ops(calls) == ["POST /types", f"DELETE /types/{old_id}"]
    assert [c["region"] for c in calls] == ["RegionTwo", "RegionOne"]
    assert stack.cinder.types["RegionOne"] == {}
    assert stack.type_entry().outputs["region"] == "RegionTwo"
    assert f"deleted    {LABEL} (the replaced copy, id {old_id})" in out


def test_down_deletes_the_dependent_first_then_the_type(stack: Stack) -> None:
    stack.up()
    type_id = stack.type_entry().id
    mark = stack.mark()
    assert stack.down() == 2
    assert ops(stack.calls(mark)) == ["toy delete", f"DELETE /types/{type_id}"]
    assert stack.cinder.types["RegionOne"] == {}


def test_refresh_drops_a_type_deleted_out_of_band_and_the_next_up_creates_it_again(stack: Stack) -> None:
    stack.up()
    stack.cinder.types["RegionOne"].clear()
    drifts = executing.refresh(stack.config(), stack="s", root=stack.root, out=io.StringIO())
    assert [(d.name, d.gone) for d in drifts] == [("images", True)]
    mark = stack.mark()
    deployment, _ = stack.up()
    assert {s.name: s.op for s in deployment.steps} == {"images": "create", "consumer": "same"}
    assert ops(stack.calls(mark)) == ["POST /types"]


def test_a_type_of_the_same_name_it_has_no_record_of_is_refused_naming_the_fix_and_kept(stack: Stack) -> None:
    stack.up()
    theirs = dict(stack.cinder.types["RegionOne"])
    executing.manifest_path(stack.root, "s").unlink()  # e.g. an up interrupted before it recorded
    mark = stack.mark()
    with pytest.raises(Exception) as refused:
        stack.up()
    message = str(refused.value)
    assert "'image_library' already exists" in message and "storage.cinder.volumeType" in message, message
    assert "openstack volume type delete image_library" in message, message
    assert ops(stack.calls(mark)) == []  # the fake journals changes: nothing adopted, nothing deleted
    assert stack.cinder.types["RegionOne"] == theirs


def test_check_refuses_a_property_the_installed_schema_does_not_have() -> None:
    result = VolumeTypeV3StandIn().check({}, {"name": "t", "extraSpecs": {"a": 1}, "qosSpecs": {}})
    assert [(f.property, f.reason) for f in result.failures] == [
        ("qosSpecs", "is not a VolumeTypeV3 input (inputs: description, extraSpecs, isPublic, name, region)"),
        ("extraSpecs", "must be a map of strings"),
    ]
