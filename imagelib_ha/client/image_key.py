"""What ties an image record to the resource that made it: the key, the attempt ids and the owner token.

* The *key* (property ``pcd_imagelib_ha_key``) names the image's content: a stable identity, the first
  16 hex digits of the sha256 of its bytes, and its disk/container formats. It changes whenever the
  content or a format changes, so a replacement never shares a key (nor, below, an id) with the image
  it replaces. Several records may carry one key (two resources given one explicit key, leftovers).
* Attempt ``n`` of a key uses the deterministic id ``uuid5(NAMESPACE_URL, "pcd-imagelib-ha:" + key +
  ":" + str(n))``: the same in every process and run, so a rerun finds what an interrupted one made.
* The *owner* (property ``pcd_imagelib_ha_owner``) is a random token each resource instance draws when
  it is created. It is what a delete checks: a resource deletes only records carrying its own token.
  Adopting an image carrying the key moves the token explicitly (a JSON patch), so the previous holder's
  delete leaves the image alone.
"""

from __future__ import annotations

import uuid

KEY_PROPERTY = "pcd_imagelib_ha_key"
OWNER_PROPERTY = "pcd_imagelib_ha_owner"
ID_PREFIX = "pcd-imagelib-ha:"

# How many attempt ids are recognised as this key's when surveying leftovers. Each failed host costs
# at most two ids, so this is far beyond any real run.
MAX_ATTEMPT_IDS = 64


def make_key(identity: str, content_digest: str, disk_format: str, container_format: str) -> str:
    """The image key: ``<identity>:<sha256[:16]>:<disk_format>/<container_format>``."""
    return f"{identity}:{content_digest[:16]}:{disk_format}/{container_format}"


def new_owner_token() -> str:
    """A fresh owner token for one resource instance (never derived from anything: unguessable)."""
    return uuid.uuid4().hex


def attempt_image_id(key: str, attempt: int) -> str:
    """The image id of attempt ``attempt`` (0-based) for ``key``: the same in every process, every run."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{ID_PREFIX}{key}:{attempt}"))


def attempt_number(key: str, image_id: str) -> int | None:
    """Which attempt of ``key`` produced ``image_id``, or None if it is not one of this key's ids."""
    for n in range(MAX_ATTEMPT_IDS):
        if attempt_image_id(key, n) == image_id:
            return n
    return None
