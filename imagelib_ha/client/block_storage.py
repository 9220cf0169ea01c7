"""The region's Block Storage (Cinder) API, as the image library needs it: its volume type, the volumes
Glance's Cinder store makes for images, and their attachments.

Reached through the catalog (service type ``block-storage``; keystoneauth also matches the older
``volumev3`` entries), with the same Keystone session as everything else. Every request is bounded by
the caller's timeout: a frozen Cinder API accepts the connection and never answers.

The multiattach rule lives here because everything that judges a volume type uses it (the settings
and health providers, the program): Cinder enables multiattach for a volume only when its type's extra
spec ``multiattach`` is exactly ``<is> True`` (``cinder/volume/api.py``, ``_is_multiattach``), and
several Glance hosts reading one image through the Cinder store attach its volume at the same time.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from keystoneauth1 import exceptions as ks_exc
from keystoneauth1 import session as ks_session

from imagelib_ha.client.errors import PcdError, short_detail
from imagelib_ha.client.transport import resending_dropped_reads

BLOCK_STORAGE = "block-storage"
MULTIATTACH_KEY = "multiattach"
MULTIATTACH_ON = "<is> True"
# Attachments (``/attachments``) need 3.27; listing volumes with their metadata works on any 3.x.
MICROVERSION = "3.27"
# Glance's Cinder store names each image's volume ``image-<image id>`` and records the image id in the
# volume's metadata (glance_store ``_drivers/cinder/store.py``, ``add``).
VOLUME_NAME_PREFIX = "image-"
IMAGE_ID_METADATA = "glance_image_id"


def image_library_extra_specs(configured: Mapping[str, str] | None) -> dict[str, str]:
    """The extra specs of the volume type the program creates: multiattach on unless configured.

    A configured ``multiattach`` is kept as written (and refused by the checks when it is not on), so
    an operator's explicit value is never silently overridden.
    """
    return {MULTIATTACH_KEY: MULTIATTACH_ON, **(configured or {})}


def multiattach_problem(extra_specs: Mapping[str, Any] | None) -> str | None:
    """Why a volume type with these extra specs cannot serve several image-library hosts, or None."""
    value = (extra_specs or {}).get(MULTIATTACH_KEY)
    if value == MULTIATTACH_ON:
        return None
    if value is None:
        return f"its extra specs have no {MULTIATTACH_KEY!r}"
    return f"its extra spec {MULTIATTACH_KEY!r} is {str(value)!r}, not {MULTIATTACH_ON!r}"


class BlockStorageError(PcdError):
    """The Block Storage API could not be reached or refused a request."""

    template = "Block Storage (Cinder) {what} in region '{region}': {reason}"


class BlockStorageUnavailable(BlockStorageError):
    """The Block Storage API did not answer in time or could not be reached (frozen, down, no endpoint)."""


class BlockStorage:
    """The Block Storage API of one region, through the catalog, every request bounded by ``timeout``."""

    def __init__(self, session: ks_session.Session, *, region: str, timeout: float = 30.0) -> None:
        self.session = session
        self.region = region
        self.timeout = timeout

    def _request(self, method: str, path: str, *, what: str, expect: tuple[int, ...] = (200,),
                 **kwargs: Any) -> Any:
        try:
            resp = self._send(method, path, **kwargs)
        except ks_exc.EndpointNotFound:
            raise BlockStorageUnavailable(
                what=what, region=self.region,
                reason="the catalog has no block-storage (volumev3) endpoint: check the region name in "
                       "pcd-imagelib-ha:cloud.region and that Block Storage is deployed there",
            ) from None
        except (ks_exc.ConnectTimeout, ks_exc.ConnectFailure) as exc:
            # keystoneauth reports a read timeout as a connect timeout: either way no answer came.
            raise BlockStorageUnavailable(
                what=what, region=self.region,
                reason=f"no answer within {self.timeout:g}s ({short_detail(exc, 160)}): the Cinder API is "
                       "down or not responding",
            ) from None
        if resp.status_code not in expect:
            raise BlockStorageError(
                what=what, region=self.region,
                reason=f"HTTP {resp.status_code}: {short_detail(resp.text, 200)}",
            )
        return resp.json() if resp.content else None

    # -- volume types ---------------------------------------------------------------------------------

    def _send(self, method: str, path: str, **kwargs: Any) -> Any:
        # A read whose pooled connection Cinder had just closed as idle goes out once more on a fresh
        # one; a write never does.
        return resending_dropped_reads(method, lambda: self.session.request(
            path,
            method,
            endpoint_filter={"service_type": BLOCK_STORAGE, "interface": "public",
                             "region_name": self.region},
            headers={"OpenStack-API-Version": f"volume {MICROVERSION}", "Accept": "application/json"},
            timeout=self.timeout,
            raise_exc=False,
            **kwargs,
        ))

    def volume_type(self, name: str) -> dict[str, Any] | None:
        """The volume type called ``name`` (public or private), with its extra specs; None if none is.

        Types are listed and matched by name: the show call takes an id.
        """
        body = self._request("GET", "/types", what=f"reading volume type {name!r}",
                             params={"is_public": "None"})
        for found in (body or {}).get("volume_types", []):
            if found.get("name") == name:
                return dict(found)
        return None

    # -- volumes of images ----------------------------------------------------------------------------

    def image_volumes(self, image_id: str) -> list[dict[str, Any]]:
        """The volumes Glance's Cinder store made for ``image_id``, in every project.

        Glance creates them with its own service credentials, so they live in its project: admin
        listing across projects finds them. Filtered by name, confirmed by the metadata.
        """
        body = self._request(
            "GET", "/volumes/detail", what=f"listing the volumes of image {image_id}",
            params={"all_tenants": "1", "name": f"{VOLUME_NAME_PREFIX}{image_id}"},
        )
        volumes = (body or {}).get("volumes", [])
        return [dict(v) for v in volumes if (v.get("metadata") or {}).get(IMAGE_ID_METADATA) == image_id]

    def volume(self, volume_id: str) -> dict[str, Any] | None:
        """One volume, or None once it is gone."""
        body = self._request("GET", f"/volumes/{volume_id}", what=f"reading volume {volume_id}",
                             expect=(200, 404))
        if not body or "volume" not in body:
            return None
        return dict(body["volume"])

    def attachments(self, volume_id: str) -> list[dict[str, Any]]:
        """Every attachment record of a volume, reserved and attaching ones included (the volume's own
        ``attachments`` list shows only completed ones)."""
        body = self._request("GET", "/attachments", what=f"listing the attachments of volume {volume_id}",
                             params={"all_tenants": "1", "volume_id": volume_id})
        return [dict(a) for a in (body or {}).get("attachments", [])]

    def delete_attachment(self, attachment_id: str) -> None:
        """Remove one attachment (the new attachments API: no host action, only Cinder's record)."""
        self._request("DELETE", f"/attachments/{attachment_id}", what=f"deleting attachment {attachment_id}",
                      expect=(200, 202, 204, 404))

    def delete_volume(self, volume_id: str) -> None:
        """Delete a volume that has no attachment left (404: already gone)."""
        self._request("DELETE", f"/volumes/{volume_id}", what=f"deleting volume {volume_id}",
                      expect=(202, 204, 404))


def volume_type_problem(storage: BlockStorage, name: str) -> str | None:
    """Why the live volume type ``name`` cannot serve an HA image library, or None when it can.

    Read from Cinder, not from config: a type edited out of band (``multiattach`` removed) is caught
    here, and so is a Cinder API that does not answer (every upload and read needs it).
    """
    try:
        found = storage.volume_type(name)
    except BlockStorageError as exc:
        return f"cannot read the image store's volume type from Cinder: {exc}"
    if found is None:
        return (f"Cinder has no volume type {name!r}, which every host's store uses: create it (the stack "
                "does, through pulumi-openstack) or fix pcd-imagelib-ha:storage.cinder.volumeType")
    problem = multiattach_problem(found.get("extra_specs"))
    if problem is None:
        return None
    return (f"Cinder volume type {name!r} is not multiattach ({problem}): a host cannot read an image while "
            f"another has its volume attached. Set it back: openstack volume type set --property "
            f"{MULTIATTACH_KEY}='{MULTIATTACH_ON}' {name} (or run up, which restores the extra specs)")
