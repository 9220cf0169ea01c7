"""``refresh``: read every recorded resource through its provider and take the live state as the record.

As ``pulumi refresh`` does, each resource is read through the provider blob recorded with it (the code
that made it), configured with the current stack config, with its stored outputs as props. A read that
returns an empty id means the resource was deleted out of band: it is dropped from the manifest, so the
next ``up`` creates it again. Otherwise the live outputs replace the stored ones, and every output key
whose value changed is reported as drift. Secret outputs are never stored, compared or printed.
Pending deletes are not read: the next ``up`` deletes them first either way.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TextIO

from imagelib_ha.inprocess.display import show_value
from imagelib_ha.inprocess.manifest import DROPPED_OUTPUTS, Manifest, ManifestEntry, storable_outputs
from imagelib_ha.inprocess.planner import MAX_PARALLEL, PROVIDER_KEY, ProviderCache, old_props
from imagelib_ha.inprocess.steps import Drift, InProcessError, resource_label

SECRET = "[secret]"  # noqa: S105 - the mask shown in place of a secret value


def output_drift(entry: ManifestEntry, live: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """Output key -> (stored, live) for every key whose value differs; secret keys masked."""
    skipped = DROPPED_OUTPUTS | {PROVIDER_KEY}
    keys = (set(entry.outputs) | set(live)) - skipped
    changed: dict[str, tuple[Any, Any]] = {}
    for key in sorted(keys):
        before, after = entry.outputs.get(key), live.get(key)
        if before != after:
            changed[key] = (SECRET, SECRET) if key in entry.secret_keys else (before, after)
    return changed


def refresh_manifest(manifest: Manifest, providers: ProviderCache, out: TextIO) -> list[Drift]:
    """Read every live entry (up to four at once, as the provider server serves them); record what is live.

    Returns the drift of the entries that drifted, in manifest order. A failed read leaves its entry as
    it was; the first failure is raised once every read has finished.
    """
    entries = list(reversed(manifest.deletion_order()))
    lock = threading.Lock()
    found: dict[int, Drift] = {}

    def read(index: int, entry: ManifestEntry) -> None:
        label = resource_label(entry.type, entry.name)
        try:
            result = providers.get(entry.provider_blob).read(entry.id, old_props(entry))
        except Exception as exc:
            raise InProcessError(f"{label}: read failed: {type(exc).__name__}: {exc}") from exc
        if not result.id:
            manifest.forget(entry)
            drift = Drift(entry.urn, entry.type, entry.name, gone=True)
            lines = [f"  {'gone':<10} {label}  (deleted out of band: dropped, the next up creates it again)"]
        else:
            live = storable_outputs(
                {k: v for k, v in (result.outs or {}).items() if k != PROVIDER_KEY}, entry.secret_keys
            )
            changed = output_drift(entry, live)
            if not changed and str(result.id) == entry.id:
                return
            manifest.put_in_place(entry, str(result.id), live)
            drift = Drift(entry.urn, entry.type, entry.name, gone=False, changed=changed)
            lines = [f"  {'drifted':<10} {label}"]
            lines += [
                f"        {key}: {show_value(before, False)} => {show_value(after, False)}"
                for key, (before, after) in changed.items()
            ]
        with lock:
            found[index] = drift
            print("\n".join(lines), file=out, flush=True)

    with ThreadPoolExecutor(max_workers=MAX_PARALLEL) as pool:
        futures = [pool.submit(read, i, e) for i, e in enumerate(entries)]
        errors = [f.exception() for f in futures]
    failure = next((e for e in errors if e is not None), None)
    if failure is not None:
        raise failure
    return [found[i] for i in sorted(found)]
