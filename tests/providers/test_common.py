"""The providers' shared pieces: inputs with defaults, seeded props, the 401 translation, the base class."""

from __future__ import annotations

from typing import Any

import pytest
from keystoneauth1 import exceptions as ks_exc

from imagelib_ha.client.errors import PcdError
from imagelib_ha.providers import common
from imagelib_ha.providers.health import ImageLibraryHealth, ImageLibraryHealthProvider
from imagelib_ha.providers.image import FailoverImage, FailoverImageProvider
from imagelib_ha.providers.role import ImageLibraryRole, ImageLibraryRoleProvider
from imagelib_ha.providers.settings import ImageLibrarySettings, ImageLibrarySettingsProvider


def test_inputs_with_defaults_keeps_only_inputs_fills_none_and_the_provider_version() -> None:
    defaults = {"tags": [], "timeout": 5}
    props = {"name": "a", "tags": None, "timeout": 9, "image_id": "output-only"}
    inputs = common.inputs_with_defaults(props, ("name", "provider_version", "tags", "timeout"), defaults)
    assert inputs == {"name": "a", "provider_version": common.PROVIDER_VERSION, "tags": [], "timeout": 9}
    kept = common.inputs_with_defaults({"provider_version": "0"}, ("provider_version",), {})
    assert kept == {"provider_version": "0"}


def test_filled_defaults_are_copies_never_the_shared_default() -> None:
    defaults: dict[str, Any] = {"tags": []}
    first = common.inputs_with_defaults({}, ("tags",), defaults)
    first["tags"].append("mutated")
    assert defaults == {"tags": []}
    assert common.inputs_with_defaults({}, ("tags",), defaults)["tags"] == []


def test_fill_defaults_leaves_keys_the_caller_left_out_alone() -> None:
    values = {"a": None, "b": 0}
    assert common.fill_defaults(values, {"a": 1, "b": 2, "c": 3}) == {"a": 1, "b": 0}


def test_seed_props_adds_the_provider_version_and_output_keys_without_overwriting() -> None:
    seeded = common.seed_props({"host": "h1", "endpoint": "given"}, ("host_id", "endpoint"))
    assert seeded == {"host": "h1", "provider_version": common.PROVIDER_VERSION, "host_id": None,
                      "endpoint": "given"}
    assert common.seed_props({"provider_version": "0"}, ())["provider_version"] == "0"


def test_a_keystone_401_becomes_a_clear_error_without_the_secret_or_the_chain() -> None:
    cloud = {"auth_url": "https://keystone.example:5000/v3", "password": "s3cret-Value"}
    with pytest.raises(PcdError) as caught, common.rejected_credentials_explained(cloud):
        raise ks_exc.Unauthorized("The request you have made requires authentication.")
    text = str(caught.value)
    assert "https://keystone.example:5000/v3" in text and "pcd-imagelib-ha:cloud" in text
    assert "s3cret-Value" not in text
    assert caught.value.__suppress_context__ and caught.value.__cause__ is None


def test_other_errors_pass_through_the_401_translation_unchanged() -> None:
    original = PcdError("resmgr said no")
    with pytest.raises(PcdError) as caught, common.rejected_credentials_explained({"auth_url": "x"}):
        raise original
    assert caught.value is original


@pytest.mark.parametrize(("resource", "provider", "token"), [
    (ImageLibraryRole, ImageLibraryRoleProvider, "dynamic/imagelib:ImageLibraryRole"),
    (ImageLibrarySettings, ImageLibrarySettingsProvider, "dynamic/imagelib:ImageLibrarySettings"),
    (ImageLibraryHealth, ImageLibraryHealthProvider, "dynamic/imagelib:ImageLibraryHealth"),
    (FailoverImage, FailoverImageProvider, "dynamic/imagelib:FailoverImage"),
])
def test_each_resource_keeps_its_type_token_and_provider(resource: Any, provider: Any, token: str) -> None:
    assert issubclass(resource, common.SeededResource)
    assert resource._resource_type_name == token
    assert resource.provider_class is provider
    # The provider class is importable by name from its own module: dill pickles it by reference.
    assert provider.__module__ == resource.__module__
