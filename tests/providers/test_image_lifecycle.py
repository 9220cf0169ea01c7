"""FailoverImage over sequences of deployments, in the engine's order, against a stateful fake Glance.

The mini engine below does what the Pulumi engine does with one provider: check every resource; a new
URN is created; an existing one is diffed and updated in place, or replaced (the new resource created
first, the old one deleted at the *end* of the deployment, with the resources no longer declared).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests_mock
from cloud_config import configured
from fake_glance import FakeGlance
from keystone_fake import token_body

from imagelib_ha.client.host_health import HOST_HEALTH
from imagelib_ha.client.image_key import KEY_PROPERTY, OWNER_PROPERTY, attempt_image_id
from imagelib_ha.providers.image import FailoverImageProvider

AUTH_URL = "http://keystone.test/v3"
HOST = "http://h1.test:9494"
CLOUD = {"auth_url": AUTH_URL, "region": "RegionOne", "username": "admin", "password": "pw",
         "project_name": "admin"}
CATALOG = [{"type": "image-cluster", "id": "s", "endpoints": [
    {"id": "e", "interface": "public", "region_id": "RegionOne", "region": "RegionOne", "url": HOST}]}]


class Engine:
    """Deploys configs of FailoverImage resources in the engine's order; keeps their state."""

    def __init__(self, provider: FailoverImageProvider) -> None:
        self.provider = provider
        self.state: dict[str, tuple[str, dict[str, Any]]] = {}
        self.steps: list[tuple[str, str]] = []

    def up(self, config: dict[str, dict[str, Any]]) -> None:
        pending_deletes: list[tuple[str, tuple[str, dict[str, Any]]]] = []
        for name, news in config.items():
            checked = self.provider.check(self.state.get(name, ("", {}))[1], dict(news))
            assert checked.failures == [], checked.failures
            inputs = dict(checked.inputs)
            if name not in self.state:
                self._create(name, inputs)
                continue
            old_id, olds = self.state[name]
            diff = self.provider.diff(old_id, olds, inputs)
            if diff.replaces:
                self._create(name, inputs)
                pending_deletes.append((name, (old_id, olds)))
            elif diff.changes:
                self.steps.append(("update", name))
                outs = self.provider.update(old_id, olds, inputs).outs
                self.state[name] = (old_id, dict(outs or {}))
            else:
                self.steps.append(("same", name))
        for name in [n for n in self.state if n not in config]:
            pending_deletes.append((name, self.state.pop(name)))
        for name, (old_id, olds) in pending_deletes:
            self.steps.append(("delete", name))
            self.provider.delete(old_id, olds)

    def _create(self, name: str, inputs: dict[str, Any]) -> None:
        self.steps.append(("create", name))
        created = self.provider.create(inputs)
        self.state[name] = (created.id, dict(created.outs))

    def id_of(self, name: str) -> str:
        return self.state[name][0]


@pytest.fixture
def glance() -> Iterator[FakeGlance]:
    HOST_HEALTH.forget()
    with requests_mock.Mocker() as m:
        m.post(f"{AUTH_URL}/auth/tokens", json=token_body(CATALOG), headers={"X-Subject-Token": "t"},
               status_code=201)
        yield FakeGlance(m, HOST)


@pytest.fixture
def engine() -> Engine:
    return Engine(configured(FailoverImageProvider(), CLOUD))


def image(source: Path, **changes: Any) -> dict[str, Any]:
    return {"region": "RegionOne", "name": "cirros", "source": str(source), "disk_format": "raw",
            "container_format": "bare", "identity": "proj/lab/cirros", "visibility": "private",
            "properties": {"os_distro": "cirros"}, "tags": ["lab"], "endpoints": [HOST], **changes}


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first, moved = tmp_path / "a" / "cirros.raw", tmp_path / "b" / "cirros.raw"
    first.write_bytes(b"\x00\x01" * 50_000)
    moved.write_bytes(first.read_bytes())
    other = tmp_path / "a" / "cirros-2.raw"
    other.write_bytes(b"\x02\x03" * 50_000)
    return {"first": first, "moved": moved, "other": other}


def sha512(path: Path) -> str:
    return hashlib.sha512(path.read_bytes()).hexdigest()


