"""Bench 6: what the step-3 host checks over SSH add to a health round, for 3 and 8 hosts.

Each round is the health check's whole ``probe()``: the API probes of every host, and, in the "with"
mode, the host checks (one shell script per host over a reused asyncssh connection) running beside
them. The two modes alternate over the same hosts of the same lab, so the lab's own contention weighs
on both alike.

The target is the round with host checks against its **floor** measured in the same rounds,
``max(client CPU, all busy CPU / cores)``, as the health bench computes it: the client's Python holds
the GIL, and every process (client, each host's sshd and the commands it runs, the Glances,
PostgreSQL, Keystone, any background load) shares the cores. The machine's busy CPU comes from
``/proc/stat``, so sshd and what it runs are counted without naming their pids.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path

from bench.cpu import machine_busy_seconds
from bench.labs import admin_session
from bench.report import Report, Row
from imagelib_ha.client.health import ExpectedStore, HealthChecker, RoleHost
from imagelib_ha.client.host_access import HostAccess
from imagelib_ha.client.host_checks import HostChecker, HostCheckSpec
from imagelib_ha.client.log_cursors import STATE_DIR_ENV
from imagelib_ha.settings import DEFAULT_LOG_PATH, DEFAULT_SERVICE_UNIT
from lab.api import Lab

ROUNDS = 9
MODES = ("without", "with")


def bench_host_checks(lab: Lab, report: Report, counts: tuple[int, ...] = (3, 8)) -> None:
    status = lab.status()
    ssh = Path(status["state_dir"]) / "ssh"
    access = HostAccess(private_key=(ssh / "id_ed25519").read_text(), known_hosts=str(ssh / "known_hosts"),
                        ssh_config=str(ssh / "ssh_config"), per_dial_timeout=5, dial_error_limit=2)
    store = ExpectedStore("file", data_dir=status["store_path"])
    role_hosts = [RoleHost(h["id"], h["hostname"], h["endpoint"]) for h in status["hosts"] if h["endpoint"]]
    cores = os.cpu_count() or 1
    saved_state_dir = os.environ.get(STATE_DIR_ENV)
    with tempfile.TemporaryDirectory(prefix="pcd-bench-cursors-") as cursors:
        # The log cursors of this bench, not the operator's.
        os.environ[STATE_DIR_ENV] = cursors
        try:
            for count in counts:
                if count > len(role_hosts):
                    report.notices.append(f"host checks: only {len(role_hosts)} hosts, skipped {count}")
                    continue
                _bench_count(report, status, access, store, role_hosts[:count], cores)
        finally:
            if saved_state_dir is None:
                os.environ.pop(STATE_DIR_ENV, None)
            else:
                os.environ[STATE_DIR_ENV] = saved_state_dir


def _bench_count(report: Report, status: dict[str, object], access: HostAccess, store: ExpectedStore,
                 hosts: list[RoleHost], cores: int) -> None:
    session = admin_session(status)
    host_checker = HostChecker(access, HostCheckSpec(DEFAULT_SERVICE_UNIT, DEFAULT_LOG_PATH, store))
    checkers = {
        "without": HealthChecker(session, region=str(status["region"]), expected_store=store),
        "with": HealthChecker(session, region=str(status["region"]), expected_store=store,
                              host_checker=host_checker),
    }
    names = {h.hostname for h in hosts}
    wall: dict[str, list[float]] = {m: [] for m in MODES}
    client: dict[str, list[float]] = {m: [] for m in MODES}
    busy: dict[str, list[float]] = {m: [] for m in MODES}
    try:
        for mode in MODES:  # warm-up: token, catalog, HTTP and SSH connections, log cursors
            checkers[mode].probe(hosts, reauthenticate=False)
        for rnd in range(ROUNDS):
            for mode in (MODES if rnd % 2 == 0 else MODES[::-1]):
                busy_before = machine_busy_seconds()
                cpu_started = time.process_time()
                started = time.monotonic()
                result = checkers[mode].probe(hosts, reauthenticate=False)
                wall[mode].append(time.monotonic() - started)
                client[mode].append(time.process_time() - cpu_started)
                busy[mode].append(machine_busy_seconds() - busy_before)
                # The lab's catalog lists all its hosts: the rows of the ones not measured are not judged.
                mine = [h for h in result.hosts if h.hostname in names]
                checked_ok = mode == "without" or all(h.host_checks == "ok" for h in mine)
                if len(mine) != len(hosts) or any(h.status != "serving" for h in mine) or not checked_ok:
                    raise RuntimeError(f"host-check bench: a host not serving or not ok:\n{result.table()}")
    finally:
        host_checker.close()
    # Means, not medians: /proc counts CPU in 10 ms ticks, coarse next to one round.
    mean = {m: statistics.mean(wall[m]) for m in MODES}
    cpu_client = statistics.mean(client["with"])
    cpu_busy = max(statistics.mean(busy["with"]), cpu_client)
    floor = max(cpu_client, cpu_busy / cores)
    report.add(Row("host checks", f"health round with host checks, {len(hosts)} hosts, {cores} cores "
                   f"(client {cpu_client * 1000:.1f} ms, all busy CPU {cpu_busy * 1000:.1f} ms)",
                   mean["with"] * 1000, "ms", "floor max(client CPU, all CPU / cores)", floor * 1000,
                   "<= 1.15x floor", mean["with"] <= 1.15 * floor, f"means of {ROUNDS}, connections reused"))
    report.add(Row("host checks", f"health round without host checks, {len(hosts)} hosts",
                   mean["without"] * 1000, "ms", "with host checks", mean["with"] * 1000, "(reference)", None,
                   f"means of {ROUNDS}"))
