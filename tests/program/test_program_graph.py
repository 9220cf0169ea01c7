"""The program under mocks builds the expected resource graph for the lab and the example configs.

The graph: ImageLibraryHA -> SharedImageStorage, ImageLibrarySettings, ImageLibraryHosts ->
(ImageLibraryRoleBaseline, ImageLibraryRoles), ImageLibraryHealth (after the roles), the images (after
the health). No dynamic resource takes credentials: the providers read them from the stack config.
"""

from __future__ import annotations

from typing import Any

import pytest
from program_configs import (
    EXAMPLE_PASSWORD,
    LAB_PASSWORD,
    example_cinder_config,
    example_nfs_config,
    lab_cinder_config,
    lab_config,
    with_change,
)
from pulumi.runtime.mocks import MockResourceArgs
from shaped_mocks import ShapedMocks

from imagelib_ha.inprocess.recording import ProgramRun, RecordedResource
from imagelib_ha.inprocess.recording import run_program as run_echo_program

HA = "pcd-imagelib-ha:index:ImageLibraryHA"
STORAGE = "pcd-imagelib-ha:index:SharedImageStorage"
HOSTS = "pcd-imagelib-ha:index:ImageLibraryHosts"
BASELINE = "pulumi-python:dynamic/imagelib:ImageLibraryRoleBaseline"
ROLES = "pulumi-python:dynamic/imagelib:ImageLibraryRoles"
SETTINGS = "pulumi-python:dynamic/imagelib:ImageLibrarySettings"
HEALTH = "pulumi-python:dynamic/imagelib:ImageLibraryHealth"
IMAGE = "pulumi-python:dynamic/imagelib:FailoverImage"
VOLUME_TYPE = "openstack:blockstorage/volumeTypeV3:VolumeTypeV3"
OPENSTACK_PROVIDER = "pulumi:providers:openstack"
DYNAMIC = (BASELINE, ROLES, SETTINGS, HEALTH, IMAGE)


def run_program(config: dict[str, Any], *, stack: str = "lab", preview: bool = False,
                mocks: ShapedMocks | None = None) -> ProgramRun:
    """The program under mocks whose dynamic resources answer with provider-shaped outputs."""
    return run_echo_program(config, stack=stack, preview=preview,
                            mocks=mocks if mocks is not None else ShapedMocks(preview=preview))


def one(run: ProgramRun, type_: str) -> RecordedResource:
    found = run.by_type(type_)
    assert len(found) == 1, f"expected one {type_}, got {[r.name for r in found]}"
    return found[0]


def holds(value: Any, needle: str) -> bool:
    if isinstance(value, str):
        return needle in value
    if isinstance(value, dict):
        return any(holds(v, needle) for v in value.values())
    if isinstance(value, list | tuple):
        return any(holds(v, needle) for v in value)
    return False


@pytest.fixture
def lab_run(lab_env: dict[str, str]) -> ProgramRun:
    return run_program(lab_config(), stack="lab")


@pytest.mark.parametrize(
    ("make_config", "stack", "expected_hosts"),
    [
        (lab_config, "lab", 3),
        (lab_cinder_config, "lab-cinder", 3),
        (example_nfs_config, "example", 3),
        (example_cinder_config, "example", 3),
    ],
)
def test_one_roles_resource_for_the_host_set_health_after_the_roles_images_after_health(
    lab_env: dict[str, str], make_config: Any, stack: str, expected_hosts: int
) -> None:
    config = make_config()
    run = run_program(config, stack=stack)
    ha = one(run, HA)
    settings = one(run, SETTINGS)

    hosts = one(run, HOSTS)
    baseline = one(run, BASELINE)
    roles = one(run, ROLES)
    assert hosts.parent == ha.urn and hosts.name == f"{ha.name}-hosts"
    assert (baseline.parent, baseline.name) == (hosts.urn, f"{hosts.name}-baseline")
    assert (roles.parent, roles.name) == (hosts.urn, f"{hosts.name}-roles")
    refs = [h.get("id") or h.get("hostname") for h in config["hosts"]]
    assert len(refs) == expected_hosts
    assert baseline.inputs["hosts"] == refs
    assert [h["host"] for h in roles.inputs["hosts"]] == refs
    # The roles wait for the region's image-library settings and for the baseline, recorded before
    # any assignment.
    assert set(roles.dependencies) >= {settings.urn, baseline.urn}
    assert roles.property_dependencies.get("baseline") == [baseline.urn]
    assert baseline.dependencies == []

    health = one(run, HEALTH)
    assert health.parent == ha.urn
    assert set(health.dependencies) == {roles.urn}
    assert health.property_dependencies.get("role_host_ids") == [roles.urn]

    images = run.by_type(IMAGE)
    assert len(images) == len(config["images"])
    for image in images:
        assert image.parent == ha.urn
        assert health.urn in image.dependencies
        assert image.name.startswith(f"{ha.name}-image-")


