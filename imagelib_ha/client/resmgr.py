"""PCD resource manager (resmgr): hosts, the ``image-library`` cluster role, and region blueprints.

All requests go through a keystoneauth1 ``Session``: the endpoint comes from the service catalog
(service type ``resmgr`` in the region, via ``endpoint_filter``) or from an explicit override, and
paths are relative to it (``v1/hosts``, ``v2/hosts/{id}/roles/image-library``, ``v2/blueprint/{name}``).

PCD quirks handled here (see docs: resmgr API notes in the project reference):

* v1 and v2 host records differ, and sources disagree on whether ``roles`` lists the cluster role
  ``image-library`` or its granular role ``pf9-glance-role``: either counts as assigned.
* A GET of a vanished object can answer 200 with the body ``null``; per-host endpoints can answer 404
  for minutes after the last role was removed. Both read as "no such host" (``None``).
* Role writes answer 409 ``RoleUpdateConflict`` while the host converges: raised as a typed exception so
  the caller (``roles.py``) decides how long to retry.
* A blueprint is written as a whole object, so every write is a read-modify-write that keeps the fields
  this client does not manage.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import requests
from keystoneauth1 import exceptions as ks_exc
from keystoneauth1 import session as ks_session

from imagelib_ha.client.errors import (
    BlueprintNotFound,
    HostAmbiguous,
    HostNotFound,
    KeystoneUnreachable,
    ResmgrEndpointNotFound,
    ResmgrRequestFailed,
    ResmgrUnreachable,
    RoleUpdateConflict,
    short_detail,
)

SERVICE_TYPE = "resmgr"
GET_CONNECT_RETRIES = 1
GET_STATUS_RETRIES = 2
RETRIABLE_GET_STATUSES = (500, 502, 503, 504)
IMAGE_LIBRARY_ROLE = "image-library"
GLANCE_ROLE = "pf9-glance-role"
# Either spelling in a host's ``roles`` means the image library is assigned (v1 lists granular roles,
# v2 reportedly the cluster role; PCD releases differ).
IMAGE_LIBRARY_ROLE_NAMES = frozenset({IMAGE_LIBRARY_ROLE, GLANCE_ROLE})

BLUEPRINT_STORAGE = "imageLibraryStorage"
BLUEPRINT_SHARED = "imageLibrarySharedStorage"

_SUCCESS = frozenset({200, 201, 202, 204})
_MAX_KNOWN_LISTED = 20


def _first_ip(value: Any) -> str | None:
    """An IP from ``extensions.ip_address`` in any of the shapes seen: str, list, ``{"data": ...}``."""
    if isinstance(value, Mapping):
        value = value.get("data")
    if isinstance(value, str):
        return value or None
    if isinstance(value, list | tuple):
        for item in value:
            if isinstance(item, str) and item:
                return item
    return None


def _extension_data(value: Any) -> str | None:
    """The value of a hostagent extension, given bare or as ``{"status": ..., "data": ...}``."""
    if isinstance(value, Mapping):
        value = value.get("data")
    return value if isinstance(value, str) and value else None


@dataclass(frozen=True)
class ResmgrHost:
    """One host as resmgr reports it, normalised across the v1 and v2 record shapes.

    ``raw`` keeps the record as received, for fields this model does not name.
    """

    id: str
    hostname: str | None
    roles: tuple[str, ...]
    role_status: str | None
    roles_status_details: Mapping[str, Any]
    message: str | None
    responding: bool | None
    ip_address: str | None
    region: str | None
    raw: Mapping[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> ResmgrHost:
        info = record.get("info") or {}
        extensions = record.get("extensions") or {}
        raw_message = record.get("message")
        message = None if raw_message in (None, "", {}) else short_detail(raw_message)
        region = record.get("region") or info.get("region") or _extension_data(extensions.get("region"))
        ip = _first_ip(extensions.get("ip_address")) or _first_ip(info.get("ip_address"))
        details = record.get("roles_status_details") or {}
        return cls(
            id=str(record["id"]),
            hostname=info.get("hostname") or record.get("hostname"),
            roles=tuple(str(r) for r in (record.get("roles") or ())),
            role_status=record.get("role_status"),
            roles_status_details=dict(details) if isinstance(details, Mapping) else {},
            message=message,
            responding=info.get("responding", record.get("responding")),
            ip_address=ip,
            region=str(region) if region else None,
            raw=dict(record),
        )

    @property
    def has_image_library(self) -> bool:
        """True when either spelling of the image-library role is in ``roles``."""
        return any(r in IMAGE_LIBRARY_ROLE_NAMES for r in self.roles)

    @property
    def glance_role_state(self) -> str | None:
        """The per-role state of ``pf9-glance-role`` (``applied`` when converged), if reported."""
        state = self.roles_status_details.get(GLANCE_ROLE)
        return None if state is None else str(state)

    @property
    def label(self) -> str:
        """The hostname when known, else the id: for messages."""
        return self.hostname or self.id


@dataclass(frozen=True)
class BlueprintChange:
    """What a blueprint write did: the image-library fields before and after, and whether it wrote."""

    name: str
    before: Mapping[str, Any]
    after: Mapping[str, Any]
    written: bool


class ResmgrClient:
    """The resmgr API of one PCD region, over a keystoneauth1 session.

    Thread-safe as far as the underlying session is; keeps no other mutable state.
    """

    def __init__(
        self,
        session: ks_session.Session,
        *,
        region: str,
        interface: str = "public",
        endpoint_override: str | None = None,
    ) -> None:
        self.session = session
        self.region = region
        self.interface = interface
        self.endpoint_override = endpoint_override

    # --- transport -----------------------------------------------------------------------------
    def _request(self, method: str, path: str, *, json: Any = None) -> requests.Response:
        kwargs: dict[str, Any] = {"raise_exc": False}
        if json is not None:
            kwargs["json"] = json
        if method == "GET":
            # A read is safe to send again: a connection the server dropped between requests, or a
            # transient 5xx of the management plane, costs a short retry instead of the run. Writes are
            # never re-sent here (the role writer retries only what resmgr's 409 says is safe). One
            # connect retry only: keystoneauth counts a read timeout as a connect failure, so a hung
            # resmgr costs twice the request timeout (and 0.5 s) before the run ends naming it.
            kwargs.update(connect_retries=GET_CONNECT_RETRIES, status_code_retries=GET_STATUS_RETRIES,
                          retriable_status_codes=list(RETRIABLE_GET_STATUSES))
        if self.endpoint_override:
            kwargs["endpoint_override"] = self.endpoint_override
        else:
            kwargs["endpoint_filter"] = {
                "service_type": SERVICE_TYPE,
                "interface": self.interface,
                "region_name": self.region,
            }
        try:
            # Authenticate first (a cached token costs nothing), so a silent Keystone is named as such
            # and not mistaken for a silent resmgr.
            self.session.get_auth_headers()
        except (ks_exc.ConnectionError, ks_exc.ConnectTimeout) as exc:
            auth_url = getattr(self.session.auth, "auth_url", None) or "(the configured auth URL)"
            raise KeystoneUnreachable(auth_url=str(auth_url), reason=type(exc).__name__) from None
        try:
            return self.session.request(path, method, **kwargs)
        except ks_exc.EndpointNotFound:
            raise ResmgrEndpointNotFound(region=self.region, interface=self.interface) from None
        except (ks_exc.ConnectionError, ks_exc.ConnectTimeout) as exc:
            raise ResmgrUnreachable(
                method=method, path=path, region=self.region, reason=type(exc).__name__
            ) from None

    @staticmethod
    def _body(resp: requests.Response) -> Any:
        if not resp.content:
            return None
        try:
            return resp.json()
        except ValueError:
            return None

    @staticmethod
    def _fail(method: str, path: str, resp: requests.Response) -> ResmgrRequestFailed:
        return ResmgrRequestFailed(method=method, path=path, status=resp.status_code, detail=resp.text)

    # --- hosts ---------------------------------------------------------------------------------
    def list_hosts(self, *, version: str = "v1") -> list[ResmgrHost]:
        """Every host resmgr knows (``GET {version}/hosts``)."""
        path = f"{version}/hosts"
        resp = self._request("GET", path)
        if resp.status_code != 200:
            raise self._fail("GET", path, resp)
        body = self._body(resp)
        if isinstance(body, Mapping):
            # Tolerate a wrapped list ({"hosts": [...]}) as well as the bare list resmgr returns.
            body = body.get("hosts") or []
        return [ResmgrHost.from_record(r) for r in body or () if isinstance(r, Mapping) and r.get("id")]

    def get_host(self, host_id: str, *, version: str = "v1") -> ResmgrHost | None:
        """One host, or None when resmgr answers 404 or 200 with a ``null`` body (a vanished host)."""
        path = f"{version}/hosts/{host_id}"
        resp = self._request("GET", path)
        if resp.status_code == 404:
            return None
        if resp.status_code != 200:
            raise self._fail("GET", path, resp)
        body = self._body(resp)
        if not isinstance(body, Mapping) or not body.get("id"):
            return None
        return ResmgrHost.from_record(body)

    def get_glance_role_settings(self, host_id: str) -> dict[str, Any] | None:
        """The host's ``pf9-glance-role`` settings (``endpoint_address``, ``filesystem_store_datadir``,
        ...) from ``GET v2/hosts/{id}?role_settings=true``; None when the host or its settings are absent.
        """
        path = f"v2/hosts/{host_id}?role_settings=true"
        resp = self._request("GET", path)
        if resp.status_code == 404:
            return None
        if resp.status_code != 200:
            raise self._fail("GET", path, resp)
        body = self._body(resp)
        if not isinstance(body, Mapping):
            return None
        settings = (body.get("role_settings") or {}).get(GLANCE_ROLE)
        return dict(settings) if isinstance(settings, Mapping) else None

    def find_host(self, ref: str, hosts: Iterable[ResmgrHost] | None = None) -> ResmgrHost:
        """The host whose id, or else hostname, is ``ref`` (one listing; ``hosts`` reuses one).

        Raises ``HostNotFound`` (naming known hostnames) or ``HostAmbiguous``.
        """
        listed = list(self.list_hosts() if hosts is None else hosts)
        by_id = [h for h in listed if h.id == ref]
        if by_id:
            return by_id[0]
        by_name = [h for h in listed if h.hostname == ref]
        if len(by_name) == 1:
            return by_name[0]
        if len(by_name) > 1:
            raise HostAmbiguous(host=ref, count=len(by_name), ids=", ".join(h.id for h in by_name))
        names = sorted({h.label for h in listed})
        known = ", ".join(names[:_MAX_KNOWN_LISTED]) or "none"
        if len(names) > _MAX_KNOWN_LISTED:
            known += f", ... ({len(names)} in all)"
        raise HostNotFound(host=ref, region=self.region, known=known)

    # --- the image-library role ----------------------------------------------------------------
    def _role_path(self, host_id: str) -> str:
        return f"v2/hosts/{host_id}/roles/{IMAGE_LIBRARY_ROLE}"

    def assign_image_library(self, host_id: str) -> int:
        """``PUT v2/hosts/{id}/roles/image-library`` with ``{}``; returns the success status.

        Raises ``RoleUpdateConflict`` on 409 (retry later), ``ResmgrRequestFailed`` otherwise.
        """
        return self._role_write("PUT", host_id, action="assign")

    def remove_image_library(self, host_id: str) -> int:
        """``DELETE v2/hosts/{id}/roles/image-library``; returns the status (404: nothing to remove)."""
        return self._role_write("DELETE", host_id, action="remove")

    def _role_write(self, method: str, host_id: str, *, action: str) -> int:
        path = self._role_path(host_id)
        # The PCD UI, the Terraform provider and the pf9.pcd Ansible module all send an empty object.
        resp = self._request(method, path, json={} if method == "PUT" else None)
        if resp.status_code in _SUCCESS:
            return resp.status_code
        if method == "DELETE" and resp.status_code == 404:
            return 404
        if resp.status_code == 409:
            raise RoleUpdateConflict(
                action=action, role=IMAGE_LIBRARY_ROLE, host_id=host_id, detail=short_detail(resp.text, 120)
            )
        raise self._fail(method, path, resp)

    # --- blueprints ----------------------------------------------------------------------------
    def get_blueprint(self, name: str) -> dict[str, Any] | None:
        """The blueprint as a dict, or None when absent (404 or a ``null`` body)."""
        path = f"v2/blueprint/{name}"
        resp = self._request("GET", path)
        if resp.status_code == 404:
            return None
        if resp.status_code != 200:
            raise self._fail("GET", path, resp)
        body = self._body(resp)
        return dict(body) if isinstance(body, Mapping) else None

    def put_blueprint(self, name: str, blueprint: Mapping[str, Any]) -> None:
        """Write the whole blueprint (resmgr replaces it: pass every field, see ``update_blueprint``)."""
        path = f"v2/blueprint/{name}"
        resp = self._request("PUT", path, json=dict(blueprint))
        if resp.status_code not in _SUCCESS:
            raise self._fail("PUT", path, resp)

    def update_blueprint(self, name: str, changes: Mapping[str, Any]) -> BlueprintChange:
        """Read-modify-write: set ``changes`` on the blueprint, keeping every other field as read.

        Writes nothing when the blueprint already holds the values. Raises ``BlueprintNotFound``.
        """
        current = self.get_blueprint(name)
        if current is None:
            raise BlueprintNotFound(name=name, region=self.region)
        before = {k: current.get(k) for k in changes}
        after = dict(changes)
        if before == after:
            return BlueprintChange(name=name, before=before, after=after, written=False)
        self.put_blueprint(name, {**current, **changes})
        return BlueprintChange(name=name, before=before, after=after, written=True)

    def set_image_library_storage(self, name: str, *, storage: str, shared: bool) -> BlueprintChange:
        """Set ``imageLibraryStorage`` (a path or a Cinder volume type) and ``imageLibrarySharedStorage``."""
        return self.update_blueprint(name, {BLUEPRINT_STORAGE: storage, BLUEPRINT_SHARED: shared})
