"""Host checks over SSH: each image-library host's service, log, Glance store config and store mount.

Each check gives a finding with a state:

* ``unhealthy``: the unit is not active, the config Glance reads names another store, the store path
  is not a mount point, its source differs from the other hosts', the Glance user cannot write it or
  has another uid/gid than on the other hosts, or the log has CRITICAL lines (the service says it is
  broken). A host with a wrong config or mount is ``misconfigured`` in the health table (never
  tolerated, like a wrong store report); an inactive unit makes it ``unhealthy`` (not serving).
* ``degraded``: still serving, with something to look at: ERROR lines since the last check, a
  ``glance-api.conf`` any user can read (it holds passwords), the configured unit not existing while
  the other known name does.
* ``unknown``: the checks could not run (SSH unreachable, key refused, host key unknown or changed).

The host's HTTP checks stay the truth for *serving*: ``systemctl`` reads ``active`` for a frozen Glance,
so a host is never called serving from its unit alone.

Log cursors: the first check of a host only sets its cursor (lines from before it never count), and
so does the first check after the service (re)started (a new main pid: a converge restarts Glance,
which logs errors while starting); later checks count what was logged since. The caller keeps the
cursors between runs (``cursors``).
"""

from __future__ import annotations

import posixpath
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from imagelib_ha.client.health_report import ExpectedStore, HealthReport
from imagelib_ha.client.host_access import HostAccess
from imagelib_ha.client.host_log import LogCursor, classify
from imagelib_ha.client.host_probe import SCRIPT, HostFacts, parse, script_args
from imagelib_ha.client.host_ssh import HostUnreachable, SshPool

STATES = ("ok", "degraded", "unhealthy", "unknown")
_RANK = {s: i for i, s in enumerate(STATES)}
# Findings whose host is misconfigured (hard failure) rather than merely unhealthy.
MISCONFIG_CHECKS = frozenset({"config", "mount", "mount-source", "store-writable", "glance-ids"})


@dataclass(frozen=True)
class Finding:
    """One check on one host: its name, state and what was seen (details are volatile: table only)."""

    check: str
    state: str
    detail: str


@dataclass(frozen=True)
class HostCheckResult:
    """All checks of one host; ``state`` is the worst of them."""

    host: str
    findings: tuple[Finding, ...]
    cursor: LogCursor | None = None

    @property
    def state(self) -> str:
        return max((f.state for f in self.findings), key=_RANK.__getitem__, default="ok")

    @property
    def problems(self) -> list[Finding]:
        return [f for f in self.findings if f.state != "ok"]

    @property
    def failed_checks(self) -> list[str]:
        """Names of the checks not ok: stable, so they may be stored (details may not)."""
        return sorted({f.check for f in self.problems})

    @property
    def misconfigured(self) -> bool:
        return any(f.state == "unhealthy" and f.check in MISCONFIG_CHECKS for f in self.findings)

    def summary(self) -> str:
        if not self.problems:
            return "host checks ok"
        return "; ".join(f"{f.check}: {f.detail}" for f in self.problems)


@dataclass
class HostCheckSpec:
    """What the checks expect on every host."""

    service_unit: str
    log_path: str
    expected_store: ExpectedStore | None
    own_request_ids: frozenset[str] = field(default_factory=frozenset)

    @property
    def store_path(self) -> str | None:
        store = self.expected_store
        return store.data_dir if store is not None and store.type == "file" else None


