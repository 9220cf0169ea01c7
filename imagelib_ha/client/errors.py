"""Exceptions of the PCD client, each built from a message template with named fields.

As in glance_store, every exception class carries a ``template`` whose named fields are filled from
keyword arguments, and the fields stay available as attributes (``exc.fields["host_id"]``) for callers
that act on them. A message says what went wrong *and* what the operator can do about it. No template
takes a credential: messages reach terminals and CI logs.
"""

from __future__ import annotations

from typing import Any, ClassVar

# Long response bodies are cut so a message stays readable (and a misbehaving server cannot flood a log).
_DETAIL_LIMIT = 300


def short_detail(text: Any, limit: int = _DETAIL_LIMIT) -> str:
    """``text`` as one line of at most ``limit`` characters (for response bodies and host messages)."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


class PcdError(Exception):
    """Base of every error the PCD client raises."""

    template: ClassVar[str] = "PCD request failed: {reason}"

    def __init__(self, message: str | None = None, **fields: Any) -> None:
        self.fields: dict[str, Any] = fields
        if message is None:
            message = self.template.format(**fields)
        self.message = message
        super().__init__(message)


# --- resmgr: reaching the service ------------------------------------------------------------------


class ResmgrEndpointNotFound(PcdError):
    """The service catalog has no ``resmgr`` endpoint for the region."""

    template = (
        "No resmgr endpoint (service type 'resmgr', interface '{interface}') in the service catalog for "
        "region '{region}'. Check the region name in pcd-imagelib-ha:cloud.region, or pass an explicit "
        "resmgr endpoint override."
    )


class ResmgrUnreachable(PcdError):
    """resmgr could not be reached at all (connection refused, TLS or DNS failure, timeout)."""

    template = (
        "Cannot reach resmgr for {method} {path} in region '{region}': {reason}. Check network access to "
        "the region's management plane and the TLS settings (cloud.caBundle / cloud.insecure)."
    )


class ResmgrRequestFailed(PcdError):
    """resmgr answered with an unexpected HTTP status."""

    template = "resmgr {method} {path} answered HTTP {status}: {detail}. {hint}"

    def __init__(self, *, method: str, path: str, status: int, detail: str, hint: str = "") -> None:
        if not hint:
            hint = {
                401: "The credentials were rejected: check pcd-imagelib-ha:cloud.",
                403: "Role and blueprint changes need the Keystone 'admin' role in the project.",
            }.get(status, "See the resmgr log on the management plane.")
        super().__init__(method=method, path=path, status=status, detail=short_detail(detail), hint=hint)


# --- hosts -------------------------------------------------------------------------------------------


class HostNotFound(PcdError):
    """No resmgr host has the configured id or hostname."""

    template = (
        "Host '{host}' is not known to resmgr in region '{region}' (looked for it as a host id and as a "
        "hostname). Fix pcd-imagelib-ha:hosts: use an id or hostname from the PCD hosts list. "
        "Known hostnames: {known}."
    )


class HostAmbiguous(PcdError):
    """Several resmgr hosts share the configured hostname."""

    template = (
        "Hostname '{host}' matches {count} resmgr hosts ({ids}). Configure the host by its id instead "
        "in pcd-imagelib-ha:hosts."
    )


class HostRegionMismatch(PcdError):
    """The host belongs to another region than the one configured for it."""

    template = (
        "Host '{host}' ({host_id}) is in region '{actual}', but is configured for region '{expected}'. "
        "An image library lives in one region: fix the host's region in pcd-imagelib-ha:hosts or "
        "choose a host of region '{expected}'."
    )


# --- roles -------------------------------------------------------------------------------------------


class RoleUpdateConflict(PcdError):
    """resmgr refused a role change with 409 RoleUpdateConflict (the host is busy converging)."""

    template = (
        "resmgr refused to {action} role '{role}' on host {host_id}: 409 RoleUpdateConflict ({detail}). "
        "The host is still converging a previous change or sits in deauth-error; retry later."
    )


class RoleConflictTimeout(PcdError):
    """409 RoleUpdateConflict persisted beyond the conflict timeout."""

    template = (
        "Could not {action} the image-library role on host {hostname} ({host_id}): resmgr kept answering "
        "409 RoleUpdateConflict for {waited:.0f} s (limit {limit:.0f} s). Check the host in the PCD UI "
        "(a host stuck in deauth-error needs its previous role change resolved first), or raise "
        "pcd-imagelib-ha:roles.conflictTimeoutSeconds."
    )


class RoleFailed(PcdError):
    """The host reported ``failed`` for longer than the grace period."""

    template = (
        "The image-library role failed to {action} on host {hostname} ({host_id}): role_status "
        "'{role_status}', pf9-glance-role '{glance_state}' for {failed_for:.0f} s (grace {grace:.0f} s). "
        "Host message: {host_message}. Fix the cause on the host (see the host's hostagent log), then "
        "run the deployment again."
    )


class RoleConvergeTimeout(PcdError):
    """The role did not reach its end state within the overall converge timeout."""

    template = (
        "Image-library role {action} on host {hostname} ({host_id}) did not converge within {limit:.0f} s: "
        "last seen role_status '{role_status}', pf9-glance-role '{glance_state}'. Check that the host is "
        "responding in the PCD UI, or raise pcd-imagelib-ha:roles.convergeTimeoutSeconds."
    )


class MountPathMismatch(PcdError):
    """A host's Glance stores images somewhere else than the configured shared mount path."""

    template = (
        "Host {hostname} ({host_id}) stores images at '{actual}' (its pf9-glance-role "
        "filesystem_store_datadir), but the image library expects the shared store at '{expected}'. "
        "Mount the share at '{expected}' on that host (the same path on every host), or correct its "
        "mountPath in pcd-imagelib-ha:hosts."
    )


# --- blueprint ---------------------------------------------------------------------------------------


class BlueprintNotFound(PcdError):
    """The region's blueprint does not exist."""

    template = (
        "Blueprint '{name}' does not exist in resmgr for region '{region}'. PCD creates one blueprint per "
        "region when the cluster is set up: create it in the PCD UI (Cluster Blueprint), or set the "
        "blueprint name of the image-library settings to the existing one."
    )


class KeystoneUnreachable(PcdError):
    """Keystone could not be reached, or did not answer within the request timeout."""

    def __init__(self, *, auth_url: str, reason: str) -> None:
        super().__init__(
            f"Keystone at {auth_url} did not answer ({reason}): check pcd-imagelib-ha:cloud.authUrl and "
            "that Keystone is up (each request may take pcd-imagelib-ha:cloud.timeoutSeconds)"
        )