def test_lab_cinder_stack_creates_a_multiattach_type_and_checks_every_host_reports_it(
    lab_env: dict[str, str],
) -> None:
    run = run_program(lab_cinder_config(), stack="lab-cinder")
    volume_type = one(run, VOLUME_TYPE).inputs
    assert (volume_type["name"], volume_type["isPublic"], volume_type["region"]) == (
        "image_library", True, "RegionOne")
    assert volume_type["extraSpecs"] == {"multiattach": "<is> True", "volume_backend_name": "nfs1"}
    provider = one(run, OPENSTACK_PROVIDER).inputs
    assert provider["authUrl"] == lab_env["OS_AUTH_URL"]
    assert "password" in one(run, OPENSTACK_PROVIDER).secret_inputs
    settings = one(run, SETTINGS).inputs
    assert (settings["backend"], settings["volume_type"]) == ("cinder", "image_library")
    health = one(run, HEALTH).inputs
    assert health["expected_store"] == {"type": "cinder", "volume_type": "image_library"}
    assert (health["probe_timeout"], health["canary"]) == (10, True)
    assert sorted(i.inputs["name"] for i in run.by_type(IMAGE)) == ["lab-cinder-tiny-a", "lab-cinder-tiny-b"]
    assert "cinder_volume_type = image_library" in run.outputs["glance_store_config"]


def test_children_are_named_after_and_parented_to_their_component(lab_run: ProgramRun) -> None:
    ha = one(lab_run, HA)
    assert ha.name == "imagelib-regionone"
    for resource in lab_run.resources:
        if resource is ha:
            continue
        parent = lab_run.by_urn()[resource.parent]
        assert resource.name.startswith(parent.name + "-"), resource.name


def test_type_tokens_follow_the_contract(lab_run: ProgramRun) -> None:
    types = {r.type for r in lab_run.resources}
    assert types == {HA, STORAGE, HOSTS, BASELINE, ROLES, SETTINGS, HEALTH, IMAGE}


def test_component_props_carry_config_known_facts_for_policies(
    lab_run: ProgramRun, lab_env: dict[str, str]
) -> None:
    props = one(lab_run, HA).inputs
    assert props["region"] == "RegionOne"
    assert props["backend"] == "nfs"
    assert props["mount_path"] == lab_env["PCD_LAB_STORE_PATH"]
    assert props.get("volume_type") is None  # None props are not sent to the engine
    assert props["host_count"] == 3
    assert props["host_names"] == ["lab-host-1.lab.local", "lab-host-2.lab.local", "lab-host-3.lab.local"]
    assert props["hosts"][0] == {"host": "lab-host-1.lab.local"}  # unset region and mount path: not sent
    assert props["lab"] is True and props["insecure"] is False
    hosts = one(lab_run, HOSTS).inputs
    assert hosts["region"] == "RegionOne"
    assert [h["host"] for h in hosts["hosts"]] == props["host_names"]
    storage = one(lab_run, STORAGE).inputs
    assert storage["backend"] == "nfs" and storage["region"] == "RegionOne"


def test_nfs_variant_creates_no_volume_type_and_renders_a_file_store(lab_env: dict[str, str]) -> None:
    run = run_program(example_nfs_config(), stack="example")
    assert run.by_type(VOLUME_TYPE) == []
    assert run.by_type(OPENSTACK_PROVIDER) == []
    storage = one(run, STORAGE).inputs
    assert (storage["nfs_server"], storage["nfs_export"]) == ("nfs.example.com", "/exports/imagelibrary")
    rendered = storage["glance_store_config"]
    assert "enabled_backends = file:file" in rendered
    assert "default_backend = file" in rendered
    assert "filesystem_store_datadir = /var/opt/imagelibrary/data" in rendered
    assert "cinder" not in rendered
    assert run.outputs["glance_store_config"] == rendered
    health = one(run, HEALTH).inputs
    assert health["expected_store"] == {"type": "file", "data_dir": "/var/opt/imagelibrary/data"}
    settings = one(run, SETTINGS).inputs
    assert (settings["backend"], settings["mount_path"], settings["shared"]) == (
        "nfs",
        "/var/opt/imagelibrary/data",
        True,
    )


