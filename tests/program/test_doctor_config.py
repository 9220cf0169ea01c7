"""doctor reads the stack file as the program does; what only the Pulumi CLI can decrypt is refused by key."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from imagelib_ha import doctor
from imagelib_ha.settings import SettingsError


def _stack_file(tmp_path: Path, config: dict[str, object]) -> Path:
    path = tmp_path / "Pulumi.prod.yaml"
    path.write_text(yaml.safe_dump({"config": config}))
    return path


def test_a_cli_encrypted_value_is_refused_naming_its_key(tmp_path: Path) -> None:
    cloud = {"username": "admin", "password": {"secure": "AAE="}}
    path = _stack_file(tmp_path, {"pcd-imagelib-ha:cloud": cloud})
    with pytest.raises(SettingsError) as caught:
        doctor.stack_config(path, None)
    assert caught.value.keys == ["pcd-imagelib-ha:cloud.password"]
    assert "passwordEnv" in str(caught.value)


def test_os_cloud_replaces_the_stack_files_credentials(tmp_path: Path) -> None:
    path = _stack_file(tmp_path, {"pcd-imagelib-ha:cloud": {"authUrlEnv": "OS_AUTH_URL", "region": "R1",
                                                            "passwordEnv": "X", "username": "u"}})
    config = doctor.stack_config(path, "prod-admin")
    assert config["pcd-imagelib-ha:cloud"] == {"region": "R1", "cloud": "prod-admin"}


def test_a_missing_stack_file_exits_3_with_the_fix(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert doctor.main(["--stack-file", str(tmp_path / "nope.yaml")]) == doctor.EXIT_CANNOT_RUN
    assert "--stack-file" in capsys.readouterr().err
