"""The records one resource holds: finding its image (refresh) and deleting only what it owns.

Ownership is the ``pcd_imagelib_ha_owner`` property (see :mod:`imagelib_ha.client.image_key`):

* A resource with an owner token deletes every record carrying that token (its image, and leftovers of
  its own failed attempts), and nothing else. A record carrying its key but another owner (an image
  another resource adopted) is left alone, with a progress line saying so.
* A resource written by a release without owner tokens (``owner`` None) deletes only its own recorded
  id, and only while that record carries no owner property and carries its key (or none): once any
  resource of this release has taken the image (adoption, or that resource's first update), it is that
  resource's. Limit: a delete left pending by a failed run of the earlier release, whose image another
  earlier-release resource adopted, still runs before that resource is updated and would remove it;
  the earlier release had already lost such images in the same run unless it failed in between.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from keystoneauth1 import session as ks_session

from imagelib_ha.client.glance import GlanceError, GlanceHost, HostUnavailable, Timeouts
from imagelib_ha.client.host_health import HOST_HEALTH, HostHealthBook
from imagelib_ha.client.image_key import KEY_PROPERTY, OWNER_PROPERTY, attempt_number

Progress = Callable[[str], None]
GONE_STATUSES = frozenset({"deleted", "pending_delete"})


def find_image(
    session: ks_session.Session,
    key: str,
    endpoints: Sequence[str],
    *,
    image_id: str | None = None,
    owner: str | None = None,
    book: HostHealthBook = HOST_HEALTH,
    timeouts: Timeouts | None = None,
) -> tuple[str, dict[str, Any] | None]:
    """The resource's image through the first host that answers: ``image_id``, else the active image
    carrying ``owner`` (or, for a resource without an owner token, ``key``).

    Returns (endpoint asked, record or None). Raises :class:`HostUnavailable` for the last host when
    none answers.
    """
    last: HostUnavailable | None = None
    for endpoint in book.order(endpoints):
        host = GlanceHost(session, endpoint, timeouts=timeouts or Timeouts())
        try:
            if image_id:
                record = host.get_image(image_id)
                if record is not None and record.get("status") not in GONE_STATUSES:
                    return endpoint, record
            name, value = (OWNER_PROPERTY, owner) if owner else (KEY_PROPERTY, key)
            found = [r for r in host.find_by_property(name, value) if r.get("status") == "active"]
            found.sort(key=lambda r: attempt_number(key, str(r["id"])) or 0)
            return endpoint, (found[0] if found else None)
        except HostUnavailable as exc:
            book.mark_bad(endpoint, exc.reason)
            last = exc
    if last is None:
        raise GlanceError("no image-library endpoint to ask")
    raise last


def owned_ids(
    host: GlanceHost, *, image_id: str | None, key: str | None, owner: str | None, progress: Progress
) -> list[str]:
    """The ids of the records the resource (``image_id``, ``key``, ``owner``) may delete, through ``host``.

    Reports each record it leaves alone because another resource holds it.
    """
    recorded = host.get_image(image_id) if image_id else None
    if recorded is not None and recorded.get("status") in GONE_STATUSES:
        recorded = None
    if not owner:
        if recorded is None:
            return []
        holder = recorded.get(OWNER_PROPERTY)
        if holder or recorded.get(KEY_PROPERTY) not in (None, key):
            progress(f"{host.endpoint}: image {image_id} left alone: another resource holds it now")
            return []
        return [str(recorded["id"])]
    mine = {str(r["id"]): r for r in host.find_by_property(OWNER_PROPERTY, owner)}
    if recorded is not None:
        mine.setdefault(str(recorded["id"]), recorded)
    ids = sorted(i for i, r in mine.items() if r.get(OWNER_PROPERTY) == owner)
    others = {str(r["id"]) for r in host.find_by_property(KEY_PROPERTY, key)} if key else set()
    if recorded is not None and str(recorded["id"]) not in ids:
        others.add(str(recorded["id"]))
    for other in sorted(others - set(ids)):
        progress(f"{host.endpoint}: image {other} carries this resource's key but another owner: "
                 "left alone (another resource adopted it)")
    return ids


def delete_owned(
    session: ks_session.Session,
    endpoints: Sequence[str],
    *,
    image_id: str | None,
    key: str | None,
    owner: str | None,
    progress: Progress,
    book: HostHealthBook = HOST_HEALTH,
    timeouts: Timeouts | None = None,
) -> list[str]:
    """Delete what the resource owns (see the module doc) through the first host that answers.

    Returns the deleted ids. Raises :class:`GlanceError` naming every host when none answers.
    """
    failures: list[str] = []
    for endpoint in book.order(endpoints):
        host = GlanceHost(session, endpoint, timeouts=timeouts or Timeouts())
        try:
            deleted = []
            for owned in owned_ids(host, image_id=image_id, key=key, owner=owner, progress=progress):
                if host.delete_image(owned):
                    progress(f"{endpoint}: deleted {owned}")
                    deleted.append(owned)
            book.mark_good(endpoint)
            return deleted
        except HostUnavailable as exc:
            book.mark_bad(endpoint, exc.reason)
            failures.append(f"{endpoint}: {exc.reason}")
    raise GlanceError(f"no image-library host could delete image {image_id}: " + "; ".join(failures))

