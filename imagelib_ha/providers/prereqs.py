"""The Image Library HA prerequisites, checked at apply time by the providers' ``check``.

The policy pack refuses the same violations at preview; this is its twin for runs without the pack.
Platform9's "Image Library High Availability" page requires: every image-library host in **one
region**, **shared storage** (so ``local`` storage cannot serve several hosts), and the share mounted
at the **same path** on every host (Glance records each image's absolute file path). With the Cinder
backend the hosts attach one image's volume at the same time, so its volume type must be
**multiattach** (measured in the lab without it: a second host reading while the first held the
volume retried ~24 s, then answered 500).

Values that are unknown at preview (computed by other resources) are skipped, never failed: the check
runs again with the real values before anything is created.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from imagelib_ha.client.block_storage import MULTIATTACH_KEY, MULTIATTACH_ON, multiattach_problem
from imagelib_ha.providers.common import contains_unknown, is_unknown

FILE_BACKENDS = frozenset({"nfs", "local"})
# Platform9's HA page: the image-library role on two or more hosts of one region.
MIN_HA_HOSTS = 2


def _entry_value(entry: Mapping[str, Any], *keys: str) -> Any:
    for key in keys:
        if key in entry:
            return entry[key]
    return None


def _label(entry: Mapping[str, Any], index: int) -> str:
    host = entry.get("host")
    if isinstance(host, str) and host:
        return f"'{host}'"
    return f"hosts[{index}]"


def _known_str(value: Any) -> str | None:
    return value if isinstance(value, str) and value and not is_unknown(value) else None


def ha_prerequisite_failures(
    *,
    region: Any,
    backend: Any,
    hosts: Any,
    mount_path: Any,
    lab: Any = False,
) -> list[tuple[str, str]]:
    """(property, reason) pairs for every HA prerequisite the inputs violate; empty when they hold.

    ``hosts`` is the configured list of ``{host, region, mount_path}``; an entry's region or mount path
    left out (None) means "the deployment's". Checks: hosts in two regions, ``local`` storage with
    several hosts, mount paths differing from each other or from ``mount_path`` (file backends only), and
    fewer than two hosts unless ``lab`` is true.
    """
    failures: list[tuple[str, str]] = []
    if is_unknown(hosts) or not isinstance(hosts, Sequence) or isinstance(hosts, str):
        return failures
    entries = [(i, e) for i, e in enumerate(hosts) if isinstance(e, Mapping)]

    # --- one region ------------------------------------------------------------------------------
    main_region = _known_str(region)
    regions: dict[str, list[str]] = {}
    for index, entry in entries:
        host_region = _known_str(_entry_value(entry, "region"))
        if host_region is not None:
            regions.setdefault(host_region, []).append(_label(entry, index))
    if main_region is not None:
        stray = {r: names for r, names in regions.items() if r != main_region}
        if stray:
            listed = "; ".join(f"{', '.join(names)} in '{r}'" for r, names in sorted(stray.items()))
            failures.append((
                "hosts",
                f"the image library of region '{main_region}' cannot use hosts of another region ({listed}): "
                "Image Library HA works within one region. Set every entry of pcd-imagelib-ha:hosts to "
                f"region '{main_region}', or deploy one stack per region.",
            ))
    elif len(regions) > 1:
        listed = "; ".join(f"{', '.join(names)} in '{r}'" for r, names in sorted(regions.items()))
        failures.append((
            "hosts",
            f"the image-library hosts span {len(regions)} regions ({listed}): Image Library HA works within "
            "one region. Put every entry of pcd-imagelib-ha:hosts in the same region.",
        ))

    # --- enough hosts ------------------------------------------------------------------------------
    if lab is not True and len(hosts) < MIN_HA_HOSTS:
        failures.append((
            "hosts",
            f"an image library with {len(hosts)} host is not highly available: list at least "
            f"{MIN_HA_HOSTS} image-library hosts in pcd-imagelib-ha:hosts (only a lab, "
            "pcd-imagelib-ha:lab: true, may run with one)",
        ))

    # --- shared storage ----------------------------------------------------------------------------
    if not is_unknown(backend) and backend == "local" and len(hosts) > 1:
        failures.append((
            "backend",
            f"'local' storage cannot serve {len(hosts)} image-library hosts: each host would keep its own "
            "images (another host answers 204 with no data). Use pcd-imagelib-ha:storage.backend 'nfs' "
            "(a share mounted at the same path on every host) or 'cinder', or configure a single host.",
        ))

    # --- same mount path ---------------------------------------------------------------------------
    if not is_unknown(backend) and backend in FILE_BACKENDS:
        expected = _known_str(mount_path)
        config_key = "storage.nfs.mountPath" if backend == "nfs" else "storage.local.path"
        paths: dict[str, list[str]] = {}
        for index, entry in entries:
            value = _entry_value(entry, "mount_path", "mountPath")
            if value is None or contains_unknown(value):
                continue
            paths.setdefault(str(value), []).append(_label(entry, index))
        if expected is not None:
            differing = {p: names for p, names in paths.items() if p != expected}
            if differing:
                listed = "; ".join(f"{', '.join(names)} at '{p}'" for p, names in sorted(differing.items()))
                failures.append((
                    "hosts",
                    f"every image-library host must mount the shared store at the same path, "
                    f"'{expected}' (pcd-imagelib-ha:{config_key}), but {listed}: Glance records each "
                    "image's absolute path. Remove the per-host mountPath or set it to the same path.",
                ))
        elif len(paths) > 1:
            listed = "; ".join(f"{', '.join(names)} at '{p}'" for p, names in sorted(paths.items()))
            failures.append((
                "hosts",
                f"the image-library hosts mount the store at different paths ({listed}): Glance records "
                "each image's absolute path. Use one mountPath for every host in pcd-imagelib-ha:hosts.",
            ))
    return failures


def cinder_multiattach_failures(*, backend: Any, extra_specs: Any) -> list[tuple[str, str]]:
    """(property, reason) when a Cinder backend's volume type would not be multiattach; else empty.

    ``extra_specs`` are the ones the program gives the volume type it creates (None: not known, as for
    a type created outside the stack, which the health check then reads from Cinder).
    """
    if is_unknown(backend) or backend != "cinder" or extra_specs is None or contains_unknown(extra_specs):
        return []
    if not isinstance(extra_specs, Mapping):
        return [("volume_type_extra_specs", "must be an object of extra spec names to values "
                 "(pcd-imagelib-ha:storage.cinder.extraSpecs)")]
    problem = multiattach_problem(extra_specs)
    if problem is None:
        return []
    return [(
        "volume_type_extra_specs",
        f"the image library's Cinder volume type would not be multiattach: {problem}. Every image-library "
        "host attaches an image's volume to read it, and without multiattach a second host cannot read "
        "while the first holds it (it retries, then answers 500). Remove "
        f"'{MULTIATTACH_KEY}' from pcd-imagelib-ha:storage.cinder.extraSpecs (the program then sets it) "
        f"or set it to '{MULTIATTACH_ON}'.",
    )]
