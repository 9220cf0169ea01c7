"""The lab's administrative use of Keystone's v3 API: users, regions, catalog, token checks."""

from __future__ import annotations

import time
from typing import Any

from keystoneauth1 import session as ks_session
from keystoneauth1.identity import v3

from lab.settings import REGION_ONE, REGION_TWO, Credentials, LabConfig

INTERFACES = ("public", "internal", "admin")
CLUSTER_SERVICE = ("glance-cluster", "image-cluster", "Platform9 Glance On-Host Cluster")


def password_session(cfg: LabConfig, creds: Credentials) -> ks_session.Session:
    auth = v3.Password(
        auth_url=cfg.auth_url, username=creds.username, password=creds.password,
        project_name=creds.project_name, user_domain_name=creds.user_domain_name,
        project_domain_name=creds.project_domain_name,
    )
    return ks_session.Session(auth=auth, timeout=30)


# One Keystone worker closes idle keep-alive connections: a request racing that close fails to connect
# before Keystone saw it, and a read is safe to send again.
READ_RETRIES = 2


class IdentityAdmin:
    """Keystone admin calls made by the lab itself, as its own operator user."""

    def __init__(self, cfg: LabConfig, creds: Credentials | None = None) -> None:
        self.cfg = cfg
        self.sess = password_session(cfg, creds or cfg.operator)
        self.base = cfg.auth_url

    def _get(self, path: str, **params: str) -> dict[str, Any]:
        r = self.sess.get(self.base + path, params=params, connect_retries=READ_RETRIES)
        return dict(r.json())

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        r = self.sess.post(self.base + path, json=body)
        return dict(r.json())

    def _find(self, collection: str, **params: str) -> dict[str, Any] | None:
        items = self._get(f"/{collection}", **params)[collection]
        return items[0] if items else None

    def ensure_project(self, name: str) -> str:
        found = self._find("projects", name=name)
        if found:
            return str(found["id"])
        created = self._post("/projects", {"project": {"name": name, "domain_id": "default"}})
        return str(created["project"]["id"])

    def ensure_role(self, name: str) -> str:
        found = self._find("roles", name=name)
        if found:
            return str(found["id"])
        return str(self._post("/roles", {"role": {"name": name}})["role"]["id"])

    def ensure_user(self, creds: Credentials, role: str) -> str:
        project_id = self.ensure_project(creds.project_name)
        found = self._find("users", name=creds.username)
        if found:
            user_id = str(found["id"])
        else:
            user_id = str(self._post("/users", {"user": {
                "name": creds.username, "password": creds.password, "domain_id": "default",
                "default_project_id": project_id}})["user"]["id"])
        role_id = self.ensure_role(role)
        self.sess.put(f"{self.base}/projects/{project_id}/users/{user_id}/roles/{role_id}")
        return user_id

    def ensure_region(self, name: str) -> None:
        r = self.sess.get(f"{self.base}/regions/{name}", raise_exc=False, connect_retries=READ_RETRIES)
        if r.status_code == 404:
            self._post("/regions", {"region": {"id": name}})

    def ensure_service(self, name: str, stype: str, description: str = "") -> str:
        for svc in self._get("/services", type=stype)["services"]:
            if svc["name"] == name:
                return str(svc["id"])
        body = {"service": {"name": name, "type": stype, "description": description, "enabled": True}}
        return str(self._post("/services", body)["service"]["id"])

    def endpoints(self, service_id: str) -> list[dict[str, Any]]:
        return list(self._get("/endpoints", service_id=service_id)["endpoints"])

    def ensure_endpoints(self, service_id: str, url: str, region: str) -> None:
        have = {(e["interface"], e["region_id"]) for e in self.endpoints(service_id) if e["url"] == url}
        for iface in INTERFACES:
            if (iface, region) not in have:
                self._post("/endpoints", {"endpoint": {
                    "service_id": service_id, "interface": iface, "url": url, "region_id": region,
                    "enabled": True}})

    def remove_endpoints(self, service_id: str, url: str | None = None) -> None:
        for e in self.endpoints(service_id):
            if url is None or e["url"] == url:
                self.sess.delete(f"{self.base}/endpoints/{e['id']}", raise_exc=False)

    def cluster_service_id(self) -> str:
        return self.ensure_service(*CLUSTER_SERVICE)

    def setup_catalog(self) -> None:
        """Users, regions and services beyond what `keystone-manage bootstrap` made."""
        cfg = self.cfg
        self.ensure_region(REGION_TWO)
        self.ensure_user(cfg.member, "member")
        self.ensure_user(cfg.glance_service, "service")
        glance = self.ensure_service("glance", "image", "Glance (control plane)")
        self.ensure_endpoints(glance, cfg.public_glance_url, REGION_ONE)
        self.cluster_service_id()
        resmgr = self.ensure_service("resmgr", "resmgr", "Platform9 resource manager (lab emulator)")
        identity = self.ensure_service("keystone", "identity")
        for region in (REGION_ONE, REGION_TWO):
            self.ensure_endpoints(resmgr, cfg.resmgr_url, region)
            self.ensure_endpoints(identity, cfg.auth_url, region)

    def validate(self, token: str) -> dict[str, Any] | None:
        """The token's body when Keystone accepts it, else None."""
        r = self.sess.get(f"{self.base}/auth/tokens", headers={"X-Subject-Token": token}, raise_exc=False,
                          connect_retries=READ_RETRIES)
        if r.status_code != 200:
            return None
        return dict(r.json()["token"])

    def set_password(self, username: str, password: str) -> None:
        user = self._find("users", name=username)
        if user is None:
            raise KeyError(f"no Keystone user {username!r}")
        self.sess.patch(f"{self.base}/users/{user['id']}", json={"user": {"password": password}})

    def revoke_user_tokens(self, usernames: list[str]) -> None:
        """Invalidate every token issued so far to these users.

        Disabling a user makes Keystone record a revocation event for all its tokens issued until now;
        enabling it again lets it log in afresh. Fernet tokens carry whole-second issue times, so wait
        for the next second: a token issued in the same second as the event would count as revoked.
        """
        for name in usernames:
            user = self._find("users", name=name)
            if user is None:
                continue
            for enabled in (False, True):
                self.sess.patch(f"{self.base}/users/{user['id']}", json={"user": {"enabled": enabled}})
        time.sleep(1.05)


def bootstrap_operator(cfg: LabConfig) -> None:
    """Create the lab's own admin user (with the bootstrap admin's credentials) and the
    image-cluster service: all the agent needs, so the rest of the catalog can be made meanwhile."""
    admin = IdentityAdmin(cfg, cfg.admin)
    admin.ensure_user(cfg.operator, "admin")
    admin.cluster_service_id()
