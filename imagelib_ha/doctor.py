"""``python -m imagelib_ha doctor``: the health validation for on-call, read-only, outside Pulumi.

It reads the stack file (``Pulumi.<stack>.yaml``) as the program does, with the same settings checks,
and runs the same probes and host checks as the health resource, then prints the table (or ``--json``).
Secrets the Pulumi CLI encrypted (``secure:`` values) cannot be read without the CLI: give them
through the ``*Env`` keys (``cloud.passwordEnv``, ``hostAccess.privateKeyEnv``) or a ``clouds.yaml``
entry (``--os-cloud``). Nothing is written to the cloud unless ``--canary`` (a small image written
through one host, read back through the others, then deleted).

Exit codes: 0 healthy, 1 unhealthy, 2 degraded or unknown (e.g. a host unreachable over SSH), 3 the
doctor itself could not run (bad config, control plane unreachable).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from imagelib_ha.client import log_cursors, own_requests
from imagelib_ha.client.errors import PcdError
from imagelib_ha.client.health import ExpectedStore, HealthChecker, HealthReport
from imagelib_ha.client.host_access import HostAccess
from imagelib_ha.client.host_checks import HostChecker, HostCheckSpec
from imagelib_ha.client.resmgr import ResmgrClient
from imagelib_ha.client.session import CloudAccess, make_session
from imagelib_ha.providers.health import role_hosts_from_resmgr
from imagelib_ha.providers.settings import expected_store
from imagelib_ha.settings import (
    PROJECT,
    Issue,
    SettingsError,
    StackSettings,
    parse_settings,
    resolve_host_access,
)

EXIT = {"healthy": 0, "unhealthy": 1, "degraded": 2, "unknown": 2}
EXIT_CANNOT_RUN = 3


class DoctorError(Exception):
    """The doctor cannot run: the message says why and what to fix."""


def stack_config(path: Path, os_cloud: str | None) -> dict[str, Any]:
    """The ``pcd-imagelib-ha:*`` keys of a stack file, refusing CLI-encrypted values by key."""
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except OSError as exc:
        raise DoctorError(f"cannot read the stack file {path}: {exc.strerror}; give --stack-file") from None
    config = dict(data.get("config") or {})
    issues = [Issue(k.removeprefix(f"{PROJECT}:") + _secure_path(v),
                    "is encrypted by the Pulumi CLI (secure:), which doctor cannot decrypt",
                    "give it through the matching *Env key (e.g. cloud.passwordEnv) or --os-cloud")
              for k, v in config.items() if _secure_path(v) is not None]
    if issues:
        raise SettingsError(issues)
    if os_cloud:
        # The clouds.yaml entry fills the credentials; the stack file keeps region, storage and hosts.
        cloud = dict(config.get(f"{PROJECT}:cloud") or {})
        for key in ("authUrl", "authUrlEnv", "username", "password", "passwordEnv"):
            cloud.pop(key, None)
        config[f"{PROJECT}:cloud"] = {**cloud, "cloud": os_cloud}
    return config


def _secure_path(value: Any, path: str = "") -> str | None:
    if isinstance(value, Mapping):
        if set(value) == {"secure"}:
            return path
        for k, v in value.items():
            found = _secure_path(v, f"{path}.{k}")
            if found is not None:
                return found
    return None


def role_hosts(session: Any, settings: StackSettings) -> list[Any]:
    """The configured hosts as resmgr knows them (by id or hostname), each with its Glance endpoint."""
    client = ResmgrClient(session, region=settings.region)
    listing = client.list_hosts()
    ids = [client.find_host(h.host, listing).id for h in settings.hosts]
    return role_hosts_from_resmgr(session, settings.region, ids)


def run(settings: StackSettings, *, canary: bool, env: Mapping[str, str]) -> HealthReport:
    session = make_session(CloudAccess.from_dict(settings.cloud_access()))
    store = settings.storage
    expected = ExpectedStore.from_dict(expected_store(store.backend, mount_path=store.mount_path,
                                                      volume_type=store.volume_type))
    host_checker = None
    cursor_path = log_cursors.cursor_file("doctor", settings.region)
    if settings.host_access is not None:
        access = HostAccess.from_dict(resolve_host_access(settings.host_access, env))
        spec = HostCheckSpec(settings.health.service_unit, settings.health.log_path, expected,
                             own_request_ids=own_requests.recent_aborted())
        host_checker = HostChecker(access, spec, log_cursors.load(cursor_path))
    checker = HealthChecker(session, region=settings.region, expected_store=expected,
                            probe_timeout=settings.health.probe_timeout_seconds, host_checker=host_checker)
    try:
        report = checker.probe(role_hosts(session, settings), min_healthy=settings.health.min_healthy_hosts)
        if canary and report.ok:
            report = checker.canary(report)
    finally:
        if host_checker is not None:
            host_checker.close()
            log_cursors.save(cursor_path, host_checker.cursors)
    return report


def as_json(report: HealthReport) -> dict[str, Any]:
    return {
        "region": report.region, "condition": report.condition, "ok": report.ok,
        "serving": report.serving_count, "required": report.required, "problems": report.problems,
        "canary": report.canary, "host_checks_ran": report.host_checks_ran,
        "hosts": [{**h.as_output(), "host_detail": h.host_detail,
                   "latency_ms": round(h.latency * 1000) if h.latency is not None else None}
                  for h in report.hosts],
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m imagelib_ha doctor", description=__doc__.splitlines()[0])
    parser.add_argument("--stack", default="lab", help="stack name: reads Pulumi.<stack>.yaml (default lab)")
    parser.add_argument("--stack-file", type=Path, help="the stack file (default Pulumi.<stack>.yaml)")
    parser.add_argument("--os-cloud", help="take the credentials from this clouds.yaml entry")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--canary", action="store_true",
                        help="also prove shared storage with a canary image (writes and deletes one image)")
    args = parser.parse_args(argv)
    path = args.stack_file or Path(f"Pulumi.{args.stack}.yaml")
    try:
        settings = parse_settings(stack_config(path, args.os_cloud), os.environ)
        report = run(settings, canary=args.canary, env=os.environ)
    except (DoctorError, SettingsError, PcdError) as exc:
        print(f"doctor: {exc}", file=sys.stderr)
        return EXIT_CANNOT_RUN
    if args.json:
        print(json.dumps(as_json(report), indent=2))
    else:
        print(report.table())
        print(f"{report.condition}: {report.serving_count} serving, {report.required} required"
              + (f"; canary: {report.canary}" if report.canary else ""))
        if not report.ok:
            print(report.failure_message())
    return EXIT[report.condition]
