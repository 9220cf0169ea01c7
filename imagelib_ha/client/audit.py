"""The image audit: a one-byte ranged read of every active image on every serving host.

A host that answers 204 (no data) for an image the others serve does not see the shared store's data.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from imagelib_ha.client.glance import GlanceError, GlanceHost
from imagelib_ha.client.health_report import HealthReport, HostReport, map_hosts


def audit_images(
report: HealthReport, host: Callable[[str], GlanceHost], *, sequential: bool
) -> HealthReport:
    """One-byte ranged read of every active image on every serving host (206 = has the data)."""
    serving = report.serving
    if not serving:
        return report
    try:
        images = [i for i in host(str(serving[0].endpoint)).list_images(
            {"status": "active", "visibility": "all"}) if i.get("size")]
    except GlanceError as exc:
        report.problems.append(f"cannot list images for the audit: {exc}")
        return report

    def audit_host(row: HostReport) -> HostReport:
        glance = host(str(row.endpoint))
        missing = []
        for image in images:
            try:
                if not glance.has_data(str(image["id"])):
                    missing.append(str(image["id"]))
            except GlanceError as exc:
                return replace(row, status="error", reason=f"audit interrupted: {exc}")
        if not missing:
            return row
        return replace(row, status="no-shared-data", reason=(
            f"has no data for {len(missing)} of {len(images)} active images "
            f"(e.g. {', '.join(missing[:3])}): a one-byte ranged read answered 204"))

    audited = dict(zip((id(h) for h in serving), map_hosts(audit_host, serving, sequential=sequential),
                       strict=True))
    return replace(report, hosts=[audited.get(id(h), h) for h in report.hosts])

