"""The providers' shared pieces: inputs with defaults, seeded props, numbers as doubles, legacy keys in
state, cloud access from ``configure()`` and the 401 translation, and the resource classes' contract."""

from __future__ import annotations

import json
from typing import Any

import pytest
from cloud_config import cloud_config, configured
from keystoneauth1 import exceptions as ks_exc
from pulumi.dynamic import ConfigureRequest
from pulumi.dynamic.config import Config

from imagelib_ha.client.errors import PcdError
from imagelib_ha.providers import common
from imagelib_ha.providers.access import CLOUD_KEY, CloudConfiguredProvider, CloudNotConfigured
from imagelib_ha.providers.baseline import ImageLibraryRoleBaseline, ImageLibraryRoleBaselineProvider
from imagelib_ha.providers.health import ImageLibraryHealth, ImageLibraryHealthProvider
from imagelib_ha.providers.image import FailoverImage, FailoverImageProvider
from imagelib_ha.providers.role import ImageLibraryRoleProvider
from imagelib_ha.providers.roles import ImageLibraryRoles, ImageLibraryRolesProvider
from imagelib_ha.providers.settings import ImageLibrarySettings, ImageLibrarySettingsProvider

AUTH_URL = "https://keystone.example:5000/v3"
PASSWORD = "s3cret-Value"
CLOUD = {"authUrl": AUTH_URL, "region": "RegionOne", "username": "admin", "password": PASSWORD,
         "projectName": "admin"}


def test_inputs_with_defaults_keeps_only_inputs_and_fills_none() -> None:
    defaults = {"tags": [], "timeout": 5}
    props = {"name": "a", "tags": None, "timeout": 9, "image_id": "output-only", "cloud": {"password": "x"},
             "provider_version": "1"}
    inputs = common.inputs_with_defaults(props, ("name", "tags", "timeout"), defaults)
    assert inputs == {"name": "a", "tags": [], "timeout": 9}


def test_filled_defaults_are_copies_never_the_shared_default() -> None:
    defaults: dict[str, Any] = {"tags": []}
    first = common.inputs_with_defaults({}, ("tags",), defaults)
    first["tags"].append("mutated")
    assert defaults == {"tags": []}
    assert common.inputs_with_defaults({}, ("tags",), defaults)["tags"] == []


def test_fill_defaults_leaves_keys_the_caller_left_out_alone() -> None:
    values = {"a": None, "b": 0}
    assert common.fill_defaults(values, {"a": 1, "b": 2, "c": 3}) == {"a": 1, "b": 0}


def test_seed_props_adds_output_keys_without_overwriting_and_nothing_else() -> None:
    seeded = common.seed_props({"hosts": ["h1"], "members": "given"}, ("members", "host_ids"))
    assert seeded == {"hosts": ["h1"], "members": "given", "host_ids": None}


@pytest.mark.parametrize(("value", "expected"), [
    (2, 2), (2.0, 2), (0.0, 0), (2.5, None), (True, None), ("2", None), (None, None),
])
def test_whole_numbers_arrive_as_doubles(value: Any, expected: int | None) -> None:
    got = common.whole_number(value)
    assert got == expected and (got is None or type(got) is int)


def test_legacy_keys_in_state_are_an_update_never_a_replace() -> None:
    olds = {"region": "RegionOne", "name": "a"}
    stored = {**olds, "cloud": {"password": "old"}, "provider_version": "1", "__provider": "blob"}
    result = common.diff_inputs(olds, dict(olds), replace_on=("region",), stored=stored)
    assert (result.changes, result.replaces) == (True, [])
    assert "cloud" not in result.stables and "provider_version" not in result.stables
    clean = common.diff_inputs(olds, dict(olds), replace_on=("region",), stored={**olds, "__provider": "b"})
    assert clean.changes is False


# --- cloud access from configure() ---------------------------------------------------------------------


def test_configure_reads_the_namespaced_cloud_key_as_the_provider_server_passes_it() -> None:
    provider = ImageLibraryRolesProvider()
    # What pulumi.dynamic's server builds from the engine's Configure request.
    config = Config(raw_config={CLOUD_KEY: json.dumps(CLOUD), "pcd-imagelib-ha:hosts": "[]",
                                "openstack:region": "RegionOne"}, project_name="project")
    provider.configure(ConfigureRequest(config))
    assert provider.cloud_failures() == []
    access = provider.access
    assert (access.auth_url, access.username, access.password, access.project_name) == (
        AUTH_URL, "admin", PASSWORD, "admin")


def test_configure_resolves_env_settings_in_the_provider_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PCD_TEST_AUTH_URL", AUTH_URL)
    monkeypatch.setenv("PCD_TEST_PASSWORD", PASSWORD)
    cloud = {"authUrlEnv": "PCD_TEST_AUTH_URL", "region": "RegionOne", "username": "admin",
             "passwordEnv": "PCD_TEST_PASSWORD", "projectName": "admin"}
    provider = ImageLibraryHealthProvider()
    provider.configure(ConfigureRequest(Config(raw_config=cloud_config(cloud), project_name="project")))
    assert (provider.access.auth_url, provider.access.password) == (AUTH_URL, PASSWORD)


