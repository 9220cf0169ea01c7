"""Deletes as the engine runs them: in waves, dependents first, each through the code that made it.

The engine schedules deletes as "antichains" (pulumi/pulumi ``ScheduleDeletes``): every delete of a
wave may run at once, and a wave starts only when the one before it is complete. When a delete fails,
the others of its wave finish and no later wave starts. Each resource is deleted through the provider
blob recorded with it and with its stored outputs as props (never fresh values), and struck from the
manifest as soon as it is gone.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TextIO

from imagelib_ha.inprocess.manifest import Manifest, ManifestEntry
from imagelib_ha.inprocess.planner import MAX_PARALLEL, ProviderCache, delete_protected_message, old_props
from imagelib_ha.inprocess.steps import InProcessError, resource_label


def deletion_waves(entries: Sequence[ManifestEntry]) -> list[list[ManifestEntry]]:
    """``entries`` grouped so each group only holds resources nothing left in ``entries`` depends on.

    Entries are told apart by identity: an old copy pending delete shares its URN with its replacement.
    """
    remaining = list(entries)
    waves = []
    while remaining:
        needed = {dep for e in remaining for dep in e.dependencies}
        wave = [e for e in remaining if e.urn not in needed]
        if not wave:  # a cycle cannot come from a Pulumi program; fall back to the given order
            wave = [remaining[0]]
        waves.append(wave)
        remaining = [e for e in remaining if not any(e is w for w in wave)]
    return waves


def delete_entries(
    entries: Sequence[ManifestEntry],
    manifest: Manifest,
    providers: ProviderCache,
    out: TextIO,
    *,
    on_deleted: Callable[[ManifestEntry], None] | None = None,
) -> None:
    """Delete ``entries`` wave by wave; raise the first failure once its wave has finished.

    A live entry that is protected fails its delete, as the engine's delete step does. A pending delete
    is exempt: it is the old copy of a replacement that the protect rule already allowed.
    """
    lock = threading.Lock()
    pending = manifest.pending()

    def delete(entry: ManifestEntry) -> None:
        label = resource_label(entry.type, entry.name)
        was_pending = any(entry is p for p in pending)
        if entry.protect and not was_pending:
            raise InProcessError(delete_protected_message(entry))
        started = time.monotonic()
        try:
            providers.get(entry.provider_blob).delete(entry.id, old_props(entry))
        except Exception as exc:
            raise InProcessError(f"{label}: delete failed: {type(exc).__name__}: {exc}") from exc
        manifest.forget(entry)
        with lock:
            if on_deleted is not None:
                on_deleted(entry)
            what = f"{label} (the replaced copy, id {entry.id})" if was_pending else label
            print(f"  {'deleted':<10} {what}  ({time.monotonic() - started:.1f}s)", file=out, flush=True)

    with ThreadPoolExecutor(max_workers=MAX_PARALLEL) as pool:
        for wave in deletion_waves(entries):
            futures = [pool.submit(delete, entry) for entry in wave]
            errors = [f.exception() for f in futures]  # waits for the whole wave
            failure = next((e for e in errors if e is not None), None)
            if failure is not None:
                raise failure
