"""Bench 3: wall time of the health check's probes for 1, 3 and 8 hosts, concurrent vs sequential.

Both modes probe the same hosts of the same lab in the same run, alternating, so the lab's own CPU
contention (every Glance on two cores) weighs on both alike. Two figures per count: the host probes
alone (``HealthChecker._check_host`` over the hosts, concurrently or not, as ``probe`` runs them), and
the whole ``probe()`` as the health check runs it (catalog read included; when it re-authenticates,
every host validates the new token with Keystone, which no client-side concurrency can hide). Both
carry the target at 8 hosts. On two cores the Glance processes' own CPU per request bounds the gain.
"""

from __future__ import annotations

import statistics
import time

from bench.labs import admin_session
from bench.report import Report, Row
from imagelib_ha.client import health
from imagelib_ha.client.health import ExpectedStore, HealthChecker, HostReport, RoleHost
from lab.api import Lab

ROUNDS = 5


def bench_health(lab: Lab, report: Report, counts: tuple[int, ...] = (1, 3, 8)) -> None:
    status = lab.status()
    session = admin_session(status)
    store = ExpectedStore("file", data_dir=status["store_path"])
    role_hosts = [RoleHost(h["id"], h["hostname"], h["endpoint"]) for h in status["hosts"] if h["endpoint"]]
    checkers = {mode: HealthChecker(session, region=status["region"], expected_store=store,
                                    sequential=(mode == "sequential"))
                for mode in ("concurrent", "sequential")}
    details: dict[str, dict[str, list[float]]] = {}
    for count in counts:
        if count > len(role_hosts):
            report.notices.append(f"health: only {len(role_hosts)} hosts, skipped {count}")
            continue
        hosts = role_hosts[:count]
        times: dict[str, list[float]] = {"concurrent": [], "sequential": [], "concurrent-full": [],
                                         "sequential-full": []}
        in_catalog = {str(h.endpoint) for h in hosts}
        checkers["concurrent"].probe(hosts)  # warm-up: token, catalog, connections
        for rnd in range(ROUNDS):
            modes = ["concurrent", "sequential"] if rnd % 2 == 0 else ["sequential", "concurrent"]
            for mode in modes:
                checker = checkers[mode]

                def check(h: RoleHost, c: HealthChecker = checker, known: set[str] = in_catalog
                          ) -> HostReport:
                    return c._check_host(h, known)

                started = time.monotonic()
                rows = health._map(check, hosts, sequential=checker.sequential)
                times[mode].append(time.monotonic() - started)
                started = time.monotonic()
                result = checker.probe(hosts)
                times[f"{mode}-full"].append(time.monotonic() - started)
                serving = sum(1 for h in [*rows, *result.hosts] if h.status == "serving")
                if serving != 2 * count:
                    raise RuntimeError(f"health bench: not every host serving:\n{result.table()}")
        med = {mode: statistics.median(values) for mode, values in times.items()}
        target = "<= 0.35x sequential" if count == 8 else "(reference)"
        report.add(Row("health", f"host probes, {count} host(s), concurrent", med["concurrent"], "s",
                       "sequential", med["sequential"], target,
                       med["concurrent"] <= 0.35 * med["sequential"] if count == 8 else None,
                       f"median of {ROUNDS}"))
        report.add(Row("health", f"whole probe() incl. catalog, {count} host(s), concurrent",
                       med["concurrent-full"], "s", "sequential", med["sequential-full"], target,
                       med["concurrent-full"] <= 0.35 * med["sequential-full"] if count == 8 else None,
                       f"median of {ROUNDS}"))
        details[str(count)] = times
    report.details["health"] = details
