"""``ImageLibraryHealth``: validation of a region's image-library hosts after every role change.

Lifecycle:

* ``check`` validates the inputs (unknowns at preview pass) and refuses the HA prerequisite
  violations the settings let through (two regions, ``local`` storage with several hosts, differing
  mount paths): the apply-time twin of the policy pack.
* ``diff`` is precise and ignores ``__provider``; nothing replaces (a check has nothing to rebuild):
  any change is an update, which validates again. Changing ``revalidate`` forces that on purpose.
* ``create`` / ``update`` validate with ``client.health`` (catalog = role hosts, probes, store reports,
  shared-storage canary, optional audit), waiting up to ``deadline`` for the hosts to come up, and
  fail with a message naming every failing host and why.
* ``read`` (refresh) only probes: it never writes, so it runs no canary. The report is the output;
  a host that went down shows as drift.
* ``delete`` has nothing to delete.

Latency is printed (stderr), never stored: refresh shows drift only when something changed.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from keystoneauth1 import session as ks_session
from pulumi import Output
from pulumi.dynamic import (
    CheckFailure,
    CheckResult,
    ConfigureRequest,
    CreateResult,
    DiffResult,
    ReadResult,
    UpdateResult,
)

from imagelib_ha.client import log_cursors, own_requests
from imagelib_ha.client.errors import PcdError
from imagelib_ha.client.health import ExpectedStore, HealthChecker, HealthReport, RoleHost
from imagelib_ha.client.host_access import HostAccess
from imagelib_ha.client.host_checks import HostChecker, HostCheckSpec
from imagelib_ha.client.host_health import HOST_HEALTH
from imagelib_ha.client.resmgr import ResmgrClient
from imagelib_ha.providers.access import CloudConfiguredProvider
from imagelib_ha.providers.common import (
    SeededResource,
    contains_unknown,
    diff_inputs,
    fill_defaults,
    host_expectations,
    inputs_with_defaults,
    is_unknown,
    whole_number,
)
from imagelib_ha.providers.prereqs import ha_prerequisite_failures
from imagelib_ha.settings import (
    DEFAULT_LOG_PATH,
    DEFAULT_SERVICE_UNIT,
    SettingsError,
    config_key,
    host_access_from_config,
)

HOST_ACCESS_KEY = config_key("hostAccess")

# Inputs with their defaults (None: optional). ``region`` and ``expected_store`` are required.
INPUT_DEFAULTS: dict[str, Any] = {
    "role_host_ids": [],
    "hosts": [],
    "backend": None,
    "expected_store": None,
    "min_healthy": None,
    "probe_timeout": 5,
    "deadline": 120,
    "canary": True,
    "audit_images": False,
    "revalidate": None,
    "service_unit": None,
    "log_path": None,
    "host_checks": False,
    "lab": False,
}
INPUT_KEYS = ("region", *INPUT_DEFAULTS)

# Output-only keys: seeded with None so each exists as an attribute on the resource object.
OUTPUT_KEYS = ("report", "serving_count", "endpoints")

BACKENDS = ("nfs", "cinder", "local")


def _inputs(props: Mapping[str, Any]) -> dict[str, Any]:
    """The input keys of ``props`` (inputs or stored outputs) with defaults filled in."""
    return inputs_with_defaults(props, INPUT_KEYS, INPUT_DEFAULTS)


def _print(text: str) -> None:
    # Volatile figures (latency) go to the operator's terminal, not into state.
    print(text, file=sys.stderr, flush=True)


def _number_failure(value: Any, key: str, *, integer: bool = False, minimum: float = 0,
                    allow_zero: bool = False) -> list[CheckFailure]:
    if is_unknown(value):
        return []
    if integer and whole_number(value) is None:
        return [CheckFailure(key, "must be a whole number")]
    if isinstance(value, bool) or not isinstance(value, int | float):
        return [CheckFailure(key, "must be a number of seconds")]
    if value < minimum or (value == minimum and not allow_zero):
        bound = f"at least {minimum}" if allow_zero else f"more than {minimum}"
        return [CheckFailure(key, f"must be {bound}")]
    return []


def role_hosts_from_resmgr(
    session: ks_session.Session, region: str, host_ids: Sequence[str]
) -> list[RoleHost]:
    """Each role host's hostname and Glance endpoint as resmgr reports them (``endpoint_address``)."""
    client = ResmgrClient(session, region=region)
    hosts = []
    for host_id in host_ids:
        record = client.get_host(host_id)
        if record is None:
            hosts.append(RoleHost(host_id, None, None))
            continue
        settings = client.get_glance_role_settings(host_id) or {}
        address = str(settings.get("endpoint_address") or "") or None
        # ``endpoint_address`` is a full URL on some releases and a bare address on others.
        if address and "://" in address:
            endpoint, ip = address, None
        elif address:
            endpoint, ip = None, address
        else:
            endpoint, ip = None, record.ip_address
        hosts.append(RoleHost(host_id, record.hostname, endpoint, ip))
    return hosts