@pytest.mark.parametrize(("raw", "key"), [
    ({}, "pcd-imagelib-ha:cloud"),
    (cloud_config({**CLOUD, "authUrl": None}), "pcd-imagelib-ha:cloud.authUrl"),
    (cloud_config({**CLOUD, "password": None}), "pcd-imagelib-ha:cloud.password"),
    (cloud_config({**CLOUD, "authUrl": "keystone:5000"}), "pcd-imagelib-ha:cloud.authUrl"),
    ({CLOUD_KEY: "not json"}, "pcd-imagelib-ha:cloud"),
    (cloud_config({**CLOUD, "regoin": "x"}), "pcd-imagelib-ha:cloud.regoin"),
])
def test_a_bad_cloud_config_is_a_check_failure_on_cloud_naming_the_key(raw: dict[str, str], key: str) -> None:
    provider = ImageLibrarySettingsProvider()
    provider.configure_from(raw, {})
    (failure,) = provider.cloud_failures()
    assert failure.property == "cloud" and key in failure.reason
    assert PASSWORD not in failure.reason
    with pytest.raises(CloudNotConfigured) as caught:
        _ = provider.access
    assert key in str(caught.value) and PASSWORD not in str(caught.value)


def test_a_provider_never_configured_has_no_check_failure_but_no_access_either() -> None:
    provider = ImageLibraryHealthProvider()
    assert provider.cloud_failures() == []
    with pytest.raises(CloudNotConfigured, match="pcd-imagelib-ha:cloud"):
        provider.session()


def test_configure_again_replaces_the_access_and_clears_the_problem() -> None:
    provider = ImageLibraryRolesProvider()
    provider.configure_from({}, {})
    assert provider.cloud_failures()
    configured(provider, CLOUD)
    assert provider.cloud_failures() == [] and provider.access.password == PASSWORD


def test_a_keystone_401_becomes_a_clear_error_without_the_secret_or_the_chain() -> None:
    provider = configured(ImageLibraryRolesProvider(), CLOUD)
    with pytest.raises(PcdError) as caught, provider.cloud_errors_explained():
        raise ks_exc.Unauthorized("The request you have made requires authentication.")
    text = str(caught.value)
    assert AUTH_URL in text and "pcd-imagelib-ha:cloud" in text
    assert PASSWORD not in text
    assert caught.value.__suppress_context__ and caught.value.__cause__ is None


@pytest.mark.parametrize("error", [PcdError("resmgr said no"), ks_exc.Forbidden("policy forbids it")])
def test_other_errors_and_a_403_pass_the_401_translation_unchanged(error: Exception) -> None:
    provider = configured(ImageLibraryRolesProvider(), CLOUD)
    with pytest.raises(type(error)) as caught, provider.cloud_errors_explained():
        raise error
    assert caught.value is error


def test_a_connection_timeout_names_the_timeout_setting() -> None:
    provider = configured(ImageLibraryRolesProvider(), CLOUD)
    with pytest.raises(PcdError) as caught, provider.cloud_errors_explained():
        raise ks_exc.ConnectTimeout("Request to https://keystone.example:5000/v3/auth/tokens timed out")
    text = str(caught.value)
    assert "pcd-imagelib-ha:cloud.timeoutSeconds" in text and "keystone.example" in text
    assert caught.value.__cause__ is None


# --- the resource classes ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("resource", "provider", "token"), [
    (ImageLibraryRoles, ImageLibraryRolesProvider, "dynamic/imagelib:ImageLibraryRoles"),
    (ImageLibraryRoleBaseline, ImageLibraryRoleBaselineProvider, "dynamic/imagelib:ImageLibraryRoleBaseline"),
    (ImageLibrarySettings, ImageLibrarySettingsProvider, "dynamic/imagelib:ImageLibrarySettings"),
    (ImageLibraryHealth, ImageLibraryHealthProvider, "dynamic/imagelib:ImageLibraryHealth"),
    (FailoverImage, FailoverImageProvider, "dynamic/imagelib:FailoverImage"),
])
def test_each_resource_keeps_its_type_token_and_provider(resource: Any, provider: Any, token: str) -> None:
    assert issubclass(resource, common.SeededResource)
    assert resource._resource_type_name == token
    assert resource.provider_class is provider
    assert issubclass(provider, CloudConfiguredProvider)
    # The provider class is importable by name from its own module: dill pickles it by reference.
    assert provider.__module__ == resource.__module__


def test_the_legacy_per_host_provider_stays_importable_where_state_pickled_it() -> None:
    assert ImageLibraryRoleProvider.__module__ == "imagelib_ha.providers.role"
    assert ImageLibraryRoleProvider.__qualname__ == "ImageLibraryRoleProvider"
    assert issubclass(ImageLibraryRoleProvider, CloudConfiguredProvider)
