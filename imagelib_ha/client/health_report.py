"""What a health check found: per host a status and a reason, and whether the region is healthy.

``STATUSES`` and the failure classes are part of the health resource's outputs and the operator's table.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from imagelib_ha.client.data_dir import same_data_dir
from imagelib_ha.client.glance import GlanceError, is_default_store

MAX_WORKERS = 8

STATUSES = (
    "serving", "drained", "down", "frozen", "unauthorized", "misconfigured", "no-shared-data", "error",
    "unhealthy",  # answers HTTP, but the host checks found its service inactive or its log CRITICAL
)
FAILING = frozenset(STATUSES) - {"serving", "drained"}
# Wrong configuration or unshared data: never tolerated, whatever ``min_healthy`` allows (images would
# be written where other hosts cannot read them). Other failures only reduce the serving count.
HARD_FAILURES = frozenset({"misconfigured", "no-shared-data"})

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class RoleHost:
    """An image-library role host: its resmgr id, hostname and (when resmgr says) its Glance endpoint."""

    host_id: str | None
    hostname: str | None = None
    endpoint: str | None = None
    ip_address: str | None = None


@dataclass(frozen=True)
class ExpectedStore:
    """The store every host must report: a file store's data dir, or a cinder store's volume type."""

    type: str
    data_dir: str | None = None
    volume_type: str | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ExpectedStore:
        kind = str(data.get("type") or "")
        if kind not in ("file", "cinder"):
            raise ValueError(f"expected_store.type must be 'file' or 'cinder', not {kind!r}")
        if kind == "file" and not data.get("data_dir"):
            raise ValueError("expected_store.data_dir is required for a file store")
        if kind == "cinder" and not data.get("volume_type"):
            raise ValueError("expected_store.volume_type is required for a cinder store")
        return cls(kind, data.get("data_dir"), data.get("volume_type"))

    def mismatch(self, stores: Sequence[Mapping[str, Any]]) -> str | None:
        """Why the host's reported stores do not provide this store, or None if they do."""
        if not stores:
            return "the host reports no store at all"
        default = next((s for s in stores if is_default_store(s)), stores[0])
        kind = default.get("type")
        props = default.get("properties") or {}
        if kind != self.type:
            return f"default store is of type {kind!r}, expected {self.type!r}"
        if self.type == "file":
            actual = str(props.get("data_dir") or "").rstrip("/")
            expected = str(self.data_dir).rstrip("/")
            if not same_data_dir(actual, expected):
                return (f"file store data_dir is {actual or '(unset)'!r}, expected {expected!r}: mount the "
                        f"shared storage at {expected} and set filesystem_store_datadir to it")
            return None
        actual_type = props.get("volume_type")
        if actual_type != self.volume_type:
            return f"cinder store volume_type is {actual_type!r}, expected {self.volume_type!r}"
        return None


@dataclass(frozen=True)
class HostReport:
    """One row of the report. ``latency`` and ``host_detail`` are volatile: printed, never part of
    :meth:`as_output`.

    ``host_checks`` is the state of the checks over SSH (``client.host_checks``): ``ok``, ``degraded``,
    ``unhealthy``, ``unknown`` (they could not run), or ``skipped`` (no ``hostAccess``)."""

    host_id: str | None
    hostname: str | None
    endpoint: str | None
    status: str
    reason: str
    latency: float | None = None
    host_checks: str = "skipped"
    host_failed_checks: tuple[str, ...] = ()
    host_detail: str = ""

    def as_output(self) -> dict[str, Any]:
        out: dict[str, Any] = {"host_id": self.host_id, "hostname": self.hostname, "endpoint": self.endpoint,
                               "status": self.status, "reason": self.reason}
        if self.host_checks != "skipped":
            # The state and the names of the failing checks only: quoted log lines, offsets and
            # latencies change on every read and must never show as drift.
            out["host_checks"] = self.host_checks
            out["host_failed_checks"] = list(self.host_failed_checks)
        return out

    @property
    def label(self) -> str:
        return self.hostname or self.host_id or self.endpoint or "unknown host"


