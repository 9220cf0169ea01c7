"""What an in-process run created, kept on disk so ``down`` deletes exactly that.

The Pulumi engine keeps this in its state; without the engine, this manifest is the state. It is
written after every resource (a crash mid-run still leaves a true record) and holds no secret: the
``cloud`` input is stored without its password and credential secret, which are filled in again from
the stack config when the resources are read, updated or deleted.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

# Fields of the ``cloud`` input that are secret (client.session.CloudAccess.SECRET_FIELDS).
CLOUD_SECRET_FIELDS = ("password", "application_credential_secret")


@dataclass
class ManifestEntry:
    """One resource created in-process: enough to diff, update and delete it through its provider."""

    urn: str
    type: str
    name: str
    id: str
    outputs: dict[str, Any]
    secret_keys: list[str]
    dependencies: list[str]
    provider_blob: str
    protect: bool = False


@dataclass
class Manifest:
    """The in-process state of one stack: entries in creation order (dependencies first)."""

    path: Path
    stack: str
    entries: list[ManifestEntry] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def load(cls, path: Path, stack: str) -> Manifest:
        if not path.exists():
            return cls(path=path, stack=stack)
        data = json.loads(path.read_text())
        entries = [ManifestEntry(**e) for e in data.get("resources", [])]
        return cls(path=path, stack=data.get("stack", stack), entries=entries)

    def get(self, urn: str) -> ManifestEntry | None:
        with self._lock:
            return next((e for e in self.entries if e.urn == urn), None)

    def put(self, entry: ManifestEntry) -> None:
        """Record (or replace) an entry and write the file at once."""
        entry.outputs = strip_secrets(entry.outputs)
        with self._lock:
            self.entries = [e for e in self.entries if e.urn != entry.urn] + [entry]
            self._save()

    def remove(self, urn: str) -> None:
        with self._lock:
            self.entries = [e for e in self.entries if e.urn != urn]
            self._save()

    def _save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        payload = {"stack": self.stack, "resources": [asdict(e) for e in self.entries]}
        tmp.write_text(json.dumps(payload, indent=2, sort_keys=True))
        os.chmod(tmp, 0o600)
        tmp.replace(self.path)
        if not self.entries:
            self.path.unlink()

    def deletion_order(self) -> list[ManifestEntry]:
        """Dependents before their dependencies: reverse creation order, which is a topological order."""
        with self._lock:
            return list(reversed(self.entries))


def strip_secrets(outputs: dict[str, Any]) -> dict[str, Any]:
    """``outputs`` without the cloud password or credential secret (everything else kept)."""
    cleaned = dict(outputs)
    cloud = cleaned.get("cloud")
    if isinstance(cloud, dict):
        cleaned["cloud"] = {k: (None if k in CLOUD_SECRET_FIELDS else v) for k, v in cloud.items()}
    return cleaned


def with_cloud(outputs: dict[str, Any], cloud: dict[str, Any]) -> dict[str, Any]:
    """Stored outputs with the current ``cloud`` input put back (it carries the secrets)."""
    restored = dict(outputs)
    if "cloud" in restored:
        restored["cloud"] = dict(cloud)
    return restored
