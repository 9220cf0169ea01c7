"""The per-resource rules, called as the analyzer calls them: a happy path, then one changed field each."""

from __future__ import annotations

from typing import Any

import pytest
from imagelib_policies import hosts_and_region, image_uploads, storage, tls
from imagelib_policies.config import PolicyConfigError
from policy_fixtures import (
    HA,
    MOUNT,
    OS_IMAGE,
    OS_PROVIDER,
    OS_VOLUME_TYPE,
    SECRET,
    SETTINGS,
    UNKNOWN,
    ha_props,
    openstack_provider,
    provider_props,
    resource_args,
    settings_props,
    violations,
)


def ha(**changes: Any) -> dict[str, Any]:
    props = ha_props()
    props.update(changes)
    return props


def local_two_hosts() -> dict[str, Any]:
    props = ha(backend="local", host_count=2, host_names=["host-1", "host-2"])
    props["hosts"] = props["hosts"][:2]
    return props


# --- shared-storage-required -------------------------------------------------------------------

SHARED_MSG = (
    "ImageLibraryHA 'imagelib' runs 3 image-library hosts on the 'local' backend, so an image uploaded "
    "through one host is missing on the others. Set pcd-imagelib-ha:storage.backend to 'nfs' or 'cinder', "
    "or run a single host."
)


def test_shared_storage_happy_path_nfs_and_cinder() -> None:
    assert violations(storage.shared_storage_required, resource_args(HA, ha(), "imagelib")) == []
    cinder = ha(backend="cinder", mount_path=None, volume_type="imagelib-ssd")
    assert violations(storage.shared_storage_required, resource_args(HA, cinder, "imagelib")) == []


def test_shared_storage_local_backend_with_several_hosts() -> None:
    args = resource_args(HA, ha(backend="local"), "imagelib")
    assert violations(storage.shared_storage_required, args) == [SHARED_MSG]


def test_shared_storage_local_backend_with_one_host_is_fine() -> None:
    props = ha(backend="local", host_count=1, host_names=["host-1"])
    props["hosts"] = props["hosts"][:1]
    assert violations(storage.shared_storage_required, resource_args(HA, props, "imagelib")) == []


def test_shared_storage_counts_hosts_when_host_count_is_absent() -> None:
    props = ha(backend="local")
    del props["host_count"]
    assert violations(storage.shared_storage_required, resource_args(HA, props, "imagelib")) == [SHARED_MSG]


@pytest.mark.parametrize("field", ["backend", "host_count"])
def test_shared_storage_unknown_values_skip(field: str) -> None:
    props = ha(backend="local")
    props[field] = UNKNOWN
    if field == "host_count":
        props["hosts"] = UNKNOWN
    assert violations(storage.shared_storage_required, resource_args(HA, props, "imagelib")) == []


def test_shared_storage_checks_settings_created_without_the_component() -> None:
    props = settings_props()
    props["backend"] = "local"
    assert violations(storage.shared_storage_required, resource_args(SETTINGS, props, "other-settings")) == [
        "ImageLibrarySettings 'other-settings' runs 3 image-library hosts on the 'local' backend, so an "
        "image uploaded through one host is missing on the others. Set pcd-imagelib-ha:storage.backend to "
        "'nfs' or 'cinder', or run a single host."
    ]


def test_shared_storage_reads_settings_inside_the_component_only_through_the_component() -> None:
    props = settings_props()
    props["backend"] = "local"
    args = resource_args(SETTINGS, props, "imagelib-settings", parents=[HA])
    assert violations(storage.shared_storage_required, args) == []


# --- same-mount-path ---------------------------------------------------------------------------


def test_same_mount_path_happy_path() -> None:
    assert violations(storage.same_mount_path, resource_args(HA, ha(), "imagelib")) == []


def test_same_mount_path_one_host_differs() -> None:
    props = ha()
    props["hosts"][2]["mount_path"] = "/mnt/images"
    assert violations(storage.same_mount_path, resource_args(HA, props, "imagelib")) == [
        "ImageLibraryHA 'imagelib' uses NFS but its hosts mount the share at different paths "
        f"('/mnt/images' on 'host-3'; '{MOUNT}' on 'host-1', 'host-2'), so Glance on each host would read a "
        "different directory. Give every entry of pcd-imagelib-ha:hosts the same mountPath, or drop the "
        "per-host mountPath to use pcd-imagelib-ha:storage.nfs.mountPath."
    ]


