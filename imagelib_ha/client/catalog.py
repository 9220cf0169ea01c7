"""The ``image-cluster`` endpoints of a PCD region: one per image-library host.

PCD registers two image services. ``image`` (``https://<fqdn>/glance/``) is a control-plane Glance
whose store is local to its pod: an image uploaded there is listed but cannot be booted ("Image not
found in any configured backend"). ``image-cluster`` lists each image-library host's own Glance. This
module only ever returns the latter.
"""

from __future__ import annotations

from collections.abc import Sequence

from keystoneauth1 import session as ks_session

IMAGE_CLUSTER = "image-cluster"

# Looked for in this order; the first interface that has endpoints wins. PCD documents no interface
# for image-cluster, so accept whichever one the region registered.
DEFAULT_INTERFACES: tuple[str, ...] = ("public", "internal", "admin")


class CatalogError(Exception):
    """The region's catalog has no usable ``image-cluster`` endpoint."""


def normalize_endpoint(url: str) -> str:
    """An endpoint URL without trailing slashes, so the catalog and role outputs compare equal."""
    return url.rstrip("/")


def image_cluster_endpoints(
    session: ks_session.Session,
    *,
    region: str,
    interfaces: Sequence[str] = DEFAULT_INTERFACES,
    reauthenticate: bool = False,
) -> list[str]:
    """All ``image-cluster`` endpoint URLs of ``region``, in catalog order, without duplicates.

    The catalog arrives with the token and keystoneauth caches both: pass ``reauthenticate=True``
    to see endpoints registered since the token was issued (after a role change, for example).
    Returns an empty list when the region has none; callers decide whether that is an error.
    """
    auth = session.auth
    if auth is None:
        raise CatalogError("the session has no auth plugin: a Keystone token is needed to read the catalog")
    if reauthenticate:
        auth.invalidate()
    access = auth.get_access(session)  # type: ignore[attr-defined]
    for interface in interfaces:
        urls = access.service_catalog.get_urls(
            service_type=IMAGE_CLUSTER, interface=interface, region_name=region
        )
        found: list[str] = []
        for url in urls:
            if url and normalize_endpoint(url) not in found:
                found.append(normalize_endpoint(url))
        if found:
            return found
    return []
