"""Day-2 sequences over the dynamic-provider gRPC server, from state recorded by an earlier run.

Each "run" is its own ``python -m pulumi.dynamic`` process, as each ``pulumi up`` is: the second run
knows the resource only from the state (outputs) the first one recorded, serialised to JSON in between.
The steps follow the engine's order: a replacement is created first, other steps run, and the replaced
resource is deleted at the end with its old state. A password rotated between runs is given only to
``Configure``: state recorded before the rotation carries no credential, so it still works.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cloud_config import cloud_config
from grpc_harness import ProviderCallError, ProviderServer, dynamic_urn
from keystoneauth1 import session as ks_session
from labkit import cloud_of, granted_region_roles, region_hosts, session_of

from imagelib_ha.client.glance import GlanceHost
from imagelib_ha.providers.baseline import ImageLibraryRoleBaselineProvider
from imagelib_ha.providers.image import FailoverImageProvider
from lab.api import Lab

IMAGE_URN = dynamic_urn("pulumi-python:dynamic/imagelib:FailoverImage", "day2-image")
BASELINE_URN = dynamic_urn("pulumi-python:dynamic/imagelib:ImageLibraryRoleBaseline", "day2-baseline")


@pytest.fixture(scope="module")
def roles(lab: Lab) -> Iterator[dict[str, Any]]:
    yield from granted_region_roles(lab)


def recorded(state: dict[str, Any]) -> dict[str, Any]:
    """State as the engine keeps it between runs: through JSON, nothing live survives."""
    return dict(json.loads(json.dumps(state)))


def image_news(status: dict[str, Any], source: Path, identity: str) -> dict[str, Any]:
    return {"region": status["region"], "name": "day2", "source": str(source), "disk_format": "raw",
            "container_format": "bare", "identity": identity, "tags": ["day2"]}


def active_ids(session: ks_session.Session, endpoint: str, identity: str) -> set[str]:
    images = GlanceHost(session, endpoint).list_images({"tag": "day2"})
    return {str(i["id"]) for i in images
            if i.get("status") == "active" and identity in str(i.get("pcd_imagelib_ha_key"))}


@pytest.mark.lab
def test_move_then_new_content_over_grpc_in_engine_order_from_recorded_state(
    roles: dict[str, Any], tmp_path: Path
) -> None:
    status = roles
    config = cloud_config(cloud_of(status))
    session = session_of(status)
    endpoints = [h["endpoint"] for h in region_hosts(status)]
    identity = f"pcd-imagelib-ha/day2/{time.time_ns()}"
    first = tmp_path / "a" / "day2.raw"
    first.parent.mkdir()
    first.write_bytes(b"day-two" * 50_000)

    with ProviderServer(FailoverImageProvider()) as run1:  # first up
        run1.configure(config)
        checked = run1.check(IMAGE_URN, {}, image_news(status, first, identity))
        state = recorded(vars(run1.create(IMAGE_URN, checked.inputs)))
    first_id = state["id"]
    try:
        # Second up: the file moved to another folder, same bytes. An update, never a replacement.
        moved = tmp_path / "b" / "day2.raw"
        moved.parent.mkdir()
        first.rename(moved)
        with ProviderServer(FailoverImageProvider()) as run2:
            run2.configure(config)
            news = run2.check(IMAGE_URN, state["outputs"], image_news(status, moved, identity)).inputs
            diff = run2.diff(first_id, IMAGE_URN, state["outputs"], news)
            assert (diff.changes, diff.replaces) == ("DIFF_SOME", [])
            state = recorded({"id": first_id, "outputs": run2.update(first_id, IMAGE_URN, state["outputs"],
                                                                     news).outputs})
        assert state["outputs"]["image_id"] == first_id
        assert active_ids(session, endpoints[0], identity) == {first_id}

        # Third up: new content. Replace: create the new one, then (at the end) delete the old one.
        moved.write_bytes(b"day-three" * 50_000)
        with ProviderServer(FailoverImageProvider()) as run3:
            run3.configure(config)
            news = run3.check(IMAGE_URN, state["outputs"], image_news(status, moved, identity)).inputs
            diff = run3.diff(first_id, IMAGE_URN, state["outputs"], news)
            assert "content_digest" in diff.replaces and not diff.delete_before_replace
            created = run3.create(IMAGE_URN, news)
            assert created.id != first_id
            assert active_ids(session, endpoints[0], identity) == {first_id, created.id}  # both, briefly
            run3.delete(first_id, IMAGE_URN, state["outputs"])  # the replaced one, with its old state
        for endpoint in endpoints:
            assert active_ids(session, endpoint, identity) == {created.id}
            got = GlanceHost(session, endpoint).download_sha512(created.id)
            assert (got.status, got.size) == (200, moved.stat().st_size)
        state = recorded(vars(created))
    finally:
        with ProviderServer(FailoverImageProvider()) as last:
            last.configure(config)
            last.delete(state["id"], IMAGE_URN, state["outputs"])
    assert active_ids(session, endpoints[0], identity) == set()


@pytest.mark.lab
def test_state_recorded_before_a_password_rotation_works_with_the_new_password_only(
    roles: dict[str, Any], lab: Lab
) -> None:
    status = roles
    old_cloud = cloud_of(status)
    with ProviderServer(ImageLibraryRoleBaselineProvider()) as before:
        before.configure(cloud_config(old_cloud))
        news = before.check(BASELINE_URN, {}, {"region": status["region"],
                                               "hosts": [h["hostname"] for h in region_hosts(status)]}).inputs
        state = recorded(vars(before.create(BASELINE_URN, news)))
    assert old_cloud["password"] not in json.dumps(state) and "cloud" not in state["outputs"]

    rotated = f"rotated-{secrets.token_urlsafe(9)}"
    admin = session_of(status)
    user_id = admin.get_user_id()
    set_password(admin, status["auth_url"], user_id, rotated)
    try:
        # The next run is given the new password through the stack config; the state is unchanged.
        with ProviderServer(ImageLibraryRoleBaselineProvider()) as after:
            after.configure(cloud_config({**old_cloud, "password": rotated}))
            read = after.read(state["id"], BASELINE_URN, state["outputs"])
            assert read.id == state["id"]
            respelt = after.check(BASELINE_URN, state["outputs"], {
                "region": status["region"], "hosts": [h["id"] for h in region_hosts(status)]}).inputs
            updated = after.update(state["id"], BASELINE_URN, state["outputs"], respelt)
            assert [e["host_id"] for e in updated.outputs["entries"]] == \
                [e["host_id"] for e in state["outputs"]["entries"]]
            after.delete(state["id"], BASELINE_URN, updated.outputs)
        # A provider still configured with the old password says which config key to fix, never a value.
        with ProviderServer(ImageLibraryRoleBaselineProvider()) as stale:
            stale.configure(cloud_config(old_cloud))
            with pytest.raises(ProviderCallError) as caught:
                stale.update(state["id"], BASELINE_URN, state["outputs"], respelt)
        assert "rejected the credentials in pcd-imagelib-ha:cloud" in caught.value.details
        assert old_cloud["password"] not in caught.value.details and rotated not in caught.value.details
    finally:
        set_password(session_of({**status, "admin": {**status["admin"], "password": rotated}}),
                     status["auth_url"], user_id, old_cloud["password"])


def set_password(session: ks_session.Session, auth_url: str, user_id: str, password: str) -> None:
    resp = session.patch(f"{auth_url.rstrip('/')}/users/{user_id}", json={"user": {"password": password}})
    assert resp.status_code == 200, resp.text
    # Keystone revokes the user's tokens on a password change, to the whole second: a token issued in
    # that same second is refused too. Let the second pass before anyone logs in again.
    time.sleep(1.1)
