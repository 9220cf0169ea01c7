"""The resmgr emulator: PCD's resource-manager API for hosts, roles and blueprints, as a WSGI app.

The only non-real part of the lab (PCD's resmgr is proprietary). It follows the public shapes in
reference/pcd.md, including the quirks a client must tolerate: 409 RoleUpdateConflict while a host
converges, 200 with a `null` body for a vanished object, per-host 404s for a while after the last role
is removed (while the list still shows the host), and either role spelling in v2 `roles`.
"""

from __future__ import annotations

import copy
import json
import re
import time
from collections.abc import Callable, Iterable
from typing import Any

from keystoneauth1 import exceptions as ks_exc

from lab.identity import IdentityAdmin
from lab.supervisor import GLANCE_ROLE, RoleUpdateConflict, Supervisor

StartResponse = Callable[..., Any]
V2_ROLE = "image-library"


class HTTPError(Exception):
    """An error answer with resmgr's JSON error body."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


_REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
            405: "Method Not Allowed", 409: "Conflict", 500: "Internal Server Error",
            503: "Service Unavailable"}


EMPTY = object()  # an answer without a body (role writes), unlike JSON null


def respond(start_response: StartResponse, status: int, body: Any) -> list[bytes]:
    data = b"" if body is EMPTY else json.dumps(body).encode()
    start_response(f"{status} {_REASONS.get(status, 'OK')}",
                   [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
    return [data]


def read_json(environ: dict[str, Any]) -> Any:
    length = int(environ.get("CONTENT_LENGTH") or 0)
    raw = environ["wsgi.input"].read(length) if length else b""
    if not raw.strip():
        return None
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise HTTPError(400, f"request body is not JSON: {exc}") from exc


class ResmgrApp:
    """WSGI app serving /resmgr/v1 and /resmgr/v2 for the lab's hosts."""

    def __init__(self, supervisor: Supervisor, identity: IdentityAdmin) -> None:
        self.sup = supervisor
        self.identity = identity

    def _authorize(self, environ: dict[str, Any], *, write: bool) -> None:
        token = environ.get("HTTP_X_AUTH_TOKEN")
        if not token:
            raise HTTPError(401, "authentication required: send a Keystone token in X-Auth-Token")
        try:
            with self.sup.identity_lock:
                body = self.identity.validate(token)
        except ks_exc.ClientException as exc:
            # As a real service does when its identity backend fails: a 503 that says so, not a bare 500.
            raise HTTPError(503, f"cannot validate the token with Keystone: {type(exc).__name__}") from exc
        if body is None:
            raise HTTPError(401, "the token is invalid, expired or revoked")
        if write and "admin" not in {r.get("name") for r in body.get("roles", [])}:
            raise HTTPError(403, "this operation needs the admin role")

    def _host(self, host_id: str, *, per_host: bool = True) -> Any:
        try:
            h = self.sup.find(host_id)
        except KeyError as exc:
            raise HTTPError(404, f"HostNotFound: {host_id}") from exc
        if per_host and time.monotonic() < h.gone_until:
            # After the last role goes, PCD's per-host endpoints 404 for a while; the list still has it.
            raise HTTPError(404, f"HostNotFound: {host_id}")
        return h

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        method = environ["REQUEST_METHOD"]
        path = environ.get("PATH_INFO", "").rstrip("/")
        query = environ.get("QUERY_STRING", "")
        try:
            if not path.startswith("/resmgr"):
                raise HTTPError(404, f"no such resource: {path}")
            path = path[len("/resmgr"):]
            write = method in ("PUT", "POST", "DELETE", "PATCH")
            self._authorize(environ, write=write)
            status, body = self.route(method, path, query, environ)
            return respond(start_response, status, body)
        except HTTPError as err:
            return respond(start_response, err.status, {"code": err.status, "message": err.message})

    def route(self, method: str, path: str, query: str, environ: dict[str, Any]) -> tuple[int, Any]:
        sup = self.sup
        if m := re.fullmatch(r"/v([12])/hosts", path):
            self._only(method, "GET")
            version = int(m.group(1))
            return 200, [sup.record(h, version=version) for h in sup.hosts.values()]
        if m := re.fullmatch(r"/v([12])/hosts/([^/]+)", path):
            self._only(method, "GET")
            h = self._host(m.group(2))
            return 200, sup.record(h, version=int(m.group(1)), role_settings="role_settings=true" in query)
        if m := re.fullmatch(r"/v2/hosts/([^/]+)/roles/([^/]+)", path):
            if m.group(2) != V2_ROLE:
                raise HTTPError(404, f"unknown cluster role {m.group(2)!r}; v2 knows {V2_ROLE!r}")
            return self._role_write(method, m.group(1), None)
        if m := re.fullmatch(r"/v1/hosts/([^/]+)/roles/([^/]+)", path):
            if m.group(2) != GLANCE_ROLE:
                raise HTTPError(404, f"unknown role {m.group(2)!r}; the lab knows {GLANCE_ROLE!r}")
            if method == "GET":
                h = self._host(m.group(1))
                # A role that is gone reads as 200 with a JSON null body, as PCD answers.
                return 200, copy.deepcopy(h.settings) if GLANCE_ROLE in h.roles else None
            settings = read_json(environ) if method == "PUT" else None
            if settings is not None and not isinstance(settings, dict):
                raise HTTPError(400, "role settings must be a JSON object")
            return self._role_write(method, m.group(1), settings)
        if path == "/v2/blueprint":
            self._only(method, "GET")
            return 200, list(sup.blueprints.values())
        if m := re.fullmatch(r"/v2/blueprint/([^/]+)", path):
            name = m.group(1)
            if method == "GET":
                if name not in sup.blueprints:
                    raise HTTPError(404, f"no blueprint named {name!r}")
                return 200, copy.deepcopy(sup.blueprints[name])
            self._only(method, "PUT")
            body = read_json(environ)
            if not isinstance(body, dict):
                raise HTTPError(400, "a blueprint is written as a whole JSON object")
            for key, typ in (("imageLibraryStorage", str), ("imageLibrarySharedStorage", bool)):
                if key in body and not isinstance(body[key], typ):
                    raise HTTPError(400, f"blueprint field {key} must be a {typ.__name__}")
            body["name"] = name
            with sup.lock:
                sup.blueprints[name] = body  # whole-object write: unknown fields are kept as sent
            return 200, copy.deepcopy(body)
        raise HTTPError(404, f"no such resource: /resmgr{path}")

    def _only(self, method: str, allowed: str) -> None:
        if method != allowed:
            raise HTTPError(405, f"{method} is not allowed here (only {allowed})")

    def _role_write(self, method: str, host_id: str, settings: dict[str, Any] | None) -> tuple[int, Any]:
        h = self._host(host_id, per_host=False)
        try:
            if method == "PUT":
                self.sup.assign(h.spec.id, settings=settings)
            elif method == "DELETE":
                self.sup.remove(h.spec.id)
            else:
                raise HTTPError(405, f"{method} is not allowed on a role (PUT or DELETE)")
        except RoleUpdateConflict as exc:
            raise HTTPError(409, f"RoleUpdateConflict: {exc}") from exc
        return 200, EMPTY