class HostChecker:
    """Runs the host checks of one run over one pool of SSH connections (reused across rounds)."""

    def __init__(self, access: HostAccess, spec: HostCheckSpec,
                 cursors: Mapping[str, LogCursor] | None = None) -> None:
        self.spec = spec
        self.pool = SshPool(access)
        self.cursors: dict[str, LogCursor] = dict(cursors or {})

    def close(self) -> None:
        self.pool.close()

    def check(self, hosts: Sequence[str]) -> dict[str, HostCheckResult]:
        """Check every host (SSH address: its hostname); advances the log cursors of those reached."""
        spec = self.spec
        scripts = {h: (SCRIPT, script_args(spec.service_unit, spec.log_path, self.cursors.get(h),
                                           spec.store_path)) for h in hosts}
        raw = self.pool.run_all(scripts)
        facts: dict[str, HostFacts] = {}
        results: dict[str, HostCheckResult] = {}
        for host, res in raw.items():
            if isinstance(res, HostUnreachable):
                results[host] = HostCheckResult(host, (Finding("ssh", "unknown", res.reason),))
                continue
            parsed = parse(res.stdout)
            if not parsed.complete:
                detail = (res.stderr.strip().splitlines() or [f"exit status {res.exit_status}"])[-1][:200]
                finding = Finding("ssh", "unknown", f"the check command did not finish: {detail}")
                results[host] = HostCheckResult(host, (finding,))
                continue
            facts[host] = parsed
        for host, f in facts.items():
            findings = [*self._unit(f), *self._log(host, f), *self._config(f), *self._mount(f)]
            cursor = None
            if f.log_cursor is not None:
                cursor = replace(f.log_cursor, pid=_main_pid(f))
                self.cursors[host] = cursor
            results[host] = HostCheckResult(host, tuple(findings), cursor)
        _compare_across_hosts(facts, results)
        return {h: results[h] for h in hosts}

    # -- per-host checks ---------------------------------------------------------------------------------

    def _unit(self, f: HostFacts) -> list[Finding]:
        configured = self.spec.service_unit
        by_name = {u.name: u for u in f.units}
        unit = by_name.get(configured)
        prefix = ""
        if unit is None or unit.load_state == "not-found":
            other = next((u for u in f.units if u.name != configured and u.load_state != "not-found"), None)
            if other is None:
                tried = ", ".join(u.name for u in f.units if u.name != configured) or "another known name"
                return [Finding("unit", "unhealthy", f"no unit {configured!r} on this host (nor {tried})")]
            prefix = f"unit {configured!r} does not exist, {other.name!r} does (set health.serviceUnit); "
            unit = other
        if unit.active_state != "active":
            return [Finding("unit", "unhealthy", f"{prefix}{unit.name} is {unit.active_state}")]
        if prefix:
            return [Finding("unit", "degraded", f"{prefix}it is active")]
        return [Finding("unit", "ok", f"{unit.name} active")]

    def _log(self, host: str, f: HostFacts) -> list[Finding]:
        if f.log_cursor is None:
            return [Finding("log", "degraded", f"no log at {self.spec.log_path} (set health.logPath)")]
        previous = self.cursors.get(host)
        if previous is None:
            return [Finding("log", "ok", "first check: cursor set, earlier lines never count")]
        pid = _main_pid(f)
        if previous.pid and pid and previous.pid != pid:
            return [Finding("log", "ok", f"the service restarted since the last check (pid {previous.pid} -> "
                                         f"{pid}): cursor reset, its start-up lines do not count")]
        errs = classify(f.log_lines, own_request_ids=self.spec.own_request_ids, truncated=f.log_truncated)
        own = f" ({errs.discounted} message(s) of this project's aborted uploads not counted)" \
            if errs.discounted else ""
        if errs.count == 0:
            return [Finding("log", "ok", f"no ERROR/CRITICAL since the last check{own}")]
        more = " (more not read)" if errs.truncated else ""
        quoted = " | ".join(errs.quoted)
        state = "unhealthy" if errs.critical else "degraded"
        return [Finding("log", state, f"{errs.errors} ERROR, {errs.critical} CRITICAL message(s) since the "
                                      f"last check{more}{own}: {quoted}")]

    def _config(self, f: HostFacts) -> list[Finding]:
        findings: list[Finding] = []
        readable = [c for c in f.config_files if c.mode is not None]
        if not readable:
            paths = ", ".join(c.path for c in f.config_files) or "none found"
            return [Finding("config", "unknown", f"cannot read the config the service reads ({paths})")]
        for c in readable:
            if c.mode and c.mode[-1] != "0":
                findings.append(Finding("config-mode", "degraded", f"{c.path} is mode {c.mode} ({c.owner}:"
                                        f"{c.group}): readable by every user, and it holds passwords"))
        expected = self.spec.expected_store
        if expected is None:
            return findings
        problem = store_config_problem(f.effective_store_config(), expected)
        files = ", ".join(c.path for c in readable)
        if problem:
            findings.append(Finding("config", "unhealthy", f"{problem} (in {files})"))
        else:
            findings.append(Finding("config", "ok", f"store config as expected ({files})"))
        return findings

    def _mount(self, f: HostFacts) -> list[Finding]:
        path = self.spec.store_path
        if path is None or f.mount is None:
            return []
        m = f.mount
        findings = []
        if m.source is None:
            findings.append(Finding("mount", "unhealthy", f"{path} is not a mount point: images written here "
                                    "stay on this host (mount the shared storage there)"))
        else:
            findings.append(Finding("mount", "ok", f"{path} mounted from {m.source}"))
        if m.glance_uid is None:
            findings.append(Finding("glance-ids", "unhealthy", "no 'glance' service user on this host"))
        elif not m.writable_by_glance:
            findings.append(Finding("store-writable", "unhealthy",
                                    f"the glance user (uid {m.glance_uid}) cannot write {path}"))
        return findings