def test_same_mount_path_host_without_own_path_inherits_the_deployments() -> None:
    props = ha()
    props["hosts"][0]["mount_path"] = None
    assert violations(storage.same_mount_path, resource_args(HA, props, "imagelib")) == []


def test_same_mount_path_unknown_path_skips() -> None:
    props = ha()
    props["hosts"][2]["mount_path"] = UNKNOWN
    assert violations(storage.same_mount_path, resource_args(HA, props, "imagelib")) == []
    props["hosts"] = UNKNOWN
    assert violations(storage.same_mount_path, resource_args(HA, props, "imagelib")) == []


def test_same_mount_path_applies_to_nfs_only() -> None:
    props = ha(backend="cinder", volume_type="imagelib-ssd")
    props["hosts"][2]["mount_path"] = "/mnt/images"
    assert violations(storage.same_mount_path, resource_args(HA, props, "imagelib")) == []


# --- cinder-multiattach ------------------------------------------------------------------------

MULTIATTACH_ON = {"multiattach": "<is> True", "volume_backend_name": "ssd"}


def cinder(**changes: Any) -> dict[str, Any]:
    """A good Cinder deployment: the volume type the program creates is multiattach."""
    good = {"backend": "cinder", "mount_path": None, "volume_type": "imagelib-ssd",
            "volume_type_extra_specs": dict(MULTIATTACH_ON)}
    return ha(**{**good, **changes})


def multiattach_msg(found: str, kind: str = "ImageLibraryHA", name: str = "imagelib") -> str:
    return (
        f"{kind} '{name}' stores images as Cinder volumes, but its volume type {found}, so a second "
        "image-library host cannot read an image while another has its volume attached. Remove "
        "'multiattach' from pcd-imagelib-ha:storage.cinder.extraSpecs (the program then sets it) or set it "
        "to '<is> True'."
    )


def test_cinder_multiattach_happy_path() -> None:
    assert violations(storage.cinder_multiattach, resource_args(HA, cinder(), "imagelib")) == []


@pytest.mark.parametrize(
    ("specs", "found"),
    [
        ({"multiattach": "<is> False"}, "sets 'multiattach' to '<is> False'"),
        ({"multiattach": "True"}, "sets 'multiattach' to 'True'"),
        ({"volume_backend_name": "ssd"}, "has no 'multiattach'"),
    ],
)
def test_cinder_multiattach_refuses_a_type_without_it(specs: dict[str, str], found: str) -> None:
    args = resource_args(HA, cinder(volume_type_extra_specs=specs), "imagelib")
    assert violations(storage.cinder_multiattach, args) == [multiattach_msg(found)]


def test_cinder_multiattach_checks_settings_created_without_the_component() -> None:
    props = {**settings_props(), "backend": "cinder", "mount_path": None, "volume_type": "imagelib-ssd",
             "volume_type_extra_specs": {"multiattach": "<is> False"}}
    assert violations(storage.cinder_multiattach, resource_args(SETTINGS, props, "s")) == [
        multiattach_msg("sets 'multiattach' to '<is> False'", kind="ImageLibrarySettings", name="s")
    ]


def test_cinder_multiattach_skips_unknowns_types_it_does_not_create_and_file_backends() -> None:
    for props in (
        cinder(volume_type_extra_specs=UNKNOWN),
        cinder(volume_type_extra_specs={"multiattach": UNKNOWN}),
        cinder(volume_type_extra_specs=None),
        ha(volume_type_extra_specs={"multiattach": "<is> False"}),  # nfs: no volume type at all
    ):
        assert violations(storage.cinder_multiattach, resource_args(HA, props, "imagelib")) == []


# --- minimum-hosts -----------------------------------------------------------------------------


def one_host() -> dict[str, Any]:
    props = ha(host_count=1, host_names=["host-1"])
    props["hosts"] = props["hosts"][:1]
    return props


def test_minimum_hosts_happy_path() -> None:
    assert violations(hosts_and_region.minimum_hosts, resource_args(HA, ha(), "imagelib")) == []


