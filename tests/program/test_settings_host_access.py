"""hostAccess: each malformed value is refused before any request, naming its key and the fix."""

from __future__ import annotations

from typing import Any

import asyncssh
import pytest
from program_configs import LAB_ENV, lab_config
from ssh_material import ssh_material_dir

from imagelib_ha.settings import SettingsError, host_access_from_config, parse_settings

KEY_TEXT = (ssh_material_dir() / "id_ed25519").read_text()


def _with_access(access: dict[str, Any]) -> dict[str, Any]:
    config = lab_config()
    config["hostAccess"] = access
    return config


def _error(access: dict[str, Any], env: dict[str, str] | None = None) -> SettingsError:
    with pytest.raises(SettingsError) as caught:
        parse_settings(_with_access(access), env=LAB_ENV if env is None else env)
    return caught.value


def test_the_lab_stack_resolves_its_key_known_hosts_and_ssh_config_from_the_environment() -> None:
    raw = {"pcd-imagelib-ha:hostAccess": lab_config()["hostAccess"]}
    access = host_access_from_config(raw, LAB_ENV)
    assert access is not None
    assert access["private_key"] == KEY_TEXT
    assert access["known_hosts"] == LAB_ENV["PCD_LAB_KNOWN_HOSTS"]
    assert access["ssh_config"] == LAB_ENV["PCD_LAB_SSH_CONFIG"]
    assert access["per_dial_timeout"] == 5
    assert host_access_from_config({}, LAB_ENV) is None


def test_no_key_and_no_agent_is_refused() -> None:
    err = _error({"knownHosts": LAB_ENV["PCD_LAB_KNOWN_HOSTS"]})
    assert err.keys == ["pcd-imagelib-ha:hostAccess"]
    assert "privateKey" in str(err)


def test_a_key_that_does_not_parse_is_refused_without_echoing_it() -> None:
    err = _error({"privateKey": "not-a-key-SECRET-123", "knownHosts": LAB_ENV["PCD_LAB_KNOWN_HOSTS"]})
    assert err.keys == ["pcd-imagelib-ha:hostAccess.privateKey"]
    assert "SECRET-123" not in str(err)


def test_a_wrong_passphrase_names_private_key_password() -> None:
    encrypted = asyncssh.generate_private_key("ssh-ed25519").export_private_key(passphrase="right").decode()
    err = _error({"privateKey": encrypted, "privateKeyPassword": "wrong",
                  "knownHosts": LAB_ENV["PCD_LAB_KNOWN_HOSTS"]})
    assert err.keys == ["pcd-imagelib-ha:hostAccess.privateKeyPassword"]
    assert "wrong" not in str(err)


def test_host_key_verification_cannot_be_configured_two_ways() -> None:
    pub = (ssh_material_dir() / "host_key.pub").read_text()
    err = _error({"privateKey": KEY_TEXT, "hostKey": pub, "knownHosts": LAB_ENV["PCD_LAB_KNOWN_HOSTS"]})
    assert "pcd-imagelib-ha:hostAccess.hostKey" in err.keys


def test_an_unreadable_known_hosts_file_is_refused(tmp_path: Any) -> None:
    err = _error({"privateKey": KEY_TEXT, "knownHosts": str(tmp_path / "missing")})
    assert err.keys == ["pcd-imagelib-ha:hostAccess.knownHosts"]


def test_without_known_hosts_the_default_file_is_required_not_skipped(tmp_path: Any) -> None:
    err = _error({"privateKey": KEY_TEXT}, env={**LAB_ENV, "HOME": str(tmp_path)})
    assert err.keys == ["pcd-imagelib-ha:hostAccess.knownHosts"]
    assert str(tmp_path / ".ssh" / "known_hosts") in str(err)


def test_a_host_key_that_is_not_a_key_is_refused() -> None:
    err = _error({"privateKey": KEY_TEXT, "hostKey": "ssh-ed25519 nonsense"})
    assert err.keys == ["pcd-imagelib-ha:hostAccess.hostKey"]


@pytest.mark.parametrize(("access", "key"), [
    ({"prt": 22}, "pcd-imagelib-ha:hostAccess.prt"),
    ({"port": 0}, "pcd-imagelib-ha:hostAccess.port"),
    ({"port": "22"}, "pcd-imagelib-ha:hostAccess.port"),
    ({"concurrency": 0}, "pcd-imagelib-ha:hostAccess.concurrency"),
    ({"perDialTimeout": 0}, "pcd-imagelib-ha:hostAccess.perDialTimeout"),
    ({"proxy": {"port": 22}}, "pcd-imagelib-ha:hostAccess.proxy.host"),
])
def test_malformed_values_name_their_key(access: dict[str, Any], key: str) -> None:
    err = _error({"privateKey": KEY_TEXT, "knownHosts": LAB_ENV["PCD_LAB_KNOWN_HOSTS"], **access})
    assert err.keys == [key]


def test_an_unset_environment_variable_is_named() -> None:
    env = {k: v for k, v in LAB_ENV.items() if k != "PCD_LAB_SSH_KEY"}
    err = _error(lab_config()["hostAccess"], env=env)
    assert err.keys == ["pcd-imagelib-ha:hostAccess.privateKeyEnv"]
    assert "PCD_LAB_SSH_KEY" in str(err)
