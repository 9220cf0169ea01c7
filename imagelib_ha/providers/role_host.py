"""Converging the image-library role on one host, and the input checks of the role resources.

Plain functions over a ``ResmgrClient``: ``ImageLibraryRoles`` runs them for each host of its set.
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from keystoneauth1 import exceptions as ks_exc
from pulumi.dynamic import CheckFailure

from imagelib_ha.client.catalog import image_cluster_endpoints, normalize_endpoint
from imagelib_ha.client.data_dir import same_data_dir
from imagelib_ha.client.errors import HostRegionMismatch, MountPathMismatch, PcdError, RoleConflictTimeout
from imagelib_ha.client.resmgr import ResmgrClient, ResmgrHost
from imagelib_ha.client.roles import RoleWaiter
from imagelib_ha.providers.common import is_unknown


def number_failures(
    inputs: Mapping[str, Any], keys: Sequence[str], *, minimum_zero: Sequence[str] = ()
) -> list[CheckFailure]:
    """Each of ``keys`` must be a positive number of seconds (zero allowed for ``minimum_zero``)."""
    failures = []
    for key in keys:
        value = inputs.get(key)
        if is_unknown(value):
            continue
        if isinstance(value, bool) or not isinstance(value, int | float):
            failures.append(CheckFailure(key, "must be a number of seconds"))
        elif value < 0 or (value == 0 and key not in minimum_zero):
            bound = "zero or more" if key in minimum_zero else "more than zero"
            failures.append(CheckFailure(key, f"must be {bound} seconds"))
    return failures


def host_expectation_failures(hosts: Any) -> list[CheckFailure]:
    """The ``hosts`` input: a non-empty list of ``{host, region, mount_path}`` (pcd-imagelib-ha:hosts)."""
    if not isinstance(hosts, list) or not hosts:
        return [CheckFailure("hosts", "must be a non-empty list of {host, region, mount_path} "
                                      "(pcd-imagelib-ha:hosts)")]
    failures = []
    for index, entry in enumerate(hosts):
        if not isinstance(entry, Mapping):
            failures.append(CheckFailure("hosts", f"hosts[{index}] must be an object"))
            continue
        host, region, mount = entry.get("host"), entry.get("region"), entry.get("mount_path")
        if not is_unknown(host) and not (isinstance(host, str) and host.strip()):
            failures.append(CheckFailure(
                "hosts", f"hosts[{index}] must name a resmgr host id or hostname (pcd-imagelib-ha:hosts)"
            ))
        if region is not None and not is_unknown(region) and not (isinstance(region, str) and region):
            failures.append(CheckFailure("hosts", f"hosts[{index}].region must be a region name or null"))
        if mount is not None and not is_unknown(mount) and not (
            isinstance(mount, str) and posixpath.isabs(mount)
        ):
            failures.append(
                CheckFailure("hosts", f"hosts[{index}].mount_path must be an absolute path or null")
            )
    return failures


def match_host_endpoint(
    endpoints: Sequence[str], *, endpoint_address: str | None, ip_address: str | None
) -> str | None:
    """This host's ``image-cluster`` endpoint among ``endpoints``, or None when it cannot be told.

    The role's own ``endpoint_address`` setting decides when resmgr reports it (a full URL, or a bare
    address); otherwise the host's IP, but only when exactly one endpoint has that IP (on a lab where
    every host is 127.0.0.1 the IP alone proves nothing, so no guess is made).
    """
    normalized = [normalize_endpoint(e) for e in endpoints]
    if endpoint_address:
        wanted = normalize_endpoint(endpoint_address)
        if "://" in wanted:
            if wanted in normalized:
                return wanted
            target = urlsplit(wanted)
            same = [e for e in normalized if urlsplit(e).netloc == target.netloc]
            return same[0] if len(same) == 1 else None
        ip_address = wanted
    if ip_address:
        same_ip = [e for e in normalized if urlsplit(e).hostname == ip_address]
        if len(same_ip) == 1:
            return same_ip[0]
    return None


def converge_host(
    client: ResmgrClient, waiter: RoleWaiter, want: Mapping[str, Any], *, owned: bool
) -> dict[str, Any]:
    """Bring one wanted host to "role applied" and return its member record.

    ``owned`` is what was known before; a role this call assigns is owned whatever that was. A host
    already converged costs a few GETs (host, role settings, catalog) and no wait. If this call assigned
    the role and waiting then fails, the assignment is withdrawn (one DELETE, not waited for), so a
    failed run leaves no role behind.
    """
    host = client.get_host(str(want["host_id"]))
    if host is None:
        # PCD answers 404 to the per-host GET for minutes after a host's last role went, while the host
        # listing still shows it: only a host missing from the listing too is gone.
        host = next((h for h in client.list_hosts() if h.id == str(want["host_id"])), None)
    if host is None:
        raise PcdError(f"host {want.get('ref')} ({want['host_id']}) is no longer known to resmgr")
    region = host.region or client.region
    expected_region = want.get("region")
    if expected_region and region != expected_region:
        raise HostRegionMismatch(host=str(want.get("ref")), host_id=host.id, actual=region,
                                 expected=expected_region)
    if host.has_image_library:
        # Returns at its first poll when the role is applied: no wait for a converged host.
        converged = waiter.wait_assigned(host.id, host.hostname)
        check_mount_path(client, converged, want.get("mount_path"))
    else:
        owned = True  # assigned by this call: whatever held it before, this stack owns it now
        try:
            converged = waiter.assign_and_wait(host.id, host.hostname)
            check_mount_path(client, converged, want.get("mount_path"))
        except RoleConflictTimeout:
            raise  # resmgr never accepted the assignment: nothing to withdraw
        except PcdError as exc:
            _withdraw(client, host, exc)
            raise
    return {
        "ref": want.get("ref"),
        "host_id": converged.id,
        "hostname": converged.hostname,
        "region": region,
        "expected_region": want.get("region"),
        "mount_path": want.get("mount_path"),
        "role_status": converged.role_status,
        "glance_role_state": converged.glance_role_state,
        "endpoint": None,  # found once for the whole set: add_endpoints
        "owned": owned,
        "assigned": True,
        "ip_address": converged.ip_address,
    }


def _withdraw(client: ResmgrClient, host: ResmgrHost, exc: PcdError) -> None:
    try:
        client.remove_image_library(host.id)
        exc.add_note(f"The image-library role assigned to {host.label} by this run was withdrawn.")
    except (PcdError, ks_exc.ClientException):
        exc.add_note(
            f"The image-library role assigned to {host.label} by this run could not be withdrawn: "
            "remove it in the PCD UI if the host should not serve images."
        )


def check_mount_path(client: ResmgrClient, host: ResmgrHost, expected: str | None) -> None:
    """The host's reported ``filesystem_store_datadir`` is ``expected`` (``client.data_dir``'s rule)."""
    if not expected:
        return
    settings = client.get_glance_role_settings(host.id) or {}
    actual = settings.get("filesystem_store_datadir")
    if not actual:
        return  # a Cinder-backed host, or a PCD release that does not report role settings
    if not same_data_dir(str(actual), expected):
        raise MountPathMismatch(hostname=host.label, host_id=host.id, actual=actual, expected=expected)


def add_endpoints(client: ResmgrClient, members: list[dict[str, Any]]) -> None:
    """Set each converged member's ``image-cluster`` endpoint, when it can be told.

    The endpoints are registered as roles converge, after this session's token was issued: the catalog
    is read once, after re-authenticating, and only once every host has converged. (Doing it per host
    inside the per-host threads invalidated the session's token under the other threads' feet.)
    """
    for region in sorted({str(m["region"]) for m in members}):
        endpoints = image_cluster_endpoints(client.session, region=region, reauthenticate=True)
        for member in (m for m in members if m["region"] == region):
            settings = client.get_glance_role_settings(str(member["host_id"])) or {}
            address = settings.get("endpoint_address")
            member["endpoint"] = match_host_endpoint(
                endpoints, endpoint_address=str(address) if address else None,
                ip_address=member.get("ip_address"),
            ) if endpoints else None
