"""The stack rules on constructed resource graphs: the program's shape, then one change each."""

from __future__ import annotations

from typing import Any, cast

from imagelib_policies import hosts_and_region, image_uploads, storage
from policy_fixtures import (
    FAILOVER_IMAGE,
    HA,
    HEALTH,
    OS_IMAGE,
    OS_PROVIDER,
    OS_VOLUME_TYPE,
    ROLES,
    SECRET,
    SETTINGS,
    UNKNOWN,
    StackBuilder,
    build_stack,
    cloud,
    ha_props,
    settings_props,
    violations,
)

# --- single-region -----------------------------------------------------------------------------


def test_single_region_happy_path() -> None:
    assert violations(hosts_and_region.single_region, build_stack().args()) == []


def test_single_region_host_in_another_region() -> None:
    stack = build_stack(host_regions={"host-3": "RegionTwo"})
    assert violations(hosts_and_region.single_region, stack.args()) == [
        "Image-library hosts and settings span 2 regions (RegionOne: deployment 'imagelib', host 'host-1', "
        "host 'host-2', host 'host-3', settings 'imagelib-settings'; RegionTwo: host 'host-3'); an image "
        "library serves one region. Put every host of pcd-imagelib-ha:hosts in the region of "
        "pcd-imagelib-ha:cloud.region, or deploy one stack per region."
    ]


def test_single_region_reads_dynamic_inputs_when_component_outputs_are_empty() -> None:
    # Stack policies see outputs; components whose outputs hold no config (the hosts component
    # registers only members and host_ids) leave the dynamic resources' inputs (which they return as
    # outputs) to read.
    settings = settings_props()
    settings["region"] = "RegionTwo"
    settings["hosts"] = [{**h, "region": "RegionTwo"} for h in settings["hosts"]]
    stack = build_stack(ha={}, settings=settings, hosts_component={"members": UNKNOWN, "host_ids": UNKNOWN})
    messages = violations(hosts_and_region.single_region, stack.args())
    assert len(messages) == 1
    expected = "RegionTwo: host 'host-1', host 'host-2', host 'host-3', settings 'imagelib-settings'"
    assert expected in messages[0]


def test_single_region_skips_a_host_region_unknown_at_preview() -> None:
    stack = build_stack(host_regions={"host-3": UNKNOWN})
    assert violations(hosts_and_region.single_region, stack.args()) == []


def test_single_region_reads_the_roles_expected_region_for_hosts_without_one() -> None:
    stack = build_stack(hosts_component={})
    roles = next(r for r in stack.resources if r.resource_type == ROLES)
    props = cast(Any, roles.props)
    props["expected_region"] = "RegionTwo"
    props["hosts"] = [{**h, "region": None} for h in props["hosts"]]
    messages = violations(hosts_and_region.single_region, stack.args())
    assert len(messages) == 1 and "RegionTwo: host 'host-1', host 'host-2', host 'host-3')" in messages[0]


def test_single_region_ignores_the_regions_the_roles_report() -> None:
    stack = build_stack()
    roles = next(r for r in stack.resources if r.resource_type == ROLES)
    # An output (what PCD reports after apply), not what the config says; props are a mutable proxy.
    cast(Any, roles.props)["members"] = [{"host_id": "h3", "ref": "host-3", "region": "RegionTwo"}]
    assert violations(hosts_and_region.single_region, stack.args()) == []


# --- health-gates-images -----------------------------------------------------------------------


def test_health_gates_images_happy_path() -> None:
    assert violations(image_uploads.health_gates_images, build_stack().args()) == []
    assert violations(image_uploads.health_gates_images, build_stack(image_type=OS_IMAGE).args()) == []


def test_image_without_health_dependency() -> None:
    stack = build_stack(image_depends_on_health=False)
    assert violations(image_uploads.health_gates_images, stack.args()) == [
        "FailoverImage 'cirros' does not depend on an ImageLibraryHealth resource, so it could be uploaded "
        "before the image-library hosts are proven healthy. Pass the health resource as its health input, "
        "or add it to depends_on."
    ]


def test_health_that_does_not_depend_on_the_roles() -> None:
    stack = build_stack(health_depends_on_roles=False)
    assert violations(image_uploads.health_gates_images, stack.args()) == [
        "FailoverImage 'cirros' depends on ImageLibraryHealth 'imagelib-health', which does not depend on "
        "role(s) 'imagelib-hosts-roles' of its deployment, so the image could be uploaded before those hosts "
        "are ready. Pass the roles' host_ids as the health resource's role_host_ids."
    ]


def test_hand_added_openstack_image_skipping_the_gate() -> None:
    stack = build_stack()
    stack.add(OS_IMAGE, "debian", {"name": "debian"})
    assert violations(image_uploads.health_gates_images, stack.args()) == [
        "openstack.images.Image 'debian' does not depend on an ImageLibraryHealth resource, so it could be "
        "uploaded before the image-library hosts are proven healthy. Pass the health resource as its health "
        "input, or add it to depends_on."
    ]


def test_top_level_image_gated_by_a_complete_health_passes() -> None:
    stack = build_stack()
    health = next(r for r in stack.resources if r.resource_type == HEALTH)
    stack.add(FAILOVER_IMAGE, "ubuntu", {"name": "ubuntu"}, depends_on=[health])
    assert violations(image_uploads.health_gates_images, stack.args()) == []


