"""Bench 3: wall time of the health check's probes for 1, 3 and 8 hosts, concurrent vs sequential.

Both modes probe the same hosts of the same lab in the same run, alternating, so the lab's own CPU
contention (every Glance on two cores) weighs on both alike.
"""

from __future__ import annotations

import statistics
import time

from bench.labs import admin_session
from bench.report import Report, Row
from imagelib_ha.client.health import ExpectedStore, HealthChecker, RoleHost
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
        times: dict[str, list[float]] = {"concurrent": [], "sequential": []}
        checkers["concurrent"].probe(hosts)  # warm-up: token, catalog, connections
        for rnd in range(ROUNDS):
            modes = ["concurrent", "sequential"] if rnd % 2 == 0 else ["sequential", "concurrent"]
            for mode in modes:
                started = time.monotonic()
                result = checkers[mode].probe(hosts)
                times[mode].append(time.monotonic() - started)
                serving = sum(1 for h in result.hosts if h.status == "serving")
                if serving != count:
                    raise RuntimeError(f"health bench: {serving} of {count} hosts serving:\n{result.table()}")
        conc, seq = statistics.median(times["concurrent"]), statistics.median(times["sequential"])
        target = "<= 0.35x sequential" if count == 8 else "(reference)"
        report.add(Row("health", f"probes of {count} host(s), concurrent", conc, "s", "sequential", seq,
                       target, conc <= 0.35 * seq if count == 8 else None, f"median of {ROUNDS}"))
        details[str(count)] = times
    report.details["health"] = details
