"""``ImageLibraryRole`` of release 0.1: one resource per host, kept only so existing stacks upgrade safely.

Release 0.1 declared one ``ImageLibraryRole`` per host, named after how the host was spelt. Since 0.2 the
program declares one ``ImageLibraryRoles`` for the whole set (``providers/roles.py``). A stack upgraded
from 0.1 still holds the per-host resources in its state; the engine deletes them at the end of the
first ``up`` on 0.2 (the program no longer declares them), through *this* class: state pickles the
provider by reference (``imagelib_ha.providers.role.ImageLibraryRoleProvider``), so this module path
must stay importable.

By then ``ImageLibraryRoles`` has taken the hosts over. So this provider's ``delete`` removes nothing,
and ``read`` reports what is stored. The price, documented in docs/invariants.md: a role assigned by
0.1 is adopted by 0.2 (it was present when the baseline was first recorded) and left in place by a later
``destroy``; remove it in the PCD UI if the host should stop serving images.
"""

from __future__ import annotations

import logging
from typing import Any

from pulumi.dynamic import CheckFailure, CheckResult, ReadResult

from imagelib_ha.providers.access import CloudConfiguredProvider

LOG = logging.getLogger(__name__)


class ImageLibraryRoleProvider(CloudConfiguredProvider):
    """The 0.1 per-host role: hands its host over to ``ImageLibraryRoles`` and never removes a role."""

    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        return CheckResult(dict(news), [CheckFailure(
            "host",
            "ImageLibraryRole (one resource per host) was replaced by ImageLibraryRoles in release 0.2: "
            "declare the hosts through ImageLibraryHA (pcd-imagelib-ha:hosts)",
        )])

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        return ReadResult(id_=id_, outs=dict(props))

    def delete(self, id_: str, props: dict[str, Any]) -> None:
        LOG.info(
            "image-library role on %s: managed by ImageLibraryRoles since release 0.2, left in place",
            props.get("hostname") or id_,
        )
