"""Host-check drills on real lab hosts over real sshd: each machine fault flags exactly its host, with
its reason, while the other hosts stay serving; old, pre-convergence and rotated-away log lines behave.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncssh
import pytest
from drillkit import REGION_ONE_HOSTS, host, session_of

from imagelib_ha import doctor
from imagelib_ha.client import own_requests
from imagelib_ha.client.glance import GlanceHost, SizedHashingUpload, Timeouts
from imagelib_ha.client.health import ExpectedStore, HealthChecker, HealthReport, RoleHost
from imagelib_ha.client.host_access import HostAccess
from imagelib_ha.client.host_checks import HostChecker, HostCheckSpec
from imagelib_ha.settings import DEFAULT_LOG_PATH, DEFAULT_SERVICE_UNIT
from lab.api import Lab

pytestmark = pytest.mark.lab

DrillLab = tuple[Lab, dict[str, Any]]


def _access(status: dict[str, Any], known_hosts: Path | None = None) -> HostAccess:
    ssh = Path(status["state_dir"]) / "ssh"
    return HostAccess(private_key=(ssh / "id_ed25519").read_text(),
                      known_hosts=str(known_hosts or ssh / "known_hosts"), ssh_config=str(ssh / "ssh_config"),
                      per_dial_timeout=5, dial_error_limit=2)


class Round:
    """One drill's health checker with host checks; each call is one probe round (cursors kept)."""

    def __init__(self, status: dict[str, Any], known_hosts: Path | None = None,
                 own_request_ids: frozenset[str] = frozenset()) -> None:
        # Without mount namespaces (PCD_LAB_NO_NAMESPACES) lab hosts run no sshd: these drills must
        # fail there, not pass by skipping.
        assert status["namespaces"], "this lab runs without mount namespaces: its hosts run no sshd"
        self.status = status
        expected = ExpectedStore("file", data_dir=status["store_path"])
        self.host_checker = HostChecker(_access(status, known_hosts),
                                        HostCheckSpec(DEFAULT_SERVICE_UNIT, DEFAULT_LOG_PATH, expected,
                                                      own_request_ids))
        self.checker = HealthChecker(session_of(status), region=status["region"], expected_store=expected,
                                     probe_timeout=5, host_checker=self.host_checker)
        self.hosts = [RoleHost(h["id"], h["hostname"], h["endpoint"]) for h in status["hosts"]
                      if h["name"] in REGION_ONE_HOSTS]

    def __call__(self) -> HealthReport:
        return self.checker.probe(self.hosts, reauthenticate=False)

    def close(self) -> None:
        self.host_checker.close()


def rows(report: HealthReport) -> dict[str, tuple[str, str, tuple[str, ...]]]:
    """host name -> (status, host-check state, failing checks)."""
    return {(h.hostname or "").split(".")[0]: (h.status, h.host_checks, h.host_failed_checks)
            for h in report.hosts}


def others_fine(report: HealthReport, *faulty: str) -> None:
    for name, row in rows(report).items():
        if name not in faulty:
            assert row == ("serving", "ok", ()), report.table()


@pytest.fixture
def round_(drill_lab: DrillLab) -> Iterator[Round]:
    _, status = drill_lab
    r = Round(status)
    first = r()  # sets every log cursor: lines from before (Glance's start, convergence) never count
    expected = {n: ("serving", "ok") for n in REGION_ONE_HOSTS}
    assert {n: row[:2] for n, row in rows(first).items()} == expected, first.table()
    try:
        yield r
    finally:
        r.close()


def reconverge(lab: Lab, *names: str) -> None:
    """A role change lays the host out again (mount, glance uid, rendered config), as PCD's agent does."""
    def again(name: str) -> None:
        lab.revoke_role(name)
        lab.grant_role(name)

    threads = [threading.Thread(target=again, args=(n,)) for n in names]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def test_errors_logged_before_the_role_converged_never_count(drill_lab: DrillLab, round_: Round) -> None:
    lab, _ = drill_lab
    # Logged by the host's previous life: the converge that follows restarts its Glance, and errors
    # from before a (re)start are not the running service's.
    lab.host_fault("lab-host-1", "log-error", "before convergence: Unable to open store")
    reconverge(lab, "lab-host-1")
    log = Path(host(round_.status, "lab-host-1")["log"]).read_text()
    assert "before convergence" in log
    report = round_()
    assert report.condition == "healthy", report.table()
    others_fine(report)


