"""What an in-process run created, kept on disk so later runs diff, refresh and delete exactly that.

The Pulumi engine keeps this in its state; without the engine, this manifest is the state. It is
written after every step (a crash mid-run still leaves a true record) and holds no secret and no
credentials: the providers read those from the stack config in ``configure()``, so stored outputs
never carry a ``cloud`` key (one written by an older run is dropped when the manifest is loaded), nor
the output of any input that was secret. Old state is never patched with fresh credentials before a
diff, update or delete: that would hide a provider that still needs them from its props.

Two lists, as the engine's snapshot has them:

* ``resources``: the live resources, in creation order (dependencies first);
* ``pending_deletes``: resources replaced create-before-delete whose old copy is not deleted yet. An
  old copy is moved here in the same write that records its replacement, so a run that fails or is
  killed before its final deletes leaves it recorded; the next ``up`` (or ``down``) deletes it first.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

# Never stored: the credentials the providers used to take as an input (see the module docstring).
DROPPED_OUTPUTS = frozenset({"cloud"})


@dataclass
class ManifestEntry:
    """One resource created in-process: enough to diff, update, read and delete it through its provider."""

    urn: str
    type: str
    name: str
    id: str
    outputs: dict[str, Any]
    secret_keys: list[str]
    dependencies: list[str]
    provider_blob: str
    protect: bool = False


def storable_outputs(outputs: dict[str, Any], secret_keys: list[str]) -> dict[str, Any]:
    """``outputs`` without ``cloud`` and without the outputs of secret inputs."""
    dropped = DROPPED_OUTPUTS | set(secret_keys)
    return {k: v for k, v in outputs.items() if k not in dropped}


def _entry(data: dict[str, Any]) -> ManifestEntry:
    entry = ManifestEntry(**data)
    entry.outputs = storable_outputs(entry.outputs, entry.secret_keys)
    return entry


@dataclass
class Manifest:
    """The in-process state of one stack: live entries in creation order, and pending deletes."""

    path: Path
    stack: str
    entries: list[ManifestEntry] = field(default_factory=list)
    pending_deletes: list[ManifestEntry] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def load(cls, path: Path, stack: str) -> Manifest:
        if not path.exists():
            return cls(path=path, stack=stack)
        data = json.loads(path.read_text())
        return cls(
            path=path,
            stack=data.get("stack", stack),
            entries=[_entry(e) for e in data.get("resources", [])],
            pending_deletes=[_entry(e) for e in data.get("pending_deletes", [])],
        )

    def get(self, urn: str) -> ManifestEntry | None:
        with self._lock:
            return next((e for e in self.entries if e.urn == urn), None)

    def put(self, entry: ManifestEntry) -> None:
        """Record (or replace) a live entry and write the file at once."""
        entry.outputs = storable_outputs(entry.outputs, entry.secret_keys)
        with self._lock:
            self.entries = [e for e in self.entries if e.urn != entry.urn] + [entry]
            self._save()

    def replace(self, new: ManifestEntry, old: ManifestEntry) -> None:
        """Record ``new`` in place of ``old`` and keep ``old`` as a pending delete, in one write.

        One write, so no moment exists at which the old resource is recorded nowhere.
        """
        new.outputs = storable_outputs(new.outputs, new.secret_keys)
        old.outputs = storable_outputs(old.outputs, old.secret_keys)
        with self._lock:
            self.entries = [e for e in self.entries if e.urn != new.urn] + [new]
            self.pending_deletes.append(old)
            self._save()

    def put_in_place(self, entry: ManifestEntry, resource_id: str, outputs: dict[str, Any]) -> None:
        """Give ``entry`` a new id and outputs (a refresh), keeping its place in the creation order."""
        with self._lock:
            entry.id = resource_id
            entry.outputs = storable_outputs(outputs, entry.secret_keys)
            self._save()

    def forget(self, entry: ManifestEntry) -> None:
        """Strike ``entry`` (live or pending delete, by identity) from the record."""
        with self._lock:
            self.entries = [e for e in self.entries if e is not entry]
            self.pending_deletes = [e for e in self.pending_deletes if e is not entry]
            self._save()

    def _save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if not self.entries and not self.pending_deletes:
            self.path.unlink(missing_ok=True)
            return
        tmp = self.path.with_suffix(".tmp")
        payload = {
            "stack": self.stack,
            "resources": [asdict(e) for e in self.entries],
            "pending_deletes": [asdict(e) for e in self.pending_deletes],
        }
        tmp.write_text(json.dumps(payload, indent=2, sort_keys=True))
        os.chmod(tmp, 0o600)
        tmp.replace(self.path)

    def deletion_order(self) -> list[ManifestEntry]:
        """Live entries, dependents before their dependencies (reverse creation order)."""
        with self._lock:
            return list(reversed(self.entries))

    def pending(self) -> list[ManifestEntry]:
        """Pending deletes, the most recently replaced first."""
        with self._lock:
            return list(reversed(self.pending_deletes))
