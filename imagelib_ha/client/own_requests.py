"""This project's own aborted upload requests, so the host checks do not blame a host for them.

Every upload carries its own ``X-Openstack-Request-ID`` (Glance adopts a client's request id as the
request's id, and logs it on every line about the request). When the failover abandons an upload (the
host froze, died or refused mid-stream), the id is journaled here; a host's later ERROR lines with that
id are this project's doing (a hang-up mid-upload), not a fault of the host, and are not counted.

The journal is a small JSON file next to the log cursors (``log_cursors.STATE_DIR_ENV``), shared by the
processes of one operator (provider runs, ``doctor``), bounded in size and age. Request ids only.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from pathlib import Path

from imagelib_ha.client.log_cursors import state_dir

MAX_ENTRIES = 1000
MAX_AGE_SECONDS = 7 * 24 * 3600
_LOCK = threading.Lock()


def journal_file() -> Path:
    return state_dir() / "own-aborted-requests.json"


def new_request_id() -> str:
    """A request id in the form Glance logs (``req-<uuid>``)."""
    return f"req-{uuid.uuid4()}"


def _load(path: Path) -> dict[str, float]:
    try:
        data = json.loads(path.read_text())
        return {str(k): float(v) for k, v in data.items()}
    except (OSError, ValueError, AttributeError, TypeError):
        return {}


def record_aborted(request_id: str) -> None:
    """Journal an upload this project abandoned (best effort: a failure to write is not the upload's)."""
    path = journal_file()
    with _LOCK:
        entries = _load(path)
        entries[request_id] = time.time()
        kept = dict(sorted(entries.items(), key=lambda kv: kv[1])[-MAX_ENTRIES:])
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{uuid.uuid4().hex}.tmp")
            tmp.write_text(json.dumps(kept))
            tmp.replace(path)
        except OSError:
            pass


def recent_aborted() -> frozenset[str]:
    """Request ids of uploads this project abandoned in the last week."""
    cutoff = time.time() - MAX_AGE_SECONDS
    return frozenset(k for k, when in _load(journal_file()).items() if when >= cutoff)