@dataclass
class HealthReport:
    """The region's image-library health: one row per host, and what makes it fail, if anything."""

    region: str
    hosts: list[HostReport]
    min_healthy: int | None
    problems: list[str] = field(default_factory=list)
    canary: str | None = None  # what the canary proved, or None when it did not run
    host_checks_ran: bool = False  # False: no hostAccess, so the table says the checks were skipped

    @property
    def condition(self) -> str:
        """``healthy``, ``degraded`` (serving enough, with findings), ``unknown`` (host checks could not
        run on some host) or ``unhealthy`` (not :attr:`ok`). Exit codes of ``doctor`` follow it."""
        if not self.ok:
            return "unhealthy"
        if any(h.host_checks == "unknown" for h in self.hosts):
            return "unknown"
        if self.failing or any(h.host_checks in ("degraded", "unhealthy") for h in self.hosts):
            return "degraded"
        return "healthy"

    @property
    def serving(self) -> list[HostReport]:
        return [h for h in self.hosts if h.status == "serving"]

    @property
    def serving_count(self) -> int:
        return len(self.serving)

    @property
    def endpoints(self) -> list[str]:
        """Serving endpoints in role-host order: stable, so refresh shows drift only on real change."""
        return [h.endpoint for h in self.serving if h.endpoint]

    @property
    def failing(self) -> list[HostReport]:
        return [h for h in self.hosts if h.status in FAILING]

    @property
    def required(self) -> int:
        """Serving hosts needed: ``min_healthy``, or else every host not deliberately drained."""
        if self.min_healthy is not None:
            return self.min_healthy
        return sum(1 for h in self.hosts if h.status != "drained")

    @property
    def ok(self) -> bool:
        hard = [h for h in self.hosts if h.status in HARD_FAILURES]
        return not hard and not self.problems and self.serving_count >= self.required

    def failure_message(self) -> str:
        lines = [f"image library of region {self.region!r} is not healthy "
                 f"({self.serving_count} serving, {self.required} required):"]
        for host in self.failing:
            lines.append(f"  - {host.label} ({host.endpoint or 'no endpoint'}): {host.status}: {host.reason}")
        for problem in self.problems:
            lines.append(f"  - {problem}")
        if self.serving_count < self.required and not self.failing:
            drained = [h.label for h in self.hosts if h.status == "drained"]
            if drained:
                lines.append(f"  - drained hosts do not count as serving: {', '.join(drained)}")
        return "\n".join(lines)

    def table(self) -> str:
        """A human-readable table including latency and the host checks' details (operator output only)."""
        rows = [("host", "endpoint", "status", "latency", "host checks", "reason")]
        for h in self.hosts:
            latency = f"{h.latency * 1000:.0f} ms" if h.latency is not None else "-"
            reason = h.reason
            if h.host_detail and h.host_detail != h.reason:
                reason = f"{h.reason} | {h.host_detail}"
            rows.append((h.label, h.endpoint or "-", h.status, latency, h.host_checks, reason))
        widths = [max(len(r[i]) for r in rows) for i in range(5)]
        lines = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(r[:5])) + "  " + r[5] for r in rows]
        if not self.host_checks_ran:
            lines.append("host checks skipped: no hostAccess configured, so the hosts' service, log, Glance "
                         "config and mount were not checked (health.serviceUnit and health.logPath unused)")
        return "\n".join(lines)


class HealthError(GlanceError):
    """Health validation failed; ``report`` holds every host's status and reason."""

    def __init__(self, report: HealthReport) -> None:
        super().__init__(report.failure_message())
        self.report = report



def map_hosts(func: Callable[[T], R], items: Sequence[T], *, sequential: bool) -> list[R]:
    """``func`` over ``items``, concurrently (bounded) unless ``sequential``; results in input order."""
    if sequential or len(items) <= 1:
        return [func(item) for item in items]
    with ThreadPoolExecutor(max_workers=min(MAX_WORKERS, len(items))) as pool:
        return list(pool.map(func, items))