def test_moving_the_file_with_the_same_bytes_updates_in_place_and_deletes_nothing(
    glance: FakeGlance, engine: Engine, files: dict[str, Path]
) -> None:
    engine.up({"cirros": image(files["first"])})
    image_id = engine.id_of("cirros")
    glance.calls.clear()
    engine.up({"cirros": image(files["moved"])})
    assert engine.steps[-1] == ("update", "cirros")
    assert glance.writes() == []  # no upload, no patch, no delete: only the record was read
    assert engine.id_of("cirros") == image_id and list(glance.active()) == [image_id]
    assert engine.state["cirros"][1]["source"] == str(files["moved"])


def test_new_content_replaces_new_image_active_before_the_old_is_deleted_at_the_end(
    glance: FakeGlance, engine: Engine, files: dict[str, Path]
) -> None:
    engine.up({"cirros": image(files["first"])})
    old_id, old_key = engine.id_of("cirros"), engine.state["cirros"][1]["key"]
    glance.calls.clear()
    engine.up({"cirros": image(files["other"])})
    assert engine.steps[-2:] == [("create", "cirros"), ("delete", "cirros")]
    new_id, new_key = engine.id_of("cirros"), engine.state["cirros"][1]["key"]
    assert new_id != old_id and new_key != old_key
    assert list(glance.active()) == [new_id]
    assert glance.active()[new_id]["os_hash_value"] == sha512(files["other"])
    # The new image was active (uploaded) before the old one's delete.
    writes = glance.writes()
    uploaded = writes.index(("PUT", f"/v2/images/{new_id}/file"))
    assert uploaded < writes.index(("DELETE", f"/v2/images/{old_id}"))


@pytest.mark.parametrize("change", [{"container_format": "ovf"}, {"disk_format": "ami"}])
def test_a_new_format_replaces_with_a_new_key_and_id(
    glance: FakeGlance, engine: Engine, files: dict[str, Path], change: dict[str, str]
) -> None:
    engine.up({"cirros": image(files["first"])})
    old_id, old_key = engine.id_of("cirros"), engine.state["cirros"][1]["key"]
    engine.up({"cirros": image(files["first"], **change)})
    assert engine.steps[-2:] == [("create", "cirros"), ("delete", "cirros")]
    new_id = engine.id_of("cirros")
    assert new_id != old_id and engine.state["cirros"][1]["key"] != old_key
    assert list(glance.active()) == [new_id]
    assert glance.active()[new_id][next(iter(change))] == next(iter(change.values()))


def test_adoption_moves_the_owner_and_the_old_resources_delete_leaves_the_image(
    glance: FakeGlance, engine: Engine, files: dict[str, Path]
) -> None:
    engine.up({"old-name": image(files["first"])})
    image_id, old_owner = engine.id_of("old-name"), engine.state["old-name"][1]["owner"]
    # A URN change (a renamed resource) with the same identity and bytes: a create and a delete.
    engine.up({"new-name": image(files["moved"], name="cirros-renamed")})
    assert engine.steps[-2:] == [("create", "new-name"), ("delete", "old-name")]
    new_owner = engine.state["new-name"][1]["owner"]
    assert engine.id_of("new-name") == image_id and new_owner != old_owner
    assert list(glance.active()) == [image_id]
    record = glance.active()[image_id]
    assert record[OWNER_PROPERTY] == new_owner and record["name"] == "cirros-renamed"
    assert ("DELETE", f"/v2/images/{image_id}") not in glance.calls


def test_two_resources_with_one_key_the_second_adopts_and_the_firsts_delete_leaves_it(
    glance: FakeGlance, engine: Engine, files: dict[str, Path]
) -> None:
    engine.up({"one": image(files["first"]), "two": image(files["moved"], name="cirros-two")})
    assert engine.id_of("one") == engine.id_of("two")
    image_id = engine.id_of("one")
    assert glance.active()[image_id][OWNER_PROPERTY] == engine.state["two"][1]["owner"]
    engine.up({"two": image(files["moved"], name="cirros-two")})
    assert ("delete", "one") in engine.steps
    assert list(glance.active()) == [image_id]
    engine.up({})
    assert glance.images == {}  # the holder's delete removes it


def test_delete_removes_own_failed_attempts_and_leaves_records_owned_by_others(
    glance: FakeGlance, engine: Engine, files: dict[str, Path]
) -> None:
    engine.up({"cirros": image(files["first"])})
    outs = engine.state["cirros"][1]
    key, owner = outs["key"], outs["owner"]
    mine = attempt_image_id(key, 5)
    glance.images[mine] = {"id": mine, "status": "queued", KEY_PROPERTY: key, OWNER_PROPERTY: owner}
    theirs = attempt_image_id(key, 6)
    glance.images[theirs] = {"id": theirs, "status": "active", KEY_PROPERTY: key, OWNER_PROPERTY: "other"}
    engine.up({})
    assert list(glance.images) == [theirs]


