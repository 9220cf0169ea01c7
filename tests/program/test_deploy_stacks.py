"""``make up|down STACK=<name>``: the stack name picks the stack file, and a Cinder stack makes the lab
start with Cinder (and refuses a running lab without it), with and without the Pulumi CLI."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any, ClassVar

import pytest
from test_program_inprocess import FAKE_PULUMI

import lab.api
from imagelib_ha import deploy

LAB_ENV = {"OS_AUTH_URL": "http://127.0.0.1:1/v3", "PCD_LAB_PASSWORD": "pw-1"}


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    for name in ("Pulumi.lab.yaml", "Pulumi.lab-cinder.yaml"):
        (root / name).write_text((deploy.REPO / name).read_text())
    monkeypatch.setattr(deploy, "REPO", root)
    for key in LAB_ENV:
        monkeypatch.setenv(key, "placeholder")  # deploy exports the lab's variables: undone afterwards
    return root


def fake_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "pulumi").write_text(FAKE_PULUMI)
    (bin_dir / "pulumi").chmod(0o755)
    log = tmp_path / "calls.log"
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_PULUMI_LOG", str(log))
    return log


def test_up_of_the_cinder_stack_starts_the_lab_with_cinder_and_runs_that_stack(
    tmp_path: Path, repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = fake_cli(tmp_path, monkeypatch)
    started: list[tuple[bool, bool]] = []

    def environment(start: bool, *, cinder: bool = False) -> dict[str, str]:
        started.append((start, cinder))
        return dict(LAB_ENV)

    monkeypatch.setattr(deploy, "lab_environment", environment)
    assert deploy.main(["up", "--stack", "lab-cinder"]) == 0
    assert deploy.main(["up"]) == 0

    commands = [line.split(" | ")[0] for line in log.read_text().splitlines()]
    assert [c for c in commands if not c.startswith("login")] == [
        "stack select lab-cinder", "stack init lab-cinder --secrets-provider passphrase",
        "up --yes --stack lab-cinder",
        "stack select lab", "stack init lab --secrets-provider passphrase", "up --yes --stack lab",
    ]
    assert started == [(True, True), (True, False)]
    assert (repo / ".lab-images" / "lab-cinder-tiny-a.raw").exists()


class FakeLab:
    """The lab's Python API as deploy uses it: alive or not, with Cinder or not."""

    alive = False
    cinder = False
    started: ClassVar[list[dict[str, Any]]] = []

    def __init__(self) -> None:
        self.state_dir = Path("/tmp/lab-state")

    def agent_alive(self) -> bool:
        return self.alive

    def up(self, **options: Any) -> None:
        FakeLab.started.append(options)
        FakeLab.alive, FakeLab.cinder = True, bool(options.get("cinder"))

    def status(self) -> dict[str, Any]:
        return {"cinder": {"enabled": self.cinder}}

    def env(self) -> dict[str, str]:
        return dict(LAB_ENV)


@pytest.fixture
def fake_lab(monkeypatch: pytest.MonkeyPatch) -> type[FakeLab]:
    monkeypatch.setattr(lab.api, "Lab", FakeLab)
    monkeypatch.setattr(FakeLab, "alive", False)
    monkeypatch.setattr(FakeLab, "cinder", False)
    monkeypatch.setattr(FakeLab, "started", [])
    return FakeLab


def test_a_cinder_stack_starts_a_stopped_lab_with_cinder(fake_lab: type[FakeLab]) -> None:
    env = deploy.lab_environment(start=True, cinder=True)
    assert fake_lab.started == [{"cinder": True}]
    assert env == LAB_ENV  # no store path: a Cinder lab has no shared directory to mount


def test_a_cinder_stack_adds_cinder_to_a_running_lab_on_up_and_refuses_it_on_preview(
    fake_lab: type[FakeLab],
) -> None:
    fake_lab.alive = True
    with pytest.raises(deploy.DeployError) as caught:
        deploy.lab_environment(start=False, cinder=True)
    assert str(caught.value) == (
        "the lab in /tmp/lab-state runs without Cinder, which this stack's storage needs: "
        "`make up STACK=<this stack>` adds it"
    )
    assert fake_lab.started == []
    deploy.lab_environment(start=True, cinder=True)
    assert fake_lab.started == [{"cinder": True}]
    # An NFS stack leaves the lab as it runs.
    deploy.lab_environment(start=True)
    assert fake_lab.started == [{"cinder": True}]


def test_make_passes_the_stack_to_deploy() -> None:
    dry = subprocess.run(["make", "-n", "down", "STACK=lab-cinder"], cwd=deploy.REPO, capture_output=True,
                         text=True, check=True).stdout
    assert ".venv/bin/python -m imagelib_ha.deploy down --stack lab-cinder" in dry
    default = subprocess.run(["make", "-n", "down"], cwd=deploy.REPO, capture_output=True, text=True,
                             check=True).stdout
    assert ".venv/bin/python -m imagelib_ha.deploy down --stack lab" in default
