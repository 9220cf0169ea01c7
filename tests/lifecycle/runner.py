"""The one place the lifecycle suite calls the in-process runner (``imagelib_ha.inprocess.executing``).

The scenarios read as an operator's session: ``up``, ``preview``, ``refresh``, ``down``, each giving
the engine-like result the engine-order branch adds (``Deployment.steps: list[Step]``,
``preview -> list[Step]``, ``refresh -> list[Drift]``). Where the runner in this checkout predates
that API, this adapter derives the steps ``up`` already prints (one ``<verb> <Type> <name>`` line per
resource) and says plainly that ``preview``/``refresh`` do not exist yet: those scenarios then fail,
which is what they are for. When the new API lands, only this module changes (or nothing: it uses the
runner's own ``steps`` as soon as they are there).

Run as a module (``python -m runner up CONFIG.json STACK ROOT``) it performs one ``up`` in a
subprocess, for the interrupted-deployment scenario.
"""

from __future__ import annotations

import io
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from imagelib_ha.inprocess import executing

TYPE_PREFIX = "pulumi-python:dynamic/imagelib:"
IMAGE = TYPE_PREFIX + "FailoverImage"
ROLES = TYPE_PREFIX + "ImageLibraryRoles"  # one resource for the set of hosts (providers, round 2)
ROLE_PER_HOST = TYPE_PREFIX + "ImageLibraryRole"  # today's per-host resource: must not appear any more
HEALTH = TYPE_PREFIX + "ImageLibraryHealth"
SETTINGS = TYPE_PREFIX + "ImageLibrarySettings"

OPS = ("create", "update", "replace", "delete", "same")
# What today's runner prints per resource (`  created    FailoverImage lc-a  (0.3s)`), as engine ops.
_PRINTED_VERBS = {"created": "create", "updated": "update", "replaced": "replace", "unchanged": "same",
                  "deleted": "delete"}
_PRINTED = re.compile(r"^\s+(created|updated|replaced|unchanged|deleted)\s+(\S+)\s+(\S+)\s+\(")


@dataclass(frozen=True)
class Step:
    op: str
    urn: str
    type: str
    name: str
    changed: tuple[str, ...] = ()


@dataclass(frozen=True)
class Drift:
    urn: str
    type: str
    name: str
    gone: bool
    changed: dict[str, Any] = field(default_factory=dict)


@dataclass
class Deployment:
    steps: list[Step]
    outputs: dict[str, Any]
    printed: str


class NotInThisRunner(AssertionError):
    """The runner in this checkout has no such operation yet (it comes with the engine-order branch)."""


def _step(raw: Any) -> Step:
    if isinstance(raw, Step):
        return raw
    return Step(op=str(raw.op), urn=str(raw.urn), type=str(raw.type), name=str(raw.name),
                changed=tuple(getattr(raw, "changed", None) or ()))


def _printed_steps(printed: str) -> list[Step]:
    steps = []
    for line in printed.splitlines():
        m = _PRINTED.match(line)
        if m:
            verb, short, name = m.groups()
            steps.append(Step(op=_PRINTED_VERBS[verb], urn="", type=TYPE_PREFIX + short, name=name))
    return steps


def up(config: dict[str, Any], *, stack: str, root: Path) -> Deployment:
    out = io.StringIO()
    try:
        result = executing.up(config, stack=stack, root=root, out=out)
    except Exception as exc:
        exc.add_note(f"the up printed:\n{out.getvalue()}")
        raise
    printed = out.getvalue()
    raw_steps = getattr(result, "steps", None)
    steps = [_step(s) for s in raw_steps] if raw_steps is not None else _printed_steps(printed)
    outputs = dict(result.run.outputs)
    return Deployment(steps=steps, outputs=outputs, printed=printed)


def preview(config: dict[str, Any], *, stack: str, root: Path) -> list[Step]:
    run = getattr(executing, "preview", None)
    if run is None:
        raise NotInThisRunner("executing.preview does not exist in this runner yet (engine-order branch)")
    return [_step(s) for s in run(config, stack=stack, root=root, out=io.StringIO())]


def refresh(config: dict[str, Any], *, stack: str, root: Path) -> list[Drift]:
    run = getattr(executing, "refresh", None)
    if run is None:
        raise NotInThisRunner("executing.refresh does not exist in this runner yet (engine-order branch)")
    return [
        d if isinstance(d, Drift) else Drift(urn=str(d.urn), type=str(d.type), name=str(d.name),
                                             gone=bool(d.gone), changed=dict(d.changed or {}))
        for d in run(config, stack=stack, root=root, out=io.StringIO())
    ]


def down(config: dict[str, Any], *, stack: str, root: Path) -> int:
    return int(executing.down(config, stack=stack, root=root, out=io.StringIO()))


def manifest_file(root: Path, stack: str) -> Path:
    return Path(executing.manifest_path(root, stack))


def recorded_resources(root: Path, stack: str) -> list[dict[str, Any]]:
    """The resources the state file records (``[]`` while there is none or it is being rewritten)."""
    try:
        data = json.loads(manifest_file(root, stack).read_text())
    except (OSError, ValueError):
        return []
    for key in ("entries", "resources"):
        if isinstance(data, dict) and isinstance(data.get(key), list):
            return [e for e in data[key] if isinstance(e, dict)]
    return []


def main(argv: list[str]) -> int:
    """``up CONFIG.json STACK ROOT``: one in-process up, for a test to interrupt."""
    command, config_file, stack, root = argv
    if command != "up":
        raise SystemExit(f"unknown command {command!r}")
    up(json.loads(Path(config_file).read_text()), stack=stack, root=Path(root))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
