"""Malformed stack config: one clear message naming the key as the operator writes it, no traceback."""

from __future__ import annotations

import copy
from typing import Any

import pulumi
import pytest
from program_configs import EXAMPLE_PASSWORD, example_nfs_config, lab_config, with_change

from imagelib_ha.inprocess.recording import run_program
from imagelib_ha.settings import SettingsError, parse_settings


def settings_error(config: dict[str, Any], env: dict[str, str] | None = None) -> SettingsError:
    with pytest.raises(SettingsError) as caught:
        parse_settings(config, env={} if env is None else env)
    return caught.value


def test_example_config_is_valid() -> None:
    settings = parse_settings(example_nfs_config(), env={})
    assert settings.storage.mount_path == "/var/opt/imagelibrary/data"
    assert [h.host for h in settings.hosts][:2] == ["pcd-host-01.example.com", "pcd-host-02.example.com"]
    assert settings.cloud_access()["password"] == EXAMPLE_PASSWORD
    assert EXAMPLE_PASSWORD not in repr(settings)


def test_lab_config_reads_its_secret_and_addresses_from_the_environment(lab_env: dict[str, str]) -> None:
    settings = parse_settings(lab_config(), env=lab_env)
    assert settings.lab is True
    assert settings.cloud_access()["auth_url"] == lab_env["OS_AUTH_URL"]
    assert settings.cloud_access()["password"] == lab_env["PCD_LAB_PASSWORD"]
    assert settings.storage.mount_path == lab_env["PCD_LAB_STORE_PATH"]


def test_duplicate_hosts() -> None:
    config = example_nfs_config()
    config["hosts"].append({"hostname": "PCD-HOST-01.example.com"})
    error = settings_error(config)
    assert error.keys == ["pcd-imagelib-ha:hosts[3]"]
    assert "repeats host 'PCD-HOST-01.example.com' already listed as hosts[0]" in str(error)


def test_empty_host_list() -> None:
    error = settings_error(with_change(example_nfs_config(), "hosts", []))
    assert error.keys == ["pcd-imagelib-ha:hosts"]
    assert "empty list" in str(error)


def test_missing_host_list() -> None:
    config = example_nfs_config()
    del config["hosts"]
    assert settings_error(config).keys == ["pcd-imagelib-ha:hosts"]


def test_relative_mount_path() -> None:
    error = settings_error(with_change(example_nfs_config(), "storage.nfs.mountPath", "imagelibrary/data"))
    assert error.keys == ["pcd-imagelib-ha:storage.nfs.mountPath"]
    assert "'imagelibrary/data' is a relative path" in str(error)
    assert "absolute path" in str(error)


def test_relative_host_mount_path() -> None:
    error = settings_error(with_change(example_nfs_config(), "hosts.1.mountPath", "data"))
    assert error.keys == ["pcd-imagelib-ha:hosts[1].mountPath"]


def test_unknown_backend() -> None:
    error = settings_error(with_change(example_nfs_config(), "storage.backend", "ceph"))
    assert error.keys == ["pcd-imagelib-ha:storage.backend"]
    assert "'ceph'" in str(error) and "'nfs', 'cinder' or 'local'" in str(error)


def test_missing_secret() -> None:
    config = example_nfs_config()
    del config["cloud"]["password"]
    error = settings_error(config)
    assert error.keys == ["pcd-imagelib-ha:cloud.password"]
    assert "pulumi config set --secret --path cloud.password" in str(error)


def test_password_env_not_exported() -> None:
    config = example_nfs_config()
    del config["cloud"]["password"]
    config["cloud"]["passwordEnv"] = "PCD_TEST_PASSWORD_UNSET"
    error = settings_error(config, env={})
    assert error.keys == ["pcd-imagelib-ha:cloud.passwordEnv"]
    assert "PCD_TEST_PASSWORD_UNSET, which is not set" in str(error)


def test_application_credential_without_its_secret() -> None:
    config = example_nfs_config()
    config["cloud"]["applicationCredentialId"] = "abc123"
    error = settings_error(config)
    assert error.keys == ["pcd-imagelib-ha:cloud.applicationCredentialSecret"]


def test_url_without_scheme() -> None:
    error = settings_error(with_change(example_nfs_config(), "cloud.authUrl", "pcd.example.com/keystone/v3"))
    assert error.keys == ["pcd-imagelib-ha:cloud.authUrl"]
    assert "http:// or https:// scheme" in str(error)


def test_image_url_with_unsupported_scheme() -> None:
    error = settings_error(with_change(example_nfs_config(), "images.0.source", "ftp://mirror/img.qcow2"))
    assert error.keys == ["pcd-imagelib-ha:images[0].source"]


def test_insecure_given_as_a_string() -> None:
    error = settings_error(with_change(example_nfs_config(), "cloud.insecure", "false"))
    assert error.keys == ["pcd-imagelib-ha:cloud.insecure"]
    assert "must be true or false, got the string 'false'" in str(error)
    assert "without quotes" in str(error)


