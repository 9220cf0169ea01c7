"""Health of a region's image library: every host probed, its store checked, shared storage proven.

What is checked, and why each check is needed:

* The catalog's ``image-cluster`` endpoints are exactly the role hosts' endpoints (the catalog is what
  Nova and users follow; a stale or missing entry sends traffic to the wrong place). The catalog is
  cached with the token, so it is read after re-authenticating.
* Each host answers its probe (``/healthcheck``, ``GET /v2/``, an authenticated list) within the probe
  timeout. A drained host (``/healthcheck`` disabled by file) is reported ``drained``: not a failure,
  not counted as serving, never used for uploads.
* Each host's store, as its own Glance reports it (``GET /v2/info/stores/detail``), matches the
  expected one: a host that mounted the share elsewhere is caught without host access.
* The storage is really shared: a small canary image written through one host reads back
  byte-identical (sha512) through every other. ``/healthcheck`` and even a successful download prove
  nothing here: a host without the data answers 204 with an empty body. The canary is then deleted.
* Optionally every existing image is audited on every host with a one-byte ranged read.

Probes run concurrently (bounded), so eight hosts cost about what one does; ``sequential=True`` runs
them one by one (the benchmark's baseline).
"""

from __future__ import annotations

import hashlib
import os
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar
from urllib.parse import urlsplit

from keystoneauth1 import session as ks_session

from imagelib_ha.client.catalog import image_cluster_endpoints, normalize_endpoint
from imagelib_ha.client.glance import (
    GlanceError,
    GlanceHost,
    HashingUpload,
    HostUnavailable,
    SizedHashingUpload,
    Timeouts,
    is_default_store,
)
from imagelib_ha.client.transport import skip_environment_rescan

CANARY_PROPERTY = "pcd_imagelib_ha_canary"
CANARY_SIZE = 64 * 1024
# A canary older than this was left by a run that crashed: safe to remove (a live run needs seconds).
CANARY_STALE_AFTER = timedelta(minutes=15)
MAX_WORKERS = 8

STATUSES = (
    "serving", "drained", "down", "frozen", "unauthorized", "misconfigured", "no-shared-data", "error",
)
FAILING = frozenset(STATUSES) - {"serving", "drained"}
# Wrong configuration or unshared data: never tolerated, whatever ``min_healthy`` allows (images would
# be written where other hosts cannot read them). Other failures only reduce the serving count.
HARD_FAILURES = frozenset({"misconfigured", "no-shared-data"})

Progress = Callable[[str], None]
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
            if actual != expected:
                return (f"file store data_dir is {actual or '(unset)'!r}, expected {expected!r}: mount the "
                        f"shared storage at {expected} and set filesystem_store_datadir to it")
            return None
        actual_type = props.get("volume_type")
        if actual_type != self.volume_type:
            return f"cinder store volume_type is {actual_type!r}, expected {self.volume_type!r}"
        return None


@dataclass(frozen=True)
class HostReport:
    """One row of the report. ``latency`` is volatile: printed, never part of :meth:`as_output`."""

    host_id: str | None
    hostname: str | None
    endpoint: str | None
    status: str
    reason: str
    latency: float | None = None

    def as_output(self) -> dict[str, Any]:
        return {"host_id": self.host_id, "hostname": self.hostname, "endpoint": self.endpoint,
                "status": self.status, "reason": self.reason}

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
        """A human-readable table including latency (for operator output only)."""
        rows = [("host", "endpoint", "status", "latency", "reason")]
        for h in self.hosts:
            latency = f"{h.latency * 1000:.0f} ms" if h.latency is not None else "-"
            rows.append((h.label, h.endpoint or "-", h.status, latency, h.reason))
        widths = [max(len(r[i]) for r in rows) for i in range(4)]
        return "\n".join(
            "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(r[:4])) + "  " + r[4] for r in rows
        )


class HealthError(GlanceError):
    """Health validation failed; ``report`` holds every host's status and reason."""

    def __init__(self, report: HealthReport) -> None:
        super().__init__(report.failure_message())
        self.report = report


