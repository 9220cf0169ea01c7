"""Keystone sessions for PCD, built from plain cloud-access settings.

Everything that talks to a PCD region (resmgr, the catalog, the image-library hosts' Glance) goes
through one keystoneauth1 ``Session``: token issue and renewal, the service catalog and TLS settings
live there, so no module here parses tokens or catalogs by hand.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from keystoneauth1 import session as ks_session
from keystoneauth1.identity import v3


@dataclass(frozen=True)
class CloudAccess:
    """How to reach one PCD region's Keystone: the credentials and TLS settings of a deployment.

    Keys are snake_case, the same keys the dynamic resources receive in their ``cloud`` input.
    ``password`` and ``application_credential_secret`` are secrets: ``__repr__`` hides them so they
    never reach a log line or an exception message.
    """

    auth_url: str
    region: str
    username: str | None = None
    password: str | None = None
    project_name: str | None = None
    project_domain_name: str = "Default"
    user_domain_name: str = "Default"
    application_credential_id: str | None = None
    application_credential_secret: str | None = None
    ca_bundle: str | None = None
    insecure: bool = False
    # Seconds each Keystone, catalog and resmgr request may take (connect and each read): a control
    # plane that accepts connections and never answers must end the run, not hang it.
    timeout: float = 30.0

    SECRET_FIELDS = ("password", "application_credential_secret")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CloudAccess:
        """Build from a ``cloud`` input dict, ignoring keys this class does not know."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known and v is not None})

    def __repr__(self) -> str:
        shown = []
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in self.SECRET_FIELDS and value is not None:
                value = "***"
            shown.append(f"{f.name}={value!r}")
        return f"CloudAccess({', '.join(shown)})"

    __str__ = __repr__


def make_auth(access: CloudAccess) -> v3.Password | v3.ApplicationCredential:
    """A keystoneauth plugin for ``access``: application credential when given, else password.

    Tokens are project-scoped: Glance answers 403 to a system-scoped token.
    """
    if access.application_credential_id:
        if not access.application_credential_secret:
            raise ValueError(
                "cloud access: application_credential_id is set but application_credential_secret is "
                "missing; give the secret (as a Pulumi secret) or use username and password instead"
            )
        return v3.ApplicationCredential(
            auth_url=access.auth_url,
            application_credential_id=access.application_credential_id,
            application_credential_secret=access.application_credential_secret,
        )
    if access.password is None:
        raise ValueError(
            "cloud access: no password and no application credential; set the password "
            "(as a Pulumi secret) or an application credential id and secret"
        )
    return v3.Password(
        auth_url=access.auth_url,
        username=access.username,
        password=access.password,
        user_domain_name=access.user_domain_name,
        project_name=access.project_name,
        project_domain_name=access.project_domain_name,
    )


def make_session(access: CloudAccess) -> ks_session.Session:
    """A keystoneauth1 session for ``access`` with TLS verification on unless ``insecure``.

    keystoneauth's defaults are kept on purpose: no connect retries (a refused host must fail fast so
    failover can move on) and no status-code retries (failover across hosts is the retry). Every request
    is bounded by ``access.timeout``; Glance host calls pass their own, shorter, timeouts.
    """
    verify: bool | str = True
    if access.insecure:
        verify = False
    elif access.ca_bundle:
        verify = access.ca_bundle
    return ks_session.Session(auth=make_auth(access), verify=verify, timeout=access.timeout)
