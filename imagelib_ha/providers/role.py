"""``ImageLibraryRole``: the image-library role on one PCD host, as a Pulumi dynamic resource.

Lifecycle:

* ``check`` validates the inputs (unknowns at preview pass) and fills defaults.
* ``diff`` reports precisely what changed, ignoring ``__provider``; only a change to *another* host
  replaces (create-before-delete, so capacity never drops). Re-spelling the same host (hostname ↔ id)
  is an in-place update: a replacement on the same host would assign, then let the old resource's
  delete remove the role.
* ``create`` resolves the host, checks its region, then adopts a role that is already assigned
  (``adopted: true``) or assigns it, and waits until resmgr reports it applied. If waiting fails after
  this call assigned the role, the assignment is withdrawn (one DELETE, not waited for) so a failed
  create leaves no role that a later run would adopt as someone else's.
* ``read`` reports the current role state; a role removed out of band reads as gone (empty id).
* ``update`` re-checks the host and waits again (re-assigning a role removed out of band) and returns
  the full outputs.
* ``delete`` removes the role and waits, unless it was adopted: adopted roles are left in place.

The provider keeps no state on ``self``: every call builds its own keystoneauth session, so the
provider process may run up to four calls on the shared object at once. Module import has no side
effects (the provider process imports it by name).
"""

from __future__ import annotations

import logging
import posixpath
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from keystoneauth1 import exceptions as ks_exc
from pulumi import Output
from pulumi.dynamic import (
    CheckFailure,
    CheckResult,
    CreateResult,
    DiffResult,
    ReadResult,
    ResourceProvider,
    UpdateResult,
)

from imagelib_ha.client.catalog import image_cluster_endpoints, normalize_endpoint
from imagelib_ha.client.errors import HostRegionMismatch, MountPathMismatch, PcdError, RoleConflictTimeout
from imagelib_ha.client.resmgr import ResmgrClient, ResmgrHost
from imagelib_ha.client.roles import RoleProgress, RoleWaiter, WaitPolicy
from imagelib_ha.client.session import CloudAccess, make_session
from imagelib_ha.providers.common import (
    SeededResource,
    diff_inputs,
    inputs_with_defaults,
    is_unknown,
    rejected_credentials_explained,
)

# Re-exported: it was defined here, and callers may import it from this module.
from imagelib_ha.providers.common import credentials_rejected as credentials_rejected

LOG = logging.getLogger(__name__)

# Inputs with their defaults (None: optional, no default). ``cloud``, ``host`` are required.
INPUT_DEFAULTS: dict[str, Any] = {
    "expected_region": None,
    "expected_mount_path": None,
    "converge_timeout": 1800,
    "failed_grace": 120,
    "conflict_timeout": 600,
    "poll_interval": 5,
}
INPUT_KEYS = ("cloud", "provider_version", "host", *INPUT_DEFAULTS)
# Output-only keys: seeded with None so each exists as an attribute on the resource object.
OUTPUT_KEYS = (
    "host_id",
    "hostname",
    "region",
    "role_status",
    "glance_role_state",
    "adopted",
    "endpoint",
)
TIMING_INPUTS = ("converge_timeout", "failed_grace", "conflict_timeout", "poll_interval")


# --- shared with the settings provider ---------------------------------------------------------------


def cloud_failures(cloud: Any, prop: str = "cloud") -> list[CheckFailure]:
    """Problems with a ``cloud`` input, naming the config key to fix and never echoing a value."""
    if is_unknown(cloud):
        return []
    if not isinstance(cloud, Mapping):
        return [CheckFailure(prop, "must be an object with the keys of pcd-imagelib-ha:cloud")]
    failures = []
    for key, config_key in (("auth_url", "authUrl"), ("region", "region")):
        value = cloud.get(key)
        if not is_unknown(value) and not (isinstance(value, str) and value):
            failures.append(CheckFailure(prop, f"is missing {key}: set pcd-imagelib-ha:cloud.{config_key}"))
    has_password = cloud.get("username") and cloud.get("password")
    has_app_cred = cloud.get("application_credential_id") and cloud.get("application_credential_secret")
    if not (has_password or has_app_cred):
        failures.append(CheckFailure(
            prop,
            "has no usable credentials: set pcd-imagelib-ha:cloud.username with cloud.password (or "
            "cloud.passwordEnv), or cloud.applicationCredentialId with cloud.applicationCredentialSecret",
        ))
    return failures