def _map(func: Callable[[T], R], items: Sequence[T], *, sequential: bool) -> list[R]:
    """``func`` over ``items``, concurrently (bounded) unless ``sequential``; results in input order."""
    if sequential or len(items) <= 1:
        return [func(item) for item in items]
    with ThreadPoolExecutor(max_workers=min(MAX_WORKERS, len(items))) as pool:
        return list(pool.map(func, items))


def _host_of(url: str) -> str | None:
    return urlsplit(url).hostname


def match_catalog(role_hosts: Sequence[RoleHost], catalog: Sequence[str]) -> tuple[list[RoleHost], list[str]]:
    """Give each role host its catalog endpoint; return (role hosts, catalog endpoints of no role host).

    A host's endpoint is the one resmgr reports for it (``endpoint_address``); failing that, the one
    catalog endpoint whose address is the host's IP.
    """
    remaining = [normalize_endpoint(e) for e in catalog]
    matched: list[RoleHost] = []
    for host in role_hosts:
        endpoint = normalize_endpoint(host.endpoint) if host.endpoint else None
        if endpoint is None and host.ip_address:
            candidates = [e for e in remaining if _host_of(e) == host.ip_address]
            if len(candidates) == 1:
                endpoint = candidates[0]
        if endpoint in remaining:
            remaining.remove(endpoint)
        matched.append(replace(host, endpoint=endpoint))
    return matched, remaining