def test_cinder_variant_creates_exactly_one_volume_type_with_the_explicit_provider() -> None:
    run = run_program(example_cinder_config(), stack="example")
    volume_type = one(run, VOLUME_TYPE)
    provider = one(run, OPENSTACK_PROVIDER)
    assert volume_type.provider.startswith(provider.urn + "::")
    assert volume_type.inputs["name"] == "imagelibrary"
    # Several hosts attach an image's volume at once: the type is multiattach without being asked.
    specs = {"multiattach": "<is> True", "volume_backend_name": "ceph-ssd"}
    assert volume_type.inputs["extraSpecs"] == specs
    assert volume_type.inputs["isPublic"] is True
    storage = one(run, STORAGE)
    assert volume_type.parent == storage.urn and provider.parent == storage.urn
    assert provider.inputs["authUrl"] == "https://pcd.example.com/keystone/v3"
    assert provider.inputs["region"] == "Region1"
    assert provider.inputs["cacertFile"] == "/etc/ssl/certs/pcd-example-ca.pem"
    # pulumi-openstack receives provider args as JSON strings: TLS verification stays on.
    assert provider.inputs["insecure"] == "false"
    rendered = storage.inputs["glance_store_config"]
    assert "enabled_backends = cinder:cinder" in rendered
    assert "cinder_volume_type = imagelibrary" in rendered
    assert "filesystem_store_datadir" not in rendered
    assert one(run, HEALTH).inputs["expected_store"] == {"type": "cinder", "volume_type": "imagelibrary"}
    assert one(run, SETTINGS).inputs["volume_type"] == "imagelibrary"
    # The settings' check and the policy pack judge the specs the type is created with.
    assert one(run, SETTINGS).inputs["volume_type_extra_specs"] == specs
    assert one(run, HA).inputs["volume_type_extra_specs"] == specs
    # The settings (blueprint) wait for the volume type to exist.
    assert volume_type.urn in one(run, SETTINGS).dependencies


def test_insecure_reaches_the_openstack_provider() -> None:
    run = run_program(with_change(example_cinder_config(), "cloud.insecure", True), stack="example")
    assert one(run, OPENSTACK_PROVIDER).inputs["insecure"] == "true"
    assert one(run, HA).inputs["insecure"] is True


@pytest.mark.parametrize(
    ("make_config", "password"),
    [
        (lab_config, LAB_PASSWORD),
        (example_nfs_config, EXAMPLE_PASSWORD),
        (example_cinder_config, EXAMPLE_PASSWORD),
    ],
)
def test_no_resource_carries_credentials_but_the_openstack_provider(
    lab_env: dict[str, str], make_config: Any, password: str
) -> None:
    run = run_program(make_config(), stack="example")
    for resource in run.resources:
        if resource.type == OPENSTACK_PROVIDER:
            continue
        assert not holds(resource.inputs, password), f"{resource.type} {resource.name} holds the password"
        assert "cloud" not in resource.inputs and "provider_version" not in resource.inputs
        if resource.type in DYNAMIC:
            # The pickled provider is the only secret input: it is a reference, no credentials.
            assert resource.secret_inputs == {"__provider"}, (resource.type, resource.secret_inputs)
        else:
            assert resource.secret_inputs == frozenset(), (resource.type, resource.secret_inputs)
    for provider in run.by_type(OPENSTACK_PROVIDER):
        assert provider.inputs["password"] == password and "password" in provider.secret_inputs
    assert not holds(run.outputs, password)


def test_images_are_protected_outside_the_lab_only(lab_run: ProgramRun) -> None:
    assert [r.protect for r in lab_run.by_type(IMAGE)] == [False, False]
    example = run_program(example_nfs_config(), stack="example")
    assert [r.protect for r in example.by_type(IMAGE)] == [True]
    unprotected = run_program(with_change(example_nfs_config(), "images.0.protect", False), stack="example")
    assert [r.protect for r in unprotected.by_type(IMAGE)] == [False]


def test_image_identity_defaults_to_project_stack_name_or_the_configured_key() -> None:
    run = run_program(example_nfs_config(), stack="prod")
    assert one(run, IMAGE).inputs["identity"] == "pcd-imagelib-ha/prod/ubuntu-24.04"
    keyed = run_program(with_change(example_nfs_config(), "images.0.key", "golden/ubuntu"), stack="prod")
    assert one(keyed, IMAGE).inputs["identity"] == "golden/ubuntu"