def test_minimum_hosts_single_host() -> None:
    assert violations(hosts_and_region.minimum_hosts, resource_args(HA, one_host(), "imagelib")) == [
        "ImageLibraryHA 'imagelib' has 1 image-library host; high availability needs at least 2. "
        "Add hosts of the same region to pcd-imagelib-ha:hosts."
    ]


def test_minimum_hosts_configurable_count() -> None:
    args = resource_args(HA, ha(), "imagelib", config={"minimumHosts": 4})
    assert violations(hosts_and_region.minimum_hosts, args) == [
        "ImageLibraryHA 'imagelib' has 3 image-library hosts; high availability needs at least 4. "
        "Add hosts of the same region to pcd-imagelib-ha:hosts."
    ]
    args = resource_args(HA, one_host(), "imagelib", config={"minimumHosts": 1})
    assert violations(hosts_and_region.minimum_hosts, args) == []


def test_minimum_hosts_unknown_skips() -> None:
    props = one_host()
    props["host_count"] = UNKNOWN
    props["hosts"] = UNKNOWN
    assert violations(hosts_and_region.minimum_hosts, resource_args(HA, props, "imagelib")) == []


@pytest.mark.parametrize("bad", [0, "two", True, 1.5])
def test_minimum_hosts_rejects_bad_config(bad: object) -> None:
    with pytest.raises(PolicyConfigError, match="minimumHosts must be an integer of at least 1"):
        violations(
            hosts_and_region.minimum_hosts, resource_args(HA, ha(), "imagelib", config={"minimumHosts": bad})
        )


def test_minimum_hosts_is_advisory_by_default() -> None:
    assert hosts_and_region.minimum_hosts.enforcement_level is not None
    assert hosts_and_region.minimum_hosts.enforcement_level.value == "advisory"


# --- images-through-image-library-hosts -------------------------------------------------------

IMAGE_PROPS = {"name": "cirros", "containerFormat": "bare", "diskFormat": "qcow2", "localFilePath": "/tmp/c"}
NO_OVERRIDE_MSG = (
    "Image 'cirros' is uploaded through OpenStack provider '{provider}', which has no 'image' endpoint "
    "override, so it goes to the region's public image endpoint that PCD cannot boot from. Set "
    "endpoint_overrides={{'image': <an image-library host's endpoint>}} on the provider, or create the image "
    "with FailoverImage."
)


def image_args(provider: Any) -> Any:
    return resource_args(OS_IMAGE, IMAGE_PROPS, "cirros", provider=provider)


def test_image_through_host_override_passes() -> None:
    args = image_args(openstack_provider())
    assert violations(image_uploads.images_through_image_library_hosts, args) == []


def test_image_override_as_object_passes() -> None:
    provider = openstack_provider(endpointOverrides={"image": "https://host-2.example.com:9292"})
    assert violations(image_uploads.images_through_image_library_hosts, image_args(provider)) == []


def test_image_without_endpoint_overrides() -> None:
    provider = openstack_provider(name="default_5_5_3", endpointOverrides=None)
    assert violations(image_uploads.images_through_image_library_hosts, image_args(provider)) == [
        NO_OVERRIDE_MSG.format(provider="default_5_5_3")
    ]


def test_image_with_overrides_for_other_services_only() -> None:
    provider = openstack_provider(endpointOverrides='{"network":"https://neutron.example.com"}')
    assert violations(image_uploads.images_through_image_library_hosts, image_args(provider)) == [
        NO_OVERRIDE_MSG.format(provider="image-host-1")
    ]


def test_image_with_empty_image_override() -> None:
    provider = openstack_provider(endpointOverrides='{"image":""}')
    assert violations(image_uploads.images_through_image_library_hosts, image_args(provider)) == [
        NO_OVERRIDE_MSG.format(provider="image-host-1")
    ]


def test_image_override_unknown_at_preview_skips() -> None:
    args = image_args(openstack_provider(endpointOverrides=UNKNOWN))
    assert violations(image_uploads.images_through_image_library_hosts, args) == []
    inner_unknown = '{"image":"' + UNKNOWN + '"}'
    provider = openstack_provider(endpointOverrides=inner_unknown)
    assert violations(image_uploads.images_through_image_library_hosts, image_args(provider)) == []


def test_image_without_provider_information_skips() -> None:
    assert violations(image_uploads.images_through_image_library_hosts, image_args(None)) == []