def test_duplicate_image_names() -> None:
    config = example_nfs_config()
    config["images"].append(copy.deepcopy(config["images"][0]))
    error = settings_error(config)
    assert error.keys == ["pcd-imagelib-ha:images[1].name"]
    assert "repeats image name 'ubuntu-24.04'" in str(error)


@pytest.mark.parametrize(
    ("path", "value", "key", "expected"),
    [
        ("health.probeTimeoutSeconds", "5", "health.probeTimeoutSeconds", "must be a number of seconds"),
        ("health.minHealthyHosts", 1.5, "health.minHealthyHosts", "must be a whole number"),
        ("hosts", {"hostname": "a"}, "hosts", "must be a list"),
        ("storage.cinder", "gold", "storage.cinder", "must be an object"),
        ("cloud.region", 7, "cloud.region", "must be a string"),
        ("images.0.tags", "base", "images[0].tags", "must be a list"),
    ],
)
def test_wrong_types(path: str, value: Any, key: str, expected: str) -> None:
    error = settings_error(with_change(example_nfs_config(), path, value))
    assert error.keys == [f"pcd-imagelib-ha:{key}"]
    assert expected in str(error)


def test_top_level_boolean_given_as_a_word() -> None:
    error = settings_error(with_change(example_nfs_config(), "lab", "yes"))
    assert error.keys == ["pcd-imagelib-ha:lab"]


def test_misspelt_key() -> None:
    error = settings_error(with_change(example_nfs_config(), "storage.nfs.mountpath", "/data"))
    assert error.keys == ["pcd-imagelib-ha:storage.nfs.mountpath"]
    assert "not a known key" in str(error)


def test_cinder_without_volume_type() -> None:
    error = settings_error(with_change(example_nfs_config(), "storage", {"backend": "cinder"}))
    assert error.keys == ["pcd-imagelib-ha:storage.cinder.volumeType"]


def test_secret_value_never_echoed() -> None:
    error = settings_error(with_change(example_nfs_config(), "cloud.password", 123456789))
    assert error.keys == ["pcd-imagelib-ha:cloud.password"]
    assert "123456789" not in str(error)


def test_several_problems_are_reported_together() -> None:
    config = with_change(example_nfs_config(), "storage.backend", "ceph")
    config = with_change(config, "cloud.insecure", "no")
    error = settings_error(config)
    assert sorted(error.keys) == ["pcd-imagelib-ha:cloud.insecure", "pcd-imagelib-ha:storage.backend"]


def test_ha_prerequisites_are_not_settings_errors() -> None:
    # Two regions, local storage with several hosts, differing mount paths, one host: well-formed config
    # that the policy pack and the providers' check refuse, not the settings.
    config = example_nfs_config()
    config["storage"] = {"backend": "local", "local": {"path": "/srv/images"}}
    config["hosts"][1]["region"] = "Region2"
    config["hosts"][2]["mountPath"] = "/mnt/other"
    assert parse_settings(config, env={}).storage.mount_path == "/srv/images"
    single = with_change(config, "hosts", config["hosts"][:1])
    del single["health"]["minHealthyHosts"]
    assert len(parse_settings(single, env={}).hosts) == 1


def test_program_stops_with_the_settings_message_not_a_traceback() -> None:
    config = with_change(example_nfs_config(), "storage.nfs.mountPath", "relative")
    with pytest.raises(pulumi.RunError) as caught:
        run_program(config, stack="example")
    assert isinstance(caught.value, SettingsError)
    assert caught.value.keys == ["pcd-imagelib-ha:storage.nfs.mountPath"]


def test_misspelt_top_level_key_stops_the_program() -> None:
    config = example_nfs_config()
    config["host"] = [{"hostname": "x"}]
    with pytest.raises(SettingsError) as caught:
        run_program(config, stack="example")
    assert caught.value.keys == ["pcd-imagelib-ha:host"]


def test_a_password_in_plain_stack_config_is_warned_about(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    import imagelib_ha.inprocess.recording as recording

    def no_secret_keys(config: dict[str, Any]) -> tuple[dict[str, str], list[str]]:
        flat, _secret = original(config)
        return flat, []

    original = recording.stack_config
    monkeypatch.setattr(recording, "stack_config", no_secret_keys)
    with caplog.at_level("WARNING"):
        run_program(example_nfs_config(), stack="example")
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any("pcd-imagelib-ha:cloud.password is stored in plain text" in w for w in warnings)
    assert not any(EXAMPLE_PASSWORD in w for w in warnings)

    caplog.clear()
    monkeypatch.setattr(recording, "stack_config", original)
    with caplog.at_level("WARNING"):
        run_program(example_nfs_config(), stack="example")
    assert not any("plain text" in r.getMessage() for r in caplog.records)
