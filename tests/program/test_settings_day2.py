"""Settings that keep day-2 changes safe: checked before any request, each naming its key and the fix."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from program_configs import EXAMPLE_PASSWORD, example_nfs_config, lab_config, with_change
from ssh_material import lab_ssh_env

from imagelib_ha.settings import SettingsError, cloud_access_from_config, parse_settings

LAB_ENV = {"OS_AUTH_URL": "http://127.0.0.1:45123/v3", "PCD_LAB_PASSWORD": "pw-lab",
           "PCD_LAB_STORE_PATH": "/tmp/lab/store", **lab_ssh_env()}
DIGEST = "sha256:" + "ab" * 32


def settings_error(config: dict[str, Any], env: dict[str, str] | None = None) -> SettingsError:
    with pytest.raises(SettingsError) as caught:
        parse_settings(config, env={} if env is None else env)
    return caught.value


def with_images(config: dict[str, Any], *images: dict[str, Any]) -> dict[str, Any]:
    config = dict(config)
    config["images"] = [{"diskFormat": "raw", "containerFormat": "bare", **i} for i in images]
    return config


def test_two_images_with_one_explicit_key_are_refused() -> None:
    error = settings_error(with_images(
        example_nfs_config(),
        {"name": "a", "source": "a.raw", "key": "shared/key"},
        {"name": "b", "source": "b.raw", "key": "shared/key"},
    ))
    assert error.keys == ["pcd-imagelib-ha:images[1].key"]
    assert "repeats the key of images[0]" in str(error)


def test_image_names_that_collide_after_slugging_are_refused() -> None:
    error = settings_error(with_images(
        example_nfs_config(),
        {"name": "ubuntu 24.04", "source": "a.raw"},
        {"name": "ubuntu/24.04", "source": "b.raw"},
    ))
    assert error.keys == ["pcd-imagelib-ha:images[1].name"]
    assert "same resource name ('ubuntu-24.04')" in str(error)


def test_a_url_source_needs_a_digest() -> None:
    url = "https://images.example.com/u.qcow2"
    error = settings_error(with_images(example_nfs_config(), {"name": "u", "source": url}))
    assert error.keys == ["pcd-imagelib-ha:images[0].digest"]
    pinned = with_images(example_nfs_config(), {"name": "u", "source": url, "digest": DIGEST})
    assert parse_settings(pinned, env={}).images[0].digest == DIGEST


@pytest.mark.parametrize("url", [
    "https://user:tok3n-S3cret@images.example.com/u.qcow2",
    "https://images.example.com/u.qcow2?sig=S3cret",
    "https://images.example.com/u.qcow2#S3cret",
])
def test_a_url_that_may_carry_a_credential_is_refused_and_never_echoed(url: str) -> None:
    error = settings_error(with_images(example_nfs_config(), {"name": "u", "source": url, "digest": DIGEST}))
    assert error.keys == ["pcd-imagelib-ha:images[0].source"]
    assert "S3cret" not in str(error)


def test_a_malformed_digest_names_the_fix() -> None:
    error = settings_error(with_images(example_nfs_config(),
                                       {"name": "u", "source": "https://x.example/u", "digest": "md5:abc"}))
    assert error.keys == ["pcd-imagelib-ha:images[0].digest"]
    assert "sha256:<64 lowercase hex digits>" in str(error)


def test_plain_http_keystone_is_refused_outside_the_lab_and_allowed_in_it() -> None:
    config = with_change(example_nfs_config(), "cloud.authUrl", "http://pcd.example.com/keystone/v3")
    error = settings_error(config)
    assert "unencrypted" in str(error)
    assert error.keys == ["pcd-imagelib-ha:cloud.authUrl"]
    assert parse_settings(lab_config(), env=LAB_ENV).lab is True  # the lab's Keystone is http://


def test_http_via_an_env_variable_is_refused_too() -> None:
    config = example_nfs_config()
    del config["cloud"]["authUrl"]
    config["cloud"]["authUrlEnv"] = "MY_AUTH"
    error = settings_error(config, env={"MY_AUTH": "http://pcd.example.com/keystone/v3"})
    assert error.keys == ["pcd-imagelib-ha:cloud.authUrl"]


def write_clouds_yaml(tmp_path: Path) -> Path:
    path = tmp_path / "clouds.yaml"
    path.write_text(json.dumps({"clouds": {"prod": {
        "auth": {"auth_url": "https://k.example.com/v3", "username": "ops", "password": "yaml-S3cret",
                 "project_name": "service", "user_domain_name": "Default", "project_domain_name": "Default"},
        "region_name": "Region9", "cacert": "/etc/ssl/pcd.pem",
    }}}))
    return path


def test_a_clouds_yaml_entry_fills_the_cloud_keys_left_unset(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(write_clouds_yaml(tmp_path)))
    access = cloud_access_from_config(
        {"pcd-imagelib-ha:cloud": json.dumps({"cloud": "prod", "username": "override"})}, env={}
    )
    assert access["auth_url"] == "https://k.example.com/v3"
    assert access["region"] == "Region9"
    assert access["password"] == "yaml-S3cret"
    assert access["username"] == "override"  # the stack config wins
    assert access["ca_bundle"] == "/etc/ssl/pcd.pem"


def test_an_unknown_clouds_yaml_entry_is_named(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(write_clouds_yaml(tmp_path)))
    with pytest.raises(SettingsError) as caught:
        cloud_access_from_config({"pcd-imagelib-ha:cloud": json.dumps({"cloud": "nope"})}, env={})
    assert "pcd-imagelib-ha:cloud.cloud" in caught.value.keys


def test_the_providers_read_only_the_cloud_section_and_resolve_env_keys() -> None:
    raw = {"pcd-imagelib-ha:cloud": json.dumps(lab_config()["cloud"]),
           "pcd-imagelib-ha:hosts": "not even json"}  # the program judges that key, not the providers
    access = cloud_access_from_config(raw, env=LAB_ENV)
    assert access["password"] == "pw-lab"
    assert access["timeout"] == 30


def test_a_missing_password_env_is_named_without_a_value() -> None:
    config = example_nfs_config()
    with pytest.raises(SettingsError) as caught:
        cloud_access_from_config({"pcd-imagelib-ha:cloud": json.dumps(
            {**config["cloud"], "password": None, "passwordEnv": "PW"})}, env={})
    assert caught.value.keys == ["pcd-imagelib-ha:cloud.passwordEnv"]
    assert EXAMPLE_PASSWORD not in str(caught.value)