def test_service_stop_flags_only_that_host_as_unit_inactive(drill_lab: DrillLab, round_: Round) -> None:
    lab, _ = drill_lab
    lab.host_fault("lab-host-2", "service-stop")
    report = round_()
    status, checks, failed = rows(report)["lab-host-2"]
    assert (status, checks, failed) == ("down", "unhealthy", ("unit",)), report.table()
    assert "airctl-glance is inactive" in next(h.host_detail for h in report.hosts if h.status == "down")
    others_fine(report, "lab-host-2")
    assert report.serving_count == 2


def test_a_log_error_counts_once_and_a_rotation_loses_none(drill_lab: DrillLab, round_: Round) -> None:
    lab, _ = drill_lab
    lab.host_fault("lab-host-3", "log-error", "before rotation: Unable to open store password=hunter2")
    lab.host_fault("lab-host-3", "log-rotate")
    lab.host_fault("lab-host-3", "log-error", "after rotation: Unable to write image")
    report = round_()
    assert rows(report)["lab-host-3"] == ("serving", "degraded", ("log",)), report.table()
    detail = next(h.host_detail for h in report.hosts if h.hostname and h.hostname.startswith("lab-host-3"))
    assert "2 ERROR" in detail and "before rotation" in detail and "after rotation" in detail
    assert "hunter2" not in report.table()
    others_fine(report, "lab-host-3")
    assert report.condition == "degraded"
    again = round_()  # the same lines never count twice
    assert rows(again)["lab-host-3"] == ("serving", "ok", ()), again.table()


class HungUp(Exception):
    """The client stopping mid-upload, as the failover does when it abandons a host."""


def _abandon_upload(status: dict[str, Any], name: str, request_id: str) -> None:
    """Send the first 2 MiB of an 8 MiB upload to ``name`` under ``request_id``, then hang up."""
    glance = GlanceHost(session_of(status), host(status, name)["endpoint"], timeouts=Timeouts(3, 30))
    image_id = str(uuid.uuid4())
    glance.create_image(image_id=image_id, body={"name": "drill-hung-up", "disk_format": "raw",
                                                 "container_format": "bare"})

    def chunks() -> Iterator[bytes]:
        yield b"\0" * (1 << 20)
        yield b"\0" * (1 << 20)
        raise HungUp

    try:
        with pytest.raises(HungUp):
            glance.upload(image_id, SizedHashingUpload(chunks(), 8 << 20), request_id=request_id)
    finally:
        # Glance writes its error when its read of the body fails: wait for it before cleaning up.
        log = Path(host(status, name)["log"])
        deadline = time.monotonic() + 30
        while request_id not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.2)
        glance.delete_image(image_id)