class HealthChecker:
    """Validates one region's image library through its hosts' Glance APIs (no host access needed)."""

    def __init__(
        self,
        session: ks_session.Session,
        *,
        region: str,
        expected_store: ExpectedStore | None,
        probe_timeout: float = 5.0,
        sequential: bool = False,
        progress: Progress | None = None,
        catalog_fresh_after: datetime | None = None,
    ) -> None:
        self.session = session
        # A token issued at or after this moment carries a catalog recent enough for this check
        # (callers pass the time the change being validated was made; default: now).
        self.catalog_fresh_after = (catalog_fresh_after or datetime.now(UTC)).replace(microsecond=0)
        self.region = region
        self.expected_store = expected_store
        self.probe_timeout = probe_timeout
        self.sequential = sequential
        self.progress = progress or (lambda _message: None)
        self.timeouts = Timeouts(connect=min(3.0, probe_timeout), read=probe_timeout)
        # A probe round is a few dozen small requests: requests' per-request environment scan is a
        # sizeable part of the client's CPU for each of them.
        skip_environment_rescan(session)

    def host(self, endpoint: str) -> GlanceHost:
        return GlanceHost(self.session, endpoint, timeouts=self.timeouts)

    # -- probes ----------------------------------------------------------------------------------------

    def catalog_is_current(self) -> bool:
        """Whether the session's token (and so its cached catalog) was issued late enough.

        Re-authenticating costs a token and makes every host validate the new token with Keystone,
        so it is done only when the cached catalog may predate what is being validated.
        """
        auth_ref = getattr(self.session.auth, "auth_ref", None)
        if auth_ref is None:
            return True  # the next request authenticates: a brand-new catalog
        try:
            issued = auth_ref.issued
        except (KeyError, ValueError, TypeError):
            return False
        if issued is None:
            return False
        if issued.tzinfo is None:
            issued = issued.replace(tzinfo=UTC)
        return bool(issued >= self.catalog_fresh_after)

    def probe(
        self,
        role_hosts: Sequence[RoleHost],
        *,
        min_healthy: int | None = None,
        reauthenticate: bool | None = None,
    ) -> HealthReport:
        """Catalog match, probes and store check of every host; writes nothing.

        ``reauthenticate``: re-read the catalog with a new token; None decides by the token's age.
        """
        if reauthenticate is None:
            reauthenticate = not self.catalog_is_current()
        catalog = image_cluster_endpoints(self.session, region=self.region, reauthenticate=reauthenticate)
        hosts, extra = match_catalog(role_hosts, catalog)
        report = HealthReport(
            region=self.region,
            hosts=[],
            min_healthy=min_healthy,
        )
        in_catalog = set(normalize_endpoint(e) for e in catalog)

        def check(host: RoleHost) -> HostReport:
            return self._check_host(host, in_catalog)

        rows = _map(check, hosts, sequential=self.sequential)
        for endpoint in extra:
            rows.append(HostReport(None, None, endpoint, "misconfigured",
                                   "the catalog lists this image-cluster endpoint but no image-library role "
                                   "host owns it: remove the stale endpoint from Keystone"))
        report.hosts = rows
        if not role_hosts:
            report.problems.append("no host holds the image-library role")
        return report

    def _check_host(self, host: RoleHost, in_catalog: set[str]) -> HostReport:
        def row(status: str, reason: str, latency: float | None = None) -> HostReport:
            return HostReport(host.host_id, host.hostname, host.endpoint, status, reason, latency)

        if host.endpoint is None:
            return row("misconfigured", "no image-cluster endpoint can be matched to this host (resmgr "
                                        "reports no endpoint_address and no catalog entry has its address)")
        if host.endpoint not in in_catalog:
            return row("misconfigured", f"its endpoint {host.endpoint} is missing from the catalog's "
                                        f"image-cluster endpoints of region {self.region!r}")
        glance = self.host(host.endpoint)
        result = glance.probe(timeout=self.probe_timeout)
        if result.status != "serving":
            return row(result.status, result.reason, result.latency)
        if self.expected_store is not None:
            try:
                problem = self.expected_store.mismatch(glance.stores_detail())
            except HostUnavailable as exc:
                return row("frozen" if exc.kind == "read-timeout" else "error", exc.reason, result.latency)
            except GlanceError as exc:
                return row("error", f"cannot read its store report (GET /v2/info/stores/detail needs the "
                                    f"admin role): {exc}", result.latency)
            if problem is not None:
                return row("misconfigured", problem, result.latency)
        return row("serving", "serving", result.latency)

    # -- shared-storage canary ------------------------------------------------------------------------

    def canary(self, report: HealthReport) -> HealthReport:
        """Write a small image through one serving host, read it back through every other, delete it.

        Hosts that cannot read it byte-identically become ``no-shared-data``. Returns a new report.
        """
        serving = report.serving
        if not serving:
            return report
        self._remove_stale_canaries(serving)
        data = os.urandom(CANARY_SIZE)
        expected = hashlib.sha512(data).hexdigest()
        canary_id = str(uuid.uuid4())
        rows = {id(h): h for h in report.hosts}
        writer: HostReport | None = None
        failed_writers: list[HostReport] = []
        for candidate in serving:
            try:
                self._write_canary(self.host(str(candidate.endpoint)), canary_id, data)
                writer = candidate
                break
            except GlanceError as exc:
                rows[id(candidate)] = replace(candidate, status="error",
                                              reason=f"cannot write the canary image: {exc}")
                failed_writers.append(candidate)
                self._delete_canary([candidate], canary_id)
                canary_id = str(uuid.uuid4())
        if writer is None:
            return replace(report, hosts=[rows[id(h)] for h in report.hosts], canary="no host could write it")
        try:
            readers = [h for h in serving if h is not writer and h not in failed_writers]

            def read(row: HostReport) -> HostReport:
                try:
                    got = self.host(str(row.endpoint)).download_sha512(canary_id)
                except GlanceError as exc:
                    return replace(row, status="error", reason=f"cannot read the canary image: {exc}")
                if got.sha512 == expected and got.size == len(data):
                    return row
                return replace(row, status="no-shared-data", reason=(
                    f"cannot read data written through {writer.label}: the canary image came back as "
                    f"HTTP {got.status} with {got.size} of {len(data)} bytes (sha512 "
                    f"{'matches' if got.sha512 == expected else 'differs'}): this host's store is not the "
                    "shared storage (local disk, or the share is not mounted at the same path)"))

            for old, new in zip(readers, _map(read, readers, sequential=self.sequential), strict=True):
                rows[id(old)] = new
        finally:
            left = self._delete_canary([writer, *serving], canary_id)
        hosts = [rows[id(h)] for h in report.hosts]
        readers_ok = sum(1 for h in readers if rows[id(h)] is h)
        outcome = (f"written through {writer.label}, read back identically through {readers_ok} other "
                   f"host(s)")
        checked = replace(report, hosts=hosts, canary=outcome)
        if left:
            checked.problems.append(f"the canary image {canary_id} could not be deleted through any host: "
                                    "delete it once a host serves")
        return checked

    def _write_canary(self, host: GlanceHost, canary_id: str, data: bytes) -> None:
        host.create_image(image_id=canary_id, body={
            "name": f"pcd-imagelib-ha-canary-{canary_id[:8]}", "disk_format": "raw",
            "container_format": "bare", "visibility": "private", "os_hidden": True,
            CANARY_PROPERTY: "true",
        })
        self.progress(f"{host.endpoint}: writing canary image {canary_id}")
        body: HashingUpload = SizedHashingUpload(iter([data]), len(data))
        host.upload(canary_id, body)
        record = host.get_image(canary_id)
        if record is None or record.get("status") != "active":
            raise GlanceError(f"canary image {canary_id} is {record and record.get('status')!r} after upload")
        if record.get("os_hash_value") not in (None, body.sha512):
            raise GlanceError("the canary's os_hash_value differs from the bytes sent")

    def _delete_canary(self, candidates: Iterable[HostReport | None], canary_id: str) -> bool:
        """Delete the canary through the first host that can; True if it may still exist."""
        for row in candidates:
            if row is None or row.endpoint is None:
                continue
            try:
                self.host(row.endpoint).delete_image(canary_id)
                return False
            except GlanceError:
                continue
        return True

    def _remove_stale_canaries(self, serving: Sequence[HostReport]) -> None:
        """Delete canaries a crashed run left behind (old enough that no live run still uses them)."""
        host = self.host(str(serving[0].endpoint))
        try:
            found = host.find_by_property(CANARY_PROPERTY, "true")
        except GlanceError:
            return
        cutoff = datetime.now(UTC) - CANARY_STALE_AFTER
        for image in found:
            created = _parse_time(image.get("created_at"))
            if created is not None and created < cutoff:
                try:
                    host.delete_image(str(image["id"]))
                    self.progress(f"{host.endpoint}: removed stale canary image {image['id']}")
                except GlanceError:
                    continue

    # -- audit ------------------------------------------------------------------------------------------

    def audit(self, report: HealthReport) -> HealthReport:
        """One-byte ranged read of every active image on every serving host (206 = has the data)."""
        serving = report.serving
        if not serving:
            return report
        try:
            images = [i for i in self.host(str(serving[0].endpoint)).list_images(
                {"status": "active", "visibility": "all"}) if i.get("size")]
        except GlanceError as exc:
            report.problems.append(f"cannot list images for the audit: {exc}")
            return report

        def audit_host(row: HostReport) -> HostReport:
            glance = self.host(str(row.endpoint))
            missing = []
            for image in images:
                try:
                    if not glance.has_data(str(image["id"])):
                        missing.append(str(image["id"]))
                except GlanceError as exc:
                    return replace(row, status="error", reason=f"audit interrupted: {exc}")
            if not missing:
                return row
            return replace(row, status="no-shared-data", reason=(
                f"has no data for {len(missing)} of {len(images)} active images "
                f"(e.g. {', '.join(missing[:3])}): a one-byte ranged read answered 204"))

        audited = dict(zip((id(h) for h in serving), _map(audit_host, serving, sequential=self.sequential),
                           strict=True))
        return replace(report, hosts=[audited.get(id(h), h) for h in report.hosts])

    # -- the whole validation ---------------------------------------------------------------------------

    def validate(
        self,
        role_hosts: Sequence[RoleHost],
        *,
        min_healthy: int | None = None,
        canary: bool = True,
        audit_images: bool = False,
        deadline: float = 120.0,
        interval: float = 5.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> HealthReport:
        """Probe until healthy or ``deadline`` passes, then run the canary (and audit) once.

        Raises :class:`HealthError` with the last report when the region is not healthy.
        """
        stop = time.monotonic() + deadline
        reauthenticate: bool | None = None
        while True:
            report = self.probe(role_hosts, min_healthy=min_healthy, reauthenticate=reauthenticate)
            if report.ok or time.monotonic() + interval > stop:
                break
            # Waiting for hosts to come up: later rounds must see endpoints registered meanwhile.
            reauthenticate = True
            self.progress(f"not healthy yet, probing again in {interval:.0f}s:\n{report.failure_message()}")
            sleep(interval)
        if report.ok and canary:
            report = self.canary(report)
        if report.ok and audit_images:
            report = self.audit(report)
        self.progress(report.table())
        if not report.ok:
            raise HealthError(report)
        return report


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
