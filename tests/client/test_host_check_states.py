"""How host-check results change a host's status and the region's condition (and doctor's exit code)."""

from __future__ import annotations

from imagelib_ha.client.health_report import HealthReport, HostReport
from imagelib_ha.client.host_checks import Finding, HostCheckResult, apply_host_checks
from imagelib_ha.doctor import EXIT


def _report(min_healthy: int | None = None, statuses: tuple[str, ...] = ("serving",) * 3) -> HealthReport:
    hosts = [HostReport(f"id-{i}", f"h{i}", f"http://h{i}", s, s) for i, s in enumerate(statuses, 1)]
    return HealthReport("R", hosts, min_healthy)


def _result(host: str, *findings: tuple[str, str]) -> HostCheckResult:
    return HostCheckResult(host, tuple(Finding(check, state, f"{check} detail") for check, state in findings))


def _ok(host: str) -> HostCheckResult:
    return _result(host, ("unit", "ok"), ("log", "ok"))


def test_all_ok_is_healthy_and_exit_0() -> None:
    report = apply_host_checks(_report(), {h: _ok(h) for h in ("h1", "h2", "h3")})
    assert report.host_checks_ran and report.condition == "healthy" and EXIT[report.condition] == 0
    assert [h.as_output()["host_checks"] for h in report.hosts] == ["ok"] * 3


def test_degraded_keeps_serving_and_counts_toward_min_healthy() -> None:
    report = apply_host_checks(_report(), {"h1": _result("h1", ("log", "degraded")), "h2": _ok("h2"),
                                           "h3": _ok("h3")})
    assert report.hosts[0].status == "serving" and report.serving_count == 3
    assert report.ok and report.condition == "degraded" and EXIT[report.condition] == 2
    # Only the state and the failing checks' names are stored: details never show as drift.
    assert report.hosts[0].as_output() == {
        "host_id": "id-1", "hostname": "h1", "endpoint": "http://h1", "status": "serving",
        "reason": "serving", "host_checks": "degraded", "host_failed_checks": ["log"]}


def test_unknown_keeps_the_http_status_and_is_exit_2() -> None:
    report = apply_host_checks(_report(), {"h1": _result("h1", ("ssh", "unknown")), "h2": _ok("h2"),
                                           "h3": _ok("h3")})
    assert report.hosts[0].status == "serving" and report.serving_count == 3
    assert report.condition == "unknown" and EXIT[report.condition] == 2
    # A host without a hostname cannot be reached over SSH: unknown, said so.
    lone = HealthReport("R", [HostReport("id", None, "http://x", "serving", "ok")], None)
    nameless = apply_host_checks(lone, {})
    assert nameless.hosts[0].host_checks == "unknown" and "no hostname" in nameless.hosts[0].host_detail


def test_an_inactive_unit_is_unhealthy_and_not_serving_but_min_healthy_may_tolerate_it() -> None:
    results = {"h1": _result("h1", ("unit", "unhealthy")), "h2": _ok("h2"), "h3": _ok("h3")}
    strict = apply_host_checks(_report(), results)
    assert strict.hosts[0].status == "unhealthy" and strict.serving_count == 2
    assert strict.condition == "unhealthy" and EXIT[strict.condition] == 1
    tolerant = apply_host_checks(_report(min_healthy=2), results)
    assert tolerant.ok and tolerant.condition == "degraded"


def test_a_wrong_mount_is_misconfigured_and_never_tolerated() -> None:
    results = {"h1": _result("h1", ("mount", "unhealthy")), "h2": _ok("h2"), "h3": _ok("h3")}
    report = apply_host_checks(_report(min_healthy=1), results)
    assert report.hosts[0].status == "misconfigured" and not report.ok and report.condition == "unhealthy"


def test_without_host_checks_the_table_says_they_were_skipped() -> None:
    report = _report()
    assert not report.host_checks_ran
    assert "host checks skipped" in report.table() and "health.serviceUnit" in report.table()
    assert "host_checks" not in report.hosts[0].as_output()
    checked = apply_host_checks(report, {h: _ok(h) for h in ("h1", "h2", "h3")})
    assert "host checks skipped" not in checked.table()