def legacy_state(glance: FakeGlance, source: Path) -> tuple[str, dict[str, Any]]:
    """An image and its resource state as the release before owner tokens left them."""
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    key = f"proj/lab/cirros:{digest[:16]}"
    image_id = attempt_image_id(key, 0)
    glance.images[image_id] = {"id": image_id, "status": "active", "name": "cirros", KEY_PROPERTY: key,
                               "visibility": "private", "os_distro": "cirros", "tags": ["lab"],
                               "size": source.stat().st_size, "os_hash_value": sha512(source)}
    glance.used_ids.add(image_id)
    outs = {**image(source), "cloud": CLOUD, "provider_version": "1", "content_digest": digest, "key": key,
            "connect_timeout": 3, "read_timeout": 30, "identity": "proj/lab/cirros", "digest": None,
            "image_id": image_id, "status": "active", "host": HOST, "attempts": [], "orphans": []}
    outs.pop("digest")
    return image_id, outs


def test_upgrade_from_state_without_owner_updates_key_and_owner_in_place(
    glance: FakeGlance, engine: Engine, files: dict[str, Path]
) -> None:
    image_id, outs = legacy_state(glance, files["first"])
    engine.state["cirros"] = (image_id, outs)
    engine.up({"cirros": image(files["first"])})
    assert engine.steps == [("update", "cirros")]
    new_outs = engine.state["cirros"][1]
    assert engine.id_of("cirros") == image_id and new_outs["owner"]
    assert "cloud" not in new_outs and "provider_version" not in new_outs
    record = glance.images[image_id]
    assert record[KEY_PROPERTY] == new_outs["key"] == outs["key"] + ":raw/bare"
    assert record[OWNER_PROPERTY] == new_outs["owner"]
    assert [c[0] for c in glance.writes()] == ["PATCH"]
    engine.up({"cirros": image(files["moved"])})
    assert engine.steps[-1] == ("update", "cirros") and [c[0] for c in glance.writes()] == ["PATCH"]


def test_a_legacy_resources_delete_leaves_an_image_another_resource_holds(
    glance: FakeGlance, engine: Engine, files: dict[str, Path]
) -> None:
    image_id, outs = legacy_state(glance, files["first"])
    engine.state["legacy"] = (image_id, outs)
    glance.images[image_id][OWNER_PROPERTY] = "holder"
    engine.up({})
    assert image_id in glance.images
    del glance.images[image_id][OWNER_PROPERTY]
    engine.state["legacy"] = (image_id, outs)
    engine.up({})
    assert image_id not in glance.images  # no owner: still the legacy resource's own image


def test_a_pinned_url_image_with_an_insecure_region_downloads_verified_and_moves_in_place(
    files: dict[str, Path]
) -> None:
    HOST_HEALTH.forget()
    data = files["first"].read_bytes()
    url, mirror = "https://images.test/cirros.raw", "https://mirror.test/cirros.raw"
    engine = Engine(configured(FailoverImageProvider(), {**CLOUD, "insecure": True}))
    pin = "sha256:" + hashlib.sha256(data).hexdigest()
    with requests_mock.Mocker(real_http=False) as m:
        m.post(f"{AUTH_URL}/auth/tokens", json=token_body(CATALOG), headers={"X-Subject-Token": "t"},
               status_code=201)
        fake = FakeGlance(m, HOST)
        m.get(url, content=data)
        m.get(mirror, content=data)
        engine.up({"cirros": {**image(files["first"]), "source": url, "digest": pin}})
        image_id = engine.id_of("cirros")
        assert fake.active()[image_id]["os_hash_value"] == hashlib.sha512(data).hexdigest()
        downloads = [r for r in m.request_history if r.netloc == "images.test"]
        assert len(downloads) == 1 and downloads[0].verify not in (False, None)
        engine.up({"cirros": {**image(files["first"]), "source": mirror, "digest": pin}})
        assert engine.steps[-1] == ("update", "cirros") and engine.id_of("cirros") == image_id
        assert not [r for r in m.request_history if r.netloc == "mirror.test"]  # no download for a move
