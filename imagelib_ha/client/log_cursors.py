"""Where each consumer of the host checks keeps its log cursors between runs (a small JSON file).

A cursor (inode + offset) says up to where a host's Glance log was read, so an ERROR counts in one
run only. Each consumer (the health resource, ``doctor``) keeps its own file: one must not consume
the lines the other has yet to see. The file holds inode numbers and offsets only, nothing secret.
Default location: ``$XDG_STATE_HOME/pcd-imagelib-ha/`` (``~/.local/state/...``); override the directory
with ``$PCD_IMAGELIB_HA_STATE_DIR``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

from imagelib_ha.client.host_log import LogCursor

STATE_DIR_ENV = "PCD_IMAGELIB_HA_STATE_DIR"


def state_dir() -> Path:
    base = os.environ.get(STATE_DIR_ENV)
    if base:
        return Path(base)
    return Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state") / "pcd-imagelib-ha"


def cursor_file(consumer: str, region: str) -> Path:
    root = state_dir()
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in f"{consumer}-{region}")
    return root / f"log-cursors-{safe}.json"


def load(path: Path) -> dict[str, LogCursor]:
    try:
        data = json.loads(path.read_text())
        return {host: LogCursor(int(c["inode"]), int(c["offset"]), int(c.get("pid") or 0))
                for host, c in data.items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}  # no file yet (or unreadable): every host starts with a baseline


def save(path: Path, cursors: Mapping[str, LogCursor]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({h: c.as_dict() for h, c in sorted(cursors.items())}, indent=1))
    tmp.replace(path)