def open_resmgr(cloud: Mapping[str, Any]) -> ResmgrClient:
    """A resmgr client of the cloud's region on a fresh session (nothing shared between calls)."""
    access = CloudAccess.from_dict(cloud)
    return ResmgrClient(make_session(access), region=access.region)


def _number_failures(
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


# --- the provider ----------------------------------------------------------------------------------


def _log_progress(progress: RoleProgress) -> None:
    LOG.info("%s", progress)


def _policy(inputs: Mapping[str, Any]) -> WaitPolicy:
    return WaitPolicy(**{key: float(inputs[key]) for key in TIMING_INPUTS})


def _inputs(props: Mapping[str, Any]) -> dict[str, Any]:
    """The input keys of ``props`` (inputs or stored outputs) with defaults filled in."""
    return inputs_with_defaults(props, INPUT_KEYS, INPUT_DEFAULTS)


class ImageLibraryRoleProvider(ResourceProvider):
    """Assigns, adopts, reads and removes the ``image-library`` role of one host through resmgr."""

    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        inputs = _inputs(news)
        failures = cloud_failures(inputs["cloud"])
        host = inputs["host"]
        if not is_unknown(host) and not (isinstance(host, str) and host.strip()):
            failures.append(CheckFailure(
                "host", "must be a resmgr host id or hostname (an entry of pcd-imagelib-ha:hosts)"
            ))
        region = inputs["expected_region"]
        if region is not None and not is_unknown(region) and not (isinstance(region, str) and region):
            failures.append(CheckFailure("expected_region", "must be a region name or null"))
        mount = inputs["expected_mount_path"]
        if mount is not None and not is_unknown(mount) and not (
            isinstance(mount, str) and posixpath.isabs(mount)
        ):
            failures.append(CheckFailure("expected_mount_path", "must be an absolute path or null"))
        failures += _number_failures(inputs, TIMING_INPUTS, minimum_zero=("failed_grace",))
        return CheckResult(inputs, failures)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        old_inputs = {k: olds[k] for k in INPUT_KEYS if k in olds}
        new_inputs = {k: news[k] for k in INPUT_KEYS if k in news}
        new_host = news.get("host")
        # The same host spelled differently (hostname <-> id) is not another host.
        same_host = not is_unknown(new_host) and new_host in {
            olds.get("host"), olds.get("host_id"), olds.get("hostname")
        } - {None}
        return diff_inputs(old_inputs, new_inputs, replace_on=() if same_host else ("host",))

    def create(self, props: dict[str, Any]) -> CreateResult:
        inputs = _inputs(props)
        outs = self._converge(inputs, adopted_before=None, expected_id=None)
        return CreateResult(id_=outs["host_id"], outs=outs)

    def update(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        inputs = _inputs(news)
        adopted = bool(olds.get("adopted"))
        return UpdateResult(outs=self._converge(inputs, adopted_before=adopted, expected_id=id_))

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        inputs = _inputs(props)
        client = open_resmgr(inputs["cloud"])
        with rejected_credentials_explained(inputs["cloud"]):
            host = client.get_host(id_)
            if host is None or not host.has_image_library:
                # Removed out of band (or the host is gone): an empty id tells the engine so.
                return ReadResult(id_="", outs={})
            endpoint = self._endpoint(client, host, self._region_of(host, client))
        outs = self._outputs(inputs, host, client, adopted=bool(props.get("adopted")), endpoint=endpoint)
        return ReadResult(id_=id_, outs=outs)

    def delete(self, id_: str, props: dict[str, Any]) -> None:
        inputs = _inputs(props)
        label = props.get("hostname") or id_
        if props.get("adopted"):
            LOG.info("image-library role on %s was adopted, not assigned by this stack: left in place", label)
            return
        client = open_resmgr(inputs["cloud"])
        with rejected_credentials_explained(inputs["cloud"]):
            host = client.get_host(id_)
            if host is None or not host.has_image_library:
                return
            RoleWaiter(client, _policy(inputs), progress=_log_progress).remove_and_wait(id_, host.hostname)

    # --- steps -----------------------------------------------------------------------------------
    @staticmethod
    def _region_of(host: ResmgrHost, client: ResmgrClient) -> str:
        # resmgr serves one region on PCD; a host record that names its region wins.
        return host.region or client.region

    def _converge(
        self, inputs: dict[str, Any], *, adopted_before: bool | None, expected_id: str | None
    ) -> dict[str, Any]:
        client = open_resmgr(inputs["cloud"])
        with rejected_credentials_explained(inputs["cloud"]):
            return self._converge_with(client, inputs, adopted_before=adopted_before, expected_id=expected_id)

    def _converge_with(
        self, client: ResmgrClient, inputs: dict[str, Any], *, adopted_before: bool | None,
        expected_id: str | None,
    ) -> dict[str, Any]:
        host = client.find_host(inputs["host"])
        if expected_id is not None and host.id != expected_id:
            raise PcdError(
                f"Host '{inputs['host']}' now resolves to {host.id}, not to {expected_id} which this "
                "resource manages: configure the host by its id in pcd-imagelib-ha:hosts."
            )
        region = self._region_of(host, client)
        expected_region = inputs["expected_region"]
        if expected_region and region != expected_region:
            raise HostRegionMismatch(
                host=inputs["host"], host_id=host.id, actual=region, expected=expected_region
            )

        waiter = RoleWaiter(client, _policy(inputs), progress=_log_progress)
        if host.has_image_library:
            # Already assigned: adopted on create; on update keep what create recorded.
            adopted = True if adopted_before is None else adopted_before
            converged = waiter.wait_assigned(host.id, host.hostname)
            self._check_mount_path(client, converged, inputs["expected_mount_path"])
        else:
            adopted = False
            try:
                converged = waiter.assign_and_wait(host.id, host.hostname)
                self._check_mount_path(client, converged, inputs["expected_mount_path"])
            except RoleConflictTimeout:
                raise  # resmgr never accepted the assignment: nothing to withdraw
            except PcdError as exc:
                self._withdraw(client, host, exc)
                raise
        endpoint = self._endpoint(client, converged, region)
        return self._outputs(inputs, converged, client, adopted=adopted, endpoint=endpoint)

    @staticmethod
    def _withdraw(client: ResmgrClient, host: ResmgrHost, exc: PcdError) -> None:
        try:
            client.remove_image_library(host.id)
            exc.add_note(f"The image-library role assigned to {host.label} by this run was withdrawn.")
        except (PcdError, ks_exc.ClientException):
            exc.add_note(
                f"The image-library role assigned to {host.label} by this run could not be withdrawn: "
                "remove it in the PCD UI if the host should not serve images."
            )

    @staticmethod
    def _check_mount_path(client: ResmgrClient, host: ResmgrHost, expected: str | None) -> None:
        if not expected:
            return
        settings = client.get_glance_role_settings(host.id) or {}
        actual = settings.get("filesystem_store_datadir")
        if not actual:
            return  # a Cinder-backed host, or a PCD release that does not report role settings
        actual_norm, expected_norm = posixpath.normpath(str(actual)), posixpath.normpath(expected)
        if actual_norm != expected_norm and not actual_norm.startswith(expected_norm.rstrip("/") + "/"):
            raise MountPathMismatch(hostname=host.label, host_id=host.id, actual=actual, expected=expected)

    @staticmethod
    def _endpoint(client: ResmgrClient, host: ResmgrHost, region: str) -> str | None:
        # The endpoint is registered as the role converges, after this session's token was issued:
        # re-authenticate to read a fresh catalog.
        endpoints = image_cluster_endpoints(client.session, region=region, reauthenticate=True)
        if not endpoints:
            return None
        settings = client.get_glance_role_settings(host.id) or {}
        address = settings.get("endpoint_address")
        found = match_host_endpoint(
            endpoints, endpoint_address=str(address) if address else None, ip_address=host.ip_address
        )
        if found is None:
            LOG.info("no image-cluster endpoint of %s could be matched to host %s", region, host.label)
        return found

    @staticmethod
    def _outputs(
        inputs: Mapping[str, Any], host: ResmgrHost, client: ResmgrClient, *, adopted: bool,
        endpoint: str | None,
    ) -> dict[str, Any]:
        return {
            **inputs,
            "host_id": host.id,
            "hostname": host.hostname,
            "region": host.region or client.region,
            "role_status": host.role_status,
            "glance_role_state": host.glance_role_state,
            "adopted": adopted,
            "endpoint": endpoint,
        }


class ImageLibraryRole(SeededResource, module="imagelib", name="ImageLibraryRole"):
    """The ``image-library`` role assigned to one PCD host (resmgr v2 cluster role).

    A role that already existed is adopted (``adopted`` is true) and left in place on delete.
    Only a change to another host replaces the resource, create-before-delete.
    """

    host_id: Output[str]
    hostname: Output[str]
    region: Output[str]
    role_status: Output[str]
    glance_role_state: Output[str]
    adopted: Output[bool]
    endpoint: Output[str | None]

    provider_class = ImageLibraryRoleProvider
    output_keys = OUTPUT_KEYS