def _outputs(inputs: Mapping[str, Any], report: HealthReport) -> dict[str, Any]:
    outs = dict(inputs)
    outs.update(
        report=[h.as_output() for h in report.hosts],
        serving_count=report.serving_count,
        endpoints=report.endpoints,
    )
    return outs


class ImageLibraryHealthProvider(CloudConfiguredProvider):
    """Probes every image-library host, checks its store, and proves the storage is shared; with
    ``hostAccess``, also checks each host's service, log, Glance config and mount over SSH."""

    _host_access: HostAccess | None = None
    _host_access_problem: str | None = None

    def configure(self, req: ConfigureRequest) -> None:
        super().configure(req)
        self.configure_host_access({HOST_ACCESS_KEY: req.config.get(HOST_ACCESS_KEY)}, os.environ)

    def configure_host_access(self, raw: Mapping[str, Any], env: Mapping[str, str]) -> None:
        """The SSH access from stack config (secrets stay in this process, never in inputs or state)."""
        try:
            access = host_access_from_config(raw, env)
            self._host_access = HostAccess.from_dict(access) if access is not None else None
            self._host_access_problem = None
        except SettingsError as exc:
            self._host_access, self._host_access_problem = None, str(exc)

    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        inputs = _inputs(news)
        failures = self.cloud_failures()
        if self._host_access_problem is not None:
            failures.append(CheckFailure("host_checks", self._host_access_problem))
        region = inputs["region"]
        if not is_unknown(region) and not (isinstance(region, str) and region):
            failures.append(CheckFailure("region", "must be a region name"))
        ids = inputs["role_host_ids"]
        if not contains_unknown(ids) and not (isinstance(ids, list) and all(isinstance(i, str) for i in ids)):
            failures.append(CheckFailure("role_host_ids", "must be a list of host ids (the roles' host_id)"))
        backend = inputs["backend"]
        if backend is not None and not is_unknown(backend) and backend not in BACKENDS:
            failures.append(CheckFailure("backend", f"must be one of {', '.join(BACKENDS)}"))
        store = inputs["expected_store"]
        mount_path = None
        if store is None:
            failures.append(CheckFailure(
                "expected_store",
                'is required: {"type": "file", "data_dir": ...} or {"type": "cinder", "volume_type": ...}',
            ))
        elif not contains_unknown(store):
            if not isinstance(store, Mapping):
                failures.append(CheckFailure("expected_store", "must be an object"))
            else:
                try:
                    mount_path = ExpectedStore.from_dict(store).data_dir
                except ValueError as exc:
                    failures.append(CheckFailure("expected_store", str(exc)))
        min_healthy = inputs["min_healthy"]
        if min_healthy is not None:
            failures += _number_failure(min_healthy, "min_healthy", integer=True, minimum=1, allow_zero=True)
            min_healthy = whole_number(min_healthy)
            if min_healthy is not None:
                inputs["min_healthy"] = min_healthy
            if (min_healthy is not None and isinstance(ids, list)
                    and not contains_unknown(ids) and ids and min_healthy > len(ids)):
                failures.append(CheckFailure(
                    "min_healthy",
                    f"is {min_healthy} but only {len(ids)} hosts hold the role: lower it or add hosts",
                ))
        failures += _number_failure(inputs["probe_timeout"], "probe_timeout")
        failures += _number_failure(inputs["deadline"], "deadline", allow_zero=True)
        for flag in ("canary", "audit_images"):
            if not is_unknown(inputs[flag]) and not isinstance(inputs[flag], bool):
                failures.append(CheckFailure(flag, "must be true or false"))
        failures += [
            CheckFailure(prop, reason)
            for prop, reason in ha_prerequisite_failures(
                region=region, backend=backend, hosts=inputs["hosts"], mount_path=mount_path,
                lab=inputs["lab"],
            )
        ]
        return CheckResult(inputs, failures)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        old_inputs = fill_defaults({k: olds.get(k) for k in INPUT_KEYS}, INPUT_DEFAULTS)
        new_inputs = {k: news.get(k) for k in INPUT_KEYS}
        for values in (old_inputs, new_inputs):
            ids = values["role_host_ids"]
            if isinstance(ids, list) and not contains_unknown(ids):
                values["role_host_ids"] = sorted(str(i) for i in ids)
            values["hosts"] = host_expectations(values["hosts"])
        return diff_inputs(old_inputs, new_inputs, stored=olds)

    def create(self, props: dict[str, Any]) -> CreateResult:
        inputs = _inputs(props)
        report = self._validate(inputs)
        return CreateResult(id_=f"imagelib-health-{inputs['region']}", outs=_outputs(inputs, report))

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        inputs = _inputs(news)
        return UpdateResult(outs=_outputs(inputs, self._validate(inputs)))

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        inputs = _inputs(props)
        checker, hosts = self._checker(inputs)
        try:
            with self.cloud_errors_explained():
                report = checker.probe(hosts, min_healthy=whole_number(inputs["min_healthy"]))
        finally:
            self._close(checker, inputs)
        _print(report.table())
        self._remember(report)
        outs = dict(props)
        outs.update(_outputs(inputs, report))
        return ReadResult(id_=id_, outs=outs)

    def delete(self, _id: str, _props: dict[str, Any]) -> None:
        """A validation leaves nothing behind to delete (the canary is removed as it runs)."""

    # -- steps ------------------------------------------------------------------------------------------

    def _checker(self, inputs: Mapping[str, Any]) -> tuple[HealthChecker, list[RoleHost]]:
        # The role changes this validates happened before this call: a token issued from now on
        # carries a current catalog, so the checker need not re-authenticate to see it.
        started = datetime.now(UTC)
        session = self.session()
        store = inputs["expected_store"]
        # The rejection is itself a PcdError: it must not be re-worded as a resmgr read failure.
        with self.cloud_errors_explained():
            try:
                ids = list(inputs["role_host_ids"] or [])
                hosts = role_hosts_from_resmgr(session, str(inputs["region"]), ids)
            except PcdError as exc:
                raise PcdError(f"cannot read the image-library role hosts from resmgr: {exc}") from None
        expected = ExpectedStore.from_dict(store) if store else None
        checker = HealthChecker(
            session,
            region=str(inputs["region"]),
            expected_store=expected,
            probe_timeout=float(inputs["probe_timeout"]),
            progress=_print,
            catalog_fresh_after=started,
            host_checker=self._host_checker(inputs, expected),
        )
        return checker, hosts

    def _host_checker(self, inputs: Mapping[str, Any], expected: ExpectedStore | None) -> HostChecker | None:
        if self._host_access is None:
            return None
        spec = HostCheckSpec(service_unit=str(inputs["service_unit"] or DEFAULT_SERVICE_UNIT),
                             log_path=str(inputs["log_path"] or DEFAULT_LOG_PATH), expected_store=expected,
                             own_request_ids=own_requests.recent_aborted())
        cursors = log_cursors.load(log_cursors.cursor_file("health", str(inputs["region"])))
        return HostChecker(self._host_access, spec, cursors)

    @staticmethod
    def _close(checker: HealthChecker, inputs: Mapping[str, Any]) -> None:
        """Close the SSH connections and keep the log cursors for the next run."""
        if checker.host_checker is None:
            return
        checker.host_checker.close()
        path = log_cursors.cursor_file("health", str(inputs["region"]))
        log_cursors.save(path, checker.host_checker.cursors)

    def _validate(self, inputs: Mapping[str, Any]) -> HealthReport:
        checker, hosts = self._checker(inputs)
        try:
            with self.cloud_errors_explained():
                report = checker.validate(
                    hosts,
                    min_healthy=whole_number(inputs["min_healthy"]),
                    canary=bool(inputs["canary"]),
                    audit_images=bool(inputs["audit_images"]),
                    deadline=float(inputs["deadline"]),
                )
        finally:
            self._close(checker, inputs)
        self._remember(report)
        return report

    @staticmethod
    def _remember(report: HealthReport) -> None:
        """Share what the probes learned with image creation in this process (uploads avoid bad hosts)."""
        for host in report.hosts:
            if host.endpoint is None:
                continue
            if host.status == "serving":
                HOST_HEALTH.mark_good(host.endpoint)
            else:
                HOST_HEALTH.mark_bad(host.endpoint, host.reason)


class ImageLibraryHealth(SeededResource, module="imagelib", name="ImageLibraryHealth"):
    """The validated state of a region's image library: per-host report and serving endpoints.

    Create and update run the shared-storage canary; read (refresh) only probes.
    """

    report: Output[list[dict[str, Any]]]
    serving_count: Output[int]
    endpoints: Output[list[str]]

    provider_class = ImageLibraryHealthProvider
    output_keys = OUTPUT_KEYS
