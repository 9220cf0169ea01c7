"""Cloud access of the dynamic providers: read from the stack config in ``configure()``, never an input.

Credentials that travel as a resource input are stored in state with the resource: refresh, update and
delete then run with the credentials of the ``up`` that last wrote the resource, so a rotated password
breaks every later ``destroy`` (and the old password sits in state). The engine sends the whole stack
config to each provider's ``configure`` before any other call: keys keep their namespace
(``pcd-imagelib-ha:cloud``), every value is a string (objects as JSON), secrets arrive decrypted, and
``*Env`` settings resolve in the provider process, which inherits the CLI's environment. So the providers
read the credentials there, and resources carry only identifiers.

Kept free of import-time side effects: the provider process imports this module by name.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from keystoneauth1 import exceptions as ks_exc
from keystoneauth1 import session as ks_session
from pulumi.dynamic import CheckFailure, ConfigureRequest, ResourceProvider

from imagelib_ha.client.errors import PcdError
from imagelib_ha.client.session import CloudAccess, make_session
from imagelib_ha.settings import SettingsError, cloud_access_from_config, config_key

# Input keys earlier releases stored on every dynamic resource. Present in old state, they count as a
# change (an in-place update, never a replacement) so the first ``up`` on this release drops them.
LEGACY_KEYS = ("cloud", "provider_version")
CLOUD_KEY = config_key("cloud")


class CloudNotConfigured(PcdError):
    """The provider has no usable cloud access: the stack config's ``pcd-imagelib-ha:cloud`` is wrong."""


class CloudConfiguredProvider(ResourceProvider):
    """A dynamic provider whose cloud access comes from ``configure()``.

    ``configure`` runs once per pickled provider in the provider process, before any other call, and up
    to four gRPC threads then share the object: the access is set once and only read afterwards. A bad
    config does not fail ``configure`` (the engine would then show a bare RPC error): ``check`` reports it
    naming the config keys, and any call that needs the cloud raises it.
    """

    _access: CloudAccess | None = None
    _access_problem: str | None = None

    def configure(self, req: ConfigureRequest) -> None:
        # The fully qualified key: a bare "cloud" would be prefixed with $PULUMI_PROJECT, which the
        # provider process may not have (the SDK then uses the literal "project").
        self.configure_from({CLOUD_KEY: req.config.get(CLOUD_KEY)}, os.environ)

    def configure_from(self, raw: Mapping[str, Any], env: Mapping[str, str]) -> None:
        """Set the cloud access from stack config ``raw`` (as the engine sends it) and ``env``."""
        try:
            self._access = CloudAccess.from_dict(cloud_access_from_config(raw, env))
            self._access_problem = None
        except SettingsError as exc:
            self._access, self._access_problem = None, str(exc)

    def cloud_failures(self) -> list[CheckFailure]:
        """The config problem as a check failure (none before ``configure``: unit tests, the program)."""
        if self._access_problem is None:
            return []
        return [CheckFailure("cloud", self._access_problem)]

    @property
    def access(self) -> CloudAccess:
        if self._access is None:
            raise CloudNotConfigured(
                self._access_problem
                or "the provider was not configured with the stack config (pcd-imagelib-ha:cloud)"
            )
        return self._access

    def session(self) -> ks_session.Session:
        """A fresh keystoneauth session: nothing is shared between calls (they may run concurrently)."""
        return make_session(self.access)

    @contextmanager
    def cloud_errors_explained(self) -> Iterator[None]:
        """Inside the block, keystoneauth's failures become errors naming the config keys to check.

        A 401 means the credentials were refused; a 403 (a token without the admin role, or a policy)
        is not that, and is left as it is. A request that timed out or could not connect names its URL
        and the timeout setting. Nothing is chained: the operator needs the keys to fix, not the
        traceback, and no message carries a secret.
        """
        try:
            yield
        except ks_exc.Unauthorized:
            raise credentials_rejected(self.access.auth_url) from None
        except (ks_exc.ConnectTimeout, ks_exc.ConnectFailure) as exc:
            raise PcdError(
                f"{exc}: check that the region's control plane is reachable and up (each request may take "
                f"pcd-imagelib-ha:cloud.timeoutSeconds, {self.access.timeout:g}s)"
            ) from None


def credentials_rejected(auth_url: str | None) -> PcdError:
    """The error for a 401 from Keystone: names the auth URL and config keys, never the secret."""
    return PcdError(
        f"Keystone at {auth_url} rejected the credentials in pcd-imagelib-ha:cloud "
        "(user, project or application credential): check them, and that the user has the 'admin' "
        "role in the project."
    )
