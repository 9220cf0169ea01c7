"""Health of a region's image library: every host probed, its store checked, shared storage proven.

What is checked, and why each check is needed:

* The catalog's ``image-cluster`` endpoints are exactly the role hosts' endpoints (the catalog is what
  Nova and users follow; a stale or missing entry sends traffic to the wrong place). The catalog is
  cached with the token, so it is read after re-authenticating.
* Each host answers its probe (``/healthcheck``, ``GET /v2/``, an authenticated list) within the probe
  timeout. A drained host (``/healthcheck`` disabled by file) is reported ``drained``: not a failure,
  not counted as serving, never used for uploads.
* Each host's store, as its own Glance reports it (``GET /v2/info/stores/detail``), matches the
  expected one: a host that mounted the share elsewhere is caught without host access. For the
  Cinder store, the volume type itself is read from Cinder: it must exist and be multiattach, and a
  Cinder API that does not answer within the probe timeout fails the check (nothing can be stored).
* The storage is really shared: a small canary image written through one host reads back
  byte-identical (sha512) through every other. ``/healthcheck`` and even a successful download prove
  nothing here: a host without the data answers 204 with an empty body. The canary is then deleted.
* Optionally every existing image is audited on every host with a one-byte ranged read.
* With ``hostAccess``, each host's service, log, Glance config and store mount are checked over SSH
  (``host_checks``); without it the table says those checks were skipped.

The report model is in ``health_report``, the canary in ``canary``, the audit in ``audit``.
Probes run concurrently (bounded), so eight hosts cost about what one does; ``sequential=True`` runs
them one by one (the benchmark's baseline).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime
from urllib.parse import urlsplit

from keystoneauth1 import session as ks_session

from imagelib_ha.client.audit import audit_images
from imagelib_ha.client.block_storage import BlockStorage, volume_type_problem
from imagelib_ha.client.canary import CANARY_PROPERTY, SharedStorageCanary
from imagelib_ha.client.catalog import image_cluster_endpoints, normalize_endpoint
from imagelib_ha.client.glance import GlanceError, GlanceHost, HostUnavailable, Timeouts
from imagelib_ha.client.health_report import (
    ExpectedStore,
    HealthError,
    HealthReport,
    HostReport,
    RoleHost,
    map_hosts,
)
from imagelib_ha.client.host_checks import HostChecker, HostCheckResult, apply_host_checks
from imagelib_ha.client.transport import skip_environment_rescan

# Importable from here: the checker's callers name what it returns and what marks its canary.
__all__ = [
    "CANARY_PROPERTY", "ExpectedStore", "HealthChecker", "HealthError", "HealthReport", "HostReport",
    "RoleHost", "match_catalog",
]

Progress = Callable[[str], None]
# Bound of each canary request on the Cinder store (see ``HealthChecker.canary``).
CINDER_CANARY_TIMEOUT = 30.0


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
        host_checker: HostChecker | None = None,
    ) -> None:
        self.session = session
        # Checks over SSH (service, log, config, mount) of every role host; None: no hostAccess.
        self.host_checker = host_checker
        self._background = (ThreadPoolExecutor(max_workers=1, thread_name_prefix="host-checks")
                            if host_checker is not None else None)
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

    def host(self, endpoint: str, timeouts: Timeouts | None = None) -> GlanceHost:
        """The Glance API of one host, bounded by ``timeouts`` (default: the probe's)."""
        return GlanceHost(self.session, endpoint, timeouts=timeouts or self.timeouts)

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
        # The host checks over SSH run while the API probes do: a round costs the longer of the two.
        host_checks: Future[dict[str, HostCheckResult]] | None = None
        if self.host_checker is not None and self._background is not None:
            names = [h.hostname for h in role_hosts if h.hostname]
            host_checks = self._background.submit(self.host_checker.check, names)
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

        rows = map_hosts(check, hosts, sequential=self.sequential)
        for endpoint in extra:
            rows.append(HostReport(None, None, endpoint, "misconfigured",
                                   "the catalog lists this image-cluster endpoint but no image-library role "
                                   "host owns it: remove the stale endpoint from Keystone"))
        report.hosts = rows
        if not role_hosts:
            report.problems.append("no host holds the image-library role")
        if self.expected_store is not None and self.expected_store.type == "cinder":
            storage = BlockStorage(self.session, region=self.region, timeout=self.probe_timeout)
            problem = volume_type_problem(storage, str(self.expected_store.volume_type))
            if problem is not None:
                report.problems.append(problem)
        if host_checks is not None:
            report = apply_host_checks(report, host_checks.result())
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

    # -- shared storage and data ------------------------------------------------------------------------

    def canary(self, report: HealthReport) -> HealthReport:
        """Prove the serving hosts share one store (``canary.SharedStorageCanary``); a new report."""
        if self.expected_store is None or self.expected_store.type != "cinder":
            canary = SharedStorageCanary(self.host, progress=self.progress, sequential=self.sequential)
            return canary.prove(report)
        # On the Cinder store every canary request is several Cinder operations: the write creates,
        # attaches, fills and detaches a volume (4.7-5.7 s for 64 KiB on this lab's loaded 2 cores),
        # and every read attaches it again. Cinder serializes one volume's attachments even when it is
        # multiattach (four parallel 10 MiB reads took 0.7/2.7/7.1/15.1 s; in parallel a healthy host
        # timed out at 5 s), so the reads go one host at a time, and each canary request gets
        # CINDER_CANARY_TIMEOUT (or the probe timeout if longer). A frozen host is still caught: by
        # its probe before the canary, or by that bound during it.
        timeouts = Timeouts(self.timeouts.connect, max(self.probe_timeout, CINDER_CANARY_TIMEOUT))

        def host(endpoint: str) -> GlanceHost:
            return self.host(endpoint, timeouts)

        canary = SharedStorageCanary(host, progress=self.progress, sequential=True)
        return canary.prove(report)

    def audit(self, report: HealthReport) -> HealthReport:
        """Check every serving host has the data of every active image (``audit.audit_images``)."""
        return audit_images(report, self.host, sequential=self.sequential)

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