def test_other_program_without_image_library_is_not_gated() -> None:
    stack = StackBuilder()
    stack.add(OS_PROVIDER, "image-host-1", {})
    stack.add(OS_IMAGE, "debian", {"name": "debian"})
    assert violations(image_uploads.health_gates_images, stack.args()) == []


def test_two_deployments_each_gate_their_own_images() -> None:
    stack = build_stack()
    other = stack.add(HA, "imagelib-b", ha_props())
    role_b = stack.add(ROLES, "b-roles", {"hosts": [{"host": "host-9"}], "expected_region": "RegionOne"},
                       parent=other)
    health_b = stack.add(HEALTH, "b-health", {}, parent=other)  # depends on no roles
    stack.add(FAILOVER_IMAGE, "b-image", {"name": "b"}, parent=other, depends_on=[health_b])
    messages = violations(image_uploads.health_gates_images, stack.args())
    assert messages == [
        "FailoverImage 'b-image' depends on ImageLibraryHealth 'b-health', which does not depend on role(s) "
        f"'{role_b.name}' of its deployment, so the image could be uploaded before those hosts are ready. "
        "Pass the roles' host_ids as the health resource's role_host_ids."
    ]


# --- cinder-volume-type-declared ---------------------------------------------------------------


def cinder_stack(*, volume_type: Any = "imagelib-ssd", created: str | None = "imagelib-ssd",
                 ha: dict[str, Any] | None = None) -> StackBuilder:
    props = ha_props()
    props.update(backend="cinder", mount_path=None, volume_type=volume_type)
    settings = settings_props()
    settings.update(backend="cinder", mount_path=None, volume_type=volume_type)
    return build_stack(ha=props if ha is None else ha, settings=settings, volume_type_name=created)


def test_cinder_happy_path_created_volume_type() -> None:
    assert violations(storage.cinder_volume_type_declared, cinder_stack().args()) == []


def test_cinder_volume_type_neither_created_nor_declared() -> None:
    assert violations(storage.cinder_volume_type_declared, cinder_stack(created=None).args()) == [
        "ImageLibraryHA 'imagelib' uses Cinder volume type 'imagelib-ssd', which this stack neither creates "
        "(openstack.blockstorage.VolumeTypeV3) nor declares. Create it in the stack, or list it in this "
        "policy's declaredVolumeTypes if it already exists in the region."
    ]


def test_cinder_volume_type_declared_in_config() -> None:
    args = cinder_stack(created=None).args(config={"declaredVolumeTypes": ["imagelib-ssd"]})
    assert violations(storage.cinder_volume_type_declared, args) == []


def test_cinder_without_volume_type() -> None:
    assert violations(storage.cinder_volume_type_declared, cinder_stack(volume_type=None).args()) == [
        "ImageLibraryHA 'imagelib' uses the Cinder backend but names no volume type. "
        "Set pcd-imagelib-ha:storage.cinder.volumeType."
    ]


def test_cinder_created_volume_type_with_other_name() -> None:
    messages = violations(storage.cinder_volume_type_declared, cinder_stack(created="other").args())
    assert len(messages) == 1 and "'imagelib-ssd'" in messages[0]


def test_cinder_unknown_values_skip() -> None:
    assert violations(storage.cinder_volume_type_declared, cinder_stack(volume_type=UNKNOWN).args()) == []
    assert violations(storage.cinder_volume_type_declared, cinder_stack(created=UNKNOWN).args()) == []


def test_cinder_falls_back_to_settings_when_component_has_no_outputs() -> None:
    assert violations(storage.cinder_volume_type_declared, cinder_stack(created=None, ha={}).args()) == [
        "ImageLibrarySettings 'imagelib-settings' uses Cinder volume type 'imagelib-ssd', which this stack "
        "neither creates (openstack.blockstorage.VolumeTypeV3) nor declares. Create it in the stack, or list "
        "it in this policy's declaredVolumeTypes if it already exists in the region."
    ]


def test_cinder_rule_ignores_nfs() -> None:
    assert violations(storage.cinder_volume_type_declared, build_stack().args()) == []


def test_cinder_loose_settings_in_another_program() -> None:
    stack = StackBuilder()
    settings = settings_props()
    settings.update(backend="cinder", mount_path=None, volume_type="fast")
    stack.add(SETTINGS, "region-settings", settings)
    stack.add(OS_VOLUME_TYPE, "fast", {"name": "fast"})
    assert violations(storage.cinder_volume_type_declared, stack.args()) == []


# --- secrets -----------------------------------------------------------------------------------


def test_no_stack_message_echoes_a_secret() -> None:
    settings = settings_props()
    settings.update(backend="cinder", volume_type=None, region="RegionTwo")
    stack = build_stack(ha={}, settings=settings, host_regions={"host-1": "RegionTwo"},
                        image_depends_on_health=False)
    stack.add(HA, "x", {"cloud": cloud(), "insecure": True, "password": SECRET})
    produced = 0
    policies = (hosts_and_region.single_region, image_uploads.health_gates_images,
                storage.cinder_volume_type_declared)
    for policy in policies:
        messages = violations(policy, stack.args())
        assert messages, f"{policy.name} reported nothing for its violating fixture"
        produced += len(messages)
        assert all(SECRET not in message for message in messages)
    assert produced >= 3