def test_role_and_health_inputs_come_from_the_settings() -> None:
    run = run_program(example_nfs_config(), stack="example")
    roles = one(run, ROLES).inputs
    assert roles["expected_region"] == "Region1"
    assert roles["hosts"][0] == {"host": "pcd-host-01.example.com", "region": "Region1",
                                 "mount_path": "/var/opt/imagelibrary/data"}
    assert (roles["converge_timeout"], roles["failed_grace"], roles["conflict_timeout"],
            roles["poll_interval"]) == (1800, 120, 600, 5)
    baseline = {k: v for k, v in one(run, BASELINE).inputs.items() if k != "__provider"}
    assert baseline == {"region": "Region1", "hosts": [
        "pcd-host-01.example.com", "pcd-host-02.example.com", "6f1c2a8e-2b7d-4a55-9d0e-3c1b7a9f4e21"]}
    health = one(run, HEALTH).inputs
    assert health["min_healthy"] == 2
    assert (health["service_unit"], health["log_path"]) == ("pf9-glance-api", "/var/log/pf9/glance-api.log")
    assert health["hosts"][2] == {
        "host": "6f1c2a8e-2b7d-4a55-9d0e-3c1b7a9f4e21",
        "region": "Region1",
        "mount_path": "/var/opt/imagelibrary/data",
    }


def urns(config: dict[str, Any], stack: str = "example") -> set[str]:
    return {r.urn for r in run_program(config, stack=stack).resources}


def test_respelling_or_reordering_hosts_changes_no_urn() -> None:
    """A URN change is a create plus a delete at the end of the deployment: naming a host by its id
    instead of its hostname, or listing the hosts in another order, must not change any URN."""
    config = example_nfs_config()
    before = urns(config)
    respelt = with_change(config, "hosts.0", {"id": "0d9c1b7e-5a41-4e8b-a0c2-7f3e2d1c4b5a",
                                              "region": "Region1", "mountPath": "/var/opt/imagelibrary/data"})
    reordered = with_change(config, "hosts", list(reversed(config["hosts"])))
    assert urns(respelt) == before
    assert urns(reordered) == before
    # ... while the roles do see the new spelling (their diff compares hosts by resmgr id).
    run = run_program(respelt, stack="example")
    assert one(run, BASELINE).inputs["hosts"][0] == "0d9c1b7e-5a41-4e8b-a0c2-7f3e2d1c4b5a"
    assert one(run, ROLES).inputs["hosts"][0]["host"] == "0d9c1b7e-5a41-4e8b-a0c2-7f3e2d1c4b5a"


def test_respelling_a_lab_host_changes_no_urn(lab_env: dict[str, str]) -> None:
    config = lab_config()
    before = urns(config, stack="lab")
    by_id = with_change(config, "hosts.1", {"id": "host-id-of-lab-host-2"})
    assert urns(by_id, stack="lab") == before
    assert urns(with_change(config, "hosts", config["hosts"][::-1]), stack="lab") == before


def test_preview_builds_the_same_graph(lab_env: dict[str, str]) -> None:
    up = run_program(lab_config(), stack="lab").resources
    preview = run_program(lab_config(), stack="lab", preview=True).resources

    def graph(records: list[RecordedResource]) -> list[tuple[str, str, list[str]]]:
        return sorted((r.type, r.urn, sorted(r.dependencies)) for r in records)

    assert graph(up) == graph(preview)
    roles = next(r for r in preview if r.type == ROLES)
    assert roles.inputs["baseline"] is not None  # unknown at preview, and still a dependency


def test_runs_do_not_leak_into_each_other(lab_env: dict[str, str]) -> None:
    first = run_program(example_cinder_config(), stack="one")
    second = run_program(lab_config(), stack="two")
    assert all(r.urn.startswith("urn:pulumi:two::") for r in second.resources)
    assert len(second.resources) < len(first.resources)
    assert second.by_type(VOLUME_TYPE) == []


class RefusingMocks(ShapedMocks):
    """Fails the registration of every health resource, as a broken provider would."""

    def new_resource(self, args: MockResourceArgs) -> tuple[str | None, dict[Any, Any]]:
        if args.typ == HEALTH:
            raise RuntimeError("health refused")
        return super().new_resource(args)


def test_a_run_that_fails_half_way_leaves_nothing_for_the_next(lab_env: dict[str, str]) -> None:
    with pytest.raises(Exception, match="health refused"):
        run_program(lab_config(), stack="lab", mocks=RefusingMocks())
    after = run_program(lab_config(), stack="lab")
    assert len(after.by_type(HEALTH)) == 1
    assert len(after.by_type(IMAGE)) == 2