def _main_pid(f: HostFacts) -> int:
    return next((u.main_pid for u in f.units if u.main_pid), 0)


def store_config_problem(config: Mapping[str, Mapping[str, str]], expected: ExpectedStore) -> str | None:
    """Why the store keys Glance reads do not give the expected store, or None."""
    default = config.get("DEFAULT", {})
    glance_store = config.get("glance_store", {})
    backends = {}
    for item in (default.get("enabled_backends") or "").split(","):
        name, _, kind = item.strip().partition(":")
        if name:
            backends[name] = kind.strip()
    if backends:
        chosen = glance_store.get("default_backend")
        if not chosen or chosen not in backends:
            return f"default_backend {chosen!r} is not one of enabled_backends ({', '.join(backends)})"
        kind, section = backends[chosen], config.get(chosen, {})
    else:
        kind = glance_store.get("default_store") or "file"
        section = glance_store
    if kind != expected.type:
        return f"the default store is of type {kind!r}, expected {expected.type!r}"
    if expected.type == "file":
        actual = section.get("filesystem_store_datadir")
        if not actual or posixpath.normpath(actual) != posixpath.normpath(str(expected.data_dir)):
            return f"filesystem_store_datadir is {actual!r}, expected {expected.data_dir!r}"
        return None
    actual = section.get("cinder_volume_type")
    if actual != expected.volume_type:
        return f"cinder_volume_type is {actual!r}, expected {expected.volume_type!r}"
    return None


def _compare_across_hosts(facts: Mapping[str, HostFacts], results: dict[str, HostCheckResult]) -> None:
    """Same mount source and same glance uid/gid on every host: flag the hosts outside the majority."""
    mounts = {h: f.mount for h, f in facts.items() if f.mount is not None}
    sources = {h: m.source for h, m in mounts.items() if m.source is not None}
    ids = {h: f"{m.glance_uid}:{m.glance_gid}" for h, m in mounts.items() if m.glance_uid is not None}
    for check, values, what in (("mount-source", sources, "the store's mount source"),
                                ("glance-ids", ids, "the glance user's uid:gid")):
        odd = _outside_majority(values)
        for host in odd:
            others = sorted({v for h, v in values.items() if h != host})
            r = results[host]
            detail = f"{what} is {values[host]}, other hosts have {', '.join(others)}"
            finding = Finding(check, "unhealthy", detail)
            results[host] = HostCheckResult(r.host, (*r.findings, finding), r.cursor)


def _outside_majority(values: Mapping[str, str]) -> list[str]:
    if len(set(values.values())) <= 1:
        return []
    counts = Counter(values.values()).most_common()
    if len(counts) > 1 and counts[0][1] == counts[1][1]:
        return sorted(values)  # no majority: every host is suspect
    return sorted(h for h, v in values.items() if v != counts[0][0])


def apply_host_checks(report: HealthReport, results: Mapping[str, HostCheckResult]) -> HealthReport:
    """``report`` with each host's check results: a wrong config or mount makes a serving host
    ``misconfigured``, an inactive unit or CRITICAL log ``unhealthy``; findings that leave it serving
    (``degraded``) and checks that could not run (``unknown``) keep its HTTP status, so they never
    reduce the serving count that ``minHealthyHosts`` is compared with."""
    rows = []
    for row in report.hosts:
        result = results.get(row.hostname or "")
        if result is None:
            rows.append(replace(row, host_checks="unknown",
                                host_detail="no hostname to reach it over SSH (resmgr reports none)"))
            continue
        status, reason = row.status, row.reason
        if row.status == "serving" and result.misconfigured:
            status, reason = "misconfigured", result.summary()
        elif row.status == "serving" and result.state == "unhealthy":
            status, reason = "unhealthy", result.summary()
        rows.append(replace(row, status=status, reason=reason, host_checks=result.state,
                            host_failed_checks=tuple(result.failed_checks), host_detail=result.summary()))
    return replace(report, hosts=rows, host_checks_ran=True)