def test_image_rule_ignores_other_types() -> None:
    provider = openstack_provider(endpointOverrides=None)
    args = resource_args(OS_VOLUME_TYPE, {"name": "x"}, "vt", provider=provider)
    assert violations(image_uploads.images_through_image_library_hosts, args) == []


# --- tls-verification --------------------------------------------------------------------------


def test_tls_provider_insecure_false_string_passes() -> None:
    # "false" is a truthy Python string: the rule must parse it, not test it.
    args = resource_args(OS_PROVIDER, provider_props(insecure="false"), "image-host-1")
    assert violations(tls.tls_verification, args) == []
    args = resource_args(OS_PROVIDER, provider_props(insecure=None), "image-host-1")
    assert violations(tls.tls_verification, args) == []


def test_tls_provider_insecure_true() -> None:
    args = resource_args(OS_PROVIDER, provider_props(insecure="true"), "image-host-1")
    assert violations(tls.tls_verification, args) == [
        "OpenStack provider 'image-host-1' disables TLS verification (insecure) in stack 'prod'. Remove "
        "insecure and set cacert_file to the region's CA bundle, or add the stack to this policy's "
        "allowedStacks if it is a lab."
    ]


def test_tls_component_insecure() -> None:
    assert violations(tls.tls_verification, resource_args(HA, ha(), "imagelib")) == []
    assert violations(tls.tls_verification, resource_args(HA, ha(insecure=True), "imagelib")) == [
        "ImageLibraryHA 'imagelib' disables TLS verification (pcd-imagelib-ha:cloud.insecure) in stack "
        "'prod'. Set pcd-imagelib-ha:cloud.insecure to false and pcd-imagelib-ha:cloud.caBundle to the "
        "region's CA bundle, or set pcd-imagelib-ha:lab: true if it is a lab."
    ]


def test_tls_a_deployment_is_exempt_by_its_lab_flag_not_by_its_stack_name() -> None:
    lab_flag_prod_name = resource_args(HA, ha(insecure=True, lab=True), "imagelib", stack="prod")
    assert violations(tls.tls_verification, lab_flag_prod_name) == []
    lab_name_no_flag = resource_args(HA, ha(insecure=True, lab=False), "imagelib", stack="lab")
    assert len(violations(tls.tls_verification, lab_name_no_flag)) == 1


def test_tls_allowed_stacks_for_providers() -> None:
    dev = resource_args(OS_PROVIDER, provider_props(insecure="true"), "p", stack="dev",
                        config={"allowedStacks": ["dev"]})
    assert violations(tls.tls_verification, dev) == []
    not_listed = resource_args(OS_PROVIDER, provider_props(insecure="true"), "p", stack="dev",
                               config={"allowedStacks": []})
    assert len(violations(tls.tls_verification, not_listed)) == 1


def test_tls_unknown_skips() -> None:
    assert violations(tls.tls_verification, resource_args(HA, ha(insecure=UNKNOWN), "imagelib")) == []
    args = resource_args(OS_PROVIDER, provider_props(insecure=UNKNOWN), "p")
    assert violations(tls.tls_verification, args) == []


# --- secrets -----------------------------------------------------------------------------------


def test_no_message_echoes_a_secret() -> None:
    """Every resource rule, fed violating resources that carry secrets everywhere a secret could be."""
    secret_settings = settings_props()
    secret_settings.update(backend="local", mount_path=SECRET)
    secret_settings["hosts"] = secret_settings["hosts"][:1]
    local_settings = {**settings_props(), "backend": "local"}
    cases = [
        (storage.shared_storage_required, resource_args(SETTINGS, local_settings, "s")),
        (hosts_and_region.minimum_hosts, resource_args(SETTINGS, secret_settings, "s")),
        (image_uploads.images_through_image_library_hosts,
         image_args(openstack_provider(endpointOverrides=None, password=SECRET, token=SECRET))),
        (tls.tls_verification,
         resource_args(OS_PROVIDER, provider_props(insecure="true", token=SECRET), "p")),
        (tls.tls_verification, resource_args(HA, ha(insecure=True), "imagelib")),
    ]
    for policy, args in cases:
        messages = violations(policy, args)
        assert messages, f"{policy.name} reported nothing for its violating fixture"
        for message in messages:
            assert SECRET not in message