def test_errors_of_the_projects_own_abandoned_upload_do_not_condemn_the_host(
    drill_lab: DrillLab, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _, status = drill_lab
    monkeypatch.setenv("PCD_IMAGELIB_HA_STATE_DIR", str(tmp_path))
    request_id = own_requests.new_request_id()
    own_requests.record_aborted(request_id)  # what the failover journals when it abandons a host
    # Two runs from the same starting point: one that knows the journal (as the provider's does) and
    # one that does not, which shows the hang-up really made the host log errors.
    knowing, unknowing = Round(status, own_request_ids=own_requests.recent_aborted()), Round(status)
    try:
        all_ok = {n: ("serving", "ok") for n in REGION_ONE_HOSTS}
        for r in (knowing, unknowing):
            assert {n: row[:2] for n, row in rows(r()).items()} == all_ok
        _abandon_upload(status, "lab-host-1", request_id)
        errors = [ln for ln in Path(host(status, "lab-host-1")["log"]).read_text().splitlines()
                  if request_id in ln and (" ERROR " in ln or " CRITICAL " in ln)]
        assert errors, "Glance logged no ERROR line under the abandoned upload's request id"
        counted = unknowing()
        assert rows(counted)["lab-host-1"] == ("serving", "degraded", ("log",)), counted.table()
        discounted = knowing()
        assert rows(discounted)["lab-host-1"] == ("serving", "ok", ()), discounted.table()
        others_fine(discounted)
    finally:
        knowing.close()
        unknowing.close()


def test_sshd_down_is_unknown_and_the_http_checks_still_report(drill_lab: DrillLab) -> None:
    lab, status = drill_lab
    lab.host_fault("lab-host-1", "sshd-stop")
    # A new run (new connections): an open SSH session outlives a stopped sshd, as with systemd.
    r = Round(status)
    try:
        report = r()
    finally:
        r.close()
        lab.host_fault("lab-host-1", "sshd-start")
    assert rows(report)["lab-host-1"] == ("serving", "unknown", ("ssh",)), report.table()
    others_fine(report, "lab-host-1")
    assert report.ok and report.serving_count == 3
    assert report.condition == "unknown"


def test_a_changed_host_key_is_refused_naming_the_host(drill_lab: DrillLab, tmp_path: Path) -> None:
    _, status = drill_lab
    port = host(status, "lab-host-2")["ssh_port"]
    other = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode().strip()
    lines = (Path(status["state_dir"]) / "ssh" / "known_hosts").read_text().splitlines()
    forged = [f"[lab-host-2.lab.local]:{port},[127.0.0.1]:{port} {other}" if f":{port}," in ln else ln
              for ln in lines]
    assert forged != lines
    (tmp_path / "known_hosts").write_text("\n".join(forged) + "\n")
    r = Round(status, tmp_path / "known_hosts")
    try:
        report = r()
    finally:
        r.close()
    assert rows(report)["lab-host-2"] == ("serving", "unknown", ("ssh",)), report.table()
    assert "host key verification failed" in next(h.host_detail for h in report.hosts
                                                  if h.hostname == "lab-host-2.lab.local")
    others_fine(report, "lab-host-2")


def test_unmount_uid_skew_and_a_hand_edited_config_each_flag_their_host(
    drill_lab: DrillLab, round_: Round
) -> None:
    lab, _ = drill_lab
    lab.host_fault("lab-host-1", "unmount")
    lab.host_fault("lab-host-2", "uid-skew")
    lab.host_fault("lab-host-3", "conf-set", "file", "filesystem_store_datadir", "/var/lib/glance/images")
    try:
        report = round_()
    finally:
        reconverge(lab, "lab-host-1", "lab-host-2", "lab-host-3")
    got = rows(report)
    # Not a mount point: the bare directory under it is root's, so Glance's user cannot write there either.
    assert got["lab-host-1"] == ("misconfigured", "unhealthy", ("mount", "store-writable")), report.table()
    assert got["lab-host-2"] == ("misconfigured", "unhealthy", ("glance-ids", "store-writable")), \
        report.table()
    status3, checks3, failed3 = got["lab-host-3"]
    assert (status3, checks3) == ("misconfigured", "unhealthy") and "config" in failed3, report.table()
    detail3 = next(h.host_detail for h in report.hosts if h.hostname == "lab-host-3.lab.local")
    assert "/var/lib/glance/images" in detail3 and "password" not in detail3
    after = Round(lab.status())
    try:
        healed = after()
    finally:
        after.close()
    assert {n: row[0] for n, row in rows(healed).items()} == {n: "serving" for n in REGION_ONE_HOSTS}, \
        healed.table()


def test_doctor_exits_0_then_1_naming_the_host_whose_service_stopped(
    drill_lab: DrillLab, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lab, status = drill_lab
    for key, value in {**lab.env(), "PCD_LAB_STORE_PATH": status["store_path"],
                       "PCD_IMAGELIB_HA_STATE_DIR": str(tmp_path)}.items():
        monkeypatch.setenv(key, value)
    stack_file = ["--stack-file", str(Path(__file__).resolve().parents[2] / "Pulumi.lab.yaml")]
    assert doctor.main(stack_file) == 0, capsys.readouterr().out
    capsys.readouterr()
    lab.host_fault("lab-host-2.lab.local", "service-stop")
    assert doctor.main(stack_file) == 1
    out = capsys.readouterr().out
    failing = [line for line in out.splitlines() if line.startswith("  - ")]
    assert len(failing) == 1 and "lab-host-2.lab.local" in failing[0], out
    assert "PRIVATE KEY" not in out and status["admin"]["password"] not in out
